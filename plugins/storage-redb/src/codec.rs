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
//! | provenance      | `u32`, `Provenance::pack` (formats 2 and 3; 0 when not recorded) |
//! | lifecycle       | one byte, 1 retired or 2 merged (format 3 only)             |
//! | merged into     | id prefix: string, number: `u64` (format 3, merged only)    |
//!
//! Format 1 is format 2 without its provenance, which entries registered before provenance
//! was recorded have. Format 3 is format 2 with a lifecycle state other than active: an active
//! entry is written in format 2, byte for byte as before lifecycles existed, so only a retired
//! or merged revision needs a build that reads format 3.
//!
//! Format 4, what a shard of storage format 2 writes (see the storage module), is the encoding
//! both storages share, with varint lengths and the config compressed
//! ([`registry_codec::entry`]); this module hands it entries and bytes of that format (and of
//! format 5, format 4 with the previous revision's hash). All five formats are read; which is
//! written is the shard's to say ([`Writing`]).
//! Strings are a `u32` byte length followed by UTF-8; every number is little-endian and fixed
//! width. Decoding checks every length against the bytes left before allocating, so damaged or
//! hostile input gives a [`DecodeError`] and never a panic or a huge allocation.

use std::fmt;

use registry_codec::Dictionaries;
use registry_core::{
    ContentHash, Context, Entry, EntryId, Fields, Fingerprint, Header, Lifecycle, Provenance,
    Timestamp,
};

/// The newest format of this module's own encoding, which this build reads; format 4 is the
/// shared one.
pub(crate) const FORMAT_VERSION: u8 = 3;

pub(crate) use registry_codec::entry::Writing;

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
pub(crate) fn encode(
    entry: &Entry,
    writing: Writing<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if let Writing::Compressed(_) = writing {
        registry_codec::entry::encode(entry, writing, out);
        return Ok(());
    }
    let h = &entry.header;
    out.push(if entry.lifecycle.is_active() { 2 } else { 3 });
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
    match &entry.lifecycle {
        Lifecycle::Active => {}
        Lifecycle::Retired => out.push(1),
        Lifecycle::Merged(target) => {
            out.push(2);
            put_str(out, "merged-into prefix", target.prefix())?;
            out.extend_from_slice(&target.number().to_le_bytes());
        }
    }
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
/// no longer passes [`Context::new`], a compressed config that does not decompress (or names a
/// dictionary `dictionaries` lacks), or bytes left over at the end.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8], dictionaries: &Dictionaries) -> Result<Entry, DecodeError> {
    let mut entry = registry_codec::entry::blank();
    decode_into(bytes, dictionaries, &mut entry)?;
    Ok(entry)
}

/// [`decode`] into `entry`, reusing its strings for the formats `registry_codec` writes (see
/// [`registry_codec::entry::decode_into`]); an entry of this plugin's older formats is decoded
/// afresh.
///
/// # Errors
/// As [`decode`]; `entry` is then only good to decode into again.
/// Whether `bytes` are of a format the shared codec reads ([`registry_codec::entry::parse`]),
/// 4 or 5, rather than one of this module's own.
pub(crate) fn is_shared(bytes: &[u8]) -> bool {
    bytes
        .first()
        .is_some_and(|&f| f > FORMAT_VERSION && f <= registry_codec::entry::FORMAT_VERSION)
}

pub(crate) fn decode_into(
    bytes: &[u8],
    dictionaries: &Dictionaries,
    entry: &mut Entry,
) -> Result<(), DecodeError> {
    if is_shared(bytes) {
        return registry_codec::entry::decode_into(bytes, dictionaries, entry)
            .map_err(|e| DecodeError(e.to_string()));
    }
    *entry = decode_legacy(bytes)?;
    Ok(())
}

/// Decodes an entry of this plugin's own formats, 1 to [`FORMAT_VERSION`].
fn decode_legacy(bytes: &[u8]) -> Result<Entry, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.take::<1>("format version")?[0];
    if !(1..=FORMAT_VERSION).contains(&format) {
        return Err(DecodeError(format!(
            "unknown format version {format}: this build reads versions 1 to {}",
            registry_codec::entry::FORMAT_VERSION
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
    let lifecycle = if format >= 3 {
        match r.take::<1>("lifecycle")?[0] {
            1 => Lifecycle::Retired,
            2 => {
                let prefix = r.string("merged-into prefix")?;
                let number = u64::from_le_bytes(r.take("merged-into number")?);
                Lifecycle::Merged(EntryId::new(prefix, number))
            }
            n => return Err(DecodeError(format!("unknown lifecycle {n}"))),
        }
    } else {
        Lifecycle::Active
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
        previous: None,
        purge: None,
        fingerprint,
        revision,
        created_at,
        updated_at,
        provenance,
        lifecycle,
        author: None,
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
    use registry_codec::Dictionary;
    use registry_core::Source;

    use super::*;

    fn none() -> Dictionaries {
        Dictionaries::default()
    }

    /// A dictionary trained on configs like [`config_like`]'s, as dictionary `id`.
    fn dictionaries(id: u32) -> Dictionaries {
        let samples: Vec<String> = (0..400).map(config_like).collect();
        let bytes = registry_codec::compress::train(&samples).expect("trains");
        let mut all = Dictionaries::default();
        all.add(std::sync::Arc::new(
            Dictionary::new(id, bytes).expect("a dictionary"),
        ));
        all
    }

    fn config_like(i: usize) -> String {
        format!(
            "dashboard:\n  title: Rule {i}\n  version: v2.9\n  security:\n    csrf: {}\n    cookies:\n      \
             secure: true\n  filters:\n  - threat_level\n  - source_ip\ngovernance:\n  id: ETL-MUL-{i:04}\n",
            i.is_multiple_of(3)
        )
    }

    fn encoded_with(e: &Entry, writing: Writing<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(e, writing, &mut out).expect("test entries fit");
        out
    }

    /// Format 4 is the encoding both storages share, whose own tests pin it
    /// (`registry_codec::entry`): written for `Compressed`, and read back through it with the
    /// shard's dictionaries.
    #[test]
    fn format_4_is_the_shared_encoding() {
        let dicts = dictionaries(7);
        let mut e = Entry {
            lifecycle: Lifecycle::Retired,
            ..entry("Block SSH", &[("env", "prod")], &config_like(12_345))
        };
        e.hash = e.content_hash();
        let writing = Writing::Compressed(dicts.get(7));
        let bytes = encoded_with(&e, writing);
        assert_eq!(bytes, registry_codec::entry::encoded(&e, writing));
        assert_eq!(decode(&bytes, &dicts).as_ref(), Ok(&e));
        let err = decode(&bytes, &none()).expect_err("without its dictionary");
        assert!(
            err.to_string()
                .contains("compressed with dictionary 7, which the store does not hold"),
            "{err}"
        );
    }

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
            previous: None,
            purge: None,
            author: None,
            header,
            title: title.into(),
            context,
            config: config.into(),
            fingerprint: Fingerprint([7; 16]),
            revision: 3,
            created_at: Timestamp(-5),
            updated_at: Timestamp(1_795_801_784_123),
            provenance: None,
            lifecycle: Lifecycle::Active,
        }
    }

    fn encoded(e: &Entry) -> Vec<u8> {
        let mut out = Vec::new();
        encode(e, Writing::Uncompressed, &mut out).expect("test entries fit");
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
            assert_eq!(bytes[0], 2, "an active entry is written in format 2");
            assert_eq!(decode(&bytes, &none()), Ok(e.clone()));
            assert!(decode(&bytes, &none()).is_ok_and(|d| d.verify()));
            for lifecycle in [
                Lifecycle::Retired,
                Lifecycle::Merged(EntryId::new("ETL-MUL", 7)),
            ] {
                let mut e = Entry {
                    lifecycle,
                    ..e.clone()
                };
                e.hash = e.content_hash();
                let bytes = encoded(&e);
                assert_eq!(bytes[0], 3);
                assert_eq!(decode(&bytes, &none()), Ok(e.clone()));
                assert!(decode(&bytes, &none()).is_ok_and(|d| d.verify()));
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let active = entry("Block SSH", &[("env", "prod")], "a: b");
        let merged = Entry {
            lifecycle: Lifecycle::Merged(EntryId::new("ETL-MUL", 7)),
            ..active.clone()
        };
        for e in [active, merged] {
            let bytes = encoded(&e);
            for len in 0..bytes.len() {
                assert!(
                    decode(&bytes[..len], &none()).is_err(),
                    "decoded {len} bytes"
                );
            }
        }
        let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &none()).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let bytes = encoded(&entry("Block SSH", &[("env", "prod")], "a: b"));
        // Flip each byte in turn: the result may decode (e.g. a changed title) but must not panic,
        // and the damaged hash then shows in `verify`.
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0xff;
            if let Ok(e) = decode(&damaged, &none()) {
                assert_ne!(
                    e,
                    decode(&bytes, &none()).expect("original decodes"),
                    "byte {i}"
                );
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
            let _ = decode(&input, &none());
        }
    }

    #[test]
    fn rejects_bad_versions_lengths_and_contexts() {
        let check = |bytes: &[u8], want: &str| {
            let err = decode(bytes, &none()).expect_err("must not decode");
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        };
        let good = encoded(&entry("t", &[("env", "prod")], "c"));
        let mut v6 = good.clone();
        v6[0] = 6;
        check(&v6, "unknown format version 6");
        let mut unknown_state = good.clone();
        unknown_state[0] = 3;
        unknown_state.push(9);
        check(&unknown_state, "unknown lifecycle 9");
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

    // The entries whose stored bytes the golden tests pin. Hashes and fingerprints are patterned
    // bytes: the codec stores them as they are, whatever they hold.

    fn header(fields: [&str; 4], id: EntryId, version: &str) -> Header {
        let [scope, kind, variant, status] = fields.map(str::to_owned);
        Header {
            fields: Fields {
                scope,
                kind,
                variant,
                status,
            },
            id,
            version: version.into(),
        }
    }

    fn pattern<const N: usize>(first: u8) -> [u8; N] {
        std::array::from_fn(|i| first.wrapping_add(i as u8))
    }

    fn context(pairs: &[(&str, &str)]) -> Context {
        Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
            .expect("test context is valid")
    }

    /// No provenance, no context, an empty config.
    fn minimal() -> Entry {
        Entry {
            header: header(
                ["SEC", "RULES", "LIVE", "LIVE"],
                EntryId::new("SEC-RUL", 1),
                "v1",
            ),
            title: "Block SSH".into(),
            context: Context::default(),
            config: String::new(),
            hash: ContentHash(pattern(0x00)),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint(pattern(0xf0)),
            revision: 1,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
            provenance: None,
            lifecycle: Lifecycle::Active,
        }
    }

    /// A recorded provenance (every kind of source), two context pairs, a multi-line config.
    fn recorded() -> Entry {
        Entry {
            header: header(
                ["ETL", "MULTI-ETL", "DEV", "LIVE"],
                EntryId::new("ETL-MUL", 300),
                "v2.9",
            ),
            title: "Nightly load".into(),
            context: context(&[("team", "data"), ("env", "prod")]),
            config: "job:\n  name: load\n".into(),
            hash: ContentHash(pattern(0x20)),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint(pattern(0x40)),
            revision: 3,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_123_456),
            provenance: Some(Provenance {
                derivation: 2,
                fields: Fields {
                    scope: Source::Given,
                    kind: Source::Model,
                    variant: Source::Keyword,
                    status: Source::Default,
                },
                version: Source::Given,
            }),
            lifecycle: Lifecycle::Active,
        }
    }

    /// Multi-byte UTF-8 in the title, a context value and the config.
    fn unicode() -> Entry {
        Entry {
            header: header(
                ["SEC", "RULES", "LIVE", "DEPRECATED"],
                EntryId::new("SEC-RUL", 7),
                "v1",
            ),
            title: "Zugriff prüfen ✓ 🦀".into(),
            context: context(&[("owner", "Zoë")]),
            config: "title: \"ünï\"\n".into(),
            hash: ContentHash([0xa5; 32]),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint([0x5a; 16]),
            revision: 2,
            created_at: Timestamp(1_600_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
            provenance: Some(Provenance {
                derivation: 1,
                fields: Fields::from_fn(|_| Source::Unrecorded),
                version: Source::Unrecorded,
            }),
            lifecycle: Lifecycle::Active,
        }
    }

    /// The largest number and revision, the earliest and latest times.
    fn extremes() -> Entry {
        Entry {
            header: header(
                ["SEC", "RULES", "LIVE", "LIVE"],
                EntryId::new("SEC-RUL", u64::MAX),
                "v1",
            ),
            title: "x".into(),
            context: Context::default(),
            config: String::new(),
            hash: ContentHash([0xff; 32]),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint([0; 16]),
            revision: u32::MAX,
            created_at: Timestamp(i64::MIN),
            updated_at: Timestamp(i64::MAX),
            provenance: None,
            lifecycle: Lifecycle::Active,
        }
    }

    /// Hex as the golden tests write it, one part per field, spaces ignored.
    fn unhex(parts: &[&str]) -> Vec<u8> {
        let digits: Vec<u8> = parts
            .concat()
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        digits
            .chunks(2)
            .map(|pair| {
                let pair = std::str::from_utf8(pair).expect("ascii");
                u8::from_str_radix(pair, 16).expect("two hex digits")
            })
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Pins stored bytes: `entry` encodes to exactly `parts` and they decode to `entry`.
    ///
    /// A failure means the bytes this build stores changed. Stored entries outlive builds, so
    /// that is never a fix of the hex: a new format gets a new [`FORMAT_VERSION`], these cases
    /// become decode-only pins of the old one (as format 1's below), and the new bytes are
    /// pinned beside them.
    fn check(entry: &Entry, parts: &[&str]) {
        let want = unhex(parts);
        assert_eq!(
            hex(&encoded(entry)),
            hex(&want),
            "{}: encoding changed",
            entry.title
        );
        assert_eq!(
            decode(&want, &none()).as_ref(),
            Ok(entry),
            "{}",
            entry.title
        );
    }

    #[test]
    fn golden_bytes_without_provenance() {
        check(
            &minimal(),
            &[
                "02",                                                               // format 2
                "03000000 534543",                                                  // scope "SEC"
                "05000000 52554c4553",                                              // type "RULES"
                "04000000 4c495645",           // variant "LIVE"
                "04000000 4c495645",           // status "LIVE"
                "07000000 5345432d52554c",     // id prefix "SEC-RUL"
                "0100000000000000",            // id number 1
                "02000000 7631",               // version "v1"
                "09000000 426c6f636b20535348", // title "Block SSH"
                "00000000",                    // context: 0 pairs
                "00000000",                    // config (empty)
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // hash
                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", // fingerprint
                "01000000",                    // revision 1
                "0068e5cf8b010000",            // created at 1700000000000
                "0068e5cf8b010000",            // updated at 1700000000000
                "00000000",                    // provenance: not recorded
            ],
        );
    }

    #[test]
    fn golden_bytes_with_provenance_and_context() {
        check(
            &recorded(),
            &[
                "02",                                                               // format 2
                "03000000 45544c",                                                  // scope "ETL"
                "09000000 4d554c54492d45544c",       // type "MULTI-ETL"
                "03000000 444556",                   // variant "DEV"
                "04000000 4c495645",                 // status "LIVE"
                "07000000 45544c2d4d554c",           // id prefix "ETL-MUL"
                "2c01000000000000",                  // id number 300
                "04000000 76322e39",                 // version "v2.9"
                "0c000000 4e696768746c79206c6f6164", // title "Nightly load"
                "02000000",                          // context: 2 pairs
                "03000000 656e76",                   // key "env"
                "04000000 70726f64",                 // value "prod"
                "04000000 7465616d",                 // key "team"
                "04000000 64617461",                 // value "data"
                "12000000 6a6f623a0a20206e616d653a206c6f61640a", // config "job:\n  name: load\n"
                "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", // hash
                "404142434445464748494a4b4c4d4e4f",  // fingerprint
                "03000000",                          // revision 3
                "0068e5cf8b010000",                  // created at 1700000000000
                "404ae7cf8b010000",                  // updated at 1700000123456
                "82680000",                          // provenance 0x6882
            ],
        );
    }

    #[test]
    fn golden_bytes_of_unicode() {
        check(
            &unicode(),
            &[
                "02",                                                               // format 2
                "03000000 534543",                                                  // scope "SEC"
                "05000000 52554c4553",                                              // type "RULES"
                "04000000 4c495645",             // variant "LIVE"
                "0a000000 44455052454341544544", // status "DEPRECATED"
                "07000000 5345432d52554c",       // id prefix "SEC-RUL"
                "0700000000000000",              // id number 7
                "02000000 7631",                 // version "v1"
                "18000000 5a756772696666207072c3bc66656e20e29c9320f09fa680", // title "Zugriff prüfen ✓ 🦀"
                "01000000",                                                  // context: 1 pairs
                "05000000 6f776e6572",                                       // key "owner"
                "04000000 5a6fc3ab",                                         // value "Zoë"
                "0f000000 7469746c653a2022c3bc6ec3af220a", // config "title: \"ünï\"\n"
                "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5", // hash
                "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",        // fingerprint
                "02000000",                                // revision 2
                "00806e8774010000",                        // created at 1600000000000
                "0068e5cf8b010000",                        // updated at 1700000000000
                "41920400",                                // provenance 0x49241
            ],
        );
    }

    #[test]
    fn golden_bytes_of_extremes() {
        check(
            &extremes(),
            &[
                "02",                                                               // format 2
                "03000000 534543",                                                  // scope "SEC"
                "05000000 52554c4553",                                              // type "RULES"
                "04000000 4c495645",       // variant "LIVE"
                "04000000 4c495645",       // status "LIVE"
                "07000000 5345432d52554c", // id prefix "SEC-RUL"
                "ffffffffffffffff",        // id number 18446744073709551615
                "02000000 7631",           // version "v1"
                "01000000 78",             // title "x"
                "00000000",                // context: 0 pairs
                "00000000",                // config (empty)
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // hash
                "00000000000000000000000000000000", // fingerprint
                "ffffffff",                // revision 4294967295
                "0000000000000080",        // created at -9223372036854775808
                "ffffffffffffff7f",        // updated at 9223372036854775807
                "00000000",                // provenance: not recorded
            ],
        );
    }

    #[test]
    fn golden_bytes_of_retired_and_merged_entries() {
        // Format 3 is format 2 with the lifecycle after it: `minimal`'s bytes but the first.
        let common = [
            "03000000 534543",                                                  // scope "SEC"
            "05000000 52554c4553",                                              // type "RULES"
            "04000000 4c495645",                                                // variant "LIVE"
            "04000000 4c495645",                                                // status "LIVE"
            "07000000 5345432d52554c",     // id prefix "SEC-RUL"
            "0100000000000000",            // id number 1
            "02000000 7631",               // version "v1"
            "09000000 426c6f636b20535348", // title "Block SSH"
            "00000000",                    // context: 0 pairs
            "00000000",                    // config (empty)
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // hash
            "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", // fingerprint
            "01000000",                    // revision 1
            "0068e5cf8b010000",            // created at 1700000000000
            "0068e5cf8b010000",            // updated at 1700000000000
            "00000000",                    // provenance: not recorded
        ];
        let retired = Entry {
            lifecycle: Lifecycle::Retired,
            ..minimal()
        };
        check(&retired, &[&["03"][..], &common, &["01"]].concat()); // format 3 … retired
        let merged = Entry {
            lifecycle: Lifecycle::Merged(EntryId::new("SEC-RUL", 42)),
            ..minimal()
        };
        check(
            &merged,
            // format 3 … merged, into "SEC-RUL" number 42
            &[
                &["03"][..],
                &common,
                &["02", "07000000 5345432d52554c", "2a00000000000000"],
            ]
            .concat(),
        );
    }

    /// Format 1 (before provenance was recorded) is read, never written: pinned bytes decode to
    /// the entry without provenance.
    #[test]
    fn golden_bytes_of_format_1_still_decode() {
        let bytes = unhex(&[
            "01",                                                               // format 1
            "03000000 45544c",                                                  // scope "ETL"
            "09000000 4d554c54492d45544c",                                      // type "MULTI-ETL"
            "03000000 444556",                                                  // variant "DEV"
            "04000000 4c495645",                                                // status "LIVE"
            "07000000 45544c2d4d554c",           // id prefix "ETL-MUL"
            "2c01000000000000",                  // id number 300
            "04000000 76322e39",                 // version "v2.9"
            "0c000000 4e696768746c79206c6f6164", // title "Nightly load"
            "02000000",                          // context: 2 pairs
            "03000000 656e76",                   // key "env"
            "04000000 70726f64",                 // value "prod"
            "04000000 7465616d",                 // key "team"
            "04000000 64617461",                 // value "data"
            "12000000 6a6f623a0a20206e616d653a206c6f61640a", // config "job:\n  name: load\n"
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", // hash
            "404142434445464748494a4b4c4d4e4f",  // fingerprint
            "03000000",                          // revision 3
            "0068e5cf8b010000",                  // created at 1700000000000
            "404ae7cf8b010000",                  // updated at 1700000123456
        ]);
        let want = Entry {
            provenance: None,
            ..recorded()
        };
        assert_eq!(decode(&bytes, &none()), Ok(want));
    }
}
