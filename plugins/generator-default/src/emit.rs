//! A small block-style YAML emitter: a `serde::Serializer` for the documents this crate renders.
//!
//! `yaml_serde`'s emitter (a translation of libyaml) analyses every scalar character by character
//! and queues every event; measured on the config template it renders about 20,000–30,000 documents a
//! second on one core, a third of what the registry must sustain. This emitter writes straight
//! into one `String`, in the same layout `yaml_serde` produces (two-space indentation, sequences
//! level with their key), and picks each string's style by a conservative rule:
//!
//! - plain when it can only read back as the same string, in YAML 1.1 and 1.2 alike: it starts
//!   with a letter, `_` or `/`, holds only letters, digits, spaces and `_ - . / ( ) + , ; =`, does
//!   not end with a space and is not a word such as `yes`, `off` or `null`;
//! - otherwise single-quoted when every character is printable and none breaks a line;
//! - otherwise double-quoted, with escapes.
//!
//! The tests check the emitter against `yaml_serde`: the same document, written by both and read
//! back by `yaml_serde`'s parser, gives the same value.
//!
//! Only what documents need is supported: mappings with string keys, sequences, strings, booleans,
//! integers, floats and nulls. Enum variants with data and byte strings are errors.

use std::fmt::{self, Display, Write as _};

use serde::ser::{self, Impossible, Serialize};

/// A value `serde` could not write as YAML, e.g. a mapping key that is not a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EmitError(String);

impl Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EmitError {}

impl ser::Error for EmitError {
    fn custom<T: Display>(msg: T) -> Self {
        EmitError(msg.to_string())
    }
}

fn unsupported(what: &str) -> EmitError {
    EmitError(format!("cannot write {what} as YAML"))
}

/// Writes `value` as a block-style YAML document into a new string of at least `capacity` bytes.
///
/// # Errors
/// When `value` holds something this emitter does not support (see the module documentation).
pub(crate) fn to_string<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<String, EmitError> {
    let mut out = String::with_capacity(capacity);
    value.serialize(ValueWriter {
        out: &mut out,
        slot: Slot::Root,
    })?;
    Ok(out)
}

/// Where the value being written sits, which decides how it starts and how its children indent.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// The document root, at column 0.
    Root,
    /// Right after `key:`, the key at column `indent`.
    Value { indent: usize },
    /// Right after the `-` of a sequence item, the `-` at column `indent`.
    Item { indent: usize },
}

impl Slot {
    /// Column of the entries of a mapping written here.
    pub(crate) fn mapping_indent(self) -> usize {
        match self {
            Slot::Root => 0,
            Slot::Value { indent } | Slot::Item { indent } => indent + 2,
        }
    }

    /// Column of the items of a sequence written here. After a key, items stay level with the key,
    /// as libyaml and `yaml_serde` write them.
    pub(crate) fn sequence_indent(self) -> usize {
        match self {
            Slot::Root => 0,
            Slot::Value { indent } => indent,
            Slot::Item { indent } => indent + 2,
        }
    }

    /// What goes between `key:` or `-` and a scalar.
    pub(crate) fn scalar_prefix(self) -> &'static str {
        match self {
            Slot::Root => "",
            Slot::Value { .. } | Slot::Item { .. } => " ",
        }
    }
}

pub(crate) fn push_indent(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                ";
    while n > 0 {
        let step = n.min(SPACES.len());
        out.push_str(&SPACES[..step]);
        n -= step;
    }
}

/// Writes one value in a given slot.
struct ValueWriter<'a> {
    out: &'a mut String,
    slot: Slot,
}

impl<'a> ValueWriter<'a> {
    fn raw(self, text: &str) -> Result<(), EmitError> {
        self.out.push_str(self.slot.scalar_prefix());
        self.out.push_str(text);
        self.out.push('\n');
        Ok(())
    }

    fn display(self, value: impl Display) -> Result<(), EmitError> {
        self.out.push_str(self.slot.scalar_prefix());
        // Writing to a `String` cannot fail.
        let _ = write!(self.out, "{value}");
        self.out.push('\n');
        Ok(())
    }

    fn float(self, v: f64) -> Result<(), EmitError> {
        if v.is_nan() {
            self.raw(".nan")
        } else if v.is_infinite() {
            self.raw(if v > 0.0 { ".inf" } else { "-.inf" })
        } else {
            // `Debug` always writes a `.` or an exponent, so the value reads back as a float.
            self.display(format_args!("{v:?}"))
        }
    }

    fn compound(self, indent: usize, empty: &'static str) -> Compound<'a> {
        Compound {
            out: self.out,
            slot: self.slot,
            indent,
            started: false,
            empty,
        }
    }
}

impl<'a> ser::Serializer for ValueWriter<'a> {
    type Ok = ();
    type Error = EmitError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Impossible<(), EmitError>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Impossible<(), EmitError>;

    fn serialize_bool(self, v: bool) -> Result<(), EmitError> {
        self.raw(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), EmitError> {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), EmitError> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), EmitError> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), EmitError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), EmitError> {
        self.out.push_str(self.slot.scalar_prefix());
        write_scalar(self.out, v);
        self.out.push('\n');
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), EmitError> {
        Err(unsupported("a byte string"))
    }
    fn serialize_none(self) -> Result<(), EmitError> {
        self.raw("null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EmitError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EmitError> {
        self.raw("null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EmitError> {
        self.raw("null")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), EmitError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EmitError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<(), EmitError> {
        Err(unsupported(&format!("enum variant `{variant}` with data")))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, EmitError> {
        let indent = self.slot.sequence_indent();
        Ok(self.compound(indent, "[]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, EmitError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EmitError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EmitError> {
        Err(unsupported(&format!("enum variant `{variant}` with data")))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, EmitError> {
        let indent = self.slot.mapping_indent();
        Ok(self.compound(indent, "{}"))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, EmitError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EmitError> {
        Err(unsupported(&format!("enum variant `{variant}` with data")))
    }
}

/// A mapping or a sequence being written: one line (or nested block) per entry.
struct Compound<'a> {
    out: &'a mut String,
    slot: Slot,
    /// Column of the entries.
    indent: usize,
    started: bool,
    /// How an empty collection is written: `{}` or `[]`.
    empty: &'static str,
}

impl Compound<'_> {
    /// Starts an entry: the first one goes on the line of its key or `-` (or on a new line after a
    /// key), the others on lines of their own.
    fn begin_entry(&mut self) {
        begin_entry(self.out, self.slot, self.indent, !self.started);
        self.started = true;
    }

    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        self.begin_entry();
        self.out.push('-');
        value.serialize(ValueWriter {
            out: self.out,
            slot: Slot::Item {
                indent: self.indent,
            },
        })
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EmitError> {
        self.begin_entry();
        key.serialize(KeyWriter { out: self.out })?;
        self.out.push(':');
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        value.serialize(ValueWriter {
            out: self.out,
            slot: Slot::Value {
                indent: self.indent,
            },
        })
    }

    fn finish(self) -> Result<(), EmitError> {
        if !self.started {
            write_empty(self.out, self.slot, self.empty);
        }
        Ok(())
    }
}

/// Writes what starts an entry of a mapping or sequence in `slot` whose entries sit at column
/// `indent`: the first entry goes on the line of its key or `-` (or on a new line after a key),
/// the others on lines of their own.
pub(crate) fn begin_entry(out: &mut String, slot: Slot, indent: usize, first: bool) {
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
pub(crate) fn write_empty(out: &mut String, slot: Slot, empty: &str) {
    out.push_str(slot.scalar_prefix());
    out.push_str(empty);
    out.push('\n');
}

/// Writes `value` in `slot` of a larger document, as [`to_string`] writes it at that place.
///
/// # Errors
/// When `value` holds something this emitter does not support (see the module documentation).
pub(crate) fn write_in<T: Serialize + ?Sized>(
    out: &mut String,
    slot: Slot,
    value: &T,
) -> Result<(), EmitError> {
    value.serialize(ValueWriter { out, slot })
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = EmitError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EmitError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = EmitError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EmitError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = EmitError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        self.item(value)
    }
    fn end(self) -> Result<(), EmitError> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = EmitError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EmitError> {
        self.key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EmitError> {
        self.value(value)
    }
    fn end(self) -> Result<(), EmitError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = EmitError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), EmitError> {
        self.key(key)?;
        self.value(value)
    }
    fn end(self) -> Result<(), EmitError> {
        self.finish()
    }
}

/// Longest mapping key YAML allows without the explicit `? key` form, in characters.
pub(crate) const MAX_KEY_CHARS: usize = 1024;

/// Writes a mapping key: a string, short enough to be an implicit key.
struct KeyWriter<'a> {
    out: &'a mut String,
}

fn key_not_string() -> EmitError {
    unsupported("a mapping key that is not a string")
}

macro_rules! reject_keys {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), EmitError> {
            Err(key_not_string())
        })*
    };
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = EmitError;
    type SerializeSeq = Impossible<(), EmitError>;
    type SerializeTuple = Impossible<(), EmitError>;
    type SerializeTupleStruct = Impossible<(), EmitError>;
    type SerializeTupleVariant = Impossible<(), EmitError>;
    type SerializeMap = Impossible<(), EmitError>;
    type SerializeStruct = Impossible<(), EmitError>;
    type SerializeStructVariant = Impossible<(), EmitError>;

    fn serialize_str(self, v: &str) -> Result<(), EmitError> {
        // A key of at most MAX_KEY_CHARS bytes has at most as many characters: no need to count.
        if v.len() > MAX_KEY_CHARS && v.chars().count() > MAX_KEY_CHARS {
            return Err(EmitError(format!(
                "mapping key of {} characters: the limit is {MAX_KEY_CHARS}",
                v.chars().count()
            )));
        }
        write_scalar(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), EmitError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), EmitError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EmitError> {
        value.serialize(self)
    }

    reject_keys! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), EmitError> {
        Err(key_not_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EmitError> {
        Err(key_not_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, EmitError> {
        Err(key_not_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, EmitError> {
        Err(key_not_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, EmitError> {
        Err(key_not_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EmitError> {
        Err(key_not_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EmitError> {
        Err(key_not_string())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, EmitError> {
        Err(key_not_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EmitError> {
        Err(key_not_string())
    }
}

/// Writes a string as a one-line scalar in the first style that reads back as the same string:
/// plain, single-quoted, double-quoted.
pub(crate) fn write_scalar(out: &mut String, s: &str) {
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

/// [`CLASS`] bit: the byte is ASCII.
const ASCII: u8 = 1;
/// [`CLASS`] bit: the byte may stand in a plain scalar (see [`is_plain_safe`]).
const PLAIN: u8 = 2;
/// [`CLASS`] bit: the byte may stand in a single-quoted scalar as it is (see [`is_quotable`]).
const QUOTABLE: u8 = 4;

/// The classes of every byte: what [`is_plain_safe`] and [`is_quotable`] say of ASCII
/// characters, computed once. Bytes above 0x7F have no class: their strings take the general path.
const CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 0x80 {
        let c = b as u8;
        let mut bits = ASCII;
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'_' | b'-' | b'.' | b'/' | b'(' | b')' | b'+' | b',' | b';' | b'='
            )
        {
            bits |= PLAIN;
        }
        if matches!(c, b' '..=b'~') {
            bits |= QUOTABLE;
        }
        class[b] = bits;
        b += 1;
    }
    class
};

/// [`write_any_scalar`] for an ASCII string whose bytes' classes, and-ed together, are `class`.
fn write_ascii_scalar(out: &mut String, s: &str, class: u8) {
    let bytes = s.as_bytes();
    let plain = class & PLAIN != 0
        && bytes
            .first()
            .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'/')
        && bytes.last() != Some(&b' ')
        && !is_reserved_word(s);
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
    if is_plain_safe(s) {
        out.push_str(s);
    } else if s.chars().all(is_quotable) {
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

/// Whether `s` can be written plain and still read back as this string, under YAML 1.1 and 1.2.
/// Deliberately stricter than YAML: anything starting with a digit (numbers, dates, times, `0x`)
/// and every indicator character are left to quoting.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let allowed = |c: char| {
        c.is_alphanumeric()
            || matches!(
                c,
                ' ' | '_' | '-' | '.' | '/' | '(' | ')' | '+' | ',' | ';' | '='
            )
    };
    // ASCII strings, the usual case, are checked byte by byte without decoding.
    let all_allowed = if s.is_ascii() {
        s.bytes().all(|b| allowed(char::from(b)))
    } else {
        s.chars().all(allowed)
    };
    (first.is_alphabetic() || first == '_' || first == '/')
        && !s.ends_with(' ')
        && all_allowed
        && !is_reserved_word(s)
}

/// Words some YAML version reads as a boolean or a null.
fn is_reserved_word(s: &str) -> bool {
    s.len() <= 5
        && ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
}

/// Characters a single-quoted scalar may hold as they are: YAML's printable characters, minus
/// those that break a line in YAML 1.1 (NEL, U+2028, U+2029) and the byte-order mark.
fn is_quotable(c: char) -> bool {
    match c {
        ' '..='~' => true,
        '\u{A0}'..='\u{D7FF}' => !matches!(c, '\u{2028}' | '\u{2029}'),
        '\u{E000}'..='\u{FFFD}' => c != '\u{FEFF}',
        '\u{10000}'.. => true,
        _ => false,
    }
}

fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_quotable(c) => out.push(c),
            // Writing to a `String` cannot fail.
            c if u32::from(c) <= 0xFF => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    fn emit<T: Serialize + ?Sized>(value: &T) -> String {
        to_string(value, 0).expect("emits")
    }

    /// Strings that stress the choice of style; every one must read back unchanged.
    fn tricky_strings() -> Vec<String> {
        let mut all: Vec<String> = [
            "",
            " ",
            "  two",
            "trailing ",
            "plain words",
            "a-b_c.d/e (f) +g, h; i=j",
            "/health",
            "_x",
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "False",
            "null",
            "NULL",
            "~",
            "-",
            "- item",
            "-1",
            "+1",
            "1",
            "0x1F",
            "0o17",
            "0b101",
            "1e3",
            "1_000",
            "12:30",
            "1.5",
            ".5",
            ".inf",
            "-.inf",
            ".nan",
            "NaN",
            "2024-01-01",
            "v2.9",
            "key: value",
            "a:b",
            "trailing colon:",
            "# comment",
            "a # b",
            "a#b",
            "[x]",
            "]",
            "{a: b}",
            "}",
            "a, b",
            "&anchor",
            "*alias",
            "!tag",
            "!!str",
            "%YAML",
            "@at",
            "`tick`",
            "|",
            ">",
            "? key",
            "'",
            "''",
            "it's",
            "\"",
            "say \"hi\"",
            "back\\slash",
            "\\n",
            "tab\there",
            "line\nbreak",
            "cr\rlf",
            "nul\0",
            "del\u{7F}",
            "nel\u{85}",
            "ls\u{2028}",
            "ps\u{2029}",
            "bom\u{FEFF}",
            "nonchar\u{FFFE}\u{FFFF}",
            "c1\u{9B}",
            "nbsp\u{A0}",
            "é ünïcödé ✓ 日本語",
            "😀 emoji",
            "Ⅻ roman",
            "<<",
            "=",
            "a\u{1}b",
            "\u{1B}[31mred",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every ASCII character alone, first, last and inside.
        for b in 0u8..0x80 {
            let c = char::from(b);
            all.extend([
                c.to_string(),
                format!("{c}x"),
                format!("x{c}"),
                format!("x{c}x"),
                format!("x {c} x"),
            ]);
        }
        all
    }

    #[test]
    fn strings_read_back_unchanged() {
        for s in tricky_strings() {
            let doc = BTreeMap::from([("k", s.as_str())]);
            let yaml = emit(&doc);
            // Parsing into a `Value`, not a `String`, makes the parser resolve plain scalars, so a
            // `yes` or a `1` written plain would come back as a boolean or a number.
            let back: yaml_serde::Value = yaml_serde::from_str(&yaml)
                .unwrap_or_else(|e| panic!("{s:?} wrote {yaml:?}, which does not parse: {e}"));
            assert_eq!(back["k"], yaml_serde::Value::String(s.clone()), "{yaml:?}");
            assert_eq!(yaml.lines().count(), 1, "{yaml:?} spans lines");
        }
    }

    #[test]
    fn keys_read_back_unchanged() {
        for s in tricky_strings() {
            let doc = BTreeMap::from([(s.as_str(), 1)]);
            let yaml = emit(&doc);
            let back: yaml_serde::Mapping = yaml_serde::from_str(&yaml)
                .unwrap_or_else(|e| panic!("{s:?} wrote {yaml:?}, which does not parse: {e}"));
            let keys: Vec<&yaml_serde::Value> = back.keys().collect();
            assert_eq!(keys, [&yaml_serde::Value::String(s.clone())], "{yaml:?}");
        }
    }

    /// The table-driven path for ASCII strings picks the style the character-by-character rule
    /// picks.
    #[test]
    fn ascii_strings_take_the_same_style_either_way() {
        let mut ascii: Vec<String> = tricky_strings()
            .into_iter()
            .filter(|s| s.is_ascii())
            .collect();
        ascii.extend(
            ["Y", "nO", "TRUE", "nulls", "yes ", "_", "/", "(x)", "x;y=z"].map(String::from),
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
    }

    #[derive(Serialize)]
    struct Nested {
        name: &'static str,
        count: u32,
        ratio: f64,
        flags: Vec<bool>,
        empty_list: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
        none: Option<u8>,
        items: Vec<Item>,
        grid: Vec<Vec<i64>>,
        inner: Inner,
    }

    #[derive(Serialize)]
    struct Item {
        a: u8,
        b: Vec<&'static str>,
    }

    #[derive(Serialize)]
    struct Inner {
        deep: BTreeMap<&'static str, Vec<&'static str>>,
    }

    fn nested() -> Nested {
        Nested {
            name: "n: 1",
            count: 7,
            ratio: 1.0,
            flags: vec![true, false],
            empty_list: vec![],
            empty_map: BTreeMap::new(),
            none: None,
            items: vec![
                Item {
                    a: 1,
                    b: vec!["x", "y"],
                },
                Item { a: 2, b: vec![] },
            ],
            grid: vec![vec![1, -2], vec![]],
            inner: Inner {
                deep: BTreeMap::from([("k", vec!["v"])]),
            },
        }
    }

    #[test]
    fn nested_collections_match_yaml_serde() {
        let value = nested();
        let ours = emit(&value);
        let theirs = yaml_serde::to_string(&value).expect("yaml_serde writes it");
        let parse = |s: &str| -> yaml_serde::Value {
            yaml_serde::from_str(s).unwrap_or_else(|e| panic!("{s}\ndoes not parse: {e}"))
        };
        assert_eq!(
            parse(&ours),
            parse(&theirs),
            "ours:\n{ours}\ntheirs:\n{theirs}"
        );
    }

    #[test]
    fn unsupported_values_are_errors() {
        #[derive(Serialize)]
        enum E {
            Tuple(u8, u8),
        }
        assert_eq!(
            to_string(&E::Tuple(1, 2), 0),
            Err(EmitError(
                "cannot write enum variant `Tuple` with data as YAML".into()
            ))
        );
        assert_eq!(
            to_string(&BTreeMap::from([(1, 2)]), 0),
            Err(EmitError(
                "cannot write a mapping key that is not a string as YAML".into()
            ))
        );
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        assert!(to_string(&BTreeMap::from([(long, 1)]), 0).is_err());
    }
}
