//! Entries: a header, its title and context, the generated config, and the bookkeeping that makes
//! history and idempotency work (content hash, request fingerprint, revision, times).

use std::fmt;
use std::io::Write as _;

use serde::{Deserialize, Serialize};

use crate::header::{EntryId, Field, Fields, Header};
use crate::request::{Context, derive_fingerprint};
use crate::stage::Source;
use crate::time::Timestamp;

/// blake3 of an entry's content: its header, title, context and config (not its times or revision).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

/// The identity of a registration request (see [`crate::Request::fingerprint`]): 128 bits of blake3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

/// Lowercase hexadecimal digits.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `label` then `bytes` in lowercase hexadecimal, written into `out`, which must hold them
/// (32 bytes and a 7-byte label at most here), and the text written.
///
/// A table and one buffer instead of a `{:02x}` per byte: an entry's JSON carries three of
/// these (hash, previous hash, fingerprint), and formatting them byte by byte was the largest
/// part of serializing an entry (a profile of `registry serve` answering gets put `LowerHex`
/// and its `Formatter` calls at a third of `Entry::serialize`).
fn hex_text<'b>(label: &str, bytes: &[u8], out: &'b mut [u8; 72]) -> &'b str {
    let n = label.len();
    out[..n].copy_from_slice(label.as_bytes());
    for (i, b) in bytes.iter().enumerate() {
        out[n + 2 * i] = HEX_DIGITS[usize::from(b >> 4)];
        out[n + 2 * i + 1] = HEX_DIGITS[usize::from(b & 0xf)];
    }
    // ASCII from the label (a literal) and the table.
    std::str::from_utf8(&out[..n + 2 * bytes.len()]).unwrap_or_default()
}

macro_rules! hex_type {
    ($t:ty, $label:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(hex_text($label, &self.0, &mut [0; 72]))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(hex_text($label, &self.0, &mut [0; 72]))
            }
        }
    };
}
hex_type!(ContentHash, "blake3:");
hex_type!(Fingerprint, "");

impl Fingerprint {
    /// The first 64 bits, for routing and cache keys.
    pub fn low64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

/// One revision of a registered entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    #[serde(flatten, serialize_with = "serialize_header")]
    pub header: Header,
    pub title: String,
    pub context: Context,
    pub config: String,
    /// The revision's hash: of its content ([`Entry::compute_hash_in`]) and, when
    /// [`Entry::previous`] is set, of the previous revision's hash too.
    pub hash: ContentHash,
    /// The hash of the revision before, which this one's hash covers: the link of its
    /// history's hash chain, so that rewriting any revision breaks every later one. `None` for
    /// revision 1, and for the revisions a registry of storage format 1 wrote (before chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<ContentHash>,
    /// What `registry purge` removed from this revision, and why; `None` for a revision never
    /// purged. Its hash covers the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge: Option<Purge>,
    pub fingerprint: Fingerprint,
    /// 1 for the registered entry, n+1 for each update.
    pub revision: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// How the entry was registered, the same in every revision; `None` for an entry stored
    /// before registrations recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Where the entry is in its life: active, retired or merged into another. Changing it
    /// writes a revision, like any other change, so it is kept in history.
    #[serde(flatten, serialize_with = "serialize_lifecycle")]
    pub lifecycle: Lifecycle,
    /// Who wrote this revision and from where: the audit record of the write. Not content, so
    /// not covered by [`Entry::hash`]; `None` for revisions written before writes recorded it,
    /// and in registries of storage format 1, which do not keep it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
}

impl<'de> Deserialize<'de> for Entry {
    /// Reads what `Serialize` writes (`registry get --format json`, the server's answers): the
    /// header's parts, flattened, and the lifecycle by name. The readable and grepable header
    /// forms are derived, so they are read and not kept. Unknown keys are allowed, so that an
    /// answer made of an entry and more (`created`, `changed`) reads with `#[serde(flatten)]`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            id: EntryId,
            scope: String,
            #[serde(rename = "type")]
            kind: String,
            variant: String,
            status: String,
            version: String,
            title: String,
            context: Context,
            config: String,
            hash: ContentHash,
            #[serde(default)]
            previous: Option<ContentHash>,
            #[serde(default)]
            purge: Option<Purge>,
            fingerprint: Fingerprint,
            revision: u32,
            created_at: Timestamp,
            updated_at: Timestamp,
            #[serde(default)]
            provenance: Option<Provenance>,
            lifecycle: String,
            #[serde(default)]
            merged_into: Option<EntryId>,
            #[serde(default)]
            author: Option<Author>,
        }
        let w = Wire::deserialize(d)?;
        let lifecycle =
            Lifecycle::from_parts(&w.lifecycle, w.merged_into).map_err(serde::de::Error::custom)?;
        Ok(Entry {
            header: Header {
                fields: Fields {
                    scope: w.scope,
                    kind: w.kind,
                    variant: w.variant,
                    status: w.status,
                },
                id: w.id,
                version: w.version,
            },
            title: w.title,
            context: w.context,
            config: w.config,
            hash: w.hash,
            previous: w.previous,
            purge: w.purge,
            fingerprint: w.fingerprint,
            revision: w.revision,
            created_at: w.created_at,
            updated_at: w.updated_at,
            provenance: w.provenance,
            lifecycle,
            author: w.author,
        })
    }
}

/// Who made a write, from where: kept with the revision the write made (in the same
/// transaction, through storage), and read back by `registry audit` and `history`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// The token's name on the server; the operating system's user name on the command line.
    pub name: String,
    /// Where from: the client's address on the server; `cli@HOST` on the command line.
    pub origin: String,
    /// The server's request id; empty on the command line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request: String,
}

impl Author {
    /// The longest name, origin or request id kept, in bytes; longer ones are cut (on a
    /// character boundary), so an audit record stays small whatever a client sends.
    pub const MAX_PART: usize = 128;

    /// An author, each part cut to [`Author::MAX_PART`] bytes.
    pub fn new(name: &str, origin: &str, request: &str) -> Author {
        let cut = |s: &str| {
            let mut end = s.len().min(Author::MAX_PART);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        };
        Author {
            name: cut(name),
            origin: cut(origin),
            request: cut(request),
        }
    }
}

/// A purge of some of a revision's text (a secret pasted into a title or a context value): the
/// text is replaced by [`PURGED`], and the revision keeps the hash it had before, which the next
/// revision's link holds, so the chain still verifies and the removal shows.
///
/// What cannot be shown is that the purged text was the only change: the original content is
/// gone, so its hash is taken on trust. A purge is therefore written down for all to see
/// (`history`, `export`, `check` do not hide it) and each is made by an operator with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// The revision's hash before its first purge: what the next revision's link holds.
    pub original: ContentHash,
    /// What was purged, in order, comma-separated: `title`, `context.KEY`.
    pub fields: String,
    /// Why, as the operator said, each purge's reason after the one before (`; `).
    pub reason: String,
    /// When the last purge was made.
    pub at: Timestamp,
}

/// What a purged text reads as.
pub const PURGED: &str = "(purged)";

/// Where an entry is in its life, apart from the schema's statuses (which describe the rule,
/// not whether the registry still hands it out). Nothing is ever deleted: a retired or merged
/// entry keeps its id, history and fingerprint, so the same request still finds it and its id
/// is never handed out again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// In use: the state of every entry until it is retired or merged.
    #[default]
    Active,
    /// Out of use, kept with its history; `registry list` leaves it out unless asked.
    Retired,
    /// A mistaken duplicate of the entry named, which is the one to use: files carrying this
    /// entry's header are re-pointed to that one when their headers are refreshed.
    Merged(EntryId),
}

impl Lifecycle {
    /// `active`, `retired` or `merged`, as JSON and the export carry it.
    pub fn name(&self) -> &'static str {
        match self {
            Lifecycle::Active => "active",
            Lifecycle::Retired => "retired",
            Lifecycle::Merged(_) => "merged",
        }
    }

    /// Whether the entry is in use.
    pub fn is_active(&self) -> bool {
        matches!(self, Lifecycle::Active)
    }

    /// The entry this one is merged into, if it is.
    pub fn merged_into(&self) -> Option<&EntryId> {
        match self {
            Lifecycle::Merged(target) => Some(target),
            _ => None,
        }
    }

    /// The state a name and an optional target describe, as [`Lifecycle::name`] and
    /// [`Lifecycle::merged_into`] give them.
    ///
    /// # Errors
    /// A message for an unknown name, a merge without its target, or a target without a merge.
    pub fn from_parts(name: &str, merged_into: Option<EntryId>) -> Result<Lifecycle, String> {
        match (name, merged_into) {
            ("active", None) => Ok(Lifecycle::Active),
            ("retired", None) => Ok(Lifecycle::Retired),
            ("merged", Some(target)) => Ok(Lifecycle::Merged(target)),
            ("merged", None) => Err("a merged entry needs `merged_into`".to_owned()),
            ("active" | "retired", Some(_)) => Err(format!(
                "`merged_into` is set but the lifecycle is `{name}`"
            )),
            (other, _) => Err(format!(
                "unknown lifecycle `{other}`: expected active, retired or merged"
            )),
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lifecycle::Merged(target) => write!(f, "merged into {target}"),
            other => f.write_str(other.name()),
        }
    }
}

/// `"lifecycle": "merged", "merged_into": "SEC-RUL-001"` (the second key only for a merge).
fn serialize_lifecycle<S: serde::Serializer>(l: &Lifecycle, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let target = l.merged_into();
    let mut m = s.serialize_map(Some(1 + usize::from(target.is_some())))?;
    m.serialize_entry("lifecycle", l.name())?;
    if let Some(target) = target {
        m.serialize_entry("merged_into", target)?;
    }
    m.end()
}

/// How an entry was registered: which derivation gave its fingerprint, and where each header
/// field and the version came from. The fingerprint covers the request's *given* fields only,
/// so with this record the fingerprint can be recomputed from revision 1 and checked, which is
/// what import does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Provenance {
    /// The fingerprint derivation (see [`crate::derive_fingerprint`]).
    pub derivation: u8,
    pub fields: Fields<Source>,
    /// `Given` or `Default` (or `Unrecorded`).
    pub version: Source,
}

/// The stable number of a source in [`Provenance::pack`]; never renumber.
fn source_number(s: Source) -> u32 {
    match s {
        Source::Given => 0,
        Source::Model => 1,
        Source::Keyword => 2,
        Source::Default => 3,
        Source::Unrecorded => 4,
    }
}

fn source_from_number(n: u32) -> Option<Source> {
    Some(match n {
        0 => Source::Given,
        1 => Source::Model,
        2 => Source::Keyword,
        3 => Source::Default,
        4 => Source::Unrecorded,
        _ => return None,
    })
}

impl Provenance {
    /// Provenance as one number, the form storage and the plugin boundary keep: bits 0 to 3
    /// the derivation (never 0), then 3 bits per source, the four fields in header order and
    /// the version. [`Provenance::unpack`] reads it back; 0 stands for "not recorded".
    pub fn pack(&self) -> u32 {
        let mut n = u32::from(self.derivation & 0xF);
        let sources = Field::ALL
            .iter()
            .map(|&f| self.fields[f])
            .chain([self.version]);
        for (i, s) in sources.enumerate() {
            n |= source_number(s) << (4 + 3 * i);
        }
        n
    }

    /// Packs an optional provenance: 0 for `None`.
    pub fn pack_option(p: Option<&Provenance>) -> u32 {
        p.map_or(0, Provenance::pack)
    }

    /// Reads what [`Provenance::pack`] wrote.
    ///
    /// # Errors
    /// A message when the number holds an unknown derivation or source, or stray bits: the
    /// stored value is damaged or written by a newer build.
    pub fn unpack(n: u32) -> Result<Option<Provenance>, String> {
        if n == 0 {
            return Ok(None);
        }
        if n >> 19 != 0 {
            return Err(format!("provenance {n:#x} has unknown bits set"));
        }
        let derivation = u8::try_from(n & 0xF).unwrap_or(0);
        if !(1..=crate::FINGERPRINT_DERIVATION).contains(&derivation) {
            return Err(format!("unknown fingerprint derivation {derivation}"));
        }
        let source = |i: u32| {
            source_from_number((n >> (4 + 3 * i)) & 0x7)
                .ok_or_else(|| format!("provenance {n:#x} holds an unknown source"))
        };
        Ok(Some(Provenance {
            derivation,
            fields: Fields {
                scope: source(0)?,
                kind: source(1)?,
                variant: source(2)?,
                status: source(3)?,
            },
            version: source(4)?,
        }))
    }

    /// The fingerprint the registration request of `first` (an entry's revision 1) had, if
    /// this is how it was registered; `None` for an unknown derivation.
    pub fn fingerprint_of(&self, first: &Entry) -> Option<Fingerprint> {
        let f = &first.header.fields;
        let given = Fields::from_fn(|field| {
            (self.fields[field] == Source::Given).then_some(f[field].as_str())
        });
        let version = (self.version == Source::Given).then_some(first.header.version.as_str());
        derive_fingerprint(
            self.derivation,
            &first.title,
            &given,
            version,
            &first.context,
        )
    }

    /// Finds how an entry recorded without provenance was registered: the derivation and the
    /// set of given fields and version whose fingerprint, recomputed from revision 1, is the one
    /// stored. Fields that were not given are `Unrecorded` (which of a model, a keyword rule or
    /// a default chose them is lost). `None` when no combination gives the stored fingerprint:
    /// the fingerprint does not belong to this entry's request.
    ///
    /// 64 candidates at most (two derivations, 32 sets of given values): about 0.1 ms.
    pub fn recover(first: &Entry) -> Option<Provenance> {
        for derivation in 1..=crate::FINGERPRINT_DERIVATION {
            for mask in 0u32..32 {
                let given = |bit: u32| {
                    if mask & (1 << bit) != 0 {
                        Source::Given
                    } else {
                        Source::Unrecorded
                    }
                };
                let candidate = Provenance {
                    derivation,
                    fields: Fields {
                        scope: given(0),
                        kind: given(1),
                        variant: given(2),
                        status: given(3),
                    },
                    version: given(4),
                };
                if candidate.fingerprint_of(first) == Some(first.fingerprint) {
                    return Some(candidate);
                }
            }
        }
        None
    }
}

impl Serialize for Provenance {
    /// `{"fingerprint": 2, "scope": "given", "type": "model", …, "version": "default"}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("fingerprint", &self.derivation)?;
        for f in Field::ALL {
            m.serialize_entry(f.name(), &self.fields[f])?;
        }
        m.serialize_entry("version", &self.version)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            fingerprint: u8,
            scope: Source,
            #[serde(rename = "type")]
            kind: Source,
            variant: Source,
            status: Source,
            version: Source,
        }
        let r = Raw::deserialize(d)?;
        if !(1..=crate::FINGERPRINT_DERIVATION).contains(&r.fingerprint) {
            return Err(serde::de::Error::custom(format!(
                "unknown fingerprint derivation {}: this build knows 1 to {}",
                r.fingerprint,
                crate::FINGERPRINT_DERIVATION
            )));
        }
        Ok(Provenance {
            derivation: r.fingerprint,
            fields: Fields {
                scope: r.scope,
                kind: r.kind,
                variant: r.variant,
                status: r.status,
            },
            version: r.version,
        })
    }
}

impl Entry {
    /// An entry of empty strings, to fill in place (a decoder's, a kept copy's).
    pub fn blank() -> Entry {
        Entry {
            header: Header {
                fields: Fields::default(),
                id: EntryId::new(String::new(), 0),
                version: String::new(),
            },
            title: String::new(),
            context: Context::default(),
            config: String::new(),
            hash: ContentHash([0; 32]),
            previous: None,
            purge: None,
            author: None,
            fingerprint: Fingerprint([0; 16]),
            revision: 0,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            provenance: None,
            lifecycle: Lifecycle::Active,
        }
    }

    /// The content hash of the given parts of an active entry; [`Entry::hash`] always equals
    /// this for them (see [`Entry::compute_hash_in`] for the others).
    pub fn compute_hash(
        header: &Header,
        title: &str,
        context: &Context,
        config: &str,
    ) -> ContentHash {
        Entry::compute_hash_in(header, title, context, config, &Lifecycle::Active)
    }

    /// The content hash of the given parts in a lifecycle state. An active entry's hash is
    /// what it was before lifecycles existed, so every stored hash keeps verifying; any other
    /// state is appended after the config (`\0\0retired`, `\0\0merged SEC-RUL-001`), so
    /// retiring or merging an entry changes its hash and a forged state fails the check.
    pub fn compute_hash_in(
        header: &Header,
        title: &str,
        context: &Context,
        config: &str,
        lifecycle: &Lifecycle,
    ) -> ContentHash {
        Entry::compute_hash_after(header, title, context, config, lifecycle, None)
    }

    /// The hash of a revision that follows the revision whose hash is `previous`: its content
    /// hash with `\0\0previous ` and the previous hash's 32 bytes appended, so the revision's
    /// hash covers the whole history before it. With `previous` `None`, the content hash.
    pub fn compute_hash_after(
        header: &Header,
        title: &str,
        context: &Context,
        config: &str,
        lifecycle: &Lifecycle,
        previous: Option<&ContentHash>,
    ) -> ContentHash {
        Entry::compute_hash_full(header, title, context, config, lifecycle, previous, None)
    }

    /// [`Entry::compute_hash_after`] of a revision that may have been purged: the purge record
    /// appended last (`\0\0purged `, the original hash's 32 bytes, the fields, the reason and
    /// the time, each ended by `\0`), so a forged or altered record fails the check.
    pub fn compute_hash_full(
        header: &Header,
        title: &str,
        context: &Context,
        config: &str,
        lifecycle: &Lifecycle,
        previous: Option<&ContentHash>,
        purge: Option<&Purge>,
    ) -> ContentHash {
        let mut h = blake3::Hasher::new();
        h.update(b"registry-entry-v1\0");
        // The readable header, written straight into the hasher rather than built first.
        let f = &header.fields;
        write!(
            h,
            "[{}][{}][{}][{}][{}][{}]",
            f.scope, f.kind, f.variant, header.id, header.version, f.status
        )
        .expect("writing into a hasher never fails");
        h.update(b"\0");
        h.update(title.as_bytes());
        h.update(b"\0");
        for (k, v) in context.iter() {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        h.update(b"\0");
        h.update(config.as_bytes());
        match lifecycle {
            Lifecycle::Active => {}
            Lifecycle::Retired => {
                h.update(b"\0\0retired");
            }
            Lifecycle::Merged(target) => {
                write!(h, "\0\0merged {target}").expect("writing into a hasher never fails");
            }
        }
        if let Some(previous) = previous {
            h.update(b"\0\0previous ");
            h.update(&previous.0);
        }
        if let Some(p) = purge {
            h.update(b"\0\0purged ");
            h.update(&p.original.0);
            write!(h, "{}\0{}\0{}\0", p.fields, p.reason, p.at.0)
                .expect("writing into a hasher never fails");
        }
        ContentHash(*h.finalize().as_bytes())
    }

    /// The hash of this revision's content alone, its lifecycle included: what its hash would be
    /// without a link to the revision before or a purge record. Two revisions with the same
    /// content have the same one.
    pub fn content_hash_without_chain(&self) -> ContentHash {
        Entry::compute_hash_in(
            &self.header,
            &self.title,
            &self.context,
            &self.config,
            &self.lifecycle,
        )
    }

    /// The hash the next revision records as its previous one: this revision's, or for a
    /// purged revision the one it had before the purge.
    pub fn link(&self) -> ContentHash {
        self.purge.as_ref().map_or(self.hash, |p| p.original)
    }

    /// The hash this revision should have: of its content, its lifecycle included, and of the
    /// previous revision's hash when it records one.
    pub fn content_hash(&self) -> ContentHash {
        Entry::compute_hash_full(
            &self.header,
            &self.title,
            &self.context,
            &self.config,
            &self.lifecycle,
            self.previous.as_ref(),
            self.purge.as_ref(),
        )
    }

    /// Whether the stored hash matches the content: false means the entry was altered or damaged.
    pub fn verify(&self) -> bool {
        self.content_hash() == self.hash
    }
}

fn serialize_header<S: serde::Serializer>(h: &Header, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(8))?;
    m.serialize_entry("id", &h.id)?;
    m.serialize_entry("header", &h.readable())?;
    m.serialize_entry("grepable", &h.grepable())?;
    m.serialize_entry("scope", &h.fields.scope)?;
    m.serialize_entry("type", &h.fields.kind)?;
    m.serialize_entry("variant", &h.fields.variant)?;
    m.serialize_entry("status", &h.fields.status)?;
    m.serialize_entry("version", &h.version)?;
    m.end()
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex = s.strip_prefix("blake3:").unwrap_or(&s);
        parse_hex(hex).map(ContentHash).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad hash `{s}`: expected blake3: and 64 hexadecimal digits"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hex(&s).map(Fingerprint).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad fingerprint `{s}`: expected 32 hexadecimal digits"
            ))
        })
    }
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::EntryId;

    #[test]
    fn hashes_are_written_in_lowercase_hexadecimal() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let hash = ContentHash(bytes);
        assert_eq!(hash.to_string(), format!("blake3:{digits}"));
        assert_eq!(
            serde_json::to_string(&hash).expect("a string"),
            format!("\"blake3:{digits}\"")
        );
        let fp = Fingerprint(std::array::from_fn(|i| 255 - i as u8));
        let digits: String = fp.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("{fp:?}"), digits);
        assert_eq!(format!("{:<34}|", fp), format!("{digits}  |"));
    }

    #[test]
    fn provenance_packs_into_one_number_and_back() {
        let sources = [
            Source::Given,
            Source::Model,
            Source::Keyword,
            Source::Default,
            Source::Unrecorded,
        ];
        for (i, &a) in sources.iter().enumerate() {
            let b = sources[(i + 1) % sources.len()];
            let p = Provenance {
                derivation: 1 + (i % 2) as u8,
                fields: Fields {
                    scope: a,
                    kind: b,
                    variant: a,
                    status: b,
                },
                version: b,
            };
            assert_eq!(Provenance::unpack(p.pack()), Ok(Some(p)));
            let json = serde_json::to_string(&p).expect("serializes");
            assert_eq!(serde_json::from_str::<Provenance>(&json).expect("reads"), p);
        }
        assert_eq!(Provenance::unpack(0), Ok(None));
        for bad in [0x3, 0x7 << 4 | 1, 1 << 19 | 1] {
            assert!(Provenance::unpack(bad).is_err(), "{bad:#x}");
        }
    }

    #[test]
    fn provenance_is_recovered_from_the_fingerprint_alone() {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", 1),
            version: "v3.1".into(),
        };
        let context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid");
        let truth = Provenance {
            derivation: 1,
            fields: Fields {
                scope: Source::Given,
                kind: Source::Unrecorded,
                variant: Source::Unrecorded,
                status: Source::Given,
            },
            version: Source::Given,
        };
        let mut first = Entry {
            hash: Entry::compute_hash(&header, "Rotate keys", &context, ""),
            previous: None,
            purge: None,
            author: None,
            header,
            title: "Rotate keys".into(),
            context,
            config: String::new(),
            fingerprint: Fingerprint([0; 16]),
            revision: 1,
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
            provenance: None,
            lifecycle: crate::Lifecycle::Active,
        };
        first.fingerprint = truth.fingerprint_of(&first).expect("known derivation");
        assert_eq!(Provenance::recover(&first), Some(truth));
        first.fingerprint = Fingerprint([7; 16]);
        assert_eq!(Provenance::recover(&first), None, "a made-up fingerprint");
    }

    /// Stored hashes must keep verifying: the hash is blake3 over the readable header, title,
    /// context pairs and config, as first defined, whatever way the header is written in.
    #[test]
    fn the_hash_covers_the_readable_header_as_first_defined() {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "MULTI-ETL".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-MUL", 42),
            version: "v2.9".into(),
        };
        for (title, pairs, config) in [
            (
                "Rotate keys",
                vec![("env", "prod"), ("team", "ops")],
                "a: 1\n",
            ),
            ("Ünïcode — title", vec![], ""),
        ] {
            let context = Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
                .expect("valid context");
            let mut h = blake3::Hasher::new();
            h.update(b"registry-entry-v1\0");
            h.update(header.readable().as_bytes());
            h.update(b"\0");
            h.update(title.as_bytes());
            h.update(b"\0");
            for (k, v) in context.iter() {
                h.update(k.as_bytes());
                h.update(b"=");
                h.update(v.as_bytes());
                h.update(b"\0");
            }
            h.update(b"\0");
            h.update(config.as_bytes());
            assert_eq!(
                Entry::compute_hash(&header, title, &context, config),
                ContentHash(*h.finalize().as_bytes()),
                "{title}"
            );
        }
    }
}
