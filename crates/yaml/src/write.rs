//! The writer: a block-style YAML emitter for the documents the registry renders, as a
//! `serde::Serializer` ([`to_string`], [`write_in`]) and as the pieces a caller that writes its
//! own layout needs ([`Slot`], [`begin_entry`], [`write_empty`], [`write_scalar`]).
//!
//! `yaml_serde`'s emitter (a translation of libyaml) analyses every scalar character by character
//! and queues every event; measured on the config template it renders about 20,000–30,000 documents a
//! second on one core, a third of what the registry must sustain. This emitter writes straight
//! into one `String`, in the same layout `yaml_serde` produces (two-space indentation, sequences
//! level with their key), and picks each string's style by the rules of `crate::chars`:
//!
//! - plain when it can only read back as the same string, in YAML 1.1 and 1.2 alike: it starts
//!   with a letter, `_` or `/`, holds only letters, digits, spaces and `_ - . / ( ) + , ; =`, does
//!   not end with a space and is not a word such as `yes`, `off` or `null`;
//! - otherwise single-quoted when every character is printable and none breaks a line;
//! - otherwise double-quoted, with escapes.
//!
//! It was the default generator's `emit.rs` until the subset was defined in this crate; it moved
//! with its logic unchanged (its character rules now come from `crate::chars`, its error is an
//! enum), and the bytes it writes are pinned by golden tests (`tests/it/golden.rs`): configs'
//! bytes feed their content hashes, so a changed byte would make every config rendered again
//! differ from the one stored. The tests also hold it to `yaml_serde`: what it writes reads back
//! as the value written, and as what `yaml_serde` writes for the same value.
//!
//! Only what documents need is supported: mappings with string keys, sequences, strings, booleans,
//! integers, floats and nulls. Enum variants with data and byte strings are errors.

mod ser;

use std::fmt::{self, Display, Write as _};

use serde::Serialize;

use crate::INDENT;
use crate::chars::{self, ASCII, CLASS, KEY_START, PLAIN, QUOTABLE};
use ser::ValueWriter;

/// A value the writer cannot write as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// A value of a kind the subset has no form for; the text names it: `a byte string`,
    /// `a mapping key that is not a string`, ``enum variant `V` with data``.
    Unsupported(String),
    /// A mapping key that takes more than [`MAX_KEY_BYTES`] bytes as written, which YAML can
    /// write only in the explicit `? key` form the subset leaves out.
    KeyTooLong {
        /// The key's length as written, in bytes.
        bytes: usize,
    },
    /// An error the value's own `Serialize` implementation raised.
    Custom(String),
}

impl Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Unsupported(what) => write!(f, "cannot write {what} as YAML"),
            WriteError::KeyTooLong { bytes } => write!(
                f,
                "mapping key of {bytes} bytes as written: the limit is {MAX_KEY_BYTES}"
            ),
            WriteError::Custom(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for WriteError {}

impl serde::ser::Error for WriteError {
    fn custom<T: Display>(msg: T) -> Self {
        WriteError::Custom(msg.to_string())
    }
}

/// Writes `value` as a block-style YAML document into a new string of at least `capacity` bytes.
///
/// # Errors
/// When `value` holds something the writer does not support (see the module documentation).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
///
/// let doc = BTreeMap::from([("title", vec!["yes", "Block SSH", "it's"])]);
/// let yaml = registry_yaml::write::to_string(&doc, 0).unwrap();
/// assert_eq!(yaml, "title:\n- 'yes'\n- Block SSH\n- 'it''s'\n");
/// ```
pub fn to_string<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Result<String, WriteError> {
    let mut out = String::with_capacity(capacity);
    value.serialize(ValueWriter {
        out: &mut out,
        slot: Slot::Root,
    })?;
    Ok(out)
}

/// Where the value being written sits, which decides how it starts and how its children indent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The document root, at column 0.
    Root,
    /// Right after `key:`, the key at column `indent`.
    Value {
        /// The key's column.
        indent: usize,
    },
    /// Right after the `-` of a sequence item, the `-` at column `indent`.
    Item {
        /// The `-`'s column.
        indent: usize,
    },
}

impl Slot {
    /// Column of the entries of a mapping written here.
    pub fn mapping_indent(self) -> usize {
        match self {
            Slot::Root => 0,
            Slot::Value { indent } | Slot::Item { indent } => indent + INDENT,
        }
    }

    /// Column of the items of a sequence written here. After a key, items stay level with the key,
    /// as libyaml and `yaml_serde` write them.
    pub fn sequence_indent(self) -> usize {
        match self {
            Slot::Root => 0,
            Slot::Value { indent } => indent,
            Slot::Item { indent } => indent + INDENT,
        }
    }

    /// What goes between `key:` or `-` and a scalar.
    pub fn scalar_prefix(self) -> &'static str {
        match self {
            Slot::Root => "",
            Slot::Value { .. } | Slot::Item { .. } => " ",
        }
    }
}

/// A mapping or a sequence, for writing one empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// Written empty as `{}`.
    Mapping,
    /// Written empty as `[]`.
    Sequence,
}

impl Collection {
    /// How the collection is written when it has no entries.
    pub fn empty(self) -> &'static str {
        match self {
            Collection::Mapping => "{}",
            Collection::Sequence => "[]",
        }
    }
}

fn push_indent(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                ";
    while n > 0 {
        let step = n.min(SPACES.len());
        out.push_str(&SPACES[..step]);
        n -= step;
    }
}

/// Writes what starts an entry of a mapping or sequence in `slot` whose entries sit at column
/// `indent`: the first entry goes on the line of its key or `-` (or on a new line after a key),
/// the others on lines of their own.
pub fn begin_entry(out: &mut String, slot: Slot, indent: usize, first: bool) {
    if !first {
        push_indent(out, indent);
        return;
    }
    match slot {
        Slot::Root => {}
        Slot::Value { .. } => {
            out.push('\n');
            push_indent(out, indent);
        }
        Slot::Item { .. } => out.push(' '),
    }
}

/// Writes an empty mapping (`{}`) or sequence (`[]`) in `slot`.
pub fn write_empty(out: &mut String, slot: Slot, empty: Collection) {
    out.push_str(slot.scalar_prefix());
    out.push_str(empty.empty());
    out.push('\n');
}

/// Writes `value` in `slot` of a larger document, as [`to_string`] writes it at that place.
///
/// # Errors
/// When `value` holds something the writer does not support (see the module documentation).
pub fn write_in<T: Serialize + ?Sized>(
    out: &mut String,
    slot: Slot,
    value: &T,
) -> Result<(), WriteError> {
    value.serialize(ValueWriter { out, slot })
}

/// Longest mapping key YAML allows without the explicit `? key` form: bytes as written, quotes
/// and escapes included (libyaml, under `yaml_serde`, counts bytes, not characters). Measured on
/// the written form since the `yaml_write` fuzz target found a key of 1,000 characters whose
/// escapes took it past the limit, and a limit in characters let 1,024 `é` (2,048 bytes) through.
pub const MAX_KEY_BYTES: usize = 1024;

/// The bytes `key` takes when written as a mapping key, to hold against [`MAX_KEY_BYTES`].
pub fn key_bytes(key: &str) -> usize {
    let mut out = String::with_capacity(key.len() + 2);
    write_scalar(&mut out, key);
    out.len()
}

/// Writes a string as a one-line scalar in the first style that reads back as the same string:
/// plain, single-quoted, double-quoted.
// Inlined across crates: renderers call it once per value of every config, and the call is a
// measurable part of a render that copies the rest of the config as prepared text.
#[inline]
pub fn write_scalar(out: &mut String, s: &str) {
    // Most strings are ASCII: one pass over a table classifies every byte at once.
    let class = s.bytes().fold(ASCII | PLAIN | QUOTABLE, |class, b| {
        class & CLASS[usize::from(b)]
    });
    if class & ASCII != 0 {
        write_ascii_scalar(out, s, class);
    } else {
        write_any_scalar(out, s);
    }
}

/// [`write_any_scalar`] for an ASCII string whose bytes' classes, and-ed together, are `class`.
fn write_ascii_scalar(out: &mut String, s: &str, class: u8) {
    let bytes = s.as_bytes();
    let plain = class & PLAIN != 0
        && bytes.first().is_some_and(|&b| chars::has(b, KEY_START))
        && bytes.last() != Some(&b' ')
        && !chars::is_reserved_word(bytes);
    if plain {
        out.push_str(s);
    } else if class & QUOTABLE != 0 {
        write_single_quoted(out, s);
    } else {
        write_double_quoted(out, s);
    }
}

/// [`write_scalar`] for any string, character by character.
fn write_any_scalar(out: &mut String, s: &str) {
    if chars::is_plain_safe(s) {
        out.push_str(s);
    } else if s.chars().all(chars::is_quotable) {
        write_single_quoted(out, s);
    } else {
        write_double_quoted(out, s);
    }
}

/// Writes `s` single-quoted, doubling its quotes.
fn write_single_quoted(out: &mut String, s: &str) {
    out.push('\'');
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// Writes `s` double-quoted: a short escape where there is one, the character itself where
/// it may stand in quotes, a hexadecimal escape otherwise.
fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if let Some(letter) = chars::escape_letter(c) {
            out.push('\\');
            out.push(char::from(letter));
        } else if chars::is_quotable(c) {
            out.push(c);
        } else if u32::from(c) <= 0xFF {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "\\x{:02X}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{:04X}", u32::from(c));
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The table-driven path for ASCII strings picks the style the character-by-character rule
    /// picks, for every ASCII string of one or two characters and for longer ones made of the
    /// characters YAML gives a meaning.
    #[test]
    fn ascii_strings_take_the_same_style_either_way() {
        let mut ascii: Vec<String> = Vec::new();
        for a in 0u8..0x80 {
            ascii.push(char::from(a).to_string());
            for b in 0u8..0x80 {
                ascii.push([char::from(a), char::from(b)].iter().collect());
            }
        }
        let alphabet = [
            'a', 'Y', '1', ' ', '-', '.', ':', '#', '\'', '"', '_', '/', '\t', '\\', '\u{7F}',
        ];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    ascii.push([a, b, c].iter().collect());
                    ascii.push(format!("x{a}{b}{c}x"));
                }
            }
        }
        ascii.extend(
            [
                "Y", "nO", "TRUE", "nulls", "yes ", "_", "/", "(x)", "x;y=z", "Off", "fALSE",
                "NuLl", "trues",
            ]
            .map(String::from),
        );
        for s in ascii {
            let (mut fast, mut general) = (String::new(), String::new());
            write_scalar(&mut fast, &s);
            write_any_scalar(&mut general, &s);
            assert_eq!(fast, general, "{s:?}");
        }
    }

    #[test]
    fn styles() {
        let check = |s: &str, expected: &str| {
            let mut out = String::new();
            write_scalar(&mut out, s);
            assert_eq!(out, expected, "{s:?}");
        };
        check("Block SSH", "Block SSH");
        check("/health", "/health");
        check("yes", "'yes'");
        check("1.3", "'1.3'");
        check("", "''");
        check("it's: here", "'it''s: here'");
        check("[SEC][RULES]", "'[SEC][RULES]'");
        check("tab\t", "\"tab\\t\"");
        check("a\u{85}b\u{2028}\u{FEFF}\u{7F}", "\"a\\Nb\\L\\uFEFF\\x7F\"");
        check("q\"\\\u{1}", "\"q\\\"\\\\\\x01\"");
        check("é ünïcödé", "é ünïcödé");
        check("✓ done", "'✓ done'");
        check("nul\0\r\n\u{2029}", "\"nul\\0\\r\\n\\P\"");
    }

    #[test]
    fn unsupported_values_are_errors() {
        #[derive(Serialize)]
        enum E {
            Tuple(u8, u8),
        }
        let error = to_string(&E::Tuple(1, 2), 0).expect_err("a variant with data");
        assert_eq!(
            error,
            WriteError::Unsupported("enum variant `Tuple` with data".into())
        );
        assert_eq!(
            error.to_string(),
            "cannot write enum variant `Tuple` with data as YAML"
        );
        let error = to_string(&BTreeMap::from([(1, 2)]), 0).expect_err("a number as a key");
        assert_eq!(
            error.to_string(),
            "cannot write a mapping key that is not a string as YAML"
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let error = to_string(&BTreeMap::from([(long, 1)]), 0).expect_err("a key too long");
        assert_eq!(error, WriteError::KeyTooLong { bytes: 1025 });
        assert_eq!(
            error.to_string(),
            "mapping key of 1025 bytes as written: the limit is 1024"
        );
        assert!(to_string(&BTreeMap::from([("k".repeat(MAX_KEY_BYTES), 1)]), 0).is_ok());
        // Bytes, not characters: 1,024 `é` take 2,048.
        let error = to_string(&BTreeMap::from([("é".repeat(MAX_KEY_BYTES), 1)]), 0)
            .expect_err("a key too long in bytes");
        assert_eq!(error, WriteError::KeyTooLong { bytes: 2048 });
        // As written: quotes and escapes count.
        let error = to_string(&BTreeMap::from([("\n".repeat(600), 1)]), 0)
            .expect_err("a key too long once escaped");
        assert_eq!(error, WriteError::KeyTooLong { bytes: 1202 });
        assert!(to_string(&BTreeMap::from([("'".repeat(511), 1)]), 0).is_ok());
        let error = to_string(&serde_bytes_like(), 0).expect_err("bytes");
        assert_eq!(error.to_string(), "cannot write a byte string as YAML");
    }

    /// A value that serializes as a byte string.
    fn serde_bytes_like() -> impl Serialize {
        struct Bytes;
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b"raw")
            }
        }
        Bytes
    }

    #[test]
    fn empty_collections_and_entries_in_every_slot() {
        let slots = [
            Slot::Root,
            Slot::Value { indent: 2 },
            Slot::Item { indent: 4 },
        ];
        let mut out = String::new();
        for slot in slots {
            write_empty(&mut out, slot, Collection::Mapping);
            write_empty(&mut out, slot, Collection::Sequence);
            begin_entry(&mut out, slot, slot.mapping_indent(), true);
            out.push('|');
            begin_entry(&mut out, slot, slot.sequence_indent(), false);
            out.push('|');
        }
        assert_eq!(out, "{}\n[]\n|| {}\n []\n\n    |  | {}\n []\n |      |");
        // Indentation of any depth, past the constant used to write it in steps.
        let mut deep = String::new();
        begin_entry(&mut deep, Slot::Root, 70, false);
        assert_eq!(deep, " ".repeat(70));
    }
}
