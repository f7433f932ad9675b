//! Entries: a header, its title and context, the generated config, and the bookkeeping that makes
//! history and idempotency work (content hash, request fingerprint, revision, times).

use std::fmt;
use std::io::Write as _;

use serde::{Deserialize, Serialize};

use crate::header::Header;
use crate::request::Context;
use crate::time::Timestamp;

/// blake3 of an entry's content: its header, title, context and config (not its times or revision).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

/// The identity of a registration request (see [`crate::Request::fingerprint`]): 128 bits of blake3.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

macro_rules! hex_type {
    ($t:ty, $label:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($label)?;
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
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
    pub hash: ContentHash,
    pub fingerprint: Fingerprint,
    /// 1 for the registered entry, n+1 for each update.
    pub revision: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Entry {
    /// The content hash of the given parts; [`Entry::hash`] always equals this for them.
    pub fn compute_hash(
        header: &Header,
        title: &str,
        context: &Context,
        config: &str,
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
        ContentHash(*h.finalize().as_bytes())
    }

    /// Whether the stored hash matches the content: false means the entry was altered or damaged.
    pub fn verify(&self) -> bool {
        Entry::compute_hash(&self.header, &self.title, &self.context, &self.config) == self.hash
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
    use crate::header::{EntryId, Fields};

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
