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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
        let mut prefix = scope.to_ascii_uppercase();
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
    #[error(
        "malformed header `{0}`: expected [SCOPE][TYPE][VARIANT][ID][VERSION][STATUS] or its grepable form"
    )]
    Malformed(String),
    #[error("header `{header}`: unknown {field} `{value}`")]
    UnknownValue {
        header: String,
        field: &'static str,
        value: String,
    },
}

impl Header {
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

    /// Parses either form. Values are matched against the schema case-insensitively and come back
    /// in the schema's spelling, so both forms of one header parse into the same `Header`.
    ///
    /// # Errors
    /// [`HeaderError`] when the text is not a header or names a value the schema does not declare.
    pub fn parse(text: &str, schema: &Schema) -> Result<Header, HeaderError> {
        let text = text.trim();
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| HeaderError::Malformed(text.to_owned()))?;
        if inner.contains("][") {
            Self::parse_readable(text, inner, schema)
        } else {
            Self::parse_grepable(text, inner, schema)
        }
    }

    fn parse_readable(text: &str, inner: &str, schema: &Schema) -> Result<Header, HeaderError> {
        let parts: Vec<&str> = inner.split("][").collect();
        let [scope, kind, variant, id, version, status] = parts[..] else {
            return Err(HeaderError::Malformed(text.to_owned()));
        };
        let mut fields = Fields::default();
        for (field, value) in Field::ALL.into_iter().zip([scope, kind, variant, status]) {
            fields[field] = schema
                .canonical(field, value)
                .ok_or_else(|| HeaderError::UnknownValue {
                    header: text.to_owned(),
                    field: field.name(),
                    value: value.to_owned(),
                })?
                .to_owned();
        }
        if !is_version(version) {
            return Err(HeaderError::Malformed(text.to_owned()));
        }
        Ok(Header {
            fields,
            id: id.parse()?,
            version: version.to_owned(),
        })
    }

    /// Grepable headers are matched token by token: each field takes the schema value whose
    /// lowercase `-`-separated tokens come next, trying every candidate, so a value containing `-`
    /// never swallows its neighbour.
    fn parse_grepable(text: &str, inner: &str, schema: &Schema) -> Result<Header, HeaderError> {
        let malformed = || HeaderError::Malformed(text.to_owned());
        let tokens: Vec<&str> = inner.split('-').collect();
        // Layout: scope.. type.. variant.. scope.. TYP NUMBER version status..
        let version_at = tokens
            .iter()
            .rposition(|t| is_version(t))
            .ok_or_else(malformed)?;
        let status = match_value(schema, Field::Status, &tokens[version_at + 1..], true)
            .ok_or_else(malformed)?;
        let before = &tokens[..version_at];
        if before.len() < 6 {
            return Err(malformed());
        }
        let (head, id_tail) = before.split_at(before.len() - 2);
        let number: u64 = id_tail[1].parse().map_err(|_| malformed())?;
        for (scope, scope_len) in candidates(schema, Field::Scope, head) {
            let rest = &head[scope_len..];
            for (kind, kind_len) in candidates(schema, Field::Type, rest) {
                let rest = &rest[kind_len..];
                for (variant, variant_len) in candidates(schema, Field::Variant, rest) {
                    let id_scope = &rest[variant_len..];
                    if id_scope.join("-") != scope.to_lowercase() {
                        continue;
                    }
                    let prefix = EntryId::prefix_for(scope, kind);
                    if !prefix.ends_with(&format!("-{}", id_tail[0].to_ascii_uppercase())) {
                        continue;
                    }
                    return Ok(Header {
                        fields: Fields {
                            scope: scope.to_owned(),
                            kind: kind.to_owned(),
                            variant: variant.to_owned(),
                            status: status.to_owned(),
                        },
                        id: EntryId::new(prefix, number),
                        version: tokens[version_at].to_owned(),
                    });
                }
            }
        }
        Err(malformed())
    }
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

fn match_value<'s>(
    schema: &'s Schema,
    field: Field,
    tokens: &[&str],
    whole: bool,
) -> Option<&'s str> {
    candidates(schema, field, tokens)
        .find(|&(_, n)| !whole || n == tokens.len())
        .map(|(value, _)| value)
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
}
