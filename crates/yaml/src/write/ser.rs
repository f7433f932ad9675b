//! The writer as a `serde::Serializer`: [`ValueWriter`] writes one value in a [`Slot`],
//! [`Compound`] the entries of a mapping or a sequence, [`KeyWriter`] a mapping key.
//!
//! Moved here unchanged from the default generator's emitter; the layout rules it follows are
//! in the parent module, the character rules in `crate::chars`.

use std::fmt::{Display, Write as _};

use serde::ser::{self, Impossible, Serialize};

use super::{Collection, MAX_KEY_BYTES, Slot, WriteError, begin_entry, write_empty, write_scalar};

/// Writes one value in a given slot.
pub(super) struct ValueWriter<'a> {
    pub(super) out: &'a mut String,
    pub(super) slot: Slot,
}

impl<'a> ValueWriter<'a> {
    fn raw(self, text: &str) -> Result<(), WriteError> {
        self.out.push_str(self.slot.scalar_prefix());
        self.out.push_str(text);
        self.out.push('\n');
        Ok(())
    }

    fn display(self, value: impl Display) -> Result<(), WriteError> {
        self.out.push_str(self.slot.scalar_prefix());
        // Writing to a `String` cannot fail.
        let _ = write!(self.out, "{value}");
        self.out.push('\n');
        Ok(())
    }

    fn float(self, v: f64) -> Result<(), WriteError> {
        if v.is_nan() {
            self.raw(".nan")
        } else if v.is_infinite() {
            self.raw(if v > 0.0 { ".inf" } else { "-.inf" })
        } else {
            // `Debug` always writes a `.` or an exponent, so the value reads back as a float.
            self.display(format_args!("{v:?}"))
        }
    }

    fn compound(self, indent: usize, empty: Collection) -> Compound<'a> {
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
    type Error = WriteError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Impossible<(), WriteError>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Impossible<(), WriteError>;

    fn serialize_bool(self, v: bool) -> Result<(), WriteError> {
        self.raw(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), WriteError> {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), WriteError> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), WriteError> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<(), WriteError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), WriteError> {
        self.out.push_str(self.slot.scalar_prefix());
        write_scalar(self.out, v);
        self.out.push('\n');
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), WriteError> {
        Err(WriteError::Unsupported("a byte string".into()))
    }
    fn serialize_none(self) -> Result<(), WriteError> {
        self.raw("null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), WriteError> {
        self.raw("null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), WriteError> {
        self.raw("null")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), WriteError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> Result<(), WriteError> {
        Err(WriteError::Unsupported(format!(
            "enum variant `{variant}` with data"
        )))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, WriteError> {
        let indent = self.slot.sequence_indent();
        Ok(self.compound(indent, Collection::Sequence))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, WriteError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, WriteError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, WriteError> {
        Err(WriteError::Unsupported(format!(
            "enum variant `{variant}` with data"
        )))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, WriteError> {
        let indent = self.slot.mapping_indent();
        Ok(self.compound(indent, Collection::Mapping))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>, WriteError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, WriteError> {
        Err(WriteError::Unsupported(format!(
            "enum variant `{variant}` with data"
        )))
    }
}

/// A mapping or a sequence being written: one line (or nested block) per entry.
pub(super) struct Compound<'a> {
    out: &'a mut String,
    slot: Slot,
    /// Column of the entries.
    indent: usize,
    started: bool,
    /// What the collection is, for writing it empty: `{}` or `[]`.
    empty: Collection,
}

impl Compound<'_> {
    /// Starts an entry: the first one goes on the line of its key or `-` (or on a new line after a
    /// key), the others on lines of their own.
    fn begin_entry(&mut self) {
        begin_entry(self.out, self.slot, self.indent, !self.started);
        self.started = true;
    }

    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        self.begin_entry();
        self.out.push('-');
        value.serialize(ValueWriter {
            out: self.out,
            slot: Slot::Item {
                indent: self.indent,
            },
        })
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), WriteError> {
        self.begin_entry();
        key.serialize(KeyWriter { out: self.out })?;
        self.out.push(':');
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        value.serialize(ValueWriter {
            out: self.out,
            slot: Slot::Value {
                indent: self.indent,
            },
        })
    }

    fn finish(self) -> Result<(), WriteError> {
        if !self.started {
            write_empty(self.out, self.slot, self.empty);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        self.item(value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        self.item(value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        self.item(value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), WriteError> {
        self.key(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WriteError> {
        self.value(value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
        self.key(key)?;
        self.value(value)
    }
    fn end(self) -> Result<(), WriteError> {
        self.finish()
    }
}

/// Writes a mapping key: a string, short enough to be an implicit key.
struct KeyWriter<'a> {
    out: &'a mut String,
}

fn key_not_string() -> WriteError {
    WriteError::Unsupported("a mapping key that is not a string".into())
}

macro_rules! reject_keys {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), WriteError> {
            Err(key_not_string())
        })*
    };
}

impl ser::Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = Impossible<(), WriteError>;
    type SerializeTuple = Impossible<(), WriteError>;
    type SerializeTupleStruct = Impossible<(), WriteError>;
    type SerializeTupleVariant = Impossible<(), WriteError>;
    type SerializeMap = Impossible<(), WriteError>;
    type SerializeStruct = Impossible<(), WriteError>;
    type SerializeStructVariant = Impossible<(), WriteError>;

    fn serialize_str(self, v: &str) -> Result<(), WriteError> {
        let start = self.out.len();
        write_scalar(self.out, v);
        let bytes = self.out.len() - start;
        if bytes > MAX_KEY_BYTES {
            self.out.truncate(start);
            return Err(WriteError::KeyTooLong { bytes });
        }
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), WriteError> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), WriteError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), WriteError> {
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

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), WriteError> {
        Err(key_not_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), WriteError> {
        Err(key_not_string())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, WriteError> {
        Err(key_not_string())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, WriteError> {
        Err(key_not_string())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, WriteError> {
        Err(key_not_string())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, WriteError> {
        Err(key_not_string())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, WriteError> {
        Err(key_not_string())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, WriteError> {
        Err(key_not_string())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, WriteError> {
        Err(key_not_string())
    }
}
