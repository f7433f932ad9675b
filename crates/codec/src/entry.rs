//! The binary encoding of an [`Entry`] with varint lengths: what the Redis storage keeps (one
//! list element per revision) in every format, and what the redb storage keeps in entry format
//! 4 (its formats 1 to 3 are its own, with fixed-width lengths).
//!
//! Lengths and numbers are LEB128 varints rather than fixed-width words: a typical entry's
//! strings are short, so this saves about 30 bytes per revision over 4-byte lengths.
//!
//! | part            | encoding                                                    |
//! |-----------------|-------------------------------------------------------------|
//! | format version  | one byte, [`FORMAT_VERSION`]                                |
//! | header fields   | scope, type, variant, status: strings                       |
//! | id              | prefix: string, number: varint                              |
//! | version         | string                                                      |
//! | title           | string                                                      |
//! | context         | pair count: varint, then key and value strings per pair     |
//! | config          | string (formats 1 to 3); in format 4, encoding: varint, then for 0 a string, for 1 the dictionary id: varint (0 for none), the length: varint and the zstd frame: string ([`crate::compress`]) |
//! | hash            | 32 raw bytes                                                |
//! | fingerprint     | 16 raw bytes                                                |
//! | revision        | varint                                                      |
//! | created, updated| zigzag varint milliseconds each                             |
//! | provenance      | varint, `Provenance::pack` (formats 2 and 3; 0 when not recorded) |
//! | lifecycle       | one byte, 1 retired or 2 merged (format 3); 0 active, 1 or 2 (format 4) |
//! | merged into     | id prefix: string, number: varint (formats 3 to 5, merged only) |
//! | chain           | format 5 only: one byte of flags (1: a previous hash follows, 2: a purge record follows, 4: an author follows), the previous revision's hash (32 raw bytes), the purge record: the original hash (32 raw bytes), fields and reason (strings), time (zigzag varint), the author: name, origin and request id (strings) |
//!
//! Format 1 is format 2 without its provenance, which entries registered before provenance
//! was recorded have. Format 3 is format 2 with a lifecycle state other than active: an active
//! entry is written in format 2, byte for byte as before lifecycles existed. Format 4 is what a
//! store of storage format 2 writes: the config compressed (a config is kept as a string when
//! compressing would not make it shorter) and the lifecycle always present. Format 5 is format
//! 4 with the hash of the revision before ([`Entry::previous`]), which a revision of a hash chain
//! records, a purge record ([`Entry::purge`]) and the revision's author ([`Entry::author`], the
//! audit record of the write); a revision with none of them is written in format 4, byte for
//! byte as before chains. An uncompressed store keeps no author (format 1 registries have no
//! audit: `registry migrate` gives them one). All five are read (here and by the Redis scripts); which
//! is written is the store's to say ([`Writing`]). An uncompressed store (storage format 1)
//! cannot keep a previous hash or a purge: its storages refuse such a revision rather than drop it.
//!
//! A string is a varint byte length followed by UTF-8. The four header fields come first on
//! purpose: the Lua scripts read them (and only them) to maintain the field indexes, with the
//! small varint reader in `scripts.rs`. Decoding checks every length against the bytes left
//! before allocating, so damaged input gives a [`DecodeError`] and never a panic.

use std::fmt;

use registry_core::{
    AuthorRef, ContentHash, ContextRef, Entry, EntryRef, Fields, Fingerprint, Lifecycle,
    LifecycleRef, Provenance, PurgeRef, Timestamp, copy_into, refill_author, refill_purge,
};

use crate::compress::{Dictionaries, Dictionary};

/// The newest format this build writes (in stores of storage format 2); it reads formats 1
/// to this one. The Redis Lua scripts check it too.
pub const FORMAT_VERSION: u8 = 5;

/// How a store writes entries.
#[derive(Debug, Clone, Copy)]
pub enum Writing<'a> {
    /// A store of storage format 1: active entries in format 2, others in format 3, configs as
    /// they are, so the builds that made the store can still read it.
    Uncompressed,
    /// A store of storage format 2: format 4, configs compressed with the dictionary (or none).
    Compressed(Option<&'a Dictionary>),
}

/// Why stored bytes do not decode into an entry. The message is one lowercase line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Appends the encoding of `entry` to `out`, as `writing` says. Every length fits a varint,
/// and a config that cannot be compressed is kept as it is, so this cannot fail.
pub fn encode(entry: &Entry, writing: Writing<'_>, out: &mut Vec<u8>) {
    let h = &entry.header;
    let chained = entry.previous.is_some() || entry.purge.is_some() || entry.author.is_some();
    out.push(match writing {
        Writing::Compressed(_) if chained => 5,
        Writing::Compressed(_) => 4,
        Writing::Uncompressed if entry.lifecycle.is_active() => 2,
        Writing::Uncompressed => 3,
    });
    put_str(out, &h.fields.scope);
    put_str(out, &h.fields.kind);
    put_str(out, &h.fields.variant);
    put_str(out, &h.fields.status);
    put_str(out, h.id.prefix());
    put_varint(out, h.id.number());
    put_str(out, &h.version);
    put_str(out, &entry.title);
    put_varint(out, entry.context.len() as u64);
    for (key, value) in entry.context.iter() {
        put_str(out, key);
        put_str(out, value);
    }
    match writing {
        Writing::Uncompressed => put_str(out, &entry.config),
        Writing::Compressed(dictionary) => put_config(out, &entry.config, dictionary),
    }
    out.extend_from_slice(&entry.hash.0);
    out.extend_from_slice(&entry.fingerprint.0);
    put_varint(out, u64::from(entry.revision));
    put_varint(out, zigzag(entry.created_at.0));
    put_varint(out, zigzag(entry.updated_at.0));
    put_varint(
        out,
        u64::from(Provenance::pack_option(entry.provenance.as_ref())),
    );
    match &entry.lifecycle {
        Lifecycle::Active if matches!(writing, Writing::Compressed(_)) => out.push(0),
        Lifecycle::Active => {}
        Lifecycle::Retired => out.push(1),
        Lifecycle::Merged(target) => {
            out.push(2);
            put_str(out, target.prefix());
            put_varint(out, target.number());
        }
    }
    if matches!(writing, Writing::Compressed(_)) && chained {
        out.push(
            u8::from(entry.previous.is_some())
                | (u8::from(entry.purge.is_some()) << 1)
                | (u8::from(entry.author.is_some()) << 2),
        );
        if let Some(previous) = &entry.previous {
            out.extend_from_slice(&previous.0);
        }
        if let Some(p) = &entry.purge {
            out.extend_from_slice(&p.original.0);
            put_str(out, &p.fields);
            put_str(out, &p.reason);
            put_varint(out, zigzag(p.at.0));
        }
        if let Some(a) = &entry.author {
            put_str(out, &a.name);
            put_str(out, &a.origin);
            put_str(out, &a.request);
        }
    }
}

/// A format-4 config: compressed with `dictionary` (or none) when that is shorter than the
/// string form.
fn put_config(out: &mut Vec<u8>, config: &str, dictionary: Option<&Dictionary>) {
    let start = out.len();
    out.push(1);
    put_varint(out, u64::from(dictionary.map_or(0, Dictionary::id)));
    put_varint(out, config.len() as u64);
    // The frame as a string: its length, then it.
    let framed = crate::compress::compress_with(config.as_bytes(), dictionary, |frame| {
        put_varint(out, frame.len() as u64);
        out.extend_from_slice(frame);
    });
    if framed.is_ok() && out.len() - start < 1 + varint_len(config.len() as u64) + config.len() {
        return;
    }
    out.truncate(start);
    out.push(0);
    put_str(out, config);
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// The encoding of `entry` in a new buffer.
pub fn encoded(entry: &Entry, writing: Writing<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + entry.config.len() + entry.title.len());
    encode(entry, writing, &mut out);
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // The low seven bits with the continuation bit; the cast keeps exactly those bits.
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Decodes bytes written by [`encode`].
///
/// # Errors
/// [`DecodeError`] for an unknown format version, truncated input, an overlong varint, invalid
/// UTF-8, a context that no longer passes [`Context::new`](registry_core::Context::new), or bytes left over at the end.
pub fn decode(bytes: &[u8], dictionaries: &Dictionaries) -> Result<Entry, DecodeError> {
    let mut entry = blank();
    decode_into(bytes, dictionaries, &mut entry)?;
    Ok(entry)
}

/// An entry of empty strings, to decode into ([`Entry::blank`]).
pub fn blank() -> Entry {
    Entry::blank()
}

/// [`decode`] into `entry`, reusing the buffers of its strings (see [`copy_into`]): for a
/// caller that decodes entries one after the other and keeps those it is done with. Whatever
/// `entry` held before, it then holds what `decode` gives.
///
/// # Errors
/// As [`decode`]; `entry` then holds some parts of the bytes and some of what it held before,
/// and is only good to decode into again.
pub fn decode_into(
    bytes: &[u8],
    dictionaries: &Dictionaries,
    entry: &mut Entry,
) -> Result<(), DecodeError> {
    parse(bytes)?.fill(dictionaries, entry)
}

/// A record's fields where they lie in its bytes, as [`parse`] reads them: every length and
/// string checked, the config not yet decompressed and the context not yet checked as
/// [`Context::new`](registry_core::Context::new) checks it. [`decode_into`] copies it into an entry; a storage that lends
/// what it reads hands it out in place ([`Lender`]).
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    fields: Fields<&'a str>,
    id_prefix: &'a str,
    id_number: u64,
    version: &'a str,
    title: &'a str,
    /// How many context pairs, and the record up to their end from byte `context_at`:
    /// [`Parts::pairs`] reads them.
    pairs: usize,
    context: &'a [u8],
    context_at: usize,
    config: StoredConfig<'a>,
    hash: ContentHash,
    previous: Option<ContentHash>,
    purge: Option<PurgeRef<'a>>,
    fingerprint: Fingerprint,
    revision: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    provenance: Option<Provenance>,
    lifecycle: LifecycleRef<'a>,
    author: Option<AuthorRef<'a>>,
}

/// A config as a record keeps it.
#[derive(Debug, Clone, Copy)]
enum StoredConfig<'a> {
    Plain(&'a str),
    /// A zstd frame: at byte `at` of the record, made with dictionary `dictionary` (0 for none),
    /// of a config of `raw_len` bytes.
    Packed {
        at: usize,
        dictionary: u64,
        raw_len: u64,
        frame: &'a [u8],
    },
}

/// Reads the parts of bytes written by [`encode`], without copying any.
///
/// # Errors
/// As [`decode`], but for the checks of the context and of a compressed config, which come
/// with [`decode_into`] and [`Lender::lend`].
pub fn parse(bytes: &[u8]) -> Result<Parts<'_>, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.take::<1>("format version")?[0];
    if !(1..=FORMAT_VERSION).contains(&format) {
        return Err(DecodeError(format!(
            "unknown format version {format}: this build reads versions 1 to {FORMAT_VERSION}"
        )));
    }
    let fields = Fields {
        scope: r.str("scope")?,
        kind: r.str("type")?,
        variant: r.str("variant")?,
        status: r.str("status")?,
    };
    let id_prefix = r.str("id prefix")?;
    let id_number = r.varint("id number")?;
    let version = r.str("version")?;
    let title = r.str("title")?;
    let pairs = r.varint("context")?;
    // Each pair takes at least its two length bytes, so a count the bytes cannot hold is damage,
    // caught here before it drives a loop.
    if pairs.saturating_mul(2) > r.left() as u64 {
        return Err(r.error(&format!("context claims {pairs} pairs")));
    }
    // The pairs' strings are checked where they are read ([`Parts::pairs`]), once.
    let context_at = r.at;
    for _ in 0..pairs {
        r.skip_str("context key")?;
        r.skip_str("context value")?;
    }
    let context = &bytes[..r.at];
    let config = if format >= 4 {
        r.config()?
    } else {
        StoredConfig::Plain(r.str("config")?)
    };
    let hash = ContentHash(r.take("hash")?);
    let fingerprint = Fingerprint(r.take("fingerprint")?);
    let revision = r.varint("revision")?;
    let revision = u32::try_from(revision)
        .map_err(|_| DecodeError(format!("revision {revision} is above {}", u32::MAX)))?;
    let created_at = Timestamp(unzigzag(r.varint("created_at")?));
    let updated_at = Timestamp(unzigzag(r.varint("updated_at")?));
    let provenance = if format >= 2 {
        let n = r.varint("provenance")?;
        let n = u32::try_from(n)
            .map_err(|_| DecodeError(format!("provenance {n} is above {}", u32::MAX)))?;
        Provenance::unpack(n).map_err(|e| DecodeError(format!("invalid provenance: {e}")))?
    } else {
        None
    };
    let lifecycle = if format >= 3 {
        match r.take::<1>("lifecycle")?[0] {
            0 if format >= 4 => LifecycleRef::Active,
            1 => LifecycleRef::Retired,
            2 => LifecycleRef::Merged {
                prefix: r.str("merged-into prefix")?,
                number: r.varint("merged-into number")?,
            },
            n => return Err(DecodeError(format!("unknown lifecycle {n}"))),
        }
    } else {
        LifecycleRef::Active
    };
    let flags = if format >= 5 {
        let flags = r.take::<1>("chain flags")?[0];
        if flags == 0 || flags > 7 {
            return Err(DecodeError(format!("unknown chain flags {flags}")));
        }
        flags
    } else {
        0
    };
    let previous = if flags & 1 != 0 {
        Some(ContentHash(r.take("previous hash")?))
    } else {
        None
    };
    let purge = if flags & 2 != 0 {
        Some(PurgeRef {
            original: ContentHash(r.take("purged revision's hash")?),
            fields: r.str("purged fields")?,
            reason: r.str("purge reason")?,
            at: Timestamp(unzigzag(r.varint("purge time")?)),
        })
    } else {
        None
    };
    let author = if flags & 4 != 0 {
        Some(AuthorRef {
            name: r.str("author")?,
            origin: r.str("author's origin")?,
            request: r.str("author's request")?,
        })
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
    Ok(Parts {
        fields,
        id_prefix,
        id_number,
        version,
        title,
        pairs: usize::try_from(pairs).unwrap_or(usize::MAX),
        context,
        context_at,
        config,
        hash,
        previous,
        purge,
        fingerprint,
        revision,
        created_at,
        updated_at,
        provenance,
        lifecycle,
        author,
    })
}

impl<'a> Parts<'a> {
    /// The id's prefix and number.
    pub fn id(&self) -> (&'a str, u64) {
        (self.id_prefix, self.id_number)
    }

    pub fn revision(&self) -> u32 {
        self.revision
    }

    /// The context's pairs, as stored; a string that is not UTF-8 is an error (the lengths were
    /// checked by [`parse`]).
    pub fn pairs(&self) -> impl Iterator<Item = Result<(&'a str, &'a str), DecodeError>> + use<'a> {
        let mut r = Reader {
            bytes: self.context,
            at: self.context_at,
        };
        (0..self.pairs).map(move |_| Ok((r.str("context key")?, r.str("context value")?)))
    }

    /// The config, into `out` (decompressed when it is compressed).
    ///
    /// # Errors
    /// When its dictionary is not in `dictionaries`, or its frame does not decompress into the
    /// UTF-8 of the length recorded.
    pub fn config_into(
        &self,
        dictionaries: &Dictionaries,
        out: &mut String,
    ) -> Result<(), DecodeError> {
        match self.config {
            StoredConfig::Plain(config) => {
                copy_into(out, config);
                Ok(())
            }
            StoredConfig::Packed {
                at,
                dictionary,
                raw_len,
                frame,
            } => {
                let dictionary = match dictionary {
                    0 => None,
                    id => Some(
                        u32::try_from(id)
                            .ok()
                            .and_then(|id| dictionaries.get(id))
                            .ok_or_else(|| {
                                DecodeError(format!(
                                    "the config at byte {at} is compressed with dictionary \
                                     {id}, which the store does not hold"
                                ))
                            })?,
                    ),
                };
                let raw_len = usize::try_from(raw_len).unwrap_or(usize::MAX);
                crate::compress::decompress_into(frame, raw_len, dictionary, out)
                    .map_err(|e| DecodeError(format!("the config at byte {at}: {e}")))
            }
        }
    }

    /// A view of the entry, with its config and context pairs from where the caller put them.
    fn view<'v>(&self, config: &'v str, pairs: &'v [(&'v str, &'v str)]) -> EntryRef<'v>
    where
        'a: 'v,
    {
        EntryRef {
            fields: self.fields,
            id_prefix: self.id_prefix,
            id_number: self.id_number,
            version: self.version,
            title: self.title,
            context: ContextRef::Pairs(pairs),
            config,
            hash: self.hash,
            previous: self.previous,
            purge: self.purge,
            fingerprint: self.fingerprint,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            provenance: self.provenance,
            lifecycle: self.lifecycle,
            author: self.author,
        }
    }

    /// Makes `entry` this record, in its strings.
    fn fill(&self, dictionaries: &Dictionaries, entry: &mut Entry) -> Result<(), DecodeError> {
        entry
            .header
            .refill(self.fields, self.id_prefix, self.id_number, self.version);
        copy_into(&mut entry.title, self.title);
        let mut unread = None;
        let refilled = entry.context.refill(
            self.pairs()
                .map_while(|pair| pair.map_err(|e| unread = Some(e)).ok()),
        );
        if let Some(e) = unread {
            return Err(e);
        }
        refilled.map_err(|e| DecodeError(format!("invalid context: {e}")))?;
        self.config_into(dictionaries, &mut entry.config)?;
        entry.hash = self.hash;
        entry.fingerprint = self.fingerprint;
        entry.revision = self.revision;
        entry.created_at = self.created_at;
        entry.updated_at = self.updated_at;
        entry.provenance = self.provenance;
        entry.lifecycle = self.lifecycle.to_lifecycle();
        entry.previous = self.previous;
        refill_purge(&mut entry.purge, self.purge);
        refill_author(&mut entry.author, self.author);
        Ok(())
    }
}

/// Lends parsed records as [`EntryRef`]s: the strings where they lie in the records, and each
/// compressed config decompressed into a string of its own, kept (with its buffer) from one
/// batch to the next.
#[derive(Debug, Default)]
pub struct Lender {
    configs: Vec<String>,
}

thread_local! {
    static LENDER: std::cell::RefCell<Lender> = std::cell::RefCell::default();
}

impl Lender {
    /// Configs kept from one batch to the next at most: a batch of more gets fresh strings for
    /// the rest.
    const KEPT: usize = 4096;

    /// Most bytes of configs kept from one batch to the next: after a batch of more (large
    /// configs), the strings are dropped.
    const KEPT_BYTES: usize = 4 << 20;

    /// Calls `f` with the lender this thread keeps (a new one while it is in use).
    pub fn with_thread<R>(f: impl FnOnce(&mut Lender) -> R) -> R {
        LENDER.with(|kept| match kept.try_borrow_mut() {
            Ok(mut lender) => f(&mut lender),
            Err(_) => f(&mut Lender::default()),
        })
    }

    /// Calls `each` once with a view of every record, in order (`None` stays `None`), and
    /// answers what it returns.
    ///
    /// # Errors
    /// The index of the first record whose config does not decompress (see
    /// [`Parts::config_into`]), and why; `each` is then not called.
    pub fn lend<R>(
        &mut self,
        records: &[Option<Parts<'_>>],
        dictionaries: &Dictionaries,
        each: impl FnOnce(&[Option<EntryRef<'_>>]) -> R,
    ) -> Result<R, (usize, DecodeError)> {
        let mut packed = 0;
        let mut pairs = Vec::new();
        for (i, p) in records.iter().enumerate() {
            let Some(p) = p else { continue };
            if let StoredConfig::Packed { .. } = p.config {
                if packed == self.configs.len() {
                    self.configs.push(String::new());
                }
                p.config_into(dictionaries, &mut self.configs[packed])
                    .map_err(|e| (i, e))?;
                packed += 1;
            }
            for pair in p.pairs() {
                pairs.push(pair.map_err(|e| (i, e))?);
            }
        }
        let mut configs = self.configs.iter();
        let mut context = pairs.as_slice();
        let views: Vec<Option<EntryRef<'_>>> = records
            .iter()
            .map(|p| {
                p.as_ref().map(|p| {
                    let config = match p.config {
                        StoredConfig::Plain(config) => config,
                        StoredConfig::Packed { .. } => configs.next().map_or("", String::as_str),
                    };
                    let (now, rest) = context.split_at(p.pairs.min(context.len()));
                    context = rest;
                    p.view(config, now)
                })
            })
            .collect();
        let answer = each(&views);
        drop(views);
        self.configs.truncate(Self::KEPT);
        if self.configs.iter().map(String::capacity).sum::<usize>() > Self::KEPT_BYTES {
            self.configs = Vec::new();
        }
        Ok(answer)
    }
}

/// A cursor over the bytes being decoded.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
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

    #[inline]
    fn bytes(&mut self, part: &str, n: usize) -> Result<&'a [u8], DecodeError> {
        let bytes: &'a [u8] = self.bytes;
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| self.error(&format!("truncated: {part} needs {n} bytes")))?;
        let slice = &bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    #[inline]
    fn take<const N: usize>(&mut self, part: &str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(part, N)?);
        Ok(out)
    }

    #[inline]
    fn varint(&mut self, part: &str) -> Result<u64, DecodeError> {
        // Most lengths are below 128: one byte, read without the loop.
        if let Some(&b) = self.bytes.get(self.at)
            && b < 0x80
        {
            self.at += 1;
            return Ok(u64::from(b));
        }
        self.long_varint(part)
    }

    fn long_varint(&mut self, part: &str) -> Result<u64, DecodeError> {
        let start = self.at;
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let [b] = self.take::<1>(part)?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && bits > 1 {
                break;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(DecodeError(format!(
            "{part} at byte {start} is not a valid varint"
        )))
    }

    /// A format-4 config, as stored.
    fn config(&mut self) -> Result<StoredConfig<'a>, DecodeError> {
        let at = self.at;
        match self.varint("config")? {
            0 => Ok(StoredConfig::Plain(self.str("config")?)),
            1 => {
                let dictionary = self.varint("config dictionary")?;
                let raw_len = self.varint("config length")?;
                let frame_len = self.varint("compressed config")?;
                let frame_len = usize::try_from(frame_len).unwrap_or(usize::MAX);
                let frame = self.bytes("compressed config", frame_len)?;
                Ok(StoredConfig::Packed {
                    at,
                    dictionary,
                    raw_len,
                    frame,
                })
            }
            n => Err(DecodeError(format!(
                "unknown config encoding {n} at byte {at}"
            ))),
        }
    }

    /// Steps over a string, checking only its length.
    #[inline]
    fn skip_str(&mut self, part: &str) -> Result<(), DecodeError> {
        let len = self.varint(part)?;
        self.bytes(part, usize::try_from(len).unwrap_or(usize::MAX))
            .map(|_| ())
    }

    #[inline]
    fn str(&mut self, part: &str) -> Result<&'a str, DecodeError> {
        let len = self.varint(part)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let start = self.at;
        let raw = self.bytes(part, len)?;
        std::str::from_utf8(raw)
            .map_err(|_| DecodeError(format!("{part} at byte {start} is not valid utf-8")))
    }
}

#[cfg(test)]
mod tests;
