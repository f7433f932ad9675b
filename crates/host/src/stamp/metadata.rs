//! What a file already says about itself: the request fields a `[[stamp.map]]` of
//! `registry.toml` reads from its YAML (a Sigma rule's `title`, `status`, `logsource.product`,
//! `level`, `tags`, `id`) or from a Markdown file's front matter.
//!
//! Values are read by dotted key paths (`logsource.product`); a scalar becomes its text, a
//! sequence of scalars its items joined with `,`. A field's value is translated through the
//! mapping's `values` table, then must be one of the schema's values (in any case), or the file
//! fails naming the key, the value and the allowed values. A key the file lacks is simply not
//! read: the generator fills the field as for any request.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use registry_core::{Field, Fields, Schema};
use yaml_serde::Value;

use crate::settings::{Mapping, MetadataFormat, StampConfig};

/// The mappings of a configuration, compiled, with the directory their globs are relative to.
pub(super) struct Mappings {
    base: std::path::PathBuf,
    maps: Vec<(GlobMatcher, Mapping)>,
}

/// What a mapped file says.
#[derive(Debug, Default)]
pub(super) struct Said {
    pub title: Option<String>,
    pub fields: Fields<Option<String>>,
    pub context: Vec<(String, String)>,
    /// The file's own identifier: (context key, value).
    pub key: Option<(String, String)>,
}

impl Mappings {
    /// Compiles `config`'s globs (checked when the settings were read).
    pub(super) fn new(config: &StampConfig, base: &Path) -> Mappings {
        let base = base.canonicalize().unwrap_or_else(|_| base.to_owned());
        let maps = config
            .map
            .iter()
            .filter_map(|m| {
                let glob = GlobBuilder::new(&m.glob)
                    .literal_separator(true)
                    .build()
                    .ok()?;
                Some((glob.compile_matcher(), m.clone()))
            })
            .collect();
        Mappings { base, maps }
    }

    /// The first mapping whose glob matches `target` (a real path), relative to the base.
    pub(super) fn find(&self, target: &Path) -> Option<&Mapping> {
        let relative = target.strip_prefix(&self.base).ok()?;
        self.maps
            .iter()
            .find(|(glob, _)| glob.is_match(relative))
            .map(|(_, m)| m)
    }
}

/// Reads what `text` says by `mapping`.
///
/// # Errors
/// The metadata cannot be parsed, or a field's value is not the schema's, in one line.
pub(super) fn read(text: &str, mapping: &Mapping, schema: &Schema) -> Result<Said, String> {
    let source = match mapping.format {
        MetadataFormat::Yaml => text,
        MetadataFormat::FrontMatter => front_matter(text).ok_or(
            "no front matter (a YAML block between `---` lines at the top) to read the mapped \
             keys from",
        )?,
    };
    let doc: Value = yaml_serde::from_str(source).map_err(|e| {
        format!(
            "its metadata is not YAML: {}",
            crate::requests::strip_position(&e.to_string())
        )
    })?;
    let mut said = Said::default();
    if let Some(path) = &mapping.title {
        said.title = lookup(&doc, path);
    }
    for (name, path) in &mapping.fields {
        let Some(field) = Field::ALL.into_iter().find(|f| f.name() == name) else {
            continue;
        };
        let Some(value) = lookup(&doc, path) else {
            continue;
        };
        let translated = mapping
            .values
            .get(name)
            .and_then(|t| t.get(&value))
            .cloned()
            .unwrap_or_else(|| value.clone());
        let Some(canonical) = schema.canonical(field, &translated) else {
            return Err(format!(
                "`{path}` is `{value}`, which is not a {name} of the schema ({}): translate it \
                 in [stamp.map.values.{name}]",
                schema.allowed(field).join(", ")
            ));
        };
        said.fields[field] = Some(canonical.to_owned());
    }
    for (name, path) in &mapping.context {
        if let Some(value) = lookup(&doc, path) {
            said.context.push((name.clone(), value));
        }
    }
    if let Some(path) = &mapping.key
        && let Some(value) = lookup(&doc, path)
    {
        said.key = Some((path.clone(), value));
    }
    Ok(said)
}

/// The YAML between a first line `---` and the next `---` line.
fn front_matter(text: &str) -> Option<&str> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let end = rest
        .match_indices("\n---")
        .find(|(at, _)| {
            let after = &rest[at + 4..];
            after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n")
        })
        .map(|(at, _)| at)?;
    Some(&rest[..=end])
}

/// The text of the value at a dotted key path: a scalar's, or a sequence of scalars joined with
/// `,`; `None` when absent, null, a mapping, or empty.
fn lookup(doc: &Value, path: &str) -> Option<String> {
    let mut at = doc;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    let text = match at {
        Value::Sequence(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar).collect();
            parts.join(",")
        }
        other => scalar(other)?,
    };
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sigma() -> Mapping {
        let toml = r#"
glob = "sigma/**/*.yml"
format = "yaml"
title = "title"
key = "id"
[fields]
status = "status"
[values.status]
experimental = "DEV"
stable = "LIVE"
[context]
level = "level"
tags = "tags"
product = "logsource.product"
"#;
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(toml))
            .extract()
            .expect("mapping")
    }

    const RULE: &str = "title: Suspicious SSH Login\nid: 5c2f7a3e-1\nstatus: experimental\n\
        logsource:\n  product: linux\n  service: sshd\nlevel: high\n\
        tags:\n  - attack.t1110\n  - attack.credential_access\ndetection:\n  condition: x\n";

    #[test]
    fn a_sigma_rule_says_its_title_status_context_and_key() {
        let said = read(RULE, &sigma(), &Schema::default()).expect("read");
        assert_eq!(said.title.as_deref(), Some("Suspicious SSH Login"));
        assert_eq!(said.fields.status.as_deref(), Some("DEV"));
        assert_eq!(
            said.context,
            [
                ("level".to_owned(), "high".to_owned()),
                ("product".to_owned(), "linux".to_owned()),
                (
                    "tags".to_owned(),
                    "attack.t1110,attack.credential_access".to_owned()
                ),
            ]
        );
        assert_eq!(said.key, Some(("id".to_owned(), "5c2f7a3e-1".to_owned())));
    }

    #[test]
    fn a_value_outside_the_schema_names_the_key() {
        let rule = RULE.replace("experimental", "deprecated-ish");
        let e = read(&rule, &sigma(), &Schema::default()).expect_err("refused");
        assert!(
            e.starts_with("`status` is `deprecated-ish`, which is not a status"),
            "{e}"
        );
    }

    #[test]
    fn front_matter_is_read_from_markdown() {
        let mut m = sigma();
        m.format = MetadataFormat::FrontMatter;
        let md = "---\ntitle: Runbook\nstatus: stable\n---\n# Heading\n";
        let said = read(md, &m, &Schema::default()).expect("read");
        assert_eq!(said.title.as_deref(), Some("Runbook"));
        assert_eq!(said.fields.status.as_deref(), Some("LIVE"));
        assert!(read("# no front matter\n", &m, &Schema::default()).is_err());
    }
}
