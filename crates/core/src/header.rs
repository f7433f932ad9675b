//! Headers, ids and the enumerated header fields.
//!
//! A header has a readable form, `[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]`, and a grepable
//! form, `[sec-rules-live-sec-rul-042-v2.9-required]`. The grepable form joins values that may
//! themselves contain `-` (type `MULTI-ETL`), so parsing it needs the schema's enumerations to know
//! where one field ends; the readable form parses on its own.

use std::fmt;
use std::ops::{Index, IndexMut};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

/// The header fields whose values come from an enumeration declared in the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Scope,
    Type,
    Variant,
    Status,
}

impl Field {
    /// Every enumerated field, in header order.
    pub const ALL: [Field; 4] = [Field::Scope, Field::Type, Field::Variant, Field::Status];

    /// The field's name as written in `registry.toml`, on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Field::Scope => "scope",
            Field::Type => "type",
            Field::Variant => "variant",
            Field::Status => "status",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per enumerated [`Field`], indexed by the field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fields<T> {
    pub scope: T,
    #[serde(rename = "type")]
    pub kind: T,
    pub variant: T,
    pub status: T,
}

impl<T> Fields<T> {
    /// Builds the value of every field from a function of the field.
    pub fn from_fn(mut f: impl FnMut(Field) -> T) -> Self {
        Fields {
            scope: f(Field::Scope),
            kind: f(Field::Type),
            variant: f(Field::Variant),
            status: f(Field::Status),
        }
    }

    /// The fields and their values, in header order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, &T)> {
        Field::ALL.into_iter().map(move |f| (f, &self[f]))
    }

    pub fn map<U>(self, mut f: impl FnMut(Field, T) -> U) -> Fields<U> {
        Fields {
            scope: f(Field::Scope, self.scope),
            kind: f(Field::Type, self.kind),
            variant: f(Field::Variant, self.variant),
            status: f(Field::Status, self.status),
        }
    }
}

impl<T> Index<Field> for Fields<T> {
    type Output = T;
    fn index(&self, field: Field) -> &T {
        match field.index() {
            0 => &self.scope,
            1 => &self.kind,
            2 => &self.variant,
            _ => &self.status,
        }
    }
}

impl<T> IndexMut<Field> for Fields<T> {
    fn index_mut(&mut self, field: Field) -> &mut T {
        match field.index() {
            0 => &mut self.scope,
            1 => &mut self.kind,
            2 => &mut self.variant,
            _ => &mut self.status,
        }
    }
}

/// An entry id, `SCOPE-TYP-NNN`: the scope, the first three letters of the type, and a sequence
/// number that storage allocates per prefix, zero-padded to at least three digits.
///
/// Ids order by prefix, then by number (so `SEC-RUL-1000` comes after `SEC-RUL-999`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    prefix: String,
    number: u64,
}

impl EntryId {
    /// The id prefix of a scope and a type: `SEC` and `RULES` give `SEC-RUL`, `ETL` and `MULTI-ETL`
    /// give `ETL-MUL`.
    pub fn prefix_for(scope: &str, kind: &str) -> String {
        let mut prefix = String::with_capacity(scope.len() + 4);
        prefix.push_str(scope);
        prefix.make_ascii_uppercase();
        prefix.push('-');
        prefix.extend(
            kind.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(3)
                .map(|c| c.to_ascii_uppercase()),
        );
        prefix
    }

    /// Builds an id from a prefix made by [`EntryId::prefix_for`] and a sequence number.
    pub fn new(prefix: impl Into<String>, number: u64) -> Self {
        EntryId {
            prefix: prefix.into(),
            number,
        }
    }

    /// Makes this id `prefix` and `number`, reusing its prefix's buffer (see
    /// [`crate::copy_into`]).
    pub fn refill(&mut self, prefix: &str, number: u64) {
        crate::request::copy_into(&mut self.prefix, prefix);
        self.number = number;
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn number(&self) -> u64 {
        self.number
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:03}", self.prefix, self.number)
    }
}

impl FromStr for EntryId {
    type Err = HeaderError;

    /// Parses `SEC-RUL-042`, case-insensitively and with or without the zero padding.
    fn from_str(s: &str) -> Result<Self, HeaderError> {
        let bad = || HeaderError::BadId(s.to_owned());
        let (prefix, number) = s.trim().rsplit_once('-').ok_or_else(bad)?;
        if number.is_empty() || number.len() > 19 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (scope, letters) = prefix.rsplit_once('-').ok_or_else(bad)?;
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !plain(scope) || !plain(letters) || letters.contains('-') {
            return Err(bad());
        }
        Ok(EntryId {
            prefix: prefix.to_ascii_uppercase(),
            number: number.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for EntryId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A complete header: the four enumerated fields, the id and the version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub fields: Fields<String>,
    pub id: EntryId,
    pub version: String,
}

/// A header line that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("malformed id `{0}`: expected SCOPE-TYP-NUMBER, e.g. SEC-RUL-042")]
    BadId(String),
    #[error("malformed header `{text}`: {reason}")]
    Malformed { text: String, reason: String },
    #[error("header `{header}`: unknown {field} `{value}`")]
    UnknownValue {
        header: String,
        field: &'static str,
        value: String,
    },
    #[error(
        "header `{header}`: id `{id}` does not start with {expected}, the prefix of its scope and type"
    )]
    PrefixMismatch {
        header: String,
        id: String,
        expected: String,
    },
}

impl HeaderError {
    fn malformed(text: &str, reason: impl Into<String>) -> HeaderError {
        HeaderError::Malformed {
            text: text.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The two ways a header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderForm {
    /// `[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]`
    Readable,
    /// `[sec-rules-live-sec-rul-042-v2.9-required]`
    Grepable,
}

/// A header split into its six parts as written, nothing checked yet: what is found in a file
/// and handed to a validator, so that every problem of a header is reported, not only the first.
///
/// Splitting the readable form needs nothing but the brackets. The grepable form is split with
/// the schema's values where they match; a token no schema value matches is taken as one whole
/// value, so `[xyz-rules-live-xyz-rul-001-v2.9-live]` splits into an unknown scope `xyz` rather
/// than failing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawHeader {
    pub form: HeaderForm,
    pub fields: Fields<String>,
    /// The id as written (`SEC-RUL-042`; lowercase in the grepable form).
    pub id: String,
    pub version: String,
}

impl RawHeader {
    /// Splits either form into its parts.
    ///
    /// # Errors
    /// [`HeaderError::Malformed`], saying what is wrong, when the text does not have the shape of
    /// a header: not bracketed, not six fields, no version in the grepable form, an empty field.
    pub fn split(text: &str, schema: &Schema) -> Result<RawHeader, HeaderError> {
        let text = text.trim();
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| HeaderError::malformed(text, "a header is enclosed in brackets"))?;
        if inner.contains("][") {
            Self::split_readable(text, inner)
        } else {
            Self::split_grepable(text, inner, schema)
        }
    }

    fn split_readable(text: &str, inner: &str) -> Result<RawHeader, HeaderError> {
        let parts: Vec<&str> = inner.split("][").collect();
        let [scope, kind, variant, id, version, status] = parts[..] else {
            return Err(HeaderError::malformed(
                text,
                format!(
                    "{} fields, expected 6: [SCOPE][TYPE][VARIANT][ID][VERSION][STATUS]",
                    parts.len()
                ),
            ));
        };
        let names = ["scope", "type", "variant", "id", "version", "status"];
        let parts = [scope, kind, variant, id, version, status];
        if let Some(at) = parts.iter().position(|p| p.trim().is_empty()) {
            return Err(HeaderError::malformed(
                text,
                format!("the {} field is empty", names[at]),
            ));
        }
        if let Some(at) = parts
            .iter()
            .position(|p| p.contains(['[', ']']) || p.contains(char::is_whitespace))
        {
            return Err(HeaderError::malformed(
                text,
                format!(
                    "the {} field `{}` contains brackets or spaces",
                    names[at], parts[at]
                ),
            ));
        }
        Ok(RawHeader {
            form: HeaderForm::Readable,
            fields: Fields {
                scope: scope.to_owned(),
                kind: kind.to_owned(),
                variant: variant.to_owned(),
                status: status.to_owned(),
            },
            id: id.to_owned(),
            version: version.to_owned(),
        })
    }

    /// Layout: `scope.. type.. variant.. idscope.. TYP NUMBER version status..`, `-`-separated.
    /// Each field takes the schema value whose tokens come next, trying every candidate, so a
    /// value containing `-` never swallows its neighbour; if no assignment of schema values
    /// fits, each field not matched by a schema value takes one token.
    fn split_grepable(text: &str, inner: &str, schema: &Schema) -> Result<RawHeader, HeaderError> {
        const LAYOUT: &str = "expected [scope-type-variant-id-version-status], e.g. [sec-rules-live-sec-rul-042-v2.9-required]";
        if inner.is_empty()
            || inner.contains(['[', ']'])
            || inner.contains(char::is_whitespace)
            || inner.split('-').any(str::is_empty)
        {
            return Err(HeaderError::malformed(text, LAYOUT));
        }
        let tokens: Vec<&str> = inner.split('-').collect();
        let Some(version_at) = tokens.iter().rposition(|t| is_version(t)) else {
            return Err(HeaderError::malformed(
                text,
                format!("no version (v and numbers) found: {LAYOUT}"),
            ));
        };
        if version_at + 1 == tokens.len() {
            return Err(HeaderError::malformed(
                text,
                format!("no status after the version: {LAYOUT}"),
            ));
        }
        let status = tokens[version_at + 1..].join("-");
        let before = &tokens[..version_at];
        if before.len() < 6 {
            return Err(HeaderError::malformed(
                text,
                format!("too few fields before the version: {LAYOUT}"),
            ));
        }
        let (head, id_tail) = before.split_at(before.len() - 2);
        let raw = |scope: String, kind: String, variant: String, id_scope: String| RawHeader {
            form: HeaderForm::Grepable,
            fields: Fields {
                scope,
                kind,
                variant,
                status: status.clone(),
            },
            id: format!("{id_scope}-{}-{}", id_tail[0], id_tail[1]),
            version: tokens[version_at].to_owned(),
        };
        // An assignment of schema values whose id repeats the scope and the type's letters.
        for (scope, scope_len) in candidates(schema, Field::Scope, head) {
            let rest = &head[scope_len..];
            for (kind, kind_len) in candidates(schema, Field::Type, rest) {
                let after_kind = &rest[kind_len..];
                let letters = EntryId::prefix_for(scope, kind);
                if !letters.ends_with(&format!("-{}", id_tail[0].to_ascii_uppercase())) {
                    continue;
                }
                // The id's scope part: the scope's own, or the one a renamed scope kept.
                let expected = schema.id_scope(scope);
                for (_, variant_len) in candidates(schema, Field::Variant, after_kind) {
                    let id_scope = &after_kind[variant_len..];
                    if id_scope.len() == expected.split('-').count()
                        && id_scope
                            .iter()
                            .zip(expected.split('-'))
                            .all(|(a, b)| a.eq_ignore_ascii_case(b))
                    {
                        return Ok(raw(
                            head[..scope_len].join("-"),
                            rest[..kind_len].join("-"),
                            after_kind[..variant_len].join("-"),
                            id_scope.join("-"),
                        ));
                    }
                }
            }
        }
        // Otherwise: the longest schema value where one matches, one token where none does.
        let mut at = 0;
        let mut take = |field: Field| -> Option<String> {
            let rest = &head[at..];
            let n = candidates(schema, field, rest)
                .map(|(_, n)| n)
                .max()
                .unwrap_or(1);
            (n < rest.len()).then(|| {
                at += n;
                rest[..n].join("-")
            })
        };
        let too_few = || HeaderError::malformed(text, format!("too few fields: {LAYOUT}"));
        let scope = take(Field::Scope).ok_or_else(too_few)?;
        let kind = take(Field::Type).ok_or_else(too_few)?;
        let variant = take(Field::Variant).ok_or_else(too_few)?;
        let id_scope = head[at..].join("-");
        Ok(raw(scope, kind, variant, id_scope))
    }

    /// The header as written: its parts put back together in its form.
    pub fn text(&self) -> String {
        let f = &self.fields;
        match self.form {
            HeaderForm::Readable => format!(
                "[{}][{}][{}][{}][{}][{}]",
                f.scope, f.kind, f.variant, self.id, self.version, f.status
            ),
            HeaderForm::Grepable => format!(
                "[{}-{}-{}-{}-{}-{}]",
                f.scope, f.kind, f.variant, self.id, self.version, f.status
            ),
        }
    }

    /// Checks the parts against the schema and builds the header, stopping at the first problem.
    /// Values may be written in any case and come back in the schema's spelling.
    ///
    /// # Errors
    /// The first problem found: an unknown value, a malformed version or id, or an id whose
    /// prefix does not follow from the scope and type.
    pub fn check(&self, text: &str, schema: &Schema) -> Result<Header, HeaderError> {
        let mut fields = Fields::default();
        for (field, value) in self.fields.iter() {
            fields[field] = schema
                .canonical(field, value)
                .ok_or_else(|| HeaderError::UnknownValue {
                    header: text.to_owned(),
                    field: field.name(),
                    value: value.clone(),
                })?
                .to_owned();
        }
        if !is_version(&self.version) {
            return Err(HeaderError::malformed(
                text,
                format!(
                    "version `{}` is not v followed by dot-separated numbers, e.g. v2.9",
                    self.version
                ),
            ));
        }
        let id: EntryId = self.id.parse()?;
        let expected = schema.id_prefix(&fields.scope, &fields.kind);
        if id.prefix() != expected {
            return Err(HeaderError::PrefixMismatch {
                header: text.to_owned(),
                id: self.id.clone(),
                expected,
            });
        }
        Ok(Header {
            fields,
            id,
            version: normal_version(&self.version),
        })
    }
}

impl Header {
    /// Makes this header the one of these parts, in its strings (see [`copy_into`]).
    ///
    /// [`copy_into`]: crate::copy_into
    pub fn refill(&mut self, fields: Fields<&str>, id_prefix: &str, id_number: u64, version: &str) {
        crate::copy_into(&mut self.fields.scope, fields.scope);
        crate::copy_into(&mut self.fields.kind, fields.kind);
        crate::copy_into(&mut self.fields.variant, fields.variant);
        crate::copy_into(&mut self.fields.status, fields.status);
        self.id.refill(id_prefix, id_number);
        crate::copy_into(&mut self.version, version);
    }

    /// The readable form, `[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]`.
    pub fn readable(&self) -> String {
        let f = &self.fields;
        format!(
            "[{}][{}][{}][{}][{}][{}]",
            f.scope, f.kind, f.variant, self.id, self.version, f.status
        )
    }

    /// The grepable form, `[sec-rules-live-sec-rul-042-v2.9-required]`: lowercase, joined by `-`.
    pub fn grepable(&self) -> String {
        let f = &self.fields;
        format!(
            "[{}-{}-{}-{}-{}-{}]",
            f.scope, f.kind, f.variant, self.id, self.version, f.status
        )
        .to_lowercase()
    }

    /// The header written in `form`.
    pub fn format(&self, form: HeaderForm) -> String {
        match form {
            HeaderForm::Readable => self.readable(),
            HeaderForm::Grepable => self.grepable(),
        }
    }

    /// Parses either form. Values are matched against the schema case-insensitively and come back
    /// in the schema's spelling, so both forms of one header parse into the same `Header`.
    ///
    /// # Errors
    /// [`HeaderError`] when the text is not a header, names a value the schema does not declare,
    /// or carries an id whose prefix does not follow from its scope and type.
    pub fn parse(text: &str, schema: &Schema) -> Result<Header, HeaderError> {
        let text = text.trim();
        RawHeader::split(text, schema)?.check(text, schema)
    }
}

/// Finds a header in one line of a file: the first bracketed text shaped like a header, in
/// either form, wherever it stands (after `# `, `// `, `-- `, inside `<!-- -->`, ...). Returns
/// its byte offset in the line and the text, brackets included.
///
/// Shaped like a header means: three or more adjacent `[...]` groups without spaces (the
/// readable form, also with a wrong number of fields), or one `[...]` group of `-`-joined
/// tokens, at least six of them, one a version (the grepable form). A group directly after a
/// letter, digit, `_`, `]` or `)` is an index expression (`a[1][2][3]`), not a header.
pub fn find_header(line: &str) -> Option<(usize, &str)> {
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(pos) = line[from..].find('[').map(|p| p + from) {
        from = pos + 1;
        if pos > 0 {
            let before = bytes[pos - 1];
            if before.is_ascii_alphanumeric() || matches!(before, b'_' | b']' | b')') {
                continue;
            }
        }
        // Adjacent groups `[...]` without whitespace or nested `[`.
        let mut end = pos;
        let mut groups = 0;
        while end < bytes.len() && bytes[end] == b'[' {
            let Some(close) = bytes[end + 1..]
                .iter()
                .position(|&b| b == b']' || b == b'[' || b.is_ascii_whitespace())
            else {
                break;
            };
            let close = end + 1 + close;
            if bytes[close] != b']' {
                break;
            }
            groups += 1;
            end = close + 1;
        }
        if groups >= 3 {
            return Some((pos, &line[pos..end]));
        }
        if groups >= 1 {
            let first_end = pos + 1 + bytes[pos + 1..].iter().position(|&b| b == b']')?;
            let inner = &line[pos + 1..first_end];
            if inner.split('-').count() >= 6
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && inner.split('-').any(is_version)
            {
                return Some((pos, &line[pos..=first_end]));
            }
        }
    }
    None
}

/// Schema values of `field` whose lowercase tokens start `tokens`, with how many tokens each takes.
fn candidates<'s>(
    schema: &'s Schema,
    field: Field,
    tokens: &[&str],
) -> impl Iterator<Item = (&'s str, usize)> {
    let tokens: Vec<String> = tokens.iter().map(|t| t.to_owned().to_owned()).collect();
    schema.allowed(field).iter().filter_map(move |value| {
        let n = value.split('-').count();
        let matches = n <= tokens.len()
            && value
                .split('-')
                .zip(&tokens)
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        matches.then_some((value.as_str(), n))
    })
}

/// A version as the registry keeps it: a `V` read as `v`, so that the readable form of a
/// header (which keeps case) and the grepable form (which is lowercase) read back the same.
/// Found by the `header` fuzz target: `[SEC][RULES][LIVE][SEC-RUL-042][V2.9][REQUIRED]` read as
/// version `V2.9`, its grepable form as `v2.9`.
pub fn normal_version(s: &str) -> String {
    match s.strip_prefix('V') {
        Some(rest) => format!("v{rest}"),
        None => s.to_owned(),
    }
}

/// Whether `s` is a version: `v` (or `V`) followed by dot-separated numbers of 1 to 9 digits,
/// e.g. `v2`, `v2.9`, `v10.0.1`.
pub fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    !rest.is_empty()
        && rest.split('.').all(|part| {
            !part.is_empty() && part.len() <= 9 && part.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(scope: &str, kind: &str, variant: &str, number: u64, status: &str) -> Header {
        Header {
            fields: Fields {
                scope: scope.into(),
                kind: kind.into(),
                variant: variant.into(),
                status: status.into(),
            },
            id: EntryId::new(EntryId::prefix_for(scope, kind), number),
            version: "v2.9".into(),
        }
    }

    #[test]
    fn a_capital_v_version_reads_as_v_in_both_forms() {
        // Found by the `header` fuzz target.
        let schema = Schema::default();
        let h = Header::parse("[SEC][RULES][LIVE][SEC-RUL-042][V2.9][REQUIRED]", &schema)
            .expect("parses");
        assert_eq!(h.version, "v2.9");
        for form in [h.readable(), h.grepable()] {
            assert_eq!(Header::parse(&form, &schema).expect("parses"), h, "{form}");
        }
    }

    #[test]
    fn formats_both_forms() {
        let h = header("SEC", "RULES", "LIVE", 42, "REQUIRED");
        assert_eq!(
            h.readable(),
            "[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]"
        );
        assert_eq!(h.grepable(), "[sec-rules-live-sec-rul-042-v2.9-required]");
    }

    #[test]
    fn both_forms_parse_back() {
        let schema = Schema::default();
        for h in [
            header("SEC", "RULES", "LIVE", 42, "REQUIRED"),
            header("ETL", "MULTI-ETL", "DEV", 7, "LIVE"),
            header("DASHBOARD", "CONFIG", "EXPANDED", 12345, "OPTIONAL"),
            header("ALERT", "SCRIPT", "SCRIPT", 1, "DEPRECATED"),
        ] {
            assert_eq!(
                Header::parse(&h.readable(), &schema),
                Ok(h.clone()),
                "{}",
                h.readable()
            );
            assert_eq!(
                Header::parse(&h.grepable(), &schema),
                Ok(h.clone()),
                "{}",
                h.grepable()
            );
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        let schema = Schema::default();
        for bad in [
            "",
            "[]",
            "[SEC][RULES][LIVE][SEC-RUL-042][v2.9]",
            "[SEC][RULES][LIVE][SEC-RUL-042][2.9][REQUIRED]",
            "[SEC][RULES][LIVE][SECRUL042][v2.9][REQUIRED]",
            "[sec-rules-live-gov-rul-042-v2.9-required]",
            "[sec-rules-live-sec-scr-042-v2.9-required]",
            "[sec-rules-live-sec-rul-042-v2.9]",
            "SEC RULES",
        ] {
            assert!(Header::parse(bad, &schema).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(
            Header::parse("[XYZ][RULES][LIVE][XYZ-RUL-001][v2.9][LIVE]", &schema),
            Err(HeaderError::UnknownValue { field: "scope", .. })
        ));
    }

    #[test]
    fn ids_parse_and_order() {
        let id: EntryId = "sec-rul-7".parse().expect("valid id");
        assert_eq!(id.to_string(), "SEC-RUL-007");
        let big = EntryId::new("SEC-RUL", 1000);
        assert_eq!(big.to_string(), "SEC-RUL-1000");
        assert!(EntryId::new("SEC-RUL", 999) < big);
        for bad in [
            "",
            "SEC",
            "SEC-RUL",
            "SEC-RUL-",
            "SEC-RUL-x1",
            "-RUL-1",
            "SEC RUL-1",
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(EntryId::prefix_for("ETL", "MULTI-ETL"), "ETL-MUL");
    }

    #[test]
    fn versions() {
        for good in ["v2", "v2.9", "v10.0.1"] {
            assert!(is_version(good), "{good}");
        }
        for bad in ["", "v", "2.9", "v2.", "v.9", "v2-9", "v2.x"] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn split_names_what_is_wrong() {
        let schema = Schema::default();
        let reason = |text: &str| match RawHeader::split(text, &schema) {
            Err(HeaderError::Malformed { reason, .. }) => reason,
            other => panic!("{text}: expected malformed, got {other:?}"),
        };
        assert!(reason("[SEC][RULES][LIVE][SEC-RUL-042][v2.9]").starts_with("5 fields"));
        assert!(reason("[SEC][][LIVE][SEC-RUL-042][v2.9][LIVE]").contains("type field is empty"));
        assert!(reason("[sec-rules-live-sec-rul-042-required]").starts_with("no version"));
        assert!(reason("[sec-rules-live-sec-rul-042-v2.9]").starts_with("no status"));
        assert!(reason("SEC RULES").contains("brackets"));
    }

    #[test]
    fn split_keeps_unknown_values_for_the_validator() {
        let schema = Schema::default();
        let raw = RawHeader::split("[XYZ][FOO][LIVE][XYZ-FOO-001][2.9][NOPE]", &schema)
            .expect("six fields");
        assert_eq!(raw.fields.scope, "XYZ");
        assert_eq!(raw.fields.kind, "FOO");
        assert_eq!(raw.version, "2.9");
        assert_eq!(raw.fields.status, "NOPE");

        // Grepable: unknown tokens take one field each; known multi-token values stay whole.
        let raw = RawHeader::split("[xyz-multi-etl-live-xyz-mul-001-v2.9-nope]", &schema)
            .expect("splits");
        assert_eq!(
            (raw.fields.scope.as_str(), raw.fields.kind.as_str()),
            ("xyz", "multi-etl")
        );
        assert_eq!(raw.id, "xyz-mul-001");
        assert_eq!(raw.fields.status, "nope");
        assert_eq!(raw.text(), "[xyz-multi-etl-live-xyz-mul-001-v2.9-nope]");
        assert!(matches!(
            raw.check(&raw.text(), &schema),
            Err(HeaderError::UnknownValue { field: "scope", .. })
        ));
    }

    #[test]
    fn check_refuses_a_prefix_that_does_not_follow() {
        let schema = Schema::default();
        assert!(matches!(
            Header::parse("[SEC][RULES][LIVE][OPS-RUL-042][v2.9][LIVE]", &schema),
            Err(HeaderError::PrefixMismatch { .. })
        ));
    }

    #[test]
    fn finds_headers_in_comments() {
        let h = "[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]";
        let g = "[sec-rules-live-sec-rul-042-v2.9-required]";
        for (line, at, found) in [
            (format!("# {h}"), 2, h),
            (format!("// {h} trailing words"), 3, h),
            (format!("-- {g}"), 3, g),
            (format!("<!-- {h} -->"), 5, h),
            (format!("/* {g} */"), 3, g),
            (h.to_owned(), 0, h),
            // A malformed header is still found, so that it can be reported.
            (
                "# [SEC][RULES][LIVE][SEC-RUL-042][v2.9]".to_owned(),
                2,
                "[SEC][RULES][LIVE][SEC-RUL-042][v2.9]",
            ),
        ] {
            assert_eq!(find_header(&line), Some((at, found)), "{line}");
        }
        for line in [
            "see [the docs](https://example.com) and [this][ref]",
            "if [[ -f x ]]; then",
            "value = matrix[1][2][3]",
            "[section]",
            "[a-b-c]",
            "- [ ] task",
            "",
        ] {
            assert_eq!(find_header(line), None, "{line}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// A schema with values that contain `-`, so the grepable form needs backtracking.
        fn tricky() -> Schema {
            let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
            Schema::new(
                Fields {
                    scope: list(&["SEC", "MULTI", "SEC-OPS", "A_B"]),
                    kind: list(&["RULES", "MULTI-ETL", "ETL", "R2"]),
                    variant: list(&["LIVE", "LIVE-2", "DEV"]),
                    status: list(&["LIVE", "REQUIRED", "NOT-USED"]),
                },
                "v1".into(),
                Fields::default(),
            )
            .expect("valid schema")
        }

        fn header_in(schema: Schema) -> impl Strategy<Value = (Schema, Header)> {
            let pick = |f: Field, s: &Schema| proptest::sample::select(s.allowed(f).to_vec());
            (
                pick(Field::Scope, &schema),
                pick(Field::Type, &schema),
                pick(Field::Variant, &schema),
                pick(Field::Status, &schema),
                1u64..=u64::from(u32::MAX),
                (0u32..100, 0u32..100),
            )
                .prop_map(
                    move |(scope, kind, variant, status, number, (major, minor))| {
                        let id = EntryId::new(EntryId::prefix_for(&scope, &kind), number);
                        let header = Header {
                            fields: Fields {
                                scope,
                                kind,
                                variant,
                                status,
                            },
                            id,
                            version: format!("v{major}.{minor}"),
                        };
                        (schema.clone(), header)
                    },
                )
        }

        proptest! {
            #[test]
            fn parsing_never_panics(text in "\\PC{0,80}") {
                let schema = Schema::default();
                let _ = Header::parse(&text, &schema);
                let _ = RawHeader::split(&text, &schema);
                let _ = find_header(&text);
                let _ = text.parse::<EntryId>();
            }

            #[test]
            fn header_shaped_noise_never_panics(
                text in "[\\[\\]a-zA-Z0-9._ -]{0,60}",
            ) {
                let schema = tricky();
                let _ = Header::parse(&text, &schema);
                if let Some((at, found)) = find_header(&text) {
                    prop_assert_eq!(&text[at..at + found.len()], found);
                    let _ = RawHeader::split(found, &schema);
                }
            }

            #[test]
            fn format_then_parse_round_trips(
                (schema, header) in prop_oneof![header_in(Schema::default()), header_in(tricky())],
                prefix in prop_oneof![Just(""), Just("# "), Just("// "), Just("-- "), Just("<!-- ")],
            ) {
                for text in [header.readable(), header.grepable()] {
                    prop_assert_eq!(Header::parse(&text, &schema), Ok(header.clone()), "{}", text);
                    let line = format!("{prefix}{text} -->");
                    prop_assert_eq!(find_header(&line), Some((prefix.len(), text.as_str())));
                    let raw = RawHeader::split(&text, &schema).expect("splits");
                    prop_assert_eq!(raw.text(), text);
                }
            }
        }
    }
}
