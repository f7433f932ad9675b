//! A template validator plugin: the registry's schema checks plus a team's own title policy.
//!
//! Copy this crate out of the registry's repository to start a plugin (README.md says how). It
//! holds everything a plugin needs and nothing else: a type implementing a stage trait of
//! `registry-core` ([`PolicyValidator`] implements [`Validator`]), the `[validator.config]` table
//! it reads ([`Config`], through [`FromConfig`]), and one `registry_abi::export_plugin!` call at
//! the bottom of this file that turns the crate into a library the registry can load. The FFI
//! glue, the catching of panics and the passing of the config table are the export macro's work.
//!
//! What it checks, so that it can replace the default validator (`validator-schema`):
//!
//! | code                                 | field    | problem                                       |
//! |--------------------------------------|----------|-----------------------------------------------|
//! | `missing-<field>`, `unknown-<field>` | `scope`, `type`, `variant`, `status` | absent, or not a schema value |
//! | `missing-version`, `bad-version`     | `version`| absent, or not `v` and dot-separated numbers  |
//! | `id-prefix-mismatch`, `bad-id`       | `id`     | prefix not from scope and type, number 0, not an id |
//! | `config-too-large`                   | `config` | over `max_config_bytes`                       |
//! | `hash-mismatch`                      | `hash`   | content altered since it was hashed           |
//! | `forbidden-word`                     | `title`  | a word listed in `forbidden_words`            |
//! | `too-many-title-words`               | `title`  | more words than `max_title_words`             |
//!
//! Design decision: the schema checks are written with `registry-core`'s own functions
//! ([`Schema::allowed`], [`Schema::canonical`], [`is_version`], [`EntryId::prefix_for`],
//! [`Entry::verify`]) rather than by depending on the default validator's crate, so the plugin
//! needs the two crates every plugin needs and nothing more. The price: configs are not parsed.
//! The default validator also checks that a config is a YAML mapping and has the keys
//! `schema.required` asks for; this one checks only a config's size, and refuses to start when
//! the schema requires config keys rather than let entries that lack them through.

use std::str::FromStr;

use registry_core::{
    Entry, EntryId, ErrorCode, Field, FromConfig, Problem, RawHeader, Request, Schema, Setup,
    Severity, StageError, StageResult, Validator, is_version,
};
use serde::Deserialize;

/// The `[validator.config]` table of `registry.toml`. Every key is optional; a key not listed
/// here is an error that names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `forbidden_words`: words no title may contain, compared as whole words and ignoring case
    /// (`secret` rejects "Rotate the Secret key", not "secretary"). Each must be one word of
    /// letters and digits. Default: none.
    pub forbidden_words: Vec<String>,
    /// `max_title_words`: the most words a title may have, at least 1; a word is a run of letters
    /// and digits. Default: no limit.
    pub max_title_words: Option<usize>,
    /// `max_config_bytes`: the largest rendered config accepted, in bytes, at least 1. Default:
    /// 65536, as the default validator.
    pub max_config_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            forbidden_words: Vec::new(),
            max_title_words: None,
            max_config_bytes: 64 * 1024,
        }
    }
}

/// Checks requests, entries and headers against the schema and the title policy; see the crate
/// documentation.
#[derive(Debug, Clone)]
pub struct PolicyValidator {
    schema: Schema,
    /// The forbidden words in lower case, as titles are compared.
    forbidden: Vec<String>,
    max_title_words: Option<usize>,
    max_config_bytes: usize,
}

impl FromConfig for PolicyValidator {
    type Config = Config;

    /// # Errors
    /// A `Config` error listing every problem: a forbidden word that is not one word of letters
    /// and digits, a limit of 0, or a schema that requires config keys (`schema.required`),
    /// which this validator cannot check.
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        let mut problems = Vec::new();
        for word in &config.forbidden_words {
            if word.is_empty() || !word.chars().all(char::is_alphanumeric) {
                problems.push(format!(
                    "forbidden_words: `{word}` is not one word: use letters and digits only"
                ));
            }
        }
        if config.max_title_words == Some(0) {
            problems.push("max_title_words: 0 is out of range: use at least 1".to_owned());
        }
        if config.max_config_bytes == 0 {
            problems.push("max_config_bytes: 0 is out of range: use at least 1".to_owned());
        }
        let schema = &setup.schema;
        if schema
            .allowed(Field::Scope)
            .iter()
            .any(|scope| schema.required_keys(scope).next().is_some())
        {
            problems.push(
                "schema.required is set, but this validator does not read configs and cannot \
                 check the keys it asks for: remove schema.required or use validator-schema"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(StageError::new(ErrorCode::Config, problems.join("; ")));
        }
        Ok(PolicyValidator {
            schema: schema.clone(),
            forbidden: config
                .forbidden_words
                .iter()
                .map(|w| w.to_lowercase())
                .collect(),
            max_title_words: config.max_title_words,
            max_config_bytes: config.max_config_bytes,
        })
    }
}

/// Collects the problems of one item of a batch.
struct Report<'a> {
    out: &'a mut Vec<Problem>,
    item: usize,
}

impl Report<'_> {
    fn error(&mut self, code: impl Into<String>, field: &str, message: String) {
        self.out.push(Problem {
            item: self.item,
            severity: Severity::Error,
            code: code.into(),
            field: field.to_owned(),
            message,
        });
    }
}

/// The words of a title: runs of letters and digits, so punctuation never hides a word.
fn words(title: &str) -> impl Iterator<Item = &str> {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

impl PolicyValidator {
    /// The schema's values of a field, joined for messages.
    fn allowed(&self, field: Field) -> String {
        self.schema.allowed(field).join(", ")
    }

    /// An enumerated field of a request or an entry: present and exactly one of the schema's
    /// values. The pipeline has already put given values in the schema's spelling, so another
    /// case here means a stage produced a value the schema does not know.
    fn check_field(&self, report: &mut Report<'_>, field: Field, value: Option<&str>) {
        let Some(value) = value else {
            report.error(
                format!("missing-{field}"),
                field.name(),
                format!(
                    "{field} is missing: allowed values are {}",
                    self.allowed(field)
                ),
            );
            return;
        };
        if self.schema.allowed(field).iter().any(|v| v == value) {
            return;
        }
        let hint = match self.schema.canonical(field, value) {
            Some(spelled) => format!(" (values are case-sensitive: `{spelled}`)"),
            None => String::new(),
        };
        report.error(
            format!("unknown-{field}"),
            field.name(),
            format!(
                "unknown {field} `{value}`: allowed values are {}{hint}",
                self.allowed(field)
            ),
        );
    }

    fn check_version(report: &mut Report<'_>, version: Option<&str>) {
        match version {
            None => report.error(
                "missing-version",
                "version",
                "version is missing: expected v followed by numbers, e.g. v2.9".to_owned(),
            ),
            Some(v) if !is_version(v) => report.error(
                "bad-version",
                "version",
                format!(
                    "version `{v}` is not a version: expected v followed by dot-separated numbers, e.g. v2.9"
                ),
            ),
            Some(_) => {}
        }
    }

    /// The id's prefix follows from the scope and type.
    fn check_prefix(report: &mut Report<'_>, id: &EntryId, written: &str, scope: &str, kind: &str) {
        let expected = EntryId::prefix_for(scope, kind);
        if id.prefix() != expected {
            report.error(
                "id-prefix-mismatch",
                "id",
                format!(
                    "id `{written}` has prefix {}, but scope {scope} and type {kind} call for {expected}: \
                     an id starts with the scope and the first three letters of the type",
                    id.prefix()
                ),
            );
        }
    }

    /// The id's number starts at 1.
    fn check_number(report: &mut Report<'_>, id: &EntryId, written: &str) {
        if id.number() == 0 {
            report.error(
                "bad-id",
                "id",
                format!("id `{written}` has number 0: numbers start at 1"),
            );
        }
    }

    /// The title policy: no forbidden word (each reported once), at most `max_title_words` words.
    fn check_policy(&self, report: &mut Report<'_>, title: &str) {
        let mut found: Vec<&str> = Vec::new();
        let mut count = 0;
        for word in words(title) {
            count += 1;
            if self.forbidden.is_empty() {
                continue;
            }
            let lower = word.to_lowercase();
            if let Some(forbidden) = self.forbidden.iter().find(|f| **f == lower)
                && !found.contains(&forbidden.as_str())
            {
                found.push(forbidden);
                report.error(
                    "forbidden-word",
                    "title",
                    format!(
                        "title `{title}` contains the forbidden word `{word}`: \
                         forbidden_words lists {}",
                        self.forbidden.join(", ")
                    ),
                );
            }
        }
        if let Some(max) = self.max_title_words
            && count > max
        {
            report.error(
                "too-many-title-words",
                "title",
                format!("title has {count} words: the limit is {max} (max_title_words)"),
            );
        }
    }

    fn check_entry(&self, report: &mut Report<'_>, entry: &Entry) {
        let header = &entry.header;
        for (field, value) in header.fields.iter() {
            self.check_field(report, field, Some(value));
        }
        Self::check_version(report, Some(&header.version));
        let written = header.id.to_string();
        Self::check_prefix(
            report,
            &header.id,
            &written,
            &header.fields.scope,
            &header.fields.kind,
        );
        Self::check_number(report, &header.id, &written);
        if entry.config.len() > self.max_config_bytes {
            report.error(
                "config-too-large",
                "config",
                format!(
                    "config is {} bytes: the limit is {} (max_config_bytes)",
                    entry.config.len(),
                    self.max_config_bytes
                ),
            );
        }
        if !entry.verify() {
            report.error(
                "hash-mismatch",
                "hash",
                format!(
                    "entry {} does not match its hash {}: the entry was altered or damaged",
                    header.id, entry.hash
                ),
            );
        }
        self.check_policy(report, &entry.title);
    }

    /// A header as written in a file: values in any case, since the grepable form is lowercase.
    /// Spelling that differs from what the registry writes would be at most a warning; this
    /// validator does not report it.
    fn check_header(&self, report: &mut Report<'_>, header: &RawHeader) {
        let mut known = [None; 4];
        for (field, value) in header.fields.iter() {
            match self.schema.canonical(field, value) {
                Some(canonical) => known[field as usize] = Some(canonical),
                None => report.error(
                    format!("unknown-{field}"),
                    field.name(),
                    format!(
                        "unknown {field} `{value}` in header {}: allowed values are {}",
                        header.text(),
                        self.allowed(field)
                    ),
                ),
            }
        }
        Self::check_version(report, Some(&header.version));
        // Parsing ignores case, so the grepable form's lowercase id parses too.
        let id = match EntryId::from_str(&header.id) {
            Ok(id) => id,
            Err(_) => {
                report.error(
                    "bad-id",
                    "id",
                    format!(
                        "id `{}` in header {} is not an id: expected SCOPE-TYP-NUMBER, e.g. SEC-RUL-042",
                        header.id,
                        header.text()
                    ),
                );
                return;
            }
        };
        // The prefix can be checked only against a scope and a type the schema knows.
        if let [Some(scope), Some(kind), ..] = known {
            Self::check_prefix(report, &id, &header.id, scope, kind);
        }
        Self::check_number(report, &id, &header.id);
    }
}

impl Validator for PolicyValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, request) in requests.iter().enumerate() {
            let report = &mut Report { out, item };
            for (field, value) in request.fields.iter() {
                self.check_field(report, field, value.as_deref());
            }
            Self::check_version(report, request.version.as_deref());
            self.check_policy(report, request.title());
        }
        Ok(())
    }

    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, entry) in entries.iter().enumerate() {
            self.check_entry(&mut Report { out, item }, entry);
        }
        Ok(())
    }

    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, header) in headers.iter().enumerate() {
            self.check_header(&mut Report { out, item }, header);
        }
        Ok(())
    }
}

// The one line that makes this crate a plugin: `name` is what `registry plugins` shows, and
// `validator:` names the type the registry builds, with `FromConfig`, from `[validator.config]`.
// A library may export several stages: add `cache: …`, `storage: …` and so on.
registry_abi::export_plugin! {
    name: "plugin-template",
    validator: crate::PolicyValidator,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use registry_core::{Fields, HeaderForm};
    use registry_testkit::sample;
    use serde_json::json;

    use super::*;

    fn setup(schema: Schema) -> Setup {
        Setup {
            schema,
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
            create: None,
        }
    }

    /// The validator built from a `[validator.config]` table, given as JSON as the host gives it.
    fn validator(config: serde_json::Value) -> StageResult<PolicyValidator> {
        let config: Config = serde_json::from_value(config).expect("config deserializes");
        PolicyValidator::from_config(config, &setup(Schema::default()))
    }

    fn codes(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.code.as_str()).collect()
    }

    fn request_problems(v: &PolicyValidator, title: &str) -> Vec<Problem> {
        let mut out = Vec::new();
        v.check_requests(
            &[sample::request(title, sample::given("SEC RULES LIVE DEV"))],
            &mut out,
        )
        .expect("validator works");
        // The sample request names no version; the pipeline fills it in before checking.
        out.retain(|p| p.code != "missing-version");
        out
    }

    #[test]
    fn config_defaults_and_unknown_keys() {
        assert_eq!(
            serde_json::from_value::<Config>(json!({})).expect("empty table"),
            Config {
                forbidden_words: vec![],
                max_title_words: None,
                max_config_bytes: 65536,
            }
        );
        let err = serde_json::from_value::<Config>(json!({ "forbidden_word": ["x"] }))
            .expect_err("misspelt key");
        assert!(
            err.to_string().contains("unknown field `forbidden_word`"),
            "{err}"
        );
    }

    #[test]
    fn bad_config_reports_every_problem() {
        let err = validator(json!({
            "forbidden_words": ["ok", "two words", "", "dash-ed"],
            "max_title_words": 0,
            "max_config_bytes": 0,
        }))
        .expect_err("invalid config");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "forbidden_words: `two words` is not one word: use letters and digits only; \
             forbidden_words: `` is not one word: use letters and digits only; \
             forbidden_words: `dash-ed` is not one word: use letters and digits only; \
             max_title_words: 0 is out of range: use at least 1; \
             max_config_bytes: 0 is out of range: use at least 1"
        );
    }

    #[test]
    fn refuses_a_schema_that_requires_config_keys() {
        let required = [("OPS".to_owned(), vec!["runbook".to_owned()])].into();
        let schema = Schema::default()
            .with_required(required)
            .expect("valid schema");
        let err = PolicyValidator::from_config(Config::default(), &setup(schema))
            .expect_err("cannot check required keys");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "schema.required is set, but this validator does not read configs and cannot check \
             the keys it asks for: remove schema.required or use validator-schema"
        );
    }

    #[test]
    fn title_policy() {
        let v = validator(json!({
            "forbidden_words": ["Secret", "tmp"],
            "max_title_words": 4,
        }))
        .expect("valid config");
        // (title, codes of its problems)
        let cases: &[(&str, &[&str])] = &[
            ("rotate the api key", &[]),
            ("rotate the secret", &["forbidden-word"]),
            ("Rotate the SECRET", &["forbidden-word"]),
            ("secret: tmp/file", &["forbidden-word", "forbidden-word"]),
            ("secret secret", &["forbidden-word"]),
            ("secretary notes", &[]),
            ("tmpfile cleanup", &[]),
            ("one two three four", &[]),
            ("one two three four five", &["too-many-title-words"]),
            ("one, two... three - four", &[]),
            (
                "keep the secret out of logs",
                &["forbidden-word", "too-many-title-words"],
            ),
        ];
        for (title, expected) in cases {
            assert_eq!(codes(&request_problems(&v, title)), *expected, "{title}");
        }
    }

    #[test]
    fn policy_messages() {
        let v = validator(json!({ "forbidden_words": ["secret"], "max_title_words": 2 }))
            .expect("valid config");
        let out = request_problems(&v, "leak the Secret");
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(
            (out[0].field.as_str(), out[0].message.as_str()),
            (
                "title",
                "title `leak the Secret` contains the forbidden word `Secret`: forbidden_words lists secret"
            )
        );
        assert_eq!(
            out[1].message,
            "title has 3 words: the limit is 2 (max_title_words)"
        );
    }

    #[test]
    fn request_checks() {
        let v = validator(json!({})).expect("default config");
        let request = |spec: &str, version: Option<&str>| {
            let mut r = sample::request("a title", sample::given(spec));
            r.version = version.map(str::to_owned);
            r
        };
        // (fields, version, codes)
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            ("SEC RULES LIVE DEV", Some("v2.9"), &[]),
            ("XYZ RULES LIVE DEV", Some("v2.9"), &["unknown-scope"]),
            ("sec RULES LIVE DEV", Some("v2.9"), &["unknown-scope"]),
            ("SEC RULES - DEV", Some("v2.9"), &["missing-variant"]),
            ("SEC RULES LIVE DEV", None, &["missing-version"]),
            ("SEC RULES LIVE DEV", Some("2.9"), &["bad-version"]),
        ];
        for (spec, version, expected) in cases {
            let mut out = Vec::new();
            v.check_requests(&[request(spec, *version)], &mut out)
                .expect("validator works");
            assert_eq!(codes(&out), *expected, "{spec} {version:?}");
            assert!(out.iter().all(|p| p.item == 0));
        }
        let mut out = Vec::new();
        v.check_requests(&[request("sec RULES LIVE DEV", Some("v1"))], &mut out)
            .expect("validator works");
        assert_eq!(
            out[0].message,
            "unknown scope `sec`: allowed values are GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL \
             (values are case-sensitive: `SEC`)"
        );
    }

    #[test]
    fn entry_checks() {
        let v = validator(json!({ "max_config_bytes": 2000, "forbidden_words": ["tmp"] }))
            .expect("valid config");
        let fields = sample::fields("SEC", "RULES", "LIVE", "DEV");
        let good = sample::entry(fields, 42, "block tor exits");
        let rehash = |e: &mut Entry| {
            e.hash = Entry::compute_hash(&e.header, &e.title, &e.context, &e.config);
        };
        let check = |edit: &dyn Fn(&mut Entry), expected: &[&str]| {
            let mut entry = good.clone();
            edit(&mut entry);
            let mut out = Vec::new();
            v.check_entries(&[good.clone(), entry], &mut out)
                .expect("validator works");
            assert!(out.iter().all(|p| p.item == 1), "{out:?}");
            assert_eq!(codes(&out), expected);
        };
        check(&|_| {}, &[]);
        check(&|e| e.title.push('!'), &["hash-mismatch"]);
        check(
            &|e| {
                e.header.id = EntryId::new("GOV-RUL", 42);
                rehash(e);
            },
            &["id-prefix-mismatch"],
        );
        check(
            &|e| {
                e.header.id = EntryId::new("SEC-RUL", 0);
                rehash(e);
            },
            &["bad-id"],
        );
        check(
            &|e| {
                e.config = "x".repeat(2001);
                rehash(e);
            },
            &["config-too-large"],
        );
        check(
            &|e| {
                e.header.fields.status = "NOPE".into();
                e.header.version = "2".into();
                rehash(e);
            },
            &["unknown-status", "bad-version"],
        );
        check(
            &|e| {
                e.title = "drop tmp tables".into();
                rehash(e);
            },
            &["forbidden-word"],
        );
    }

    #[test]
    fn header_checks() {
        let v = validator(json!({})).expect("default config");
        // (header as written, codes of its problems)
        let cases: &[(&str, &[&str])] = &[
            ("[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]", &[]),
            ("[sec-rules-live-sec-rul-042-v2.9-required]", &[]),
            ("[sec][Rules][LIVE][SEC-RUL-42][v2.9][LIVE]", &[]),
            (
                "[XYZ][RULEZ][LIVE][XYZ-RUL-042][2.9][NOPE]",
                &[
                    "unknown-scope",
                    "unknown-type",
                    "unknown-status",
                    "bad-version",
                ],
            ),
            (
                "[SEC][RULES][LIVE][OPS-RUL-042][v2.9][LIVE]",
                &["id-prefix-mismatch"],
            ),
            (
                "[sec-rules-live-ops-rul-042-v2.9-live]",
                &["id-prefix-mismatch"],
            ),
            ("[SEC][RULES][LIVE][SEC-RUL-000][v2.9][LIVE]", &["bad-id"]),
            (
                "[XYZ][RULES][LIVE][XYZ-RUL-000][v2.9][LIVE]",
                &["unknown-scope", "bad-id"],
            ),
            ("[SEC][RULES][LIVE][SEC_RUL_042][v2.9][LIVE]", &["bad-id"]),
        ];
        for (text, expected) in cases {
            let raw = RawHeader::split(text, &Schema::default()).expect("splits");
            let mut out = Vec::new();
            v.check_headers(&[raw], &mut out).expect("validator works");
            assert_eq!(codes(&out), *expected, "{text}");
        }
        let raw = RawHeader {
            form: HeaderForm::Readable,
            fields: Fields::from_fn(|f| Schema::default().allowed(f)[0].clone()),
            id: "GOV-RUL-001".into(),
            version: "v1".into(),
        };
        let mut out = Vec::new();
        v.check_headers(&[raw.clone(), raw], &mut out)
            .expect("validator works");
        assert!(out.is_empty(), "{out:?}");
    }
}
