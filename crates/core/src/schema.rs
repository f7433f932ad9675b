//! The schema declared in `registry.toml`: allowed values per enumerated field, the default
//! version, a default per field, and the keys every config of a scope must have.
//!
//! `Schema::default()` is the original system's schema, so a registry with no configuration file
//! behaves like the one it replaces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::header::{Field, Fields, is_version, normal_version};

/// A validated schema. Build one with [`Schema::new`], which checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    values: Fields<Vec<String>>,
    version: String,
    defaults: Fields<Option<String>>,
    /// Dotted config keys (`metadata.owner`) required per scope (schema spelling), `*` for
    /// every scope.
    #[serde(default)]
    required: BTreeMap<String, Vec<String>>,
    /// The scope part of the ids of a scope that is not its own name (schema spelling, upper
    /// case): a renamed scope keeps minting the ids it did (`SECURITY = "SEC"`).
    #[serde(default)]
    id_scopes: BTreeMap<String, String>,
}

/// The key of [`Schema::with_required`] that applies to every scope.
pub const EVERY_SCOPE: &str = "*";

/// A problem in a schema, naming the key it comes from (`schema.scope`, `schema.defaults.type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SchemaError {
    pub key: String,
    pub message: String,
}

impl Schema {
    /// Checks and builds a schema, reporting every problem found.
    ///
    /// # Errors
    /// One [`SchemaError`] per problem: an empty enumeration, a value that could not appear in a
    /// header (brackets, whitespace, a leading or trailing `-`), a duplicate, a malformed version,
    /// or a default that is not among the field's values.
    pub fn new(
        values: Fields<Vec<String>>,
        version: String,
        defaults: Fields<Option<String>>,
    ) -> Result<Schema, Vec<SchemaError>> {
        let mut problems = Vec::new();
        let mut problem =
            |key: String, message: String| problems.push(SchemaError { key, message });
        for (field, list) in values.iter() {
            let key = format!("schema.{field}");
            if list.is_empty() {
                problem(key.clone(), "must list at least one value".into());
            }
            for (i, value) in list.iter().enumerate() {
                if !is_field_value(value) {
                    problem(
                        key.clone(),
                        format!(
                            "`{value}` is not a valid value: use letters, digits, `_` and inner `-`"
                        ),
                    );
                }
                if list[..i].iter().any(|v| v.eq_ignore_ascii_case(value)) {
                    problem(key.clone(), format!("`{value}` is listed twice"));
                }
            }
        }
        if !is_version(&version) {
            problem(
                "schema.version".into(),
                format!("`{version}` is not a version: expected v followed by numbers, e.g. v2.9"),
            );
        }
        for (field, default) in defaults.iter() {
            if let Some(default) = default
                && !values[field]
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(default))
            {
                problem(
                    format!("schema.defaults.{field}"),
                    format!(
                        "`{default}` is not one of schema.{field}: {}",
                        values[field].join(", ")
                    ),
                );
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let defaults = defaults.map(|field, d| {
            d.map(|d| {
                values[field]
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(&d))
                    .cloned()
                    .unwrap_or(d)
            })
        });
        Ok(Schema {
            values,
            version: normal_version(&version),
            defaults,
            required: BTreeMap::new(),
            id_scopes: BTreeMap::new(),
        })
    }

    /// Adds the config keys each scope requires (`schema.required` in `registry.toml`): a map
    /// from a scope, or [`EVERY_SCOPE`], to dotted key paths such as `metadata.owner`.
    ///
    /// # Errors
    /// One [`SchemaError`] per problem: a scope the schema does not declare, or a key path with
    /// an empty segment.
    pub fn with_required(
        mut self,
        required: BTreeMap<String, Vec<String>>,
    ) -> Result<Schema, Vec<SchemaError>> {
        let mut problems = Vec::new();
        let mut checked = BTreeMap::new();
        for (scope, keys) in required {
            let name = if scope == EVERY_SCOPE {
                Some(EVERY_SCOPE.to_owned())
            } else {
                self.canonical(Field::Scope, &scope).map(str::to_owned)
            };
            let Some(name) = name else {
                problems.push(SchemaError {
                    key: format!("schema.required.{scope}"),
                    message: format!(
                        "`{scope}` is not one of schema.scope ({}) nor `*` for every scope",
                        self.values.scope.join(", ")
                    ),
                });
                continue;
            };
            for key in &keys {
                if key.split('.').any(|part| part.trim().is_empty()) {
                    problems.push(SchemaError {
                        key: format!("schema.required.{scope}"),
                        message: format!(
                            "`{key}` is not a key path: use dot-separated names, e.g. metadata.owner"
                        ),
                    });
                }
            }
            let list: &mut Vec<String> = checked.entry(name).or_default();
            for key in keys {
                if !list.contains(&key) {
                    list.push(key);
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.required = checked;
        Ok(self)
    }

    /// Gives scopes another scope part for their ids than their name (`schema.id_scope` in
    /// `registry.toml`): what keeps the ids of a renamed scope (`SECURITY = "SEC"` after
    /// `registry migrate --rename scope SEC=SECURITY`), since ids are stamped in files and never
    /// change. Entries of the scope then number on from the old prefix's sequence.
    ///
    /// # Errors
    /// One [`SchemaError`] per problem: a scope the schema does not declare, or an id scope that
    /// could not appear in an id.
    pub fn with_id_scopes(
        mut self,
        id_scopes: BTreeMap<String, String>,
    ) -> Result<Schema, Vec<SchemaError>> {
        let mut problems = Vec::new();
        let mut checked = BTreeMap::new();
        for (scope, id_scope) in id_scopes {
            let key = format!("schema.id_scope.{scope}");
            let Some(name) = self.canonical(Field::Scope, &scope).map(str::to_owned) else {
                problems.push(SchemaError {
                    key,
                    message: format!(
                        "`{scope}` is not one of schema.scope ({})",
                        self.values.scope.join(", ")
                    ),
                });
                continue;
            };
            if !is_field_value(&id_scope) || id_scope.contains('-') {
                problems.push(SchemaError {
                    key,
                    message: format!(
                        "`{id_scope}` cannot start an id: use letters, digits and `_`"
                    ),
                });
                continue;
            }
            checked.insert(name, id_scope.to_ascii_uppercase());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        self.id_scopes = checked;
        Ok(self)
    }

    /// The scope part of the ids of `scope`: its `schema.id_scope`, else the scope itself, in
    /// upper case.
    pub fn id_scope(&self, scope: &str) -> String {
        self.renamed_id_scope(scope)
            .map_or_else(|| scope.to_ascii_uppercase(), str::to_owned)
    }

    /// The `schema.id_scope` given to `scope`, if any.
    fn renamed_id_scope(&self, scope: &str) -> Option<&str> {
        self.canonical(Field::Scope, scope)
            .and_then(|s| self.id_scopes.get(s))
            .map(String::as_str)
    }

    /// The id prefix of entries of `scope` and type `kind`: [`crate::EntryId::prefix_for`] of
    /// [`Schema::id_scope`] and the type.
    pub fn id_prefix(&self, scope: &str, kind: &str) -> String {
        // `prefix_for` uppercases the scope itself, so it is given the borrowed one.
        crate::EntryId::prefix_for(self.renamed_id_scope(scope).unwrap_or(scope), kind)
    }

    /// Whether any scope has another id scope than its name.
    pub fn renames_id_scopes(&self) -> bool {
        !self.id_scopes.is_empty()
    }

    /// The dotted config keys an entry of `scope` must have: those of every scope, then the
    /// scope's own.
    pub fn required_keys<'a>(&'a self, scope: &str) -> impl Iterator<Item = &'a str> + 'a {
        let scope = self.canonical(Field::Scope, scope).map(str::to_owned);
        let every = self.required.get(EVERY_SCOPE).into_iter().flatten();
        let own = scope
            .and_then(|s| self.required.get(&s))
            .into_iter()
            .flatten();
        every.chain(own).map(String::as_str)
    }

    /// The values a field may take, in declaration order.
    pub fn allowed(&self, field: Field) -> &[String] {
        &self.values[field]
    }

    /// The schema's spelling of `value` if the field allows it, compared case-insensitively.
    pub fn canonical(&self, field: Field, value: &str) -> Option<&str> {
        self.values[field]
            .iter()
            .find(|v| v.eq_ignore_ascii_case(value))
            .map(String::as_str)
    }

    /// The default value of a field, used when a request leaves it empty and nothing predicts it.
    pub fn default_value(&self, field: Field) -> Option<&str> {
        self.defaults[field].as_deref()
    }

    /// The version given to entries whose request does not name one.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl Default for Schema {
    /// The original system's enumerations, default version `v2.9`, and defaults
    /// `GOV`/`RULES`/`LIVE`/`DEV`.
    fn default() -> Self {
        let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        Schema::new(
            Fields {
                scope: list(&["GOV", "SEC", "OPS", "ALERT", "BASH", "DASHBOARD", "ETL"]),
                kind: list(&["RULES", "SCRIPT", "CONFIG", "MULTI-ETL"]),
                variant: list(&[
                    "EXPANDED",
                    "COMPACT",
                    "LIVE",
                    "DEV",
                    "TEST",
                    "DEPRECATED",
                    "SCRIPT",
                    "YAML",
                ]),
                status: list(&[
                    "LIVE",
                    "DEV",
                    "TEST",
                    "DEPRECATED",
                    "REQUIRED",
                    "STANDARD",
                    "OPTIONAL",
                ]),
            },
            "v2.9".into(),
            Fields {
                scope: Some("GOV".into()),
                kind: Some("RULES".into()),
                variant: Some("LIVE".into()),
                status: Some("DEV".into()),
            },
        )
        .expect("the built-in schema is valid")
    }
}

/// Letters, digits and `_`, with single inner `-`: anything else could break a header apart.
pub(crate) fn is_field_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('-')
        && !value.ends_with('-')
        && !value.contains("--")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_may_keep_another_scope_part_for_its_ids() {
        let schema = Schema::default()
            .with_id_scopes(BTreeMap::from([("sec".to_owned(), "legacy".to_owned())]))
            .expect("valid");
        assert_eq!(schema.id_scope("SEC"), "LEGACY");
        assert_eq!(schema.id_prefix("sec", "RULES"), "LEGACY-RUL");
        assert_eq!(
            schema.id_prefix("OPS", "SCRIPT"),
            "OPS-SCR",
            "others as before"
        );
        assert!(schema.renames_id_scopes());
        let problems = Schema::default()
            .with_id_scopes(BTreeMap::from([
                ("NOPE".to_owned(), "X".to_owned()),
                ("SEC".to_owned(), "A-B".to_owned()),
            ]))
            .expect_err("invalid");
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            messages[0].starts_with("schema.id_scope.NOPE: `NOPE` is not one of schema.scope"),
            "{messages:?}"
        );
        assert_eq!(
            messages[1],
            "schema.id_scope.SEC: `A-B` cannot start an id: use letters, digits and `_`"
        );
    }

    #[test]
    fn default_schema_is_the_original() {
        let s = Schema::default();
        assert_eq!(
            s.allowed(Field::Type),
            ["RULES", "SCRIPT", "CONFIG", "MULTI-ETL"]
        );
        assert_eq!(s.canonical(Field::Scope, "sec"), Some("SEC"));
        assert_eq!(s.canonical(Field::Scope, "SECURITY"), None);
        assert_eq!(s.version(), "v2.9");
        assert_eq!(s.required_keys("SEC").count(), 0);
    }

    #[test]
    fn required_keys_per_scope() {
        let required = BTreeMap::from([
            ("*".to_owned(), vec!["metadata.id".to_owned()]),
            ("sec".to_owned(), vec!["security.level".to_owned()]),
        ]);
        let s = Schema::default().with_required(required).expect("valid");
        assert_eq!(
            s.required_keys("SEC").collect::<Vec<_>>(),
            ["metadata.id", "security.level"]
        );
        assert_eq!(s.required_keys("OPS").collect::<Vec<_>>(), ["metadata.id"]);

        let bad = BTreeMap::from([
            ("NOPE".to_owned(), vec!["a".to_owned()]),
            ("OPS".to_owned(), vec!["a..b".to_owned()]),
        ]);
        let errors = Schema::default().with_required(bad).expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["schema.required.NOPE", "schema.required.OPS"]);
    }

    #[test]
    fn reports_every_problem() {
        let errors = Schema::new(
            Fields {
                scope: vec![],
                kind: vec!["A B".into(), "X".into(), "x".into()],
                variant: vec!["LIVE".into()],
                status: vec!["LIVE".into()],
            },
            "2.9".into(),
            Fields {
                scope: None,
                kind: None,
                variant: Some("DEV".into()),
                status: None,
            },
        )
        .expect_err("invalid schema");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "schema.scope",
                "schema.type",
                "schema.type",
                "schema.version",
                "schema.defaults.variant"
            ]
        );
    }
}
