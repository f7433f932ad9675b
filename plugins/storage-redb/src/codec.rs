//! The binary encoding of an [`Entry`] as stored in the redb tables.
//!
//! A hand-written codec keeps the stored bytes independent of any serialization crate's format,
//! so a dependency upgrade can never make old files unreadable. The layout is:
//!
//! | part            | encoding                                                    |
//! |-----------------|-------------------------------------------------------------|
//! | format version  | one byte, [`FORMAT_VERSION`]                                |
//! | header fields   | scope, type, variant, status: strings                       |
//! | id              | prefix: string, number: `u64`                               |
//! | version         | string                                                      |
//! | title           | string                                                      |
//! | context         | pair count: `u32`, then key and value strings per pair      |
//! | config          | string                                                      |
//! | hash            | 32 raw bytes                                                |
//! | fingerprint     | 16 raw bytes                                                |
//! | revision        | `u32`                                                       |
//! | created, updated| `i64` milliseconds each                                     |
//! | provenance      | `u32`, `Provenance::pack` (format 2 only; 0 when not recorded) |
//!
//! Format 1 is format 2 without its provenance, which entries registered before provenance
//! was recorded have; both are read, and format 2 is written.
//! Strings are a `u32` byte length followed by UTF-8; every number is little-endian and fixed
//! width. Decoding checks every length against the bytes left before allocating, so damaged or
//! hostile input gives a [`DecodeError`] and never a panic or a huge allocation.

use std::fmt;

use registry_core::{
    ContentHash, Context, Entry, EntryId, Fields, Fingerprint, Header, Provenance, Timestamp,
};

/// The format this build writes; it reads this one and format 1.
pub(crate) const FORMAT_VERSION: u8 = 2;

/// Why stored bytes do not decode into an entry. The message is one lowercase line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an entry cannot be encoded: a string longer than a `u32` length can describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodeError {
    pub(crate) part: &'static str,
    pub(crate) len: usize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} bytes long: the limit is {} bytes",
            self.part,
            self.len,
            u32::MAX
        )
    }
}

/// Appends the encoding of `entry` to `out`.
///
/// # Errors
/// [`EncodeError`] when a string or the context is too long for a `u32` length.
pub(crate) fn encode(entry: &Entry, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let h = &entry.header;
    out.push(FORMAT_VERSION);
    put_str(out, "scope", &h.fields.scope)?;
    put_str(out, "type", &h.fields.kind)?;
    put_str(out, "variant", &h.fields.variant)?;
    put_str(out, "status", &h.fields.status)?;
    put_str(out, "id prefix", h.id.prefix())?;
    out.extend_from_slice(&h.id.number().to_le_bytes());
    put_str(out, "version", &h.version)?;
    put_str(out, "title", &entry.title)?;
    put_len(out, "context", entry.context.len())?;
    for (key, value) in entry.context.iter() {
        put_str(out, "context key", key)?;
        put_str(out, "context value", value)?;
    }
    put_str(out, "config", &entry.config)?;
    out.extend_from_slice(&entry.hash.0);
    out.extend_from_slice(&entry.fingerprint.0);
    out.extend_from_slice(&entry.revision.to_le_bytes());
    out.extend_from_slice(&entry.created_at.0.to_le_bytes());
    out.extend_from_slice(&entry.updated_at.0.to_le_bytes());
    out.extend_from_slice(&Provenance::pack_option(entry.provenance.as_ref()).to_le_bytes());
    Ok(())
}

fn put_len(out: &mut Vec<u8>, part: &'static str, len: usize) -> Result<(), EncodeError> {
    let n = u32::try_from(len).map_err(|_| EncodeError { part, len })?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_str(out: &mut Vec<u8>, part: &'static str, s: &str) -> Result<(), EncodeError> {
    put_len(out, part, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
/// [`DecodeError`] for an unknown format version, truncated input, invalid UTF-8, a context that
/// no longer passes [`Context::new`], or bytes left over at the end.
pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.take::<1>("format version")?[0];
    if !(1..=FORMAT_VERSION).contains(&format) {
        return Err(DecodeError(format!(
            "unknown format version {format}: this build reads versions 1 to {FORMAT_VERSION}"
        )));
    }
    let scope = r.string("scope")?;
    let kind = r.string("type")?;
    let variant = r.string("variant")?;
    let status = r.string("status")?;
    let prefix = r.string("id prefix")?;
    let number = u64::from_le_bytes(r.take("id number")?);
    let version = r.string("version")?;
    let title = r.string("title")?;
    let pairs = r.u32("context")?;
    // Each pair takes at least its two length words, so a count the bytes cannot hold is damage,
    // caught here before it sizes an allocation.
    if u64::from(pairs) * 8 > r.left() as u64 {
        return Err(r.error(&format!("context claims {pairs} pairs")));
    }
    let mut context = Vec::with_capacity(pairs as usize);
    for _ in 0..pairs {
        let key = r.string("context key")?;
        let value = r.string("context value")?;
        context.push((key, value));
    }
    let context =
        Context::new(context).map_err(|e| DecodeError(format!("invalid context: {e}")))?;
    let config = r.string("config")?;
    let hash = ContentHash(r.take("hash")?);
    let fingerprint = Fingerprint(r.take("fingerprint")?);
    let revision = r.u32("revision")?;
    let created_at = Timestamp(i64::from_le_bytes(r.take("created_at")?));
    let updated_at = Timestamp(i64::from_le_bytes(r.take("updated_at")?));
    let provenance = if format >= 2 {
        Provenance::unpack(r.u32("provenance")?)
            .map_err(|e| DecodeError(format!("invalid provenance: {e}")))?
    } else {
        None
    };
    if r.left() != 0 {
        return Err(DecodeError(format!(
            "{} unexpected bytes after the entry at byte {}",
            r.left(),
            r.at
        )));
    }
    Ok(Entry {
        header: Header {
            fields: Fields {
                scope,
                kind,
                variant,
                status,
            },
            id: EntryId::new(prefix, number),
            version,
        },
        title,
        context,
        config,
        hash,
        fingerprint,
        revision,
        created_at,
        updated_at,
        provenance,
    })
}

/// A cursor over the bytes being decoded.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn error(&self, what: &str) -> DecodeError {
        DecodeError(format!(
            "{what} at byte {} but only {} bytes are left",
            self.at,
            self.left()
        ))
    }

    fn bytes(&mut self, part: &str, n: usize) -> Result<&[u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error(&format!("truncated: {part} needs {n} bytes")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn take<const N: usize>(&mut self, part: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(part, N)?);
        Ok(out)
    }

    fn u32(&mut self, part: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(part)?))
    }

    fn string(&mut self, part: &str) -> Result<String, DecodeError> {
        let len = self.u32(part)? as usize;
        let start = self.at;
        let raw = self.bytes(part, len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError(format!("{part} at byte {start} is not valid utf-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(title: &str, context: &[(&str, &str)], config: &str) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "ETL".into(),
                kind: "MULTI-ETL".into(),
                variant: "DEV".into(),
                status: "LIVE".into(),
            },
            id: EntryId::new("ETL-MUL", 1234),
            version: "v2.9".into(),
        };
        let context = Context::new(context.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
            .expect("test context is valid");
        Entry {
            hash: Entry::compute_hash(&header, title, &context, config),
            header,
            title: title.into(),
            context,
            config: config.into(),
            fingerprint: Fingerprint([7; 16]),
            revision: 3,
            created_at: Timestamp(-5),
            updated_at: Timestamp(1_795_801_784_123),
            provenance: None,
        }
    }

    fn encoded(e: &Entry) -> Vec<u8> {
        let mut out = Vec::new();
        encode(e, &mut out).expect("test entries fit");
        out
    }

    #[test]
    fn round_trips() {
        for e in [
            entry("Block SSH", &[], ""),
            entry("é ünïcode ✓", &[("env", "prod"), ("a.b-c_d", "")], "x: 1\n"),
            entry(
                &"t".repeat(1024),
                &[("k", &"v".repeat(1024))],
                &"y".repeat(100_000),
            ),
        ] {
            let bytes = encoded(&e);
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode(&bytes), Ok(e.clone()));
            assert!(decode(&bytes).is_ok_and(|d| d.verify()));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b"));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "decoded {len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b"));
        // Flip each byte in turn: the result may decode (e.g. a changed title) but must not panic,
        // and the damaged hash then shows in `verify`.
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0xff;
            if let Ok(e) = decode(&damaged) {
                assert_ne!(e, decode(&bytes).expect("original decodes"), "byte {i}");
            }
        }
        // A deterministic stream of pseudo-random inputs, some starting with the right version.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..2000 {
            let len = round % 97;
            let mut input: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            if let Some(first) = input.first_mut() {
                *first = FORMAT_VERSION;
            }
            let _ = decode(&input);
        }
    }

    #[test]
    fn rejects_bad_versions_lengths_and_contexts() {
        let check = |bytes: &[u8], want: &str| {
            let err = decode(bytes).expect_err("must not decode");
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        };
        let good = encoded(&entry("t", &[("env", "prod")], "c"));
        let mut v3 = good.clone();
        v3[0] = 3;
        check(&v3, "unknown format version 3");
        check(&[], "truncated: format version");
        check(
            &[1, 0xff, 0xff, 0xff, 0xff],
            "truncated: scope needs 4294967295 bytes",
        );
        check(&[1, 1, 0, 0, 0, 0xff], "scope at byte 5 is not valid utf-8");

        // Well-formed bytes whose context key `Context::new` refuses.
        let mut bytes = vec![FORMAT_VERSION];
        for s in ["SEC", "RULES", "LIVE", "LIVE", "SEC-RUL"] {
            put_str(&mut bytes, "test", s).expect("short");
        }
        bytes.extend_from_slice(&1u64.to_le_bytes());
        for s in ["v1", "title"] {
            put_str(&mut bytes, "test", s).expect("short");
        }
        put_len(&mut bytes, "test", 1).expect("short");
        for s in ["a b", "x", "config"] {
            put_str(&mut bytes, "test", s).expect("short");
        }
        bytes.extend_from_slice(&[0; 32 + 16 + 4 + 8 + 8]);
        check(&bytes, "invalid context");
    }
}
