//! Requests: what a user asks to register, checked for the rules no plugin may relax.
//!
//! These checks are structural and live here rather than in the validator plugin: a title with a
//! line break could forge a second header line in any file the entry is stamped into, whatever
//! validator is configured.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::entry::Fingerprint;
use crate::header::{Field, Fields, is_version, normal_version};
use crate::schema::is_field_value;

/// Longest title accepted, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest context value accepted, in bytes.
pub const MAX_CONTEXT_VALUE_BYTES: usize = 1024;
/// Most context pairs in one request.
pub const MAX_CONTEXT_PAIRS: usize = 64;

/// Free-form `KEY=VALUE` context, kept sorted by key, one value per key.
///
/// It deserializes from a map whose keys must be distinct: a JSON object that names a key twice
/// is refused (a map type would keep one of the values silently).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "std::collections::BTreeMap<String, String>")]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// Builds a context from pairs, checking keys and values.
    ///
    /// # Errors
    /// A malformed key, a value with control characters or over the size limit, a duplicate key,
    /// or more than [`MAX_CONTEXT_PAIRS`] pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Context, RequestError> {
        let mut pairs: Vec<(String, String)> = pairs.into_iter().collect();
        check_pairs(&mut pairs)?;
        Ok(Context(pairs))
    }

    /// Makes this context the pairs given, as [`Context::new`] would build it, reusing the
    /// strings it holds (see [`copy_into`]): for code that receives many contexts one after the
    /// other and keeps its owned copies between them.
    ///
    /// # Errors
    /// As [`Context::new`]; the context is then empty.
    pub fn refill<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), RequestError> {
        // One pair past the limit is enough to refuse the rest.
        self.refill_from(pairs.into_iter().take(MAX_CONTEXT_PAIRS + 1));
        if self.0.len() > MAX_CONTEXT_PAIRS {
            self.0.clear();
            return Err(RequestError::TooManyContextPairs(MAX_CONTEXT_PAIRS + 1));
        }
        check_pairs(&mut self.0).inspect_err(|_| self.0.clear())
    }

    /// Makes this context a copy of `pairs`, the pairs of a checked context (in key order),
    /// reusing the strings it holds (see [`copy_into`]). Nothing is checked again, so this is
    /// not public: a context made of other pairs would pass for a checked one.
    pub(crate) fn refill_from<'a>(&mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut len = 0;
        for (key, value) in pairs {
            match self.0.get_mut(len) {
                Some((k, v)) => {
                    copy_into(k, key);
                    copy_into(v, value);
                }
                None => self.0.push((key.to_owned(), value.to_owned())),
            }
            len += 1;
        }
        self.0.truncate(len);
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

    /// Removes `key`.
    ///
    /// # Errors
    /// [`RequestError::UnsetContextKey`] when the context has no such key.
    pub fn remove(&mut self, key: &str) -> Result<(), RequestError> {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(i) => {
                self.0.remove(i);
                Ok(())
            }
            Err(_) => Err(RequestError::UnsetContextKey {
                key: key.to_owned(),
                keys: self.0.iter().map(|(k, _)| k.clone()).collect(),
            }),
        }
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

/// Checks context pairs and sorts them by key: what [`Context::new`] and [`Context::refill`]
/// enforce.
fn check_pairs(pairs: &mut [(String, String)]) -> Result<(), RequestError> {
    if pairs.len() > MAX_CONTEXT_PAIRS {
        return Err(RequestError::TooManyContextPairs(pairs.len()));
    }
    for (key, value) in pairs.iter() {
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
    if !pairs.is_sorted_by(|a, b| a.0 <= b.0) {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(RequestError::DuplicateContextKey(w[0].0.clone()));
    }
    Ok(())
}

/// Makes `dst` a copy of `src`, in the buffer `dst` already has when it is large enough: for
/// owned values refilled again and again from borrowed ones (a plugin's copies of the host's
/// requests). A buffer over four times what `src` needs (and over 64 bytes) is replaced by one
/// of the right size, so a string once long does not keep its memory for good.
pub fn copy_into(dst: &mut String, src: &str) {
    if dst.capacity() > src.len().max(64) * 4 {
        *dst = src.to_owned();
    } else {
        dst.clear();
        dst.push_str(src);
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = Context;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of context keys to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Context, A::Error> {
                let mut pairs =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(MAX_CONTEXT_PAIRS));
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if pairs.len() == MAX_CONTEXT_PAIRS {
                        return Err(serde::de::Error::custom(RequestError::TooManyContextPairs(
                            MAX_CONTEXT_PAIRS + 1,
                        )));
                    }
                    pairs.push((key, value));
                }
                Context::new(pairs).map_err(serde::de::Error::custom)
            }
        }
        d.deserialize_map(Pairs)
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
    /// Who asks, recorded with the entry a registration creates; not part of what the request
    /// asks for (two authors asking the same thing get the same entry).
    pub author: Option<crate::Author>,
}

/// A [`Request`] borrowed from wherever it lives: a caller's own request ([`Request::view`]), or
/// the view of one that a plugin library is lent across the boundary
/// ([`crate::Generator::predict_lent`]), read in place.
///
/// A view is made from a checked request and holds what one holds: a trimmed one-line title,
/// field values and a version that passed their checks, context pairs sorted by distinct keys.
/// Nothing checks a view again, so code that builds one from other parts must keep those rules;
/// a view never becomes a [`Request`] outside this crate, where [`Request::new`] checks.
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    pub title: &'a str,
    /// Header fields the request names.
    pub fields: Fields<Option<&'a str>>,
    /// The version the request names, if any.
    pub version: Option<&'a str>,
    pub context: ContextRef<'a>,
}

/// The context of a [`RequestRef`]: a [`Context`], or its pairs lent as string slices.
#[derive(Debug, Clone, Copy)]
pub enum ContextRef<'a> {
    Owned(&'a Context),
    /// Pairs sorted by distinct keys, as a [`Context`] keeps them.
    Pairs(&'a [(&'a str, &'a str)]),
}

impl<'a> ContextRef<'a> {
    /// The pairs, in key order.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, &'a str)> {
        let (owned, lent) = match self {
            ContextRef::Owned(c) => (c.0.as_slice(), &[][..]),
            ContextRef::Pairs(p) => (&[][..], p),
        };
        owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(lent.iter().copied())
    }

    /// The value of `key`, if the context has one.
    pub fn get(self, key: &str) -> Option<&'a str> {
        match self {
            ContextRef::Owned(c) => c.get(key),
            ContextRef::Pairs(p) => p
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| p[i].1),
        }
    }

    pub fn len(self) -> usize {
        match self {
            ContextRef::Owned(c) => c.len(),
            ContextRef::Pairs(p) => p.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A request that breaks a structural rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("title is empty")]
    EmptyTitle,
    #[error("title has no visible characters: it is only spaces and zero-width characters")]
    InvisibleTitle,
    #[error(
        "title contains the bidirectional control character U+{code:04X} at byte {at}: it can make the title display differently from what it is"
    )]
    TitleBidi { at: usize, code: u32 },
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
    /// A key to remove that the context does not have.
    #[error("context key `{key}` is not set: the keys set are {}", if keys.is_empty() { "none".to_owned() } else { keys.join(", ") })]
    UnsetContextKey { key: String, keys: Vec<String> },
    /// A key both set and removed by one change.
    #[error("context key `{0}` is both set and removed: give one or the other")]
    SetAndUnsetContextKey(String),
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
        check_given(
            &Fields::from_fn(|f| fields[f].as_deref()),
            version.as_deref(),
        )?;
        Ok(Request {
            title,
            fields,
            version: version.as_deref().map(normal_version),
            context,
            author: None,
        })
    }

    /// Makes this request a copy of `view` (with no author), reusing the strings it holds (see
    /// [`copy_into`]). Nothing is checked again, so this is not public: anyone can make a
    /// [`RequestRef`], and only [`Request::new`] may make a request from parts.
    pub(crate) fn refill_from(&mut self, view: &RequestRef<'_>) {
        copy_into(&mut self.title, view.title);
        for (field, value) in view.fields.iter() {
            let kept = &mut self.fields[field];
            match (value, kept.as_mut()) {
                (Some(value), Some(kept)) => copy_into(kept, value),
                (value, _) => *kept = value.map(str::to_owned),
            }
        }
        match (view.version, self.version.as_mut()) {
            (Some(version), Some(kept)) => copy_into(kept, version),
            (version, _) => self.version = version.map(str::to_owned),
        }
        self.context.refill_from(view.context.iter());
        self.author = None;
    }

    /// A copy of `view`, with no author; not checked, as [`Request::refill_from`].
    #[must_use]
    pub(crate) fn from_view(view: &RequestRef<'_>) -> Request {
        Request {
            title: view.title.to_owned(),
            fields: view.fields.map(|_, v| v.map(str::to_owned)),
            version: view.version.map(str::to_owned),
            context: Context(
                view.context
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            author: None,
        }
    }

    /// This request, borrowed.
    #[must_use]
    pub fn view(&self) -> RequestRef<'_> {
        RequestRef {
            title: &self.title,
            fields: Fields::from_fn(|f| self.fields[f].as_deref()),
            version: self.version.as_deref(),
            context: ContextRef::Owned(&self.context),
        }
    }

    /// The same request, made by `author`.
    #[must_use]
    pub fn by(mut self, author: Option<crate::Author>) -> Request {
        self.author = author;
        self
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
    /// It covers the title (Unicode NFC, whitespace collapsed, case folded), the given fields and
    /// version (case folded) and the context, and not what a generator predicts, so a retrained
    /// model never turns a repeated request into a new entry. It is derivation
    /// [`FINGERPRINT_DERIVATION`] of [`derive_fingerprint`].
    pub fn fingerprint(&self) -> Fingerprint {
        self.derive(FINGERPRINT_DERIVATION)
    }

    /// The fingerprint derivation 1 gave this request, when it differs from
    /// [`Request::fingerprint`]: only for a title that is not in Unicode NFC. An entry
    /// registered before derivation 2 is stored under that one, so `add` looks for both.
    pub fn legacy_fingerprint(&self) -> Option<Fingerprint> {
        if unicode_normalization::is_nfc(&self.title) {
            None
        } else {
            Some(self.derive(1))
        }
    }

    fn derive(&self, derivation: u8) -> Fingerprint {
        let given = Fields::from_fn(|f| self.fields[f].as_deref());
        derive_fingerprint(
            derivation,
            &self.title,
            &given,
            self.version.as_deref(),
            &self.context,
        )
        .unwrap_or(Fingerprint([0; 16]))
    }
}

/// The fingerprint derivation new registrations use; see [`derive_fingerprint`].
pub const FINGERPRINT_DERIVATION: u8 = 2;

/// The fingerprint of a registration request, by derivation `derivation`; `None` for a
/// derivation this build does not know.
///
/// - Derivation 1: blake3 (128 bits) of the title's words, each lowercased, then each given
///   field's value (uppercased; empty when not given), the given version (lowercased; empty when
///   not given) and the context pairs, separated by NUL bytes.
/// - Derivation 2: derivation 1 of the title in Unicode NFC, so the same title typed in another
///   normalization (a decomposed `é` from a file name, say) is the same request. For a title
///   already in NFC, which is nearly every title, both give the same fingerprint, so entries
///   registered under derivation 1 are found as before.
///
/// Import recomputes it from revision 1 of an entry and the provenance that says which fields
/// were given, and refuses a record whose fingerprint differs.
pub fn derive_fingerprint(
    derivation: u8,
    title: &str,
    given: &Fields<Option<&str>>,
    version: Option<&str>,
    context: &Context,
) -> Option<Fingerprint> {
    let normalized;
    let title = match derivation {
        1 => title,
        2 if unicode_normalization::is_nfc(title) => title,
        2 => {
            normalized = title.nfc().collect::<String>();
            normalized.as_str()
        }
        _ => return None,
    };
    // The hashed text is written into one buffer kept by the thread and hashed in one call: no
    // allocation per word or field (only a word with non-ASCII letters is lowercased by
    // `str::to_lowercase`, whose final-sigma rule a per-character mapping would miss).
    FINGERPRINT_INPUT.with_borrow_mut(|input| {
        input.clear();
        input.extend_from_slice(b"registry-request-v1\0");
        // Copied whole, then case-mapped in place: with a byte-by-byte `extend` through a
        // mapping iterator, this function's own time was 1.3 % of the samples of a scale-test
        // profile, 0.7 % after (the hash itself is most of the rest).
        let mut push_mapped = |text: &str, upper: bool| {
            let at = input.len();
            input.extend_from_slice(text.as_bytes());
            if upper {
                input[at..].make_ascii_uppercase();
            } else {
                input[at..].make_ascii_lowercase();
            }
        };
        for word in title.split_whitespace() {
            if word.is_ascii() {
                push_mapped(word, false);
            } else {
                push_mapped(&word.to_lowercase(), false);
            }
            push_mapped(" ", false);
        }
        push_mapped("\0", false);
        for field in Field::ALL {
            push_mapped(given[field].unwrap_or(""), true);
            push_mapped("\0", false);
        }
        push_mapped(version.unwrap_or(""), false);
        push_mapped("\0", false);
        for (k, v) in context.iter() {
            input.extend_from_slice(k.as_bytes());
            input.push(b'=');
            input.extend_from_slice(v.as_bytes());
            input.push(0);
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&blake3::hash(input).as_bytes()[..16]);
        if input.capacity() > MAX_KEPT_INPUT {
            *input = Vec::new();
        }
        Some(Fingerprint(out))
    })
}

/// The largest fingerprint input buffer a thread keeps between requests.
const MAX_KEPT_INPUT: usize = 64 << 10;

thread_local! {
    /// The text a fingerprint hashes, built in place; see [`derive_fingerprint`].
    static FINGERPRINT_INPUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Trims a title and checks it is one line of text within the size limit.
///
/// # Errors
/// [`RequestError::EmptyTitle`], [`RequestError::TitleTooLong`] or [`RequestError::TitleControl`].
pub fn check_title(title: &str) -> Result<String, RequestError> {
    checked_title(title).map(str::to_owned)
}

/// Checks the header fields and the version a request gives: what [`Request::new`] enforces
/// besides the title and the context.
fn check_given(fields: &Fields<Option<&str>>, version: Option<&str>) -> Result<(), RequestError> {
    for (field, value) in fields.iter() {
        if let Some(value) = value
            && !is_field_value(value)
        {
            return Err(RequestError::BadFieldValue {
                field: field.name(),
                value: (*value).to_owned(),
            });
        }
    }
    match version {
        Some(v) if !is_version(v) => Err(RequestError::BadVersion(v.to_owned())),
        _ => Ok(()),
    }
}

/// [`check_title`] without the copy: the trimmed title, borrowed.
fn checked_title(title: &str) -> Result<&str, RequestError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(RequestError::EmptyTitle);
    }
    if title.len() > MAX_TITLE_BYTES {
        return Err(RequestError::TitleTooLong(title.len()));
    }
    let (ascii, control) = scan_ascii(title.as_bytes());
    if ascii {
        // The common case, byte by byte: ASCII has no bidirectional controls and no zero-width
        // characters, and a trimmed, non-empty title is not all whitespace.
        if control {
            let at = title.bytes().position(is_ascii_control).unwrap_or(0);
            return Err(RequestError::TitleControl(at));
        }
        return Ok(title);
    }
    if let Some((at, _)) = title.char_indices().find(|&(_, c)| is_line_breaking(c)) {
        return Err(RequestError::TitleControl(at));
    }
    if let Some((at, c)) = title.char_indices().find(|&(_, c)| is_bidi_control(c)) {
        return Err(RequestError::TitleBidi {
            at,
            code: u32::from(c),
        });
    }
    if title.chars().all(|c| c.is_whitespace() || is_zero_width(c)) {
        return Err(RequestError::InvisibleTitle);
    }
    Ok(title)
}

/// The bidirectional embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069):
/// they reorder how the text around them is displayed, so a title holding one can read as
/// something else than it is ("Trojan Source"). The implicit marks (U+200E, U+200F) only
/// nudge neutral characters and stay allowed.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that take no width: a title made of them and spaces looks empty.
fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{180E}' | '\u{034F}'
    )
}

/// Control characters (C0, C1, DEL, so `\n`, `\r`, NEL) and the Unicode line and paragraph
/// separators: anything that could start a new line in some reader.
pub fn is_line_breaking(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// [`is_line_breaking`] of an ASCII byte: C0 controls and DEL.
fn is_ascii_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Whether `bytes` are all ASCII, and whether any is an ASCII control, in one pass without an
/// early exit, which the compiler turns into vector instructions: titles and context values are
/// checked again each time they cross the plugin boundary, and with a byte-by-byte search that
/// stops at the first control, checking the title took 12 % (31 ns) of a 265 ns prediction
/// through a plugin (`generator/predict`), 230 ns with this scan.
fn scan_ascii(bytes: &[u8]) -> (bool, bool) {
    let mut high = 0u8;
    let mut control = 0u8;
    for &b in bytes {
        high |= b;
        control |= u8::from(is_ascii_control(b));
    }
    (high < 0x80, control != 0)
}

fn has_line_breaking_chars(s: &str) -> bool {
    match scan_ascii(s.as_bytes()) {
        (true, control) => control,
        (false, _) => s.chars().any(is_line_breaking),
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.title)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint hashes exactly the text it always hashed: the same as feeding the hasher
    /// each lowercased word, uppercased field and lowercased version piece by piece, for ASCII
    /// titles and for titles whose lowercasing depends on the word (a final sigma).
    #[test]
    fn fingerprints_hash_the_same_text_as_piece_by_piece() {
        fn reference(title: &str, given: &Fields<Option<&str>>, version: Option<&str>) -> [u8; 16] {
            let mut h = blake3::Hasher::new();
            h.update(b"registry-request-v1\0");
            for word in title.split_whitespace() {
                h.update(word.to_lowercase().as_bytes());
                h.update(b" ");
            }
            h.update(b"\0");
            for field in Field::ALL {
                h.update(given[field].unwrap_or("").to_ascii_uppercase().as_bytes());
                h.update(b"\0");
            }
            h.update(version.unwrap_or("").to_ascii_lowercase().as_bytes());
            h.update(b"\0");
            h.update(b"env=prod\0");
            let mut out = [0u8; 16];
            out.copy_from_slice(&h.finalize().as_bytes()[..16]);
            out
        }
        let context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid");
        let given = Fields {
            scope: Some("sec"),
            ..Fields::default()
        };
        for title in ["Block  SSH", "ΟΔΟΣ Σ ΣΑΣ", "Straße ÉTÉ", "İstanbul x"] {
            for version in [None, Some("V2.9")] {
                let got = derive_fingerprint(1, title, &given, version, &context).expect("known");
                assert_eq!(got.0, reference(title, &given, version), "{title}");
            }
        }
    }

    /// The ASCII fast paths of the title and context checks agree with the character rule.
    #[test]
    fn ascii_controls_are_the_line_breaking_ascii() {
        for b in 0u8..128 {
            assert_eq!(is_ascii_control(b), is_line_breaking(char::from(b)), "{b}");
            let text = format!("a{}b", char::from(b));
            assert_eq!(
                check_title(&text).is_err(),
                text.chars().any(is_line_breaking),
                "{b}"
            );
        }
    }

    /// Refilling one request again and again from views of others gives copies of them,
    /// whatever the request held before, and so does a copy made anew.
    #[test]
    fn a_request_refilled_from_a_view_is_a_copy_of_it() {
        type Parts<'a> = (
            &'a str,
            [Option<&'a str>; 4],
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
        );
        let parts: [Parts<'_>; 4] = [
            (
                " Block SSH ",
                [Some("SEC"), None, None, Some("REQUIRED")],
                Some("V2.9"),
                &[("b", "2"), ("a", "1")],
            ),
            ("Zugriff prüfen ✓", [None; 4], None, &[]),
            (
                "t",
                [None, Some("RULES"), Some("LIVE"), None],
                Some("v1"),
                &[("z", "é"), ("k", "v"), ("a", "")],
            ),
            ("x", [Some("S"); 4], None, &[("only", "one")]),
        ];
        let fields = |given: &[Option<&'static str>; 4]| Fields::from_fn(|f| given[f as usize]);
        let build = |(title, given, version, pairs): &Parts<'static>| {
            let context = Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())));
            Request::new(
                title,
                fields(given).map(|_, v| v.map(str::to_owned)),
                version.map(str::to_owned),
                context.expect("valid context"),
            )
            .expect("valid request")
        };
        let mut kept = build(&parts[0]).by(Some(crate::Author::new("a", "b", "c")));
        for p in parts.iter().chain(parts.iter().rev()) {
            let want = build(p);
            kept.refill_from(&want.view());
            assert_eq!(kept, want);
            assert_eq!(Request::from_view(&want.view()), want);
        }
    }

    /// A context's view finds each value by key, whether it borrows a context or lent pairs.
    #[test]
    fn a_context_view_finds_values_by_key() {
        let context = Context::new(
            [("b", "2"), ("a", "1"), ("d", "")].map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .expect("valid context");
        let pairs: Vec<(&str, &str)> = context.iter().collect();
        for view in [ContextRef::Owned(&context), ContextRef::Pairs(&pairs)] {
            assert_eq!(view.len(), 3);
            assert_eq!(view.iter().collect::<Vec<_>>(), pairs);
            for (key, value) in [("a", Some("1")), ("b", Some("2")), ("d", Some(""))] {
                assert_eq!(view.get(key), value, "{key}");
            }
            for absent in ["", "c", "e", "A"] {
                assert_eq!(view.get(absent), None, "{absent}");
            }
        }
        assert!(ContextRef::Pairs(&[]).is_empty());
    }

    #[test]
    fn a_copy_does_not_keep_a_long_buffer() {
        let mut kept = "x".repeat(10_000);
        copy_into(&mut kept, "ab");
        assert_eq!(kept, "ab");
        assert!(kept.capacity() < 10_000, "{}", kept.capacity());
        let mut small = String::with_capacity(100);
        let at = small.as_ptr();
        copy_into(&mut small, "abc");
        assert_eq!(
            (small.as_str(), small.as_ptr()),
            ("abc", at),
            "a fitting buffer is reused"
        );
    }

    #[test]
    fn the_ascii_scan_agrees_with_byte_by_byte() {
        for len in [1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100] {
            for at in 0..len {
                for odd in ["\0", "\x1f", "\x7f", " ", "~", "é", "\u{2028}"] {
                    let text = format!("{}{odd}{}", "x".repeat(at), "y".repeat(len - at - 1));
                    let naive = (text.is_ascii(), text.bytes().any(is_ascii_control));
                    assert_eq!(scan_ascii(text.as_bytes()), naive, "{text:?}");
                    assert_eq!(
                        has_line_breaking_chars(&text),
                        text.chars().any(is_line_breaking),
                        "{text:?}"
                    );
                }
            }
        }
    }

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
    fn a_title_in_another_unicode_normalization_is_the_same_request() {
        let composed = req("Caf\u{e9} rules").expect("valid");
        let decomposed = req("Cafe\u{301} rules").expect("valid");
        assert_eq!(composed.fingerprint(), decomposed.fingerprint());
        // An NFC title keeps the fingerprint derivation 1 gave it, so stored entries are found.
        assert_eq!(composed.legacy_fingerprint(), None);
        assert_eq!(
            composed.fingerprint(),
            composed.derive(1),
            "derivation 2 of an NFC title is derivation 1"
        );
        // A decomposed title registered under derivation 1 is found through its old fingerprint.
        assert_eq!(decomposed.legacy_fingerprint(), Some(decomposed.derive(1)));
        assert_ne!(decomposed.derive(1), decomposed.fingerprint());
        assert_eq!(
            derive_fingerprint(3, "t", &Fields::default(), None, &Context::default()),
            None
        );
    }

    #[test]
    fn titles_that_display_otherwise_than_they_are_are_refused() {
        for (title, want) in [
            ("\u{200B}", RequestError::InvisibleTitle),
            (" \u{200B}\u{FEFF} \u{2060} ", RequestError::InvisibleTitle),
            (
                "Allow \u{202E}hss\u{202C} from anywhere",
                RequestError::TitleBidi {
                    at: 6,
                    code: 0x202E,
                },
            ),
            (
                "a\u{2066}b",
                RequestError::TitleBidi {
                    at: 1,
                    code: 0x2066,
                },
            ),
        ] {
            assert_eq!(req(title), Err(want), "{title:?}");
        }
        for fine in [
            "a\u{200D}b",
            "\u{200F}\u{5e9}\u{5dc}\u{5d5}\u{5dd}",
            "zero\u{200B}width",
        ] {
            assert!(req(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn a_context_naming_a_key_twice_is_refused_when_read() {
        let twice: Result<Context, _> = serde_json::from_str(r#"{"env": "prod", "env": "dev"}"#);
        let e = twice.expect_err("duplicate key");
        assert!(
            e.to_string().contains("context key `env` is given twice"),
            "{e}"
        );
        let once: Context = serde_json::from_str(r#"{"z": "1", "a": "2"}"#).expect("valid");
        assert_eq!(once.iter().collect::<Vec<_>>(), [("a", "2"), ("z", "1")]);
        let many = format!(
            "{{{}}}",
            (0..=MAX_CONTEXT_PAIRS)
                .map(|i| format!("\"k{i}\": \"v\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(serde_json::from_str::<Context>(&many).is_err());
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
