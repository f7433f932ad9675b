//! The schema validator: checks requests and entries against the schema of `registry.toml`.
//!
//! Requests are checked before an id is spent on them: each enumerated field is present and
//! exactly one of the schema's values (the pipeline has already put given values in the schema's
//! spelling, so a difference in case here means a stage produced a value the schema does not
//! know), the version is `v` followed by dot-separated numbers, and the title is within the
//! configured length. Entries get the same checks on their header, and more: the id's prefix
//! follows from the scope and type, its number is at least 1, the config is a YAML mapping of
//! bounded size, and the stored hash matches the content.
//!
//! Every problem of every item is reported, not only the first, each with a stable kebab-case
//! code that callers may match on, and a message for people:
//!
//! | code                                   | field             | problem                          |
//! |----------------------------------------|-------------------|----------------------------------|
//! | `unknown-<field>`, `missing-<field>`   | `scope`, `type`, `variant`, `status` | not a schema value, or absent |
//! | `bad-version`, `missing-version`       | `version`         | not `v` and numbers, or absent   |
//! | `title-too-long`                       | `title`           | over `max_title_bytes`           |
//! | `id-prefix-mismatch`, `bad-id`         | `id`              | prefix not from scope and type, number 0 |
//! | `config-too-large`                     | `config`          | over `max_config_bytes`          |
//! | `config-not-yaml`, `config-not-mapping`| `config`          | unparsable (or past the nesting and alias limits), or not a mapping |
//! | `missing-config-key`                   | `config.<key>`    | a key `schema.required` asks for is absent |
//! | `hash-mismatch`                        | `hash`            | content altered since hashing    |
//!
//! Headers found in files (`check_headers`, for `registry lint`) are checked as written: every
//! enumerated field against the schema case-insensitively (`unknown-<field>`), the version
//! (`bad-version`), the id's shape (`bad-id`) and prefix (`id-prefix-mismatch`). Spelling that
//! parses but differs from what the registry writes is a warning: `not-canonical` for a value
//! in another case than the schema's (the readable form) or not lowercase (the grepable form),
//! `id-not-canonical` for an id without its zero padding.
//!
//! Configs are checked in two ways that always agree. The fast path, on by default
//! (`fast_yaml`), is the reader of `registry-yaml`, a strict scanner for the small part of YAML
//! the default generator writes: block mappings and sequences indented by two spaces, one-line
//! plain and quoted scalars, and `{}` / `[]` (that crate defines the subset, both directions, and
//! its rules). For a config inside that subset it
//! proves that the text is valid YAML, that its top level is a mapping and that no mapping repeats
//! a key, and it answers the `schema.required` lookups, all without building a value; it costs a
//! small fraction of a full parse. For anything else, and whenever in doubt, it answers "outside
//! the subset", and the config is parsed with `yaml_serde`, the maintained successor of
//! `serde_yaml`, into a `yaml_serde::Value`, which also rejects a key repeated in one mapping and
//! gives every message above. The guarantee: the scanner accepts only texts `yaml_serde` reads as
//! a mapping without repeated keys, and reports a key present exactly when walking that value
//! would; so the problems reported never depend on which path ran. `registry-yaml`'s tests hold
//! the scanner to `yaml_serde` on hand-written hazards, generated documents and random
//! mutations; this crate's tests compare the validator's reports both ways on every config the
//! default generator renders (`tests/it/fast_yaml.rs`).
//!
//! Before the full parse, `registry_core::nesting::check` refuses a config whose collections
//! nest more than 64 levels deep or whose aliases repeat more than 65,536 nodes, as
//! `config-not-yaml` with the line and column: past those, the parser's time grows with the
//! size times the depth (100,000 nested flow mappings took 76 s; `max_config_bytes` bounds the
//! size, but can be raised) and what its aliases expand to has no useful bound (3 KB of nested
//! aliases took over 4 GB). The scanner needs no such check: it follows at most 32 levels and
//! no aliases.
//!
//! Walking the parser's events without building the value was tried before the scanner: it saved
//! under a fifth of the time, parsing itself being most of the cost, and needed a page of visitor
//! code.

use registry_core::{
    Entry, EntryId, EntryRef, ErrorCode, Field, FromConfig, HeaderForm, MAX_TITLE_BYTES, Problem,
    RawHeader, Request, RequestRef, Schema, Setup, Severity, StageError, StageResult, Validator,
    is_version, nesting,
};
use registry_yaml::read::{self, Scratch};
use serde::Deserialize;

/// The validator's `[validator.config]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `max_title_bytes`: the longest title accepted, in bytes, from 1 up to the limit every
    /// request obeys anyway ([`MAX_TITLE_BYTES`]). Default: 1024.
    pub max_title_bytes: usize,
    /// `max_config_bytes`: the largest rendered config accepted, in bytes, at least 1.
    /// Default: 65536.
    pub max_config_bytes: usize,
    /// `fast_yaml`: whether configs are first read by the strict scanner for the YAML the
    /// default generator writes, and parsed in full only when the scanner cannot tell (see the
    /// crate documentation). Either way the same problems are reported; `false` parses every
    /// config in full, which is slower and meant for comparing the two. Default: true.
    pub fast_yaml: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_title_bytes: MAX_TITLE_BYTES,
            max_config_bytes: 64 * 1024,
            fast_yaml: true,
        }
    }
}

/// Checks requests and entries against the schema; see the crate documentation.
#[derive(Debug, Clone)]
pub struct SchemaValidator {
    schema: Schema,
    /// Each field's allowed values joined for messages, computed once.
    allowed: [String; 4],
    max_title_bytes: usize,
    max_config_bytes: usize,
    /// Whether configs go through the scanner before the parser.
    fast_yaml: bool,
    /// The config keys `schema.required` asks of each scope, in the order of the schema's
    /// scope values, so that checking an entry neither looks them up nor builds strings.
    required: Vec<Vec<String>>,
}

impl FromConfig for SchemaValidator {
    type Config = Config;

    /// # Errors
    /// A `Config` error when a limit is 0, or `max_title_bytes` is over [`MAX_TITLE_BYTES`]
    /// (such titles never reach a validator, so the setting would promise what cannot happen).
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        let mut problems = Vec::new();
        if config.max_title_bytes == 0 || config.max_title_bytes > MAX_TITLE_BYTES {
            problems.push(format!(
                "max_title_bytes: {} is out of range: use 1 to {MAX_TITLE_BYTES}",
                config.max_title_bytes
            ));
        }
        if config.max_config_bytes == 0 {
            problems.push("max_config_bytes: 0 is out of range: use at least 1".to_owned());
        }
        if !problems.is_empty() {
            return Err(StageError::new(ErrorCode::Config, problems.join("; ")));
        }
        let schema = setup.schema.clone();
        let required = schema
            .allowed(Field::Scope)
            .iter()
            .map(|scope| schema.required_keys(scope).map(str::to_owned).collect())
            .collect();
        Ok(SchemaValidator {
            allowed: Field::ALL.map(|f| schema.allowed(f).join(", ")),
            required,
            schema,
            max_title_bytes: config.max_title_bytes,
            max_config_bytes: config.max_config_bytes,
            fast_yaml: config.fast_yaml,
        })
    }
}

/// Collects the problems of one item.
struct Report<'a> {
    out: &'a mut Vec<Problem>,
    item: usize,
}

impl Report<'_> {
    fn error(&mut self, code: impl Into<String>, field: &str, message: String) {
        self.push(Severity::Error, code.into(), field, message);
    }

    fn warning(&mut self, code: impl Into<String>, field: &str, message: String) {
        self.push(Severity::Warning, code.into(), field, message);
    }

    fn push(&mut self, severity: Severity, code: String, field: &str, message: String) {
        self.out.push(Problem {
            item: self.item,
            severity,
            code,
            field: field.to_owned(),
            message,
        });
    }
}

impl SchemaValidator {
    /// Checks one enumerated field's value: present and exactly one of the schema's values.
    fn check_field(&self, report: &mut Report<'_>, field: Field, value: Option<&str>) {
        let allowed = &self.allowed[field as usize];
        let Some(value) = value else {
            report.error(
                format!("missing-{field}"),
                field.name(),
                format!("{field} is missing: allowed values are {allowed}"),
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
            format!("unknown {field} `{value}`: allowed values are {allowed}{hint}"),
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

    fn check_title(&self, report: &mut Report<'_>, title: &str) {
        if title.len() > self.max_title_bytes {
            report.error(
                "title-too-long",
                "title",
                format!(
                    "title is {} bytes long: the limit is {}",
                    title.len(),
                    self.max_title_bytes
                ),
            );
        }
    }

    /// Checks one completed request, read in place: an owned one through its view.
    fn check_request(&self, report: &mut Report<'_>, request: &RequestRef<'_>) {
        for (field, value) in request.fields.iter() {
            self.check_field(report, field, *value);
        }
        Self::check_version(report, request.version);
        self.check_title(report, request.title);
    }

    /// Checks one entry, read in place (an owned one through its view), all but its hash.
    fn check_entry(&self, report: &mut Report<'_>, scratch: &mut Scratch, entry: &EntryRef<'_>) {
        for (field, value) in entry.fields.iter() {
            self.check_field(report, field, Some(value));
        }
        Self::check_version(report, Some(entry.version));
        self.check_title(report, entry.title);

        let (prefix, number) = (entry.id_prefix, entry.id_number);
        let (scope, kind) = (entry.fields.scope, entry.fields.kind);
        let renamed = self.schema.renames_id_scopes();
        if (renamed && prefix != self.schema.id_prefix(scope, kind))
            || (!renamed && !is_prefix_for(prefix, scope, kind))
        {
            let id = EntryId::new(prefix, number);
            let expected = self.schema.id_prefix(scope, kind);
            report.error(
                "id-prefix-mismatch",
                "id",
                format!(
                    "id `{id}` has prefix {prefix}, but scope {scope} and type {kind} call for {expected}: an id starts with the scope and the first three letters of the type"
                ),
            );
        }
        if number == 0 {
            let id = EntryId::new(prefix, number);
            report.error(
                "bad-id",
                "id",
                format!("id `{id}` has number 0: numbers start at 1"),
            );
        }

        self.check_config(report, scratch, scope, entry.config);
    }

    /// [`SchemaValidator::check_entry`], and the entry's hash: computed once, here, its
    /// lifecycle state included. An entry the pipeline just built and hashed
    /// ([`Validator::check_built`]) is not hashed again.
    fn check_stored(&self, report: &mut Report<'_>, scratch: &mut Scratch, entry: &Entry) {
        self.check_entry(report, scratch, &EntryRef::from(entry));
        let computed = entry.content_hash();
        if computed != entry.hash {
            report.error(
                "hash-mismatch",
                "hash",
                format!(
                    "entry {} does not match its hash: stored {}, computed {computed}: the entry was altered or damaged",
                    entry.header.id, entry.hash
                ),
            );
        }
    }

    /// Checks a header as written in a file; see the crate documentation.
    fn check_header(&self, report: &mut Report<'_>, header: &RawHeader) {
        let written = header.text();
        let mut known = [None; 4];
        for (field, value) in header.fields.iter() {
            let allowed = &self.allowed[field as usize];
            match self.schema.canonical(field, value) {
                None => report.error(
                    format!("unknown-{field}"),
                    field.name(),
                    format!("unknown {field} `{value}` in header {written}: allowed values are {allowed}"),
                ),
                Some(canonical) => {
                    known[field as usize] = Some(canonical);
                    let expected = match header.form {
                        HeaderForm::Readable => canonical.to_owned(),
                        HeaderForm::Grepable => canonical.to_lowercase(),
                    };
                    if *value != expected {
                        report.warning(
                            "not-canonical",
                            field.name(),
                            format!("{field} `{value}` is written `{expected}` in this form of header"),
                        );
                    }
                }
            }
        }
        if !is_version(&header.version) {
            report.error(
                "bad-version",
                "version",
                format!(
                    "version `{}` in header {written} is not a version: expected v followed by dot-separated numbers, e.g. v2.9",
                    header.version
                ),
            );
        }
        let id: EntryId = match header.id.parse() {
            Ok(id) => id,
            Err(_) => {
                report.error(
                    "bad-id",
                    "id",
                    format!(
                        "id `{}` in header {written} is not an id: expected SCOPE-TYP-NUMBER, e.g. SEC-RUL-042",
                        header.id
                    ),
                );
                return;
            }
        };
        if id.number() == 0 {
            report.error(
                "bad-id",
                "id",
                format!("id `{}` has number 0: numbers start at 1", header.id),
            );
        }
        if let [Some(scope), Some(kind), ..] = known {
            let expected = self.schema.id_prefix(scope, kind);
            if id.prefix() != expected {
                report.error(
                    "id-prefix-mismatch",
                    "id",
                    format!(
                        "id `{}` has prefix {}, but scope {scope} and type {kind} call for {expected}: an id starts with the scope and the first three letters of the type",
                        header.id,
                        id.prefix()
                    ),
                );
                return;
            }
        }
        let canonical = match header.form {
            HeaderForm::Readable => id.to_string(),
            HeaderForm::Grepable => id.to_string().to_lowercase(),
        };
        if header.id != canonical {
            report.warning(
                "id-not-canonical",
                "id",
                format!("id `{}` is written `{canonical}`", header.id),
            );
        }
    }

    fn check_config(
        &self,
        report: &mut Report<'_>,
        scratch: &mut Scratch,
        scope: &str,
        config: &str,
    ) {
        // An oversized config is not parsed at all: its size is reason enough to refuse it, and
        // parsing is the expensive part.
        if config.len() > self.max_config_bytes {
            report.error(
                "config-too-large",
                "config",
                format!(
                    "config is {} bytes: the limit is {} (max_config_bytes)",
                    config.len(),
                    self.max_config_bytes
                ),
            );
            return;
        }
        if self.fast_yaml
            && let Some(document) = read::scan(config, scratch)
        {
            self.check_required(report, scope, |key| document.has_key(key));
            return;
        }
        // The parser's time grows with nesting times size and its aliases can copy a node
        // without bound, so a text past those limits is refused before it is parsed.
        if let Err(e) = nesting::check(config, &nesting::Limits::default()) {
            report.error(
                "config-not-yaml",
                "config",
                format!("config is not valid YAML: {e}"),
            );
            return;
        }
        match yaml_serde::from_str::<yaml_serde::Value>(config) {
            Ok(value @ yaml_serde::Value::Mapping(_)) => {
                self.check_required(report, scope, |key| read::value_has_key(&value, key));
            }
            Ok(other) => report.error(
                "config-not-mapping",
                "config",
                format!(
                    "config is {}: its top level must be a mapping",
                    described(&other)
                ),
            ),
            Err(e) => {
                // Syntax errors name their line and column; errors found after parsing (a
                // repeated key) carry the position only as data.
                let at = match e.location() {
                    Some(l) if !e.to_string().contains(" at line ") => {
                        format!(" (at line {} column {})", l.line(), l.column())
                    }
                    _ => String::new(),
                };
                report.error(
                    "config-not-yaml",
                    "config",
                    format!("config is not valid YAML: {e}{at}"),
                );
            }
        }
    }

    /// Reports each key `schema.required` asks of `scope` that `has_key` says is absent.
    fn check_required(&self, report: &mut Report<'_>, scope: &str, has_key: impl Fn(&str) -> bool) {
        // The schema's own lookup, case-insensitive like `Schema::canonical`, without the copy
        // of the scope it makes; a scope the schema lacks gets the keys of every scope.
        let keys: &mut dyn Iterator<Item = &str> = match self
            .schema
            .allowed(Field::Scope)
            .iter()
            .position(|v| v.eq_ignore_ascii_case(scope))
        {
            Some(index) => &mut self.required[index].iter().map(String::as_str),
            None => &mut self.schema.required_keys(scope),
        };
        for key in keys {
            if !has_key(key) {
                report.error(
                    "missing-config-key",
                    &format!("config.{key}"),
                    format!(
                        "config lacks `{key}`, which schema.required asks of every {scope} entry"
                    ),
                );
            }
        }
    }
}

/// Whether `prefix` is what [`EntryId::prefix_for`] makes of `scope` and `kind` (the scope in
/// upper case, `-`, the first three ASCII letters or digits of the type in upper case), found
/// without building that string.
fn is_prefix_for(prefix: &str, scope: &str, kind: &str) -> bool {
    let (prefix, scope) = (prefix.as_bytes(), scope.as_bytes());
    let Some((head, rest)) = prefix.split_at_checked(scope.len()) else {
        return false;
    };
    // Upper-casing ASCII byte by byte leaves the bytes of other characters as they are, as
    // `str::to_ascii_uppercase` does.
    if !head
        .iter()
        .zip(scope)
        .all(|(&p, &s)| p == s.to_ascii_uppercase())
    {
        return false;
    }
    let Some((b'-', rest)) = rest.split_first() else {
        return false;
    };
    // Bytes of characters other than ASCII are never ASCII letters or digits, so filtering
    // bytes keeps what filtering characters keeps.
    let letters = kind
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .take(3)
        .map(|b| b.to_ascii_uppercase());
    letters.eq(rest.iter().copied())
}

/// What a YAML value is, in words for messages.
fn described(value: &yaml_serde::Value) -> &'static str {
    use yaml_serde::Value;
    match value {
        Value::Null => "empty or null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Validator for SchemaValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, request) in requests.iter().enumerate() {
            self.check_request(&mut Report { out, item }, &request.view());
        }
        Ok(())
    }

    fn check_requests_lent(
        &self,
        requests: &[RequestRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        for (item, request) in requests.iter().enumerate() {
            self.check_request(&mut Report { out, item }, request);
        }
        Ok(())
    }

    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        // One set of scanner buffers for the whole batch.
        let mut scratch = Scratch::default();
        for (item, entry) in entries.iter().enumerate() {
            self.check_stored(&mut Report { out, item }, &mut scratch, entry);
        }
        Ok(())
    }

    fn check_built(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        let mut scratch = Scratch::default();
        for (item, entry) in entries.iter().enumerate() {
            self.check_entry(
                &mut Report { out, item },
                &mut scratch,
                &EntryRef::from(entry),
            );
        }
        Ok(())
    }

    fn check_built_lent(
        &self,
        entries: &[EntryRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        let mut scratch = Scratch::default();
        for (item, entry) in entries.iter().enumerate() {
            self.check_entry(&mut Report { out, item }, &mut scratch, entry);
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use registry_core::{Context, EntryId, Fields, Fingerprint, Header, Timestamp};
    use registry_testkit::sample::given as fields;
    use serde_json::json;

    use super::*;

    fn validator(config: serde_json::Value) -> StageResult<SchemaValidator> {
        let config: Config = serde_json::from_value(config).expect("config deserializes");
        let setup = Setup {
            schema: Schema::default(),
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
            create: None,
        };
        SchemaValidator::from_config(config, &setup)
    }

    /// Small limits, so the size checks are easy to trip.
    fn strict() -> SchemaValidator {
        validator(json!({ "max_title_bytes": 20, "max_config_bytes": 100 })).expect("valid config")
    }

    fn codes(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.code.as_str()).collect()
    }

    fn request(title: &str, spec: &str, version: Option<&str>) -> Request {
        let mut r = Request::new(title, fields(spec), None, Context::default()).expect("valid");
        // Set after construction: `Request::new` already refuses malformed versions.
        r.version = version.map(str::to_owned);
        r
    }

    #[test]
    fn request_checks() {
        let v = strict();
        let check = |title: &str, spec: &str, version: Option<&str>, expected: &[&str]| {
            let mut out = Vec::new();
            v.check_requests(&[request(title, spec, version)], &mut out)
                .expect("validator works");
            assert_eq!(codes(&out), expected, "{title:?} {spec:?} {version:?}");
            for p in &out {
                assert_eq!((p.item, p.severity), (0, Severity::Error));
            }
        };
        let ok = Some("v2.9");
        check("Block SSH", "SEC RULES LIVE REQUIRED", ok, &[]);
        check(
            "Load",
            "ETL MULTI-ETL EXPANDED OPTIONAL",
            Some("v10.0.1"),
            &[],
        );
        check("t", "XYZ RULES LIVE DEV", ok, &["unknown-scope"]);
        check("t", "sec RULES LIVE DEV", ok, &["unknown-scope"]);
        check("t", "SEC RULEZ LIVE DEV", ok, &["unknown-type"]);
        check("t", "SEC RULES NOPE DEV", ok, &["unknown-variant"]);
        check("t", "SEC RULES LIVE NOPE", ok, &["unknown-status"]);
        check("t", "- RULES LIVE DEV", ok, &["missing-scope"]);
        check("t", "SEC - LIVE DEV", ok, &["missing-type"]);
        check("t", "SEC RULES - DEV", ok, &["missing-variant"]);
        check("t", "SEC RULES LIVE -", ok, &["missing-status"]);
        check("t", "SEC RULES LIVE DEV", Some("2.9"), &["bad-version"]);
        check("t", "SEC RULES LIVE DEV", Some("v2."), &["bad-version"]);
        check("t", "SEC RULES LIVE DEV", None, &["missing-version"]);
        check("exactly twenty bytes", "SEC RULES LIVE DEV", ok, &[]);
        check(
            "twenty-one bytes long",
            "SEC RULES LIVE DEV",
            ok,
            &["title-too-long"],
        );
        check(
            "a title well over the limit",
            "XYZ - NOPE sec",
            Some("v"),
            &[
                "unknown-scope",
                "missing-type",
                "unknown-variant",
                "unknown-status",
                "bad-version",
                "title-too-long",
            ],
        );
    }

    #[test]
    fn request_messages() {
        let v = strict();
        let mut out = Vec::new();
        v.check_requests(&[request("t", "XYZ - LIVE live", Some("2.9"))], &mut out)
            .expect("validator works");
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|p| (p.field.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "scope",
                    "unknown scope `XYZ`: allowed values are GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL"
                ),
                (
                    "type",
                    "type is missing: allowed values are RULES, SCRIPT, CONFIG, MULTI-ETL"
                ),
                (
                    "status",
                    "unknown status `live`: allowed values are LIVE, DEV, TEST, DEPRECATED, REQUIRED, STANDARD, OPTIONAL (values are case-sensitive: `LIVE`)"
                ),
                (
                    "version",
                    "version `2.9` is not a version: expected v followed by dot-separated numbers, e.g. v2.9"
                ),
            ]
        );
    }

    /// A valid entry: `SEC-RUL-042`, a small mapping as config, and the right hash.
    fn entry() -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", 42),
            version: "v2.9".into(),
        };
        let mut e = Entry {
            header,
            title: "Block SSH".into(),
            context: Context::default(),
            config: "dashboard:\n  title: Block SSH\n".into(),
            hash: registry_core::ContentHash([0; 32]),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint([0; 16]),
            revision: 1,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            provenance: None,
            lifecycle: registry_core::Lifecycle::Active,
        };
        rehash(&mut e);
        e
    }

    fn rehash(e: &mut Entry) {
        e.hash = Entry::compute_hash(&e.header, &e.title, &e.context, &e.config);
    }

    fn entry_problems(
        v: &SchemaValidator,
        edit: impl FnOnce(&mut Entry),
        hash: bool,
    ) -> Vec<Problem> {
        let mut e = entry();
        edit(&mut e);
        if hash {
            rehash(&mut e);
        }
        let mut out = Vec::new();
        v.check_entries(&[e], &mut out).expect("validator works");
        out
    }

    /// Changes one part of an entry: a field, `id`, `version`, `title`, `config`, or
    /// `config-bytes` (a valid config of that many bytes).
    fn edit(e: &mut Entry, part: &str, value: &str) {
        let f = &mut e.header.fields;
        match part {
            "scope" => f.scope = value.into(),
            "type" => f.kind = value.into(),
            "variant" => f.variant = value.into(),
            "status" => f.status = value.into(),
            "id" => e.header.id = value.parse().expect("valid id"),
            "version" => e.header.version = value.into(),
            "title" => e.title = value.into(),
            "config" => e.config = value.into(),
            "config-bytes" => {
                let n: usize = value.parse().expect("a size");
                e.config = format!("a: {}", "x".repeat(n - 3));
            }
            _ => panic!("no part {part:?}"),
        }
    }

    #[test]
    fn entry_checks() {
        let v = strict();
        // Each case edits a valid entry, then rehashes it, so only the edits can be at fault.
        type Edits<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Edits, &[&str])] = &[
            (&[], &[]),
            (&[("type", "MULTI-ETL")], &["id-prefix-mismatch"]),
            (&[("scope", "XYZ"), ("id", "XYZ-RUL-1")], &["unknown-scope"]),
            (&[("type", "RULEZ")], &["unknown-type"]),
            (&[("variant", "live")], &["unknown-variant"]),
            (&[("status", "NOPE")], &["unknown-status"]),
            (&[("version", "2.9")], &["bad-version"]),
            (&[("version", "v2.9.")], &["bad-version"]),
            (&[("title", "exactly twenty bytes")], &[]),
            (&[("title", "twenty-one bytes long")], &["title-too-long"]),
            (&[("id", "GOV-RUL-42")], &["id-prefix-mismatch"]),
            (&[("id", "SEC-RUL-0")], &["bad-id"]),
            (&[("config-bytes", "100")], &[]),
            (&[("config-bytes", "101")], &["config-too-large"]),
            (&[("config", "a: [1, 2")], &["config-not-yaml"]),
            (&[("config", "a: 1\na: 2\n")], &["config-not-yaml"]),
            (&[("config", "a:\n  k: 1\n  k: 2\n")], &["config-not-yaml"]),
            (&[("config", "a: &x {k: 1}\nb: *x\n? [1, 2]\n: v\n")], &[]),
            (&[("config", "--- 1\n--- 2\n")], &["config-not-yaml"]),
            (&[("config", "- a\n- b\n")], &["config-not-mapping"]),
            (&[("config", "plain text")], &["config-not-mapping"]),
            (&[("config", "")], &["config-not-mapping"]),
            (&[("config", "!tag {a: 1}")], &["config-not-mapping"]),
            (
                &[
                    ("scope", "XYZ"),
                    ("id", "SEC-RUL-0"),
                    ("version", "v"),
                    ("config", "[1"),
                ],
                &[
                    "unknown-scope",
                    "bad-version",
                    "id-prefix-mismatch",
                    "bad-id",
                    "config-not-yaml",
                ],
            ),
        ];
        for (edits, expected) in cases {
            let out = entry_problems(
                &v,
                |e| edits.iter().for_each(|(part, value)| edit(e, part, value)),
                true,
            );
            assert_eq!(codes(&out), *expected, "{edits:?}");
            assert!(
                out.iter()
                    .all(|p| p.item == 0 && p.severity == Severity::Error)
            );
        }
    }

    #[test]
    fn prefix_check_agrees_with_prefix_for() {
        let scopes = ["SEC", "sec", "Sec", "ETL", "é", "", "GOV-X"];
        let kinds = [
            "RULES",
            "rules",
            "MULTI-ETL",
            "M-U-L-T",
            "ab",
            "",
            "ü1bc",
            "x_y.z9",
        ];
        let mut prefixes: Vec<String> = ["SEC-RUL", "SEC-RU", "SEC-RULE", "SEC_RUL", "-", "SE", ""]
            .map(str::to_owned)
            .to_vec();
        for scope in scopes {
            for kind in kinds {
                prefixes.push(EntryId::prefix_for(scope, kind));
            }
        }
        for scope in scopes {
            for kind in kinds {
                for prefix in &prefixes {
                    assert_eq!(
                        is_prefix_for(prefix, scope, kind),
                        *prefix == EntryId::prefix_for(scope, kind),
                        "{prefix:?} {scope:?} {kind:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn altered_entries_fail_the_hash_check() {
        let v = strict();
        let check = |edit: &dyn Fn(&mut Entry), expected: &[&str]| {
            assert_eq!(codes(&entry_problems(&v, edit, false)), expected);
        };
        check(&|_| {}, &[]);
        check(&|e| e.title.push('!'), &["hash-mismatch"]);
        check(&|e| e.config.push_str("extra: 1\n"), &["hash-mismatch"]);
        check(
            &|e| e.header.fields.status = "LIVE".into(),
            &["hash-mismatch"],
        );
        check(
            &|e| e.context = Context::new([("env".into(), "prod".into())]).expect("valid"),
            &["hash-mismatch"],
        );
        check(
            &|e| e.header.id = EntryId::new("SEC-RUL", 0),
            &["bad-id", "hash-mismatch"],
        );
    }

    /// `check_built` checks all that `check_entries` does but the hash, which the pipeline
    /// computed itself.
    #[test]
    fn built_entries_are_not_hashed_again() {
        let v = strict();
        let problems = |edit: &dyn Fn(&mut Entry), built: bool| {
            let mut e = entry();
            edit(&mut e);
            let mut out = Vec::new();
            if built {
                v.check_built(&[e], &mut out).expect("validator works");
            } else {
                v.check_entries(&[e], &mut out).expect("validator works");
            }
            out.into_iter().map(|p| p.code).collect::<Vec<_>>()
        };
        let altered = |e: &mut Entry| e.title.push('!');
        assert_eq!(problems(&altered, false), ["hash-mismatch"]);
        assert!(problems(&altered, true).is_empty());
        let renumbered = |e: &mut Entry| e.header.id = EntryId::new("SEC-RUL", 0);
        assert_eq!(problems(&renumbered, false), ["bad-id", "hash-mismatch"]);
        assert_eq!(problems(&renumbered, true), ["bad-id"]);
        let listed = |e: &mut Entry| e.config = "- a\n".into();
        assert_eq!(problems(&listed, true), ["config-not-mapping"]);
    }

    #[test]
    fn entry_messages() {
        let v = strict();
        let message = |edit: &dyn Fn(&mut Entry), hash: bool| {
            let out = entry_problems(&v, edit, hash);
            assert_eq!(out.len(), 1, "{out:?}");
            (out[0].field.clone(), out[0].message.clone())
        };
        assert_eq!(
            message(&|e| e.header.id = EntryId::new("GOV-RUL", 7), true),
            (
                "id".into(),
                "id `GOV-RUL-007` has prefix GOV-RUL, but scope SEC and type RULES call for SEC-RUL: \
                 an id starts with the scope and the first three letters of the type"
                    .into()
            )
        );
        assert_eq!(
            message(&|e| e.header.id = EntryId::new("SEC-RUL", 0), true),
            (
                "id".into(),
                "id `SEC-RUL-000` has number 0: numbers start at 1".into()
            )
        );
        assert_eq!(
            message(&|e| e.config = "x".repeat(101), true),
            (
                "config".into(),
                "config is 101 bytes: the limit is 100 (max_config_bytes)".into()
            )
        );
        assert_eq!(
            message(&|e| e.config = "a: 1\n b: 2\n".into(), true),
            (
                "config".into(),
                "config is not valid YAML: mapping values are not allowed in this context at line 2 column 3"
                    .into()
            )
        );
        assert_eq!(
            message(&|e| e.config = "a: 1\nb:\n  k: 1\n  k: 2\n".into(), true),
            (
                "config".into(),
                "config is not valid YAML: b: duplicate entry with key \"k\" at line 3 column 3"
                    .into()
            )
        );
        assert_eq!(
            message(&|e| e.config = "a: 1\na: 2\n".into(), true),
            (
                "config".into(),
                "config is not valid YAML: duplicate entry with key \"a\" (at line 1 column 1)"
                    .into()
            )
        );
        assert_eq!(
            message(&|e| e.config = "- a\n".into(), true),
            (
                "config".into(),
                "config is a sequence: its top level must be a mapping".into()
            )
        );
        let (field, text) = message(&|e| e.title.push('!'), false);
        assert_eq!(field, "hash");
        assert!(
            text.starts_with("entry SEC-RUL-042 does not match its hash: stored blake3:"),
            "{text}"
        );
    }

    #[test]
    fn items_are_indexed_in_the_batch() {
        let v = strict();
        let mut out = vec![Problem {
            item: 99,
            severity: Severity::Warning,
            code: "earlier".into(),
            field: String::new(),
            message: String::new(),
        }];
        let requests = [
            request("fine", "SEC RULES LIVE DEV", Some("v1")),
            request("bad", "XYZ RULES LIVE DEV", Some("1")),
            request("fine too", "GOV CONFIG DEV LIVE", Some("v2")),
            request("bad", "SEC RULES - DEV", Some("v1")),
        ];
        v.check_requests(&requests, &mut out)
            .expect("validator works");
        let got: Vec<(usize, &str)> = out.iter().map(|p| (p.item, p.code.as_str())).collect();
        assert_eq!(
            got,
            [
                (99, "earlier"),
                (1, "unknown-scope"),
                (1, "bad-version"),
                (3, "missing-variant"),
            ]
        );

        let mut bad_config = entry();
        bad_config.config = "[]".into();
        rehash(&mut bad_config);
        let mut altered = entry();
        altered.title = "changed".into();
        let entries = [entry(), bad_config, entry(), altered, entry()];
        let mut out = Vec::new();
        v.check_entries(&entries, &mut out)
            .expect("validator works");
        let got: Vec<(usize, &str)> = out.iter().map(|p| (p.item, p.code.as_str())).collect();
        assert_eq!(got, [(1, "config-not-mapping"), (3, "hash-mismatch")]);
    }

    #[test]
    fn config() {
        assert_eq!(
            serde_json::from_value::<Config>(json!({})).expect("empty config"),
            Config {
                max_title_bytes: 1024,
                max_config_bytes: 65536,
                fast_yaml: true,
            }
        );
        let err = serde_json::from_value::<Config>(json!({ "max_title_length": 10 }))
            .expect_err("unknown key");
        assert!(
            err.to_string().contains("unknown field `max_title_length`"),
            "{err}"
        );
        let err = validator(json!({ "max_title_bytes": 0, "max_config_bytes": 0 }))
            .expect_err("zero limits");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            "max_title_bytes: 0 is out of range: use 1 to 1024; \
             max_config_bytes: 0 is out of range: use at least 1"
        );
        let err = validator(json!({ "max_title_bytes": 1025 })).expect_err("over the hard limit");
        assert_eq!(
            err.message,
            "max_title_bytes: 1025 is out of range: use 1 to 1024"
        );
        validator(json!({ "max_title_bytes": 1024, "max_config_bytes": 1 })).expect("in range");
    }

    /// An anchored list of `scalars` scalars, then `levels` lists of ten aliases to the one
    /// before: what aliases expand to grows tenfold with each level.
    fn laughs(scalars: usize, levels: usize) -> String {
        let mut text = format!("a: &a [{}]\n", vec!["x"; scalars].join(", "));
        let mut previous = "a".to_owned();
        for level in 0..levels {
            let name = format!("l{level}");
            let items = vec![format!("*{previous}"); 10].join(", ");
            text.push_str(&format!("{name}: &{name} [{items}]\n"));
            previous = name;
        }
        text
    }

    /// Configs past the nesting and alias limits of `registry_core::nesting` are refused before
    /// the parser reads them, with the code and the kind of message of malformed YAML.
    #[test]
    fn deep_and_alias_heavy_configs_are_refused_before_parsing() {
        let v = validator(json!({})).expect("default config");
        for fast_yaml in [true, false] {
            let v = SchemaValidator {
                fast_yaml,
                ..v.clone()
            };
            let problems = |config: &str| -> Vec<(String, String)> {
                entry_problems(&v, |e| e.config = config.to_owned(), true)
                    .into_iter()
                    .map(|p| (p.code, p.message))
                    .collect()
            };
            let refused = |message: &str| vec![("config-not-yaml".to_owned(), message.to_owned())];
            // One block level and 63 flow levels are within the limit; 64 flow levels are one
            // too many, though the parser would read them (its own limit is 128).
            let flow = |n: usize| format!("a: {}1{}\n", "{b: ".repeat(n), "}".repeat(n));
            assert_eq!(problems(&flow(63)), []);
            assert_eq!(
                problems(&flow(64)),
                refused(
                    "config is not valid YAML: a flow collection at line 1 column 256 nests 65 \
                     levels deep: at most 64 are allowed"
                )
            );
            let block = |n: usize| {
                let mut text = String::new();
                for level in 0..n {
                    text.push_str(&format!("{}k:\n", "  ".repeat(level)));
                }
                text.push_str(&format!("{}k: 1\n", "  ".repeat(n)));
                text
            };
            assert_eq!(problems(&block(63)), []);
            assert_eq!(
                problems(&block(64)),
                refused(
                    "config is not valid YAML: a block collection at line 65 column 129 nests 65 \
                     levels deep: at most 64 are allowed"
                )
            );
            // A few aliases are fine; ten thousand copies of a list are not, although the parser
            // would build them.
            assert_eq!(problems(&laughs(10, 1)), []);
            assert_eq!(
                problems(&laughs(10, 4)),
                refused(
                    "config is not valid YAML: the alias at line 5 column 15 makes aliases repeat \
                     more than 65536 nodes: at most 65536 are allowed"
                )
            );
        }
    }

    /// 100,000 nested flow mappings (the parser took 76 s on them) are refused at the first
    /// level past the limit.
    #[test]
    fn a_huge_adversarial_config_is_refused_at_the_limit() {
        let v = validator(json!({ "max_config_bytes": 1_000_000 })).expect("valid config");
        let n = 100_000;
        let config = format!("{}{}", "{a: ".repeat(n), "}".repeat(n));
        let out = entry_problems(&v, |e| e.config = config, true);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|p| (p.code.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [(
                "config-not-yaml",
                "config is not valid YAML: a flow collection at line 1 column 257 nests 65 levels \
                 deep: at most 64 are allowed"
            )]
        );
    }

    #[test]
    fn default_limits() {
        let v = validator(json!({})).expect("default config");
        let long = "x".repeat(MAX_TITLE_BYTES);
        let mut out = Vec::new();
        v.check_requests(
            &[request(&long, "SEC RULES LIVE DEV", Some("v1"))],
            &mut out,
        )
        .expect("validator works");
        assert_eq!(codes(&out), [] as [&str; 0]);
        let mut big = entry();
        big.config = format!("a: {}", "x".repeat(64 * 1024 - 3));
        rehash(&mut big);
        let mut over = big.clone();
        over.config.push('x');
        rehash(&mut over);
        v.check_entries(&[big, over], &mut out)
            .expect("validator works");
        let got: Vec<(usize, &str)> = out.iter().map(|p| (p.item, p.code.as_str())).collect();
        assert_eq!(got, [(1, "config-too-large")]);
    }

    fn header_problems(v: &SchemaValidator, text: &str) -> Vec<Problem> {
        let raw = registry_core::RawHeader::split(text, &Schema::default()).expect("splits");
        let mut out = Vec::new();
        v.check_headers(&[raw], &mut out).expect("validator works");
        out
    }

    #[test]
    fn header_checks() {
        let v = strict();
        // (header as written, codes of its problems, severity of each)
        let cases: &[(&str, &[(&str, Severity)])] = &[
            ("[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]", &[]),
            ("[sec-rules-live-sec-rul-042-v2.9-required]", &[]),
            ("[ETL][MULTI-ETL][DEV][ETL-MUL-7000][v10.0.1][LIVE]", &[]),
            ("[etl-multi-etl-dev-etl-mul-007-v1-live]", &[]),
            (
                "[XYZ][RULEZ][LIVE][XYZ-RUL-042][2.9][NOPE]",
                &[
                    ("unknown-scope", Severity::Error),
                    ("unknown-type", Severity::Error),
                    ("unknown-status", Severity::Error),
                    ("bad-version", Severity::Error),
                ],
            ),
            (
                "[SEC][RULES][LIVE][OPS-RUL-042][v2.9][LIVE]",
                &[("id-prefix-mismatch", Severity::Error)],
            ),
            (
                "[sec-rules-live-ops-rul-042-v2.9-live]",
                &[("id-prefix-mismatch", Severity::Error)],
            ),
            (
                "[SEC][RULES][LIVE][SEC-RUL-000][v2.9][LIVE]",
                &[("bad-id", Severity::Error)],
            ),
            (
                "[SEC][RULES][LIVE][SEC_RUL_042][v2.9][LIVE]",
                &[("bad-id", Severity::Error)],
            ),
            (
                "[sec][RULES][Live][SEC-RUL-042][v2.9][LIVE]",
                &[
                    ("not-canonical", Severity::Warning),
                    ("not-canonical", Severity::Warning),
                ],
            ),
            (
                "[SEC][RULES][LIVE][SEC-RUL-42][v2.9][LIVE]",
                &[("id-not-canonical", Severity::Warning)],
            ),
            (
                "[sec-rules-live-SEC-RUL-042-v2.9-live]",
                &[("id-not-canonical", Severity::Warning)],
            ),
        ];
        for (text, expected) in cases {
            let problems = header_problems(&v, text);
            let got: Vec<(&str, Severity)> = problems
                .iter()
                .map(|p| (p.code.as_str(), p.severity))
                .collect();
            assert_eq!(&got, expected, "{text}");
        }
    }

    #[test]
    fn header_messages_name_the_value_and_the_choices() {
        let v = strict();
        let out = header_problems(&v, "[XYZ][RULES][LIVE][XYZ-RUL-042][v2.9][LIVE]");
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].field, "scope");
        assert_eq!(
            out[0].message,
            "unknown scope `XYZ` in header [XYZ][RULES][LIVE][XYZ-RUL-042][v2.9][LIVE]: \
             allowed values are GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL"
        );
        let out = header_problems(&v, "[SEC][RULES][LIVE][SEC-RUL-42][v2.9][LIVE]");
        assert_eq!(out[0].message, "id `SEC-RUL-42` is written `SEC-RUL-042`");
    }

    #[test]
    fn configs_have_the_keys_each_scope_requires() {
        let required = std::collections::BTreeMap::from([
            ("*".to_owned(), vec!["dashboard.title".to_owned()]),
            (
                "SEC".to_owned(),
                vec!["owner".to_owned(), "dashboard.security.mfa".to_owned()],
            ),
            ("OPS".to_owned(), vec!["runbook".to_owned()]),
        ]);
        let schema = Schema::default()
            .with_required(required)
            .expect("valid schema");
        let setup = Setup {
            schema,
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
            create: None,
        };
        let v = SchemaValidator::from_config(Config::default(), &setup).expect("valid");
        let check = |config: &str, expected: &[&str]| {
            let out = entry_problems(&v, |e| e.config = config.into(), true);
            let fields: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
            assert!(
                out.iter().all(|p| p.code == "missing-config-key"),
                "{out:?}"
            );
            assert_eq!(fields, expected, "{config}");
        };
        check(
            "owner: me\ndashboard:\n  title: t\n  security:\n    mfa: true\n",
            &[],
        );
        check(
            "dashboard:\n  title: t\n",
            &["config.owner", "config.dashboard.security.mfa"],
        );
        // A null value does not count as present; OPS keys do not apply to a SEC entry.
        check(
            "owner: ~\ndashboard:\n  title: t\n  security: {mfa: false}\n",
            &["config.owner"],
        );
        check(
            "owner: me\ndashboard: [title]\n",
            &["config.dashboard.title", "config.dashboard.security.mfa"],
        );
        let out = entry_problems(&v, |e| e.config = "dashboard:\n  title: t\n".into(), true);
        assert_eq!(
            out[0].message,
            "config lacks `owner`, which schema.required asks of every SEC entry"
        );
    }
}
