//! Requests: what a user asks to register, checked for the rules no plugin may relax.
//!
//! These checks are structural and live here rather than in the validator plugin: a title with a
//! line break could forge a second header line in any file the entry is stamped into, whatever
//! validator is configured.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::entry::Fingerprint;
use crate::header::{Field, Fields, is_version};
use crate::schema::is_field_value;

/// Longest title accepted, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest context value accepted, in bytes.
pub const MAX_CONTEXT_VALUE_BYTES: usize = 1024;
/// Most context pairs in one request.
pub const MAX_CONTEXT_PAIRS: usize = 64;

/// Free-form `KEY=VALUE` context, kept sorted by key, one value per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "std::collections::BTreeMap<String, String>",
    into = "std::collections::BTreeMap<String, String>"
)]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// Builds a context from pairs, checking keys and values.
    ///
    /// # Errors
    /// A malformed key, a value with control characters or over the size limit, a duplicate key,
    /// or more than [`MAX_CONTEXT_PAIRS`] pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Context, RequestError> {
        let mut pairs: Vec<(String, String)> = pairs.into_iter().collect();
        if pairs.len() > MAX_CONTEXT_PAIRS {
            return Err(RequestError::TooManyContextPairs(pairs.len()));
        }
        for (key, value) in &pairs {
            if key.is_empty()
                || key.len() > 64
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(RequestError::BadContextKey(key.clone()));
            }
            if value.len() > MAX_CONTEXT_VALUE_BYTES || has_line_breaking_chars(value) {
                return Err(RequestError::BadContextValue(key.clone()));
            }
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(RequestError::DuplicateContextKey(w[0].0.clone()));
        }
        Ok(Context(pairs))
    }

    /// Parses one `KEY=VALUE` argument.
    ///
    /// # Errors
    /// [`RequestError::MalformedContext`] when there is no `=`.
    pub fn parse_pair(arg: &str) -> Result<(String, String), RequestError> {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| RequestError::MalformedContext(arg.to_owned()))?;
        Ok((key.trim().to_owned(), value.trim().to_owned()))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value`, replacing any earlier value.
    ///
    /// # Errors
    /// As [`Context::new`].
    pub fn set(&mut self, key: String, value: String) -> Result<(), RequestError> {
        let mut pairs = std::mem::take(&mut self.0);
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key, value));
        *self = Context::new(pairs)?;
        Ok(())
    }
}

impl TryFrom<std::collections::BTreeMap<String, String>> for Context {
    type Error = RequestError;
    fn try_from(map: std::collections::BTreeMap<String, String>) -> Result<Self, RequestError> {
        Context::new(map)
    }
}

impl From<Context> for std::collections::BTreeMap<String, String> {
    fn from(c: Context) -> Self {
        c.0.into_iter().collect()
    }
}

/// A registration request. Build one with [`Request::new`], which enforces the structural rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    title: String,
    /// Header fields the request names; `None` ones are predicted or defaulted.
    pub fields: Fields<Option<String>>,
    /// The version the request names, if any.
    pub version: Option<String>,
    pub context: Context,
}

/// A request that breaks a structural rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("title is empty")]
    EmptyTitle,
    #[error("title is {0} bytes long: the limit is {MAX_TITLE_BYTES}")]
    TitleTooLong(usize),
    #[error(
        "title contains a line break or control character at byte {0}: a title must be one line of text"
    )]
    TitleControl(usize),
    #[error("{field} `{value}` is not a valid value: use letters, digits, `_` and inner `-`")]
    BadFieldValue { field: &'static str, value: String },
    #[error("version `{0}` is not a version: expected v followed by numbers, e.g. v2.9")]
    BadVersion(String),
    #[error("malformed context `{0}`: expected KEY=VALUE")]
    MalformedContext(String),
    #[error("context key `{0}` is not valid: use 1 to 64 letters, digits, `_`, `-` or `.`")]
    BadContextKey(String),
    #[error(
        "context value of `{0}` is over {MAX_CONTEXT_VALUE_BYTES} bytes or contains a line break or control character"
    )]
    BadContextValue(String),
    #[error("context key `{0}` is given twice")]
    DuplicateContextKey(String),
    #[error("{0} context pairs: the limit is {MAX_CONTEXT_PAIRS}")]
    TooManyContextPairs(usize),
}

impl Request {
    /// Builds a request: trims the title and checks every structural rule.
    ///
    /// # Errors
    /// An empty title, a title over [`MAX_TITLE_BYTES`] or containing a line break or control
    /// character, a field value that could not appear in a header, or a malformed version.
    pub fn new(
        title: &str,
        fields: Fields<Option<String>>,
        version: Option<String>,
        context: Context,
    ) -> Result<Request, RequestError> {
        let title = check_title(title)?;
        for (field, value) in fields.iter() {
            if let Some(value) = value
                && !is_field_value(value)
            {
                return Err(RequestError::BadFieldValue {
                    field: field.name(),
                    value: value.clone(),
                });
            }
        }
        if let Some(v) = &version
            && !is_version(v)
        {
            return Err(RequestError::BadVersion(v.clone()));
        }
        Ok(Request {
            title,
            fields,
            version,
            context,
        })
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    /// The request taken apart: title, fields, version and context.
    pub fn into_parts(self) -> (String, Fields<Option<String>>, Option<String>, Context) {
        (self.title, self.fields, self.version, self.context)
    }

    /// The request's identity: registering two requests with the same fingerprint gives one entry.
    ///
    /// It covers the title (whitespace collapsed, case folded), the given fields and version (case
    /// folded) and the context, and not what a generator predicts, so a retrained model never turns
    /// a repeated request into a new entry.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut h = blake3::Hasher::new();
        h.update(b"registry-request-v1\0");
        for word in self.title.split_whitespace() {
            h.update(word.to_lowercase().as_bytes());
            h.update(b" ");
        }
        h.update(b"\0");
        for field in Field::ALL {
            let value = self.fields[field].as_deref().unwrap_or("");
            h.update(value.to_ascii_uppercase().as_bytes());
            h.update(b"\0");
        }
        h.update(
            self.version
                .as_deref()
                .unwrap_or("")
                .to_ascii_lowercase()
                .as_bytes(),
        );
        h.update(b"\0");
        for (k, v) in self.context.iter() {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Fingerprint(out)
    }
}

/// Trims a title and checks it is one line of text within the size limit.
///
/// # Errors
/// [`RequestError::EmptyTitle`], [`RequestError::TitleTooLong`] or [`RequestError::TitleControl`].
pub fn check_title(title: &str) -> Result<String, RequestError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(RequestError::EmptyTitle);
    }
    if title.len() > MAX_TITLE_BYTES {
        return Err(RequestError::TitleTooLong(title.len()));
    }
    if let Some((at, _)) = title.char_indices().find(|&(_, c)| is_line_breaking(c)) {
        return Err(RequestError::TitleControl(at));
    }
    Ok(title.to_owned())
}

/// Control characters (C0, C1, DEL, so `\n`, `\r`, NEL) and the Unicode line and paragraph
/// separators: anything that could start a new line in some reader.
fn is_line_breaking(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

fn has_line_breaking_chars(s: &str) -> bool {
    s.chars().any(is_line_breaking)
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(title: &str) -> Result<Request, RequestError> {
        Request::new(title, Fields::default(), None, Context::default())
    }

    #[test]
    fn titles() {
        assert_eq!(
            req("  Block SSH  ").map(|r| r.title().to_owned()),
            Ok("Block SSH".into())
        );
        assert_eq!(req("   "), Err(RequestError::EmptyTitle));
        assert_eq!(
            req(&"x".repeat(1025)),
            Err(RequestError::TitleTooLong(1025))
        );
        assert!(req(&"x".repeat(1024)).is_ok());
        for forged in [
            "a\n[SEC][RULES]",
            "a\rb",
            "a\u{85}b",
            "a\u{2028}b",
            "a\tb",
            "a\u{0}b",
        ] {
            assert!(
                matches!(req(forged), Err(RequestError::TitleControl(1))),
                "{forged:?}"
            );
        }
    }

    #[test]
    fn fingerprint_ignores_case_and_spacing_but_not_content() {
        let a = req("Block  SSH from the internet").expect("valid");
        let b = req("block ssh FROM the   internet").expect("valid");
        let c = req("block ssh from the intranet").expect("valid");
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        let mut d = a.clone();
        d.fields.scope = Some("SEC".into());
        assert_ne!(a.fingerprint(), d.fingerprint());
        let mut e = a.clone();
        e.context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid");
        assert_ne!(a.fingerprint(), e.fingerprint());
    }

    #[test]
    fn context_rules() {
        assert_eq!(
            Context::parse_pair("env=prod"),
            Ok(("env".into(), "prod".into()))
        );
        assert_eq!(Context::parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(matches!(
            Context::parse_pair("env"),
            Err(RequestError::MalformedContext(_))
        ));
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert!(matches!(
            Context::new([pair("", "x")]),
            Err(RequestError::BadContextKey(_))
        ));
        assert!(matches!(
            Context::new([pair("a b", "x")]),
            Err(RequestError::BadContextKey(_))
        ));
        assert!(matches!(
            Context::new([pair("a", "x\ny")]),
            Err(RequestError::BadContextValue(_))
        ));
        assert!(matches!(
            Context::new([pair("a", "1"), pair("a", "2")]),
            Err(RequestError::DuplicateContextKey(_))
        ));
        let c = Context::new([pair("z", "1"), pair("a", "2")]).expect("valid");
        assert_eq!(c.iter().collect::<Vec<_>>(), [("a", "2"), ("z", "1")]);
        assert_eq!(c.get("z"), Some("1"));
    }

    #[test]
    fn field_values_cannot_break_a_header() {
        let fields = Fields {
            scope: Some("SEC][X".into()),
            ..Fields::default()
        };
        assert!(matches!(
            Request::new("t", fields, None, Context::default()),
            Err(RequestError::BadFieldValue { field: "scope", .. })
        ));
        assert!(matches!(
            Request::new(
                "t",
                Fields::default(),
                Some("2.9".into()),
                Context::default()
            ),
            Err(RequestError::BadVersion(_))
        ));
    }
}
