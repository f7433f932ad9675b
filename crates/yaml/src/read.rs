//! The reader: a strict scanner of the subset, so that checking a config seldom needs the full
//! parser.
//!
//! Parsing a rendered config into a `yaml_serde::Value` costs tens of microseconds, most of the
//! validator's time per entry. [`scan`] reads exactly the subset the crate documentation
//! defines and answers either with a [`Document`] (the text is valid YAML, its top level is a
//! mapping, no mapping repeats a key, and dotted key paths can be looked up), or with `None`,
//! "outside the subset", after which the caller parses the text with `yaml_serde`. Every rule
//! here is stricter than YAML, never looser, so an answer is always the one `yaml_serde` would
//! give: [`Document::has_key`] answers as [`value_has_key`] answers on the parsed value, and
//! [`Document::paths`] lists what [`value_paths`] lists. Measured with `cargo bench --bench
//! validator`, checking configs this way is 8 to 12 times faster than parsing them in full.
//!
//! It was the validator's `scan.rs` until the subset was defined in this crate; it moved
//! unchanged but for the character rules, which it now shares with the writer
//! (`crate::chars`).
//!
//! The scanner allocates nothing per key or scalar: a key is a span of the text, or of a buffer
//! of decoded keys when it had escapes, and quoted values are checked without being decoded.
//! The entries and that buffer live in a [`Scratch`] the caller keeps between configs, so a
//! batch of configs reuses one set of buffers.

use crate::INDENT;
use crate::chars::{self, DOUBLE_RUN, KEY_START, PLAIN, SINGLE_RUN, VALUE_START};

/// The deepest nesting of collections the scanner follows.
pub const MAX_DEPTH: usize = 32;

/// The longest key, in bytes with its quotes, the scanner accepts: within YAML's limit on
/// implicit keys (1024 bytes as written; see [`crate::write::MAX_KEY_BYTES`]).
pub const MAX_KEY_BYTES: usize = 1000;

/// Marks the end of a chain of entries: no entry.
const NONE: u32 = u32::MAX;

/// The buffers a scan fills, kept by the caller so that scanning many configs allocates only
/// while they grow.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Every mapping entry of the last config scanned, in the order their values end.
    entries: Vec<Entry>,
    /// The keys of the last config that had escapes, decoded, one after another.
    decoded: String,
}

/// A config read by [`scan`]: valid YAML, a mapping at the top, no key repeated in a mapping.
#[derive(Debug)]
pub struct Document<'a> {
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
    pub fn has_key(&self, path: &str) -> bool {
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

    /// Every dotted path to a mapping entry, with whether its value is null, each mapping's
    /// entries last first: what [`value_paths`] lists for the parsed value, in another order.
    /// For comparing the reader with the parser; lookups use [`Document::has_key`].
    pub fn paths(&self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        self.collect(self.root, "", &mut out);
        out
    }

    fn collect(&self, mut last: u32, prefix: &str, out: &mut Vec<(String, bool)>) {
        while last != NONE {
            let entry = &self.entries[last as usize];
            // Keys are spans of whole characters, so nothing is replaced.
            let key = String::from_utf8_lossy(self.key(entry));
            let path = format!("{prefix}{key}");
            out.push((path.clone(), entry.value == Kind::Null));
            if let Kind::Mapping(inner) = entry.value {
                self.collect(inner, &format!("{path}."), out);
            }
            last = entry.prev;
        }
    }
}

/// Reads `text` if it lies within the subset described in the crate documentation, filling
/// `scratch` (whatever it held is dropped); `None` means "outside the subset": the text may be
/// valid or not, a mapping or not.
pub fn scan<'a>(text: &'a str, scratch: &'a mut Scratch) -> Option<Document<'a>> {
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
        if next == indent + INDENT {
            self.pos += next;
            return Some(Kind::Mapping(self.mapping(indent + INDENT, depth + 1)?));
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
            self.item(indent + INDENT, depth)?;
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
            b'-' => !key && chars::plain_value_start('-', self.text[start + 1..].chars().next()),
            b @ 0..0x80 => chars::has(b, if key { KEY_START } else { VALUE_START }),
            _ => {
                let first = self.text[start..].chars().next()?;
                if key {
                    chars::plain_start(first)
                } else {
                    chars::plain_value_start(first, None)
                }
            }
        };
        if !first_ok {
            return None;
        }
        let mut len = 0;
        loop {
            len += run::<PLAIN>(&bytes[len..]);
            // Anything other than ASCII is decoded and checked as a character.
            match bytes.get(len) {
                Some(0x80..) => match self.text[start + len..].chars().next() {
                    Some(c) if chars::plain_char(c) => len += c.len_utf8(),
                    _ => break,
                },
                _ => break,
            }
        }
        let scalar = &bytes[..len];
        if scalar.last() == Some(&b' ') || (key && chars::is_reserved_word(scalar)) {
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
            self.pos += run::<SINGLE_RUN>(&self.bytes[self.pos..]);
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
            self.pos += run::<DOUBLE_RUN>(&self.bytes[self.pos..]);
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
                    let c = match chars::hex_digits(escape) {
                        Some(digits) => self.hex(digits)?,
                        None => chars::unescape(escape)?,
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
        if !chars::is_quotable(c) {
            return None;
        }
        self.pos += c.len_utf8();
        Some(())
    }
}

/// Whether a plain value is null; `None` for another spelling of `null`, and for an integer
/// wider than 64 bits, both left to the parser.
fn plain_kind(scalar: &[u8]) -> Option<Kind> {
    match scalar {
        b"null" | b"Null" | b"NULL" => Some(Kind::Null),
        s if s.eq_ignore_ascii_case(b"null") => None,
        s if wide_int(s) => None,
        _ => Some(Kind::Other),
    }
}

/// Whether `yaml_serde` reads a plain scalar as an integer that needs more than 64 bits
/// (decimal, or `0x`, `0o`, `0b`, with an optional sign, up to 128 bits): its `Value` holds
/// none, so it fails the whole document, while a shorter integer, a longer one (read as a
/// float) or anything else parses. Found by the `yaml_scan` fuzz target:
/// `a: 333333333333333333333333333333333333`.
fn wide_int(scalar: &[u8]) -> bool {
    // Asked of every plain value: most are shorter than the shortest such integers, 19 bytes
    // (`0x10000000000000000`, `-0x8000000000000001`), or start with a letter.
    if scalar.len() < 19 || !matches!(scalar[0], b'0'..=b'9' | b'+' | b'-') {
        return false;
    }
    let Ok(text) = std::str::from_utf8(scalar) else {
        return false;
    };
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| unsigned.strip_prefix(prefix).map(|d| (radix, d)))
        .unwrap_or((10, unsigned));
    // A sign after the sign or the prefix makes it no integer, and so does a leading zero
    // before decimal digits (YAML 1.2 reads `012` as a string).
    if digits.starts_with(['+', '-'])
        || (radix == 10 && digits.len() > 1 && digits.starts_with('0'))
    {
        return false;
    }
    match u128::from_str_radix(digits, radix) {
        Ok(n) if negative => n > 1u128 << 63,
        Ok(n) => n > u128::from(u64::MAX),
        Err(_) => false,
    }
}

/// The length of the run of bytes at the start of `bytes` whose class has `BIT`. The bit is a
/// constant, so the test of each byte is one masked load, as with a table of booleans.
fn run<const BIT: u8>(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&b| !chars::has(b, BIT))
        .unwrap_or(bytes.len())
}

/// Whether a dotted key path (`metadata.owner`) leads through mappings to a value that is not
/// null, in a value `yaml_serde` parsed: the reference [`Document::has_key`] answers as, and the
/// lookup a caller makes when [`scan`] declined a text and it was parsed in full.
pub fn value_has_key(value: &yaml_serde::Value, path: &str) -> bool {
    let mut at = value;
    for part in path.split('.') {
        match at.get(part) {
            Some(next) => at = next,
            None => return false,
        }
    }
    !at.is_null()
}

/// Every dotted key path of a value `yaml_serde` parsed, with whether its value is null: the
/// reference [`Document::paths`] lists. A key that is not a string gets a path no scanned
/// document can have.
pub fn value_paths(value: &yaml_serde::Value) -> Vec<(String, bool)> {
    fn walk(value: &yaml_serde::Value, prefix: &str, out: &mut Vec<(String, bool)>) {
        let yaml_serde::Value::Mapping(map) = value else {
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
