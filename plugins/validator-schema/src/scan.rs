//! A strict scanner for the block YAML the default generator writes, so that checking a config
//! seldom needs the full parser.
//!
//! Parsing a rendered config into a `yaml_serde::Value` costs tens of microseconds, most of the
//! validator's time per entry. The configs the registry renders use a small part of YAML: block
//! mappings and sequences indented by two spaces (a sequence level with its key), one-line plain,
//! single-quoted and double-quoted scalars, and `{}` and `[]` for empty collections. [`scan`]
//! reads exactly that subset and answers either with a [`Document`] (the text is valid YAML, its
//! top level is a mapping, no mapping repeats a key, and dotted key paths can be looked up), or
//! with `None`, "outside the subset", after which the caller parses the text with `yaml_serde`.
//!
//! Every rule here is stricter than YAML, never looser, so an answer is always the one
//! `yaml_serde` would give. Inside the subset:
//!
//! - every line ends with `\n`; a line holds nothing but its indentation, an optional `- ` run,
//!   an optional `key:` and a scalar or `{}` / `[]`; no tabs, comments, blank lines, trailing
//!   spaces, anchors, aliases, tags, directives, document markers or multi-line scalars;
//! - the top level is a mapping at column 0 (or the whole text is `{}\n`); the entries of a
//!   nested mapping are two columns right of its key or `-`, and a sequence's `-` is level with
//!   its key or two columns right of the enclosing `-`; nothing nests deeper than
//!   [`MAX_DEPTH`] levels, far below the parser's own limit;
//! - a plain key starts with a letter, `_` or `/` and holds only letters, digits, spaces and
//!   `_ - . / ( ) + , ; =`, does not end with a space and is not a word some YAML version reads
//!   as a boolean or a null, so it is a string; a plain value may also start with a digit or one
//!   of `. ( ) + ; =`, or with `-` followed by another allowed character other than a space;
//! - quoted scalars hold printable characters only; double-quoted ones use only the escapes
//!   `\" \\ \n \t \r \0 \N \L \P \xHH \uHHHH` (not a surrogate);
//! - a key, quotes included, is at most [`MAX_KEY_BYTES`] bytes, within YAML's limit on
//!   implicit keys.
//!
//! A value is null when it is empty (a `key:` with nothing under it), `~`, `null`, `Null` or
//! `NULL`, as `yaml_serde` reads them; other spellings of `null` are left to the parser.

//!
//! The scanner allocates nothing per key or scalar: a key is a span of the text, or of a buffer
//! of decoded keys when it had escapes, and quoted values are checked without being decoded.
//! The entries and that buffer live in a [`Scratch`] the caller keeps between configs, so a
//! batch of configs reuses one set of buffers.

/// The deepest nesting of collections the scanner follows.
pub(crate) const MAX_DEPTH: usize = 32;

/// The longest key, in bytes with its quotes, the scanner accepts.
pub(crate) const MAX_KEY_BYTES: usize = 1000;

/// Marks the end of a chain of entries: no entry.
const NONE: u32 = u32::MAX;

/// The buffers a scan fills, kept by the caller so that scanning many configs allocates only
/// while they grow.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Every mapping entry of the last config scanned, in the order their values end.
    entries: Vec<Entry>,
    /// The keys of the last config that had escapes, decoded, one after another.
    decoded: String,
}

/// A config read by [`scan`]: valid YAML, a mapping at the top, no key repeated in a mapping.
#[derive(Debug)]
pub(crate) struct Document<'a> {
    text: &'a str,
    /// Keys that had escapes, decoded; [`Span::decoded`] spans point here.
    decoded: &'a str,
    entries: &'a [Entry],
    /// The last entry of the top-level mapping, or [`NONE`] when it is empty.
    root: u32,
}

/// Where a key's value lies: in the text, or in the decoded keys when it had escapes.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    decoded: bool,
}

/// One `key: value` of some mapping.
#[derive(Debug)]
struct Entry {
    /// The key as the parser reads it: quotes removed, escapes decoded.
    key: Span,
    /// The entry before this one in the same mapping, or [`NONE`].
    prev: u32,
    value: Kind,
}

/// What a value is, as far as key lookups care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    /// A scalar that is not null, a sequence, or an empty mapping.
    Other,
    /// A mapping with entries: the index of its last entry.
    Mapping(u32),
}

/// The bytes of `span`, from the text or from the decoded keys.
fn span_bytes<'a>(text: &'a [u8], decoded: &'a [u8], span: Span) -> &'a [u8] {
    let source = if span.decoded { decoded } else { text };
    // Spans are made by the scanner from positions inside these buffers, so they are in range;
    // an empty slice on a broken span would only make a lookup answer "absent".
    source
        .get(span.start as usize..span.end as usize)
        .unwrap_or_default()
}

impl Document<'_> {
    /// Whether a dotted key path (`metadata.owner`) leads through mappings to a value that is
    /// not null, exactly as walking a `yaml_serde::Value` with `get` and `is_null` would say.
    pub(crate) fn has_key(&self, path: &str) -> bool {
        let mut mapping = self.root;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let Some(value) = self.find(mapping, part) else {
                return false;
            };
            let last = parts.peek().is_none();
            match value {
                Kind::Null => return false,
                _ if last => return true,
                Kind::Mapping(next) => mapping = next,
                Kind::Other => return false,
            }
        }
        false
    }

    fn key(&self, entry: &Entry) -> &[u8] {
        span_bytes(self.text.as_bytes(), self.decoded.as_bytes(), entry.key)
    }

    /// The value of `key` in the mapping whose last entry is `last`.
    fn find(&self, mut last: u32, key: &str) -> Option<Kind> {
        while last != NONE {
            let entry = &self.entries[last as usize];
            if self.key(entry) == key.as_bytes() {
                return Some(entry.value);
            }
            last = entry.prev;
        }
        None
    }

    /// Every dotted path to a mapping entry, with whether its value is null; for tests that
    /// compare the scanner with the parser.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        self.collect(self.root, "", &mut out);
        out
    }

    #[cfg(test)]
    fn collect(&self, mut last: u32, prefix: &str, out: &mut Vec<(String, bool)>) {
        while last != NONE {
            let entry = &self.entries[last as usize];
            let key = std::str::from_utf8(self.key(entry)).expect("keys are whole characters");
            let path = format!("{prefix}{key}");
            out.push((path.clone(), entry.value == Kind::Null));
            if let Kind::Mapping(inner) = entry.value {
                self.collect(inner, &format!("{path}."), out);
            }
            last = entry.prev;
        }
    }
}

/// Reads `text` if it lies within the subset described in the module documentation, filling
/// `scratch` (whatever it held is dropped); `None` means "outside the subset": the text may be
/// valid or not, a mapping or not.
pub(crate) fn scan<'a>(text: &'a str, scratch: &'a mut Scratch) -> Option<Document<'a>> {
    scratch.entries.clear();
    scratch.decoded.clear();
    // Positions are kept in 32 bits; a longer text is left to the parser.
    u32::try_from(text.len()).ok()?;
    if text == "{}\n" {
        return Some(Document {
            text,
            decoded: &scratch.decoded,
            entries: &scratch.entries,
            root: NONE,
        });
    }
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        scratch,
    };
    let root = scanner.mapping(0, 0)?;
    // A top-level mapping ends only at the end of the text or at a line indented less than
    // column 0, which cannot be; anything left over is outside the subset.
    if scanner.pos != text.len() {
        return None;
    }
    let scratch = scanner.scratch;
    Some(Document {
        text,
        decoded: &scratch.decoded,
        entries: &scratch.entries,
        root,
    })
}

/// The scanner's state: the text, how far it has read, and where it puts what it found.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    scratch: &'a mut Scratch,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Consumes `expected` if the text continues with it.
    fn eat(&mut self, expected: &[u8]) -> bool {
        if self.bytes[self.pos..].starts_with(expected) {
            self.pos += expected.len();
            true
        } else {
            false
        }
    }

    /// The number of spaces at `self.pos`, which is the start of a line.
    fn indent(&self) -> usize {
        let rest = &self.bytes[self.pos..];
        // Eight bytes at once: the first byte that is not a space is the first nonzero byte of
        // the word XOR eight spaces. Most lines are indented less than that.
        if let Some(word) = rest.first_chunk::<8>() {
            let other = u64::from_le_bytes(*word) ^ u64::from_le_bytes([b' '; 8]);
            if other != 0 {
                return other.trailing_zeros() as usize / 8;
            }
        }
        rest.iter().take_while(|&&b| b == b' ').count()
    }

    /// Whether the text at `self.pos + offset` starts a sequence item.
    fn item_at(&self, offset: usize) -> bool {
        self.bytes[self.pos + offset..].starts_with(b"- ")
    }

    /// A span of the text from `start` to the current position.
    fn span_from(&self, start: usize) -> Span {
        // `scan` refuses texts whose positions do not fit in 32 bits.
        Span {
            start: start as u32,
            end: self.pos as u32,
            decoded: false,
        }
    }

    /// Whether the key `span` equals the key of some entry in the chain ending at `last`.
    fn repeats(&self, span: Span, mut last: u32) -> bool {
        let (text, decoded) = (self.bytes, self.scratch.decoded.as_bytes());
        let key = span_bytes(text, decoded, span);
        while last != NONE {
            let entry = &self.scratch.entries[last as usize];
            // Lengths first: most keys of a mapping differ in length, and comparing them costs
            // nothing.
            if entry.key.end - entry.key.start == span.end - span.start {
                // The first bytes before the rest: a call to compare the rest costs more than
                // the comparison itself for keys this short.
                let other = span_bytes(text, decoded, entry.key);
                if other.first() == key.first() && other == key {
                    return true;
                }
            }
            last = entry.prev;
        }
        false
    }

    /// Reads a block mapping whose entries sit at column `indent`, starting at its first key
    /// (at the start of a line, or after a `- `); stops at the start of the first line indented
    /// less. Returns the index of its last entry.
    fn mapping(&mut self, indent: usize, depth: usize) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut last = NONE;
        loop {
            let key = self.key()?;
            if !self.eat(b":") || self.repeats(key, last) {
                return None;
            }
            let value = match self.peek() {
                Some(b' ') => {
                    self.pos += 1;
                    self.inline_value()?
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.block_value(indent, depth)?
                }
                _ => return None,
            };
            let index = u32::try_from(self.scratch.entries.len()).ok()?;
            self.scratch.entries.push(Entry {
                key,
                prev: last,
                value,
            });
            last = index;
            if self.at_end() {
                return Some(last);
            }
            let next = self.indent();
            if next == indent {
                self.pos += next;
            } else if next < indent {
                return Some(last);
            } else {
                return None;
            }
        }
    }

    /// Reads the value of a `key:` that ends its line: a mapping indented two columns more, a
    /// sequence level with the key, or nothing (null). `self.pos` is at the next line's start.
    fn block_value(&mut self, indent: usize, depth: usize) -> Option<Kind> {
        if self.at_end() {
            return Some(Kind::Null);
        }
        let next = self.indent();
        if next == indent + 2 {
            self.pos += next;
            return Some(Kind::Mapping(self.mapping(indent + 2, depth + 1)?));
        }
        if next == indent && self.item_at(next) {
            self.pos += next;
            self.sequence(indent, depth + 1)?;
            return Some(Kind::Other);
        }
        if next <= indent {
            return Some(Kind::Null);
        }
        None
    }

    /// Reads the value after `key: ` up to and including the end of its line.
    fn inline_value(&mut self) -> Option<Kind> {
        let kind = match self.peek()? {
            b'{' | b'[' | b'~' => return self.token_line(),
            b'\'' => {
                self.single_quoted(false)?;
                Kind::Other
            }
            b'"' => {
                self.double_quoted(false)?;
                Kind::Other
            }
            _ => {
                let start = self.pos;
                self.plain(false)?;
                plain_kind(&self.bytes[start..self.pos])?
            }
        };
        self.eat(b"\n").then_some(kind)
    }

    /// Reads a whole-line `{}`, `[]` or `~`.
    fn token_line(&mut self) -> Option<Kind> {
        if self.eat(b"{}\n") || self.eat(b"[]\n") {
            Some(Kind::Other)
        } else if self.eat(b"~\n") {
            Some(Kind::Null)
        } else {
            None
        }
    }

    /// Reads a block sequence whose `-` sit at column `indent`, starting at its first `-`;
    /// stops at the start of the first line that is not one of its items.
    fn sequence(&mut self, indent: usize, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        loop {
            if !self.eat(b"- ") {
                return None;
            }
            self.item(indent + 2, depth)?;
            if self.at_end() {
                return Some(());
            }
            let next = self.indent();
            if next == indent && self.item_at(next) {
                self.pos += next;
            } else if next <= indent {
                return Some(());
            } else {
                return None;
            }
        }
    }

    /// Reads the item after a `- ` at column `column`: a nested sequence, a mapping whose first
    /// key is on this line, or a one-line value.
    fn item(&mut self, column: usize, depth: usize) -> Option<()> {
        let start = self.pos;
        match self.peek()? {
            b'-' if self.item_at(0) => return self.sequence(column, depth + 1),
            b'{' | b'[' | b'~' => return self.token_line().map(drop),
            b'\'' => drop(self.single_quoted(false)?),
            b'"' => drop(self.double_quoted(false)?),
            _ => {
                self.plain(false)?;
                plain_kind(&self.bytes[start..self.pos])?;
            }
        }
        match self.peek()? {
            b'\n' => {
                self.pos += 1;
                Some(())
            }
            b':' => {
                // The scalar was the first key of a mapping: read it again as a key.
                self.pos = start;
                self.mapping(column, depth + 1).map(drop)
            }
            _ => None,
        }
    }

    /// Reads a mapping key: plain or quoted, short enough for YAML's implicit keys.
    fn key(&mut self) -> Option<Span> {
        let start = self.pos;
        let key = match self.peek()? {
            b'\'' => self.single_quoted(true)?,
            b'"' => self.double_quoted(true)?,
            _ => {
                self.plain(true)?;
                self.span_from(start)
            }
        };
        (self.pos - start <= MAX_KEY_BYTES).then_some(key)
    }

    /// Reads a plain scalar up to the first character it may not hold; see the module
    /// documentation for what a key and a value may hold.
    fn plain(&mut self, key: bool) -> Option<()> {
        let start = self.pos;
        let bytes = &self.bytes[start..];
        let first_ok = match *bytes.first()? {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'/' => true,
            b'0'..=b'9' | b'.' | b'(' | b')' | b'+' | b';' | b'=' => !key,
            b'-' => {
                !key && self.text[start + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c != ' ' && plain_char(c))
            }
            0x80.. => {
                let first = self.text[start..].chars().next()?;
                if key {
                    first.is_alphabetic()
                } else {
                    first.is_alphanumeric()
                }
            }
            _ => false,
        };
        if !first_ok {
            return None;
        }
        let mut len = 0;
        loop {
            len += run(&bytes[len..], &PLAIN_BYTE);
            // Anything other than ASCII is decoded and checked as a character.
            match bytes.get(len) {
                Some(0x80..) => match self.text[start + len..].chars().next() {
                    Some(c) if plain_char(c) => len += c.len_utf8(),
                    _ => break,
                },
                _ => break,
            }
        }
        let scalar = &bytes[..len];
        if scalar.last() == Some(&b' ') || (key && is_reserved_word(scalar)) {
            return None;
        }
        self.pos += len;
        Some(())
    }

    /// Starts a decoded key at the end of the decoded keys, with the text from `from` to the
    /// current position; returns where it starts.
    fn start_decoded(&mut self, from: usize) -> usize {
        let start = self.scratch.decoded.len();
        self.scratch.decoded.push_str(&self.text[from..self.pos]);
        start
    }

    /// The key read by a quoted scalar: the text from `segment` to `end` when it had no
    /// escapes, or the decoded key begun at `decoded`, completed with that text.
    fn quoted_span(&mut self, decoded: Option<usize>, segment: usize, end: usize) -> Span {
        match decoded {
            None => Span {
                start: segment as u32,
                end: end as u32,
                decoded: false,
            },
            Some(start) => {
                self.scratch.decoded.push_str(&self.text[segment..end]);
                // The decoded keys are never longer than the text they came from, which
                // `scan` keeps within 32 bits.
                Span {
                    start: start as u32,
                    end: self.scratch.decoded.len() as u32,
                    decoded: true,
                }
            }
        }
    }

    /// Reads a one-line single-quoted scalar; with `decode`, returns its value as a key span
    /// (for values the span is not needed and is not built with care).
    fn single_quoted(&mut self, decode: bool) -> Option<Span> {
        self.pos += 1;
        let mut segment = self.pos;
        let mut decoded: Option<usize> = None;
        loop {
            self.pos += run(&self.bytes[self.pos..], &SINGLE_QUOTED_BYTE);
            match *self.bytes.get(self.pos)? {
                b'\'' if self.bytes.get(self.pos + 1) == Some(&b'\'') => {
                    if decode {
                        // Keep the first quote of the pair: `''` reads as `'`.
                        self.pos += 1;
                        match decoded {
                            None => decoded = Some(self.start_decoded(segment)),
                            Some(_) => self.scratch.decoded.push_str(&self.text[segment..self.pos]),
                        }
                        self.pos += 1;
                    } else {
                        self.pos += 2;
                    }
                    segment = self.pos;
                }
                b'\'' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Some(if decode {
                        self.quoted_span(decoded, segment, end)
                    } else {
                        self.span_from(segment)
                    });
                }
                b' '..=b'~' => self.pos += 1,
                0x80.. => self.quotable_char()?,
                _ => return None,
            }
        }
    }

    /// Reads a one-line double-quoted scalar; with `decode`, returns its value as a key span
    /// (for values the span is not needed and is not built with care).
    fn double_quoted(&mut self, decode: bool) -> Option<Span> {
        self.pos += 1;
        let mut segment = self.pos;
        let mut decoded: Option<usize> = None;
        loop {
            self.pos += run(&self.bytes[self.pos..], &DOUBLE_QUOTED_BYTE);
            match *self.bytes.get(self.pos)? {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Some(if decode {
                        self.quoted_span(decoded, segment, end)
                    } else {
                        self.span_from(segment)
                    });
                }
                b'\\' => {
                    if decode {
                        match decoded {
                            None => decoded = Some(self.start_decoded(segment)),
                            Some(_) => self.scratch.decoded.push_str(&self.text[segment..self.pos]),
                        }
                    }
                    let escape = *self.bytes.get(self.pos + 1)?;
                    self.pos += 2;
                    let c = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'0' => '\0',
                        b'N' => '\u{85}',
                        b'L' => '\u{2028}',
                        b'P' => '\u{2029}',
                        b'x' => self.hex(2)?,
                        b'u' => self.hex(4)?,
                        _ => return None,
                    };
                    if decode {
                        self.scratch.decoded.push(c);
                    }
                    segment = self.pos;
                }
                b' '..=b'~' => self.pos += 1,
                0x80.. => self.quotable_char()?,
                _ => return None,
            }
        }
    }

    /// Reads `digits` hexadecimal digits naming a character that is not a surrogate.
    fn hex(&mut self, digits: usize) -> Option<char> {
        let hex = self.text.get(self.pos..self.pos + digits)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
        self.pos += digits;
        Some(c)
    }

    /// Steps over one non-ASCII character inside quotes, if it may stand there as it is.
    fn quotable_char(&mut self) -> Option<()> {
        let c = self.text[self.pos..].chars().next()?;
        if !is_quotable(c) {
            return None;
        }
        self.pos += c.len_utf8();
        Some(())
    }
}

/// Whether a plain value is null; `None` for another spelling of `null`, left to the parser.
fn plain_kind(scalar: &[u8]) -> Option<Kind> {
    match scalar {
        b"null" | b"Null" | b"NULL" => Some(Kind::Null),
        s if s.eq_ignore_ascii_case(b"null") => None,
        _ => Some(Kind::Other),
    }
}

/// [`plain_char`] for each byte that is a whole ASCII character, looked up rather than computed
/// on the hot path; every other byte is `false` here and checked as part of its character.
const PLAIN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = (b as u8).is_ascii_alphanumeric()
            || matches!(
                b as u8,
                b' ' | b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' | b',' | b';' | b'='
            );
        b += 1;
    }
    table
};

/// The bytes a single-quoted scalar holds as they are: printable ASCII but the quote.
const SINGLE_QUOTED_BYTE: [bool; 256] = quoted_bytes(b'\'', b'\'');

/// The bytes a double-quoted scalar holds as they are: printable ASCII but the quote and the
/// backslash.
const DOUBLE_QUOTED_BYTE: [bool; 256] = quoted_bytes(b'"', b'\\');

/// Printable ASCII but `quote` and `escape`, as a table.
const fn quoted_bytes(quote: u8, escape: u8) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        table[b as usize] = b != quote && b != escape;
        b += 1;
    }
    table
}

/// The length of the run of bytes at the start of `bytes` that `table` marks.
fn run(bytes: &[u8], table: &[bool; 256]) -> usize {
    bytes
        .iter()
        .position(|&b| !table[usize::from(b)])
        .unwrap_or(bytes.len())
}

/// Characters a plain scalar may hold after its first.
fn plain_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            ' ' | '_' | '-' | '.' | '/' | '(' | ')' | '+' | ',' | ';' | '='
        )
}

/// Words some YAML version reads as a boolean or a null.
fn is_reserved_word(s: &[u8]) -> bool {
    s.len() <= 5
        && ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w.as_bytes()))
}

/// Characters a quoted scalar may hold as they are: YAML's printable characters, minus those
/// that break a line in YAML 1.1 (NEL, U+2028, U+2029) and the byte-order mark.
fn is_quotable(c: char) -> bool {
    match c {
        ' '..='~' => true,
        '\u{A0}'..='\u{D7FF}' => !matches!(c, '\u{2028}' | '\u{2029}'),
        '\u{E000}'..='\u{FFFD}' => c != '\u{FEFF}',
        '\u{10000}'.. => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use registry_core::{
        Context, Draft, EntryId, Field, Fields, FromConfig, Generator, Header, Schema, Setup,
    };
    use registry_generator_default::DefaultGenerator;
    use yaml_serde::Value;

    use super::*;

    /// Every key path of a parsed value with whether its value is null; a key that is not a
    /// string gets a path no scanned document can have.
    fn parsed_paths(value: &Value) -> Vec<(String, bool)> {
        fn walk(value: &Value, prefix: &str, out: &mut Vec<(String, bool)>) {
            let Value::Mapping(map) = value else {
                return;
            };
            for (key, inner) in map {
                let key = key.as_str().unwrap_or("\u{0}not a string");
                let path = format!("{prefix}{key}");
                out.push((path.clone(), inner.is_null()));
                walk(inner, &format!("{path}."), out);
            }
        }
        let mut out = Vec::new();
        walk(value, "", &mut out);
        out
    }

    /// Checks the scanner against the parser on `text`: either the scanner declines, or the
    /// parser reads a mapping with the same key paths, the same null values and the same answer
    /// to every lookup. Returns whether the scanner answered.
    fn agrees(text: &str) -> bool {
        let mut scratch = Scratch::default();
        let Some(document) = scan(text, &mut scratch) else {
            return false;
        };
        let value: Value = yaml_serde::from_str(text)
            .unwrap_or_else(|e| panic!("scanned {text:?}, which does not parse: {e}"));
        assert!(
            value.is_mapping(),
            "scanned {text:?}, which is not a mapping"
        );
        let mut ours = document.paths();
        let mut theirs = parsed_paths(&value);
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "key paths of {text:?}");
        let mut queries: Vec<String> = ["", "nope", "a", "a.b", "dashboard.nope.deeper", "."]
            .map(str::to_owned)
            .to_vec();
        for (path, _) in &theirs {
            queries.extend([
                path.clone(),
                format!("{path}.x"),
                format!("{path}."),
                format!(".{path}"),
                format!("{path}.{path}"),
            ]);
        }
        for query in &queries {
            assert_eq!(
                document.has_key(query),
                crate::has_key(&value, query),
                "lookup of {query:?} in {text:?}"
            );
        }
        true
    }

    fn setup() -> Setup {
        Setup {
            schema: Schema::default(),
            data_dir: PathBuf::from("/nonexistent"),
            config_dir: PathBuf::from("/nonexistent"),
            shard: 0,
            shards: 1,
            create: None,
        }
    }

    /// Titles and context values that need quoting, escapes, or that YAML could misread.
    const TRICKY: &[&str] = &[
        "Block SSH from the internet",
        r#"Block "SSH": port 22 # now"#,
        "[SEC] looks like a header",
        "{a: b}, [c]",
        "- starts like a list",
        "key: value",
        "it's 'quoted'",
        "yes",
        "No",
        "null",
        "NULL",
        "nUll",
        "~",
        "123",
        "-1",
        "0x1F",
        "1e3",
        ".inf",
        "v2.9",
        "trailing colon:",
        "&anchor *alias !tag %directive @at `tick`",
        "é ünïcödé ✓ 日本語 😀",
        "a\\b \\n not a newline",
        "tab\there",
        "line\nbreak",
        "nul\0 bell\u{7} esc\u{1B}",
        "nel\u{85} ls\u{2028} ps\u{2029} bom\u{FEFF} del\u{7F}",
        " leading space",
        "trailing space ",
        "a  #b",
        "? complex",
        "| literal",
        "> folded",
        "--- marker",
        "... end",
        "=",
        "<<",
        "Restart (nightly), then check; x=1 + y/2",
    ];

    /// The configs the default generator renders, with the shipped templates and with its
    /// built-in copy, for every scope and type and a range of titles and contexts.
    fn rendered() -> &'static [String] {
        static CONFIGS: OnceLock<Vec<String>> = OnceLock::new();
        CONFIGS.get_or_init(|| {
            let shipped = registry_generator_default::Config {
                templates_dir: Some(PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../templates"
                ))),
                ..Default::default()
            };
            let generators = [
                DefaultGenerator::from_config(shipped, &setup()).expect("the shipped templates"),
                DefaultGenerator::from_config(Default::default(), &setup())
                    .expect("the built-in templates"),
            ];
            let schema = Schema::default();
            let pairs = |p: &[(&str, &str)]| {
                Context::new(p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
                    .expect("valid context")
            };
            let mut contexts = vec![
                Context::default(),
                pairs(&[("env", "prod")]),
                pairs(&[
                    ("env", "PRODUCTION"),
                    ("owner", "secops"),
                    ("region", "eu-west-1"),
                ]),
                pairs(&[
                    ("env", "dev"),
                    ("true", "1"),
                    ("null", ""),
                    ("1", "~"),
                    ("a.b", "x: y"),
                    ("-x", "- y"),
                    ("_", "'"),
                    ("note", "# x: [y]"),
                ]),
            ];
            for value in TRICKY.iter().filter(|v| !v.contains(['\n', '\u{85}'])) {
                if let Ok(context) = Context::new([
                    ("owner".to_owned(), (*value).to_owned()),
                    ("region".to_owned(), (*value).to_owned()),
                    ("Tricky-Key_1.x".to_owned(), (*value).to_owned()),
                ]) {
                    contexts.push(context);
                }
            }
            let mut drafts = Vec::new();
            let mut number = 1;
            for scope in schema.allowed(Field::Scope) {
                for kind in schema.allowed(Field::Type) {
                    for (i, title) in TRICKY.iter().enumerate() {
                        let context = &contexts[(i + number as usize) % contexts.len()];
                        let variant = schema.allowed(Field::Variant);
                        let status = schema.allowed(Field::Status);
                        drafts.push(Draft {
                            header: Header {
                                fields: Fields {
                                    scope: scope.clone(),
                                    kind: kind.clone(),
                                    variant: variant[i % variant.len()].clone(),
                                    status: status[i % status.len()].clone(),
                                },
                                id: EntryId::new(EntryId::prefix_for(scope, kind), number),
                                version: format!("v{}.{}", i % 3, number % 11),
                            },
                            title: (*title).to_owned(),
                            context: context.clone(),
                        });
                        number += 1;
                    }
                }
                // Every context, once per scope.
                for context in &contexts {
                    drafts.push(Draft {
                        header: Header {
                            fields: Fields {
                                scope: scope.clone(),
                                kind: "RULES".into(),
                                variant: "LIVE".into(),
                                status: "DEV".into(),
                            },
                            id: EntryId::new(EntryId::prefix_for(scope, "RULES"), number),
                            version: "v2.9".into(),
                        },
                        title: "A rule".into(),
                        context: context.clone(),
                    });
                    number += 1;
                }
            }
            let mut configs = Vec::new();
            for generator in &generators {
                generator
                    .render(&drafts, &mut configs)
                    .expect("the drafts render");
            }
            configs
        })
    }

    #[test]
    fn every_rendered_config_is_scanned_and_agrees() {
        let configs = rendered();
        assert!(configs.len() > 2000, "{}", configs.len());
        for config in configs {
            assert!(
                agrees(config),
                "the scanner declined a rendered config:\n{config}"
            );
        }
        // The tricky titles and contexts reach the configs in every style of scalar.
        let all = configs.concat();
        for needle in [": '", ": \"", "\\x", "\\u", "''", "- "] {
            assert!(
                all.contains(needle),
                "no rendered config contains {needle:?}"
            );
        }
    }

    /// Texts inside the subset, each valid YAML with a mapping at the top.
    const INSIDE: &[&str] = &[
        "{}\n",
        "a: 1\n",
        "a:\n",
        "a:\nb: 2\n",
        "a: ~\nb: null\nc: Null\nd: NULL\ne: nulls\nf: ''\ng: \"\"\n",
        "a:\n  b:\n    c: x\n  d: []\ne: {}\n",
        "a:\n- x\n- 'y'\n- \"z\"\nb: 1\n",
        "a:\n- k: 1\n  j:\n  - 2\n  l: ~\n- - 1\n  - - 2\n    - 3\n- {}\n- []\n- ~\nb: 1\n",
        "x:\n- a:\n  - b\n  c: 1\n",
        "x:\n- a:\n    b: 1\n  c:\n- d\n",
        "'a b': 1\n\"c\\td\": 2\n'it''s': 3\n\"\\x41\\u00e9\\N\\L\\P\\0\\r\\n\\\"\\\\\": 4\n",
        "'true': 1\n'1': 2\n'null': 3\n'': 4\n'~': 5\n",
        "a: -1\nb: +1\nc: .5\nd: 1e300\ne: .nan\nf: -.inf\ng: 0x1F\nh: 012\ni: 1_000\n",
        "a: é ünïcödé\nb: 'é ✓ 😀'\nc: x (y), z; w=1 + 2/3\nd: --x\ne: -a-\n",
        "a b c: d e f\n_x: /y\n/z: (w)\n",
        "ünï: 1\n",
        "a: x,\n",
        "a:\n  b: 1\n  c:\n    d: ~\n  e:\nf: 2\n",
    ];

    /// Valid YAML outside the subset, and invalid YAML: the scanner must decline them all.
    const OUTSIDE: &[&str] = &[
        "",
        "\n",
        "a: 1",
        "a: 1\n\n",
        "\na: 1\n",
        " a: 1\n",
        "a: 1 \n",
        "a : 1\n",
        "a:  1\n",
        "a:\t1\n",
        "a: 1\t\n",
        "\ta: 1\n",
        "a:\n\tb: 1\n",
        "a: 1\r\n",
        "\u{FEFF}a: 1\n",
        "a: b: c\n",
        "a: b:\n",
        "a: b:c\n",
        "a: 1\na: 2\n",
        "a: 1\n'a': 2\n",
        "a: 1\n\"a\": 2\n",
        "\"\\x61\": 1\na: 2\n",
        "a:\n  k: 1\n  k: 2\n",
        "a:\n- k: 1\n  k: 2\n",
        "a:\n- x\n - y\n",
        "a:\n  - x\n",
        "a:\n - x\n",
        "- a\n",
        "a:\n-x\n",
        "a:\n-\n",
        "a: - b\n",
        "a: 1\n b: 2\n",
        "a: 1\n  b: 2\n",
        "a:\n   b: 1\n",
        "a:\n  b: 1\n c: 2\n",
        "a: b\n  c\n",
        "a: 'b\n  c'\n",
        "a: \"b\n  c\"\n",
        "a: \"\\q\"\n",
        "a: \"\\x4\"\n",
        "a: \"\\uD800\"\n",
        "a: \"\\U0001F600\"\n",
        "a: \"\\e\\a\\/\"\n",
        "a: 'b' \n",
        "a: 'b'c\n",
        "a: \"unterminated\n",
        "a: 'unterminated\n",
        "a: 1 # comment\n",
        "# comment\na: 1\n",
        "a: #x\n",
        "a: &x 1\nb: *x\n",
        "a: *x\n",
        "a: !tag 1\n",
        "!tag\na: 1\n",
        "? a\n: 1\n",
        "a: ? b\n",
        "---\na: 1\n",
        "a: 1\n---\nb: 2\n",
        "a: 1\n...\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: {b: 1}\n",
        "a: [1, 2]\n",
        "a: { }\n",
        "a: [ ]\n",
        "a: {}x\n",
        "a: [b\n",
        "{a: 1}\n",
        "[]\n",
        "a: |\n  text\n",
        "a: |-\n  text\n",
        "a: >\n  text\n",
        "a: @x\n",
        "a: `x`\n",
        "a: %x\n",
        "a: ,x\n",
        "a: :x\n",
        "a: -\n",
        "a: - \n",
        "a: ~x\n",
        "a: nULL\n",
        "a: nuLL\n",
        "yes: 1\n",
        "True: 1\n",
        "null: 1\n",
        "1: 2\n",
        ".inf: 1\n",
        "-a: 1\n",
        "<<: 1\n",
        "a:\u{85}b\n",
        "a: b\u{2028}c\n",
        "a: 'b\u{2028}c'\n",
        "a: 'b\u{FEFF}'\n",
        "a: 'b\u{7F}'\n",
        "a: b\u{0}\n",
        "plain text\n",
        "a:\n  b: 1\n\n  c: 2\n",
        "a:\n  \n",
    ];

    #[test]
    fn hand_written_texts() {
        for text in INSIDE {
            assert!(agrees(text), "the scanner declined {text:?}");
        }
        for text in OUTSIDE {
            assert!(
                scan(text, &mut Scratch::default()).is_none(),
                "the scanner accepted {text:?}"
            );
        }
    }

    /// One scratch reused across texts answers as a fresh one would: nothing of an earlier
    /// text, accepted or declined, leaks into the next.
    #[test]
    fn scratch_is_reused_cleanly() {
        let mut scratch = Scratch::default();
        for text in INSIDE.iter().chain(OUTSIDE).chain(INSIDE.iter().rev()) {
            let fresh = scan(text, &mut Scratch::default()).map(|d| d.paths());
            let reused = scan(text, &mut scratch).map(|d| d.paths());
            assert_eq!(reused, fresh, "{text:?}");
        }
    }

    #[test]
    fn limits() {
        let key = |n: usize| format!("{}: 1\n", "k".repeat(n));
        assert!(agrees(&key(MAX_KEY_BYTES)));
        assert!(scan(&key(MAX_KEY_BYTES + 1), &mut Scratch::default()).is_none());
        let quoted = format!("'{}': 1\n", "k".repeat(MAX_KEY_BYTES - 2));
        assert!(agrees(&quoted));
        // Over the parser's own limit on implicit keys: the parser refuses it.
        let long = format!("{}: 1\n", "k".repeat(1100));
        assert!(scan(&long, &mut Scratch::default()).is_none());
        assert!(yaml_serde::from_str::<Value>(&long).is_err());

        let nested = |levels: usize| {
            let mut text = String::new();
            for level in 0..levels {
                text.push_str(&" ".repeat(2 * level));
                text.push_str("k:\n");
            }
            text.push_str(&" ".repeat(2 * levels));
            text.push_str("v: 1\n");
            text
        };
        assert!(agrees(&nested(MAX_DEPTH)));
        assert!(scan(&nested(MAX_DEPTH + 1), &mut Scratch::default()).is_none());
        // Deeper than the parser follows: refused by it, declined by the scanner.
        let deep = nested(200);
        assert!(scan(&deep, &mut Scratch::default()).is_none());
        assert!(yaml_serde::from_str::<Value>(&deep).is_err());
        let items = format!("a:\n{}x\n", "- ".repeat(200));
        assert!(scan(&items, &mut Scratch::default()).is_none());
    }

    #[test]
    fn lookups() {
        let text = "a:\n  b: 1\n  u: ~\n  e:\n  s:\n  - x\n  m: {}\nt: 'q'\n'c.d': 2\n";
        let mut scratch = Scratch::default();
        let document = scan(text, &mut scratch).expect("inside the subset");
        let cases = [
            ("a", true),
            ("a.b", true),
            ("a.u", false),
            ("a.e", false),
            ("a.s", true),
            ("a.s.x", false),
            ("a.m", true),
            ("a.m.x", false),
            ("a.b.c", false),
            ("t", true),
            ("t.q", false),
            ("c.d", false),
            ("c", false),
            ("", false),
            ("a.", false),
        ];
        for (path, expected) in cases {
            assert_eq!(document.has_key(path), expected, "{path}");
        }
        assert!(agrees(text));
    }

    /// The validator reports the same problems with the fast path as without it, for rendered
    /// configs, the hand-written texts and their required keys.
    #[test]
    fn the_validator_reports_the_same_either_way() {
        use registry_core::{Entry, Fingerprint, Timestamp, Validator};

        let required = std::collections::BTreeMap::from([
            (
                "*".to_owned(),
                vec![
                    "dashboard.title".to_owned(),
                    "dashboard.deployment.region".to_owned(),
                    "governance.owner".to_owned(),
                    "context".to_owned(),
                    "a".to_owned(),
                    "a.b".to_owned(),
                ],
            ),
            (
                "SEC".to_owned(),
                vec![
                    "dashboard.security.authentication.mfa".to_owned(),
                    "e".to_owned(),
                ],
            ),
        ]);
        let mut setup = setup();
        setup.schema = Schema::default()
            .with_required(required)
            .expect("valid schema");
        let validator = |fast_yaml: bool| {
            let config = crate::Config {
                fast_yaml,
                ..crate::Config::default()
            };
            crate::SchemaValidator::from_config(config, &setup).expect("valid config")
        };
        let texts = rendered()
            .iter()
            .map(String::as_str)
            .chain(INSIDE.iter().copied())
            .chain(OUTSIDE.iter().copied());
        let entries: Vec<Entry> = texts
            .enumerate()
            .map(|(i, config)| {
                let scope = if i % 2 == 0 { "SEC" } else { "OPS" };
                let header = Header {
                    fields: Fields {
                        scope: scope.into(),
                        kind: "RULES".into(),
                        variant: "LIVE".into(),
                        status: "DEV".into(),
                    },
                    id: EntryId::new(EntryId::prefix_for(scope, "RULES"), 1),
                    version: "v1".into(),
                };
                let context = Context::default();
                Entry {
                    hash: Entry::compute_hash(&header, "t", &context, config),
                    header,
                    title: "t".into(),
                    context,
                    config: config.to_owned(),
                    fingerprint: Fingerprint([0; 16]),
                    revision: 1,
                    created_at: Timestamp(0),
                    updated_at: Timestamp(0),
                    provenance: None,
                }
            })
            .collect();
        let (mut fast, mut full) = (Vec::new(), Vec::new());
        validator(true)
            .check_entries(&entries, &mut fast)
            .expect("validator works");
        validator(false)
            .check_entries(&entries, &mut full)
            .expect("validator works");
        assert_eq!(fast, full);
        // The comparison covers every kind of answer.
        for code in [
            "missing-config-key",
            "config-not-yaml",
            "config-not-mapping",
        ] {
            assert!(fast.iter().any(|p| p.code == code), "no {code}");
        }
    }

    /// The characters the mutations insert: those YAML gives a meaning, and a letter.
    const ALPHABET: &[char] = &[
        ':', '-', ' ', '\n', '#', '\'', '"', '{', '}', '[', ']', '&', '*', '!', '?', '|', '>', '%',
        '@', '\t', '~', ',', '\\', '.', 'a', '1',
    ];

    /// One edit of a text: insert, delete or replace one character at a position given as a
    /// fraction of the length, so that it applies to any text.
    #[derive(Debug, Clone, Copy)]
    enum Edit {
        Insert(f64, char),
        Delete(f64),
        Replace(f64, char),
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for edit in edits {
            let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
            match *edit {
                Edit::Insert(f, c) => chars.insert(at(f, chars.len()), c),
                Edit::Delete(f) if !chars.is_empty() => {
                    chars.remove(at(f, chars.len() - 1));
                }
                Edit::Replace(f, c) if !chars.is_empty() => {
                    let i = at(f, chars.len() - 1);
                    chars[i] = c;
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let c = || proptest::sample::select(ALPHABET);
        prop_oneof![
            (0.0..1.0, c()).prop_map(|(f, c)| Edit::Insert(f, c)),
            (0.0..1.0f64).prop_map(Edit::Delete),
            (0.0..1.0, c()).prop_map(|(f, c)| Edit::Replace(f, c)),
        ]
    }

    /// A few configs of each scope, to mutate.
    fn samples() -> Vec<&'static str> {
        rendered().iter().step_by(97).map(String::as_str).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 4000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn mutated_configs_agree_or_fall_back(
            pick in any::<prop::sample::Index>(),
            edits in prop::collection::vec(edit(), 1..4),
        ) {
            let samples = samples();
            let text = apply(samples[pick.index(samples.len())], &edits);
            agrees(&text);
        }
    }

    /// The mutation test has teeth: a fixed run of single edits both keeps many mutants inside
    /// the subset (so they are compared with the parser) and pushes many outside it.
    #[test]
    fn mutations_reach_both_answers() {
        let samples = samples();
        let (mut inside, mut outside) = (0, 0);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let text = samples[next() as usize % samples.len()];
            let f = (next() % 10_000) as f64 / 10_000.0;
            let c = ALPHABET[next() as usize % ALPHABET.len()];
            let edit = match next() % 3 {
                0 => Edit::Insert(f, c),
                1 => Edit::Delete(f),
                _ => Edit::Replace(f, c),
            };
            if agrees(&apply(text, &[edit])) {
                inside += 1;
            } else {
                outside += 1;
            }
        }
        assert!(
            inside > 300 && outside > 300,
            "{inside} inside, {outside} outside"
        );
    }
}
