//! Key names of one shard and the sortable form of an id. Which numbers a shard hands out is the
//! rule every storage keeps, [`registry_core::rules::Numbering`].
//!
//! Every key of registry shard `s` starts with the hash tag `{<namespace>/<s>}`, so Redis Cluster
//! puts all of them in one hash slot and a Lua script may touch any of them atomically. The
//! layout is written out in the crate documentation.

use registry_core::EntryId;

/// The key prefix of one shard: `{<namespace>/<shard>}:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

/// The hash slots of Redis Cluster.
pub(crate) const SLOTS: u32 = 16_384;

impl Keys {
    /// The keys of a shard of storage format 1: the tag `{<namespace>/<shard>}`, whose slots
    /// fall where CRC16 puts them (12 shards landed 5/5/2 on three masters).
    pub(crate) fn new(namespace: &str, shard: u32) -> Keys {
        Keys {
            prefix: format!("{{{namespace}/{shard}}}:"),
        }
    }

    /// The keys of a shard of storage format 2, spread evenly over the slots: the tag is
    /// `{<namespace>/<shard>/<n>}` with the smallest `n` whose slot is in the shard's
    /// [`slot_range`]. A cluster whose masters own equal runs of slots (as `redis-cli --cluster
    /// create` gives them) then holds an equal number of shards on each master when the shard
    /// count is a multiple of the masters. About `shards` tags are tried per shard (16,384 for
    /// shard 0), each one CRC16 of a short string.
    pub(crate) fn balanced(namespace: &str, shard: u32, shards: u32) -> Keys {
        let range = slot_range(shard, shards);
        let tag = (0u64..)
            .map(|n| format!("{namespace}/{shard}/{n}"))
            .find(|tag| range.contains(&slot(tag.as_bytes())))
            .unwrap_or_default();
        Keys {
            prefix: format!("{{{tag}}}:"),
        }
    }

    /// The prefix every key of the shard starts with; the scripts build key names from it.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash holding the shard's layout; scripts are routed by it (any key of the shard would
    /// do, since all share one slot).
    pub(crate) fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    /// The hash of the shard's dictionaries, by id.
    pub(crate) fn dictionaries(&self) -> String {
        format!("{}dicts", self.prefix)
    }

    /// The set of every member, in id order.
    pub(crate) fn ids(&self) -> String {
        format!("{}ids", self.prefix)
    }

    /// The list of an entry's encoded revisions, oldest first.
    pub(crate) fn entry(&self, member: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 2 + member.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.extend_from_slice(b"e:");
        key.extend_from_slice(member);
        key
    }
}

/// The slots a format 2 shard's tag may fall in: `[s * 16384 / K, (s + 1) * 16384 / K)` for
/// shard `s` of `K`, except shard 0, whose tag is in slot 0 whatever `K` is: a host opens shard
/// 0 before it knows the shard count, which shard 0 records.
pub(crate) fn slot_range(shard: u32, shards: u32) -> std::ops::Range<u32> {
    if shard == 0 || shards == 0 {
        return 0..1;
    }
    let k = u64::from(shards.min(SLOTS));
    let from = u64::from(shard) * u64::from(SLOTS) / k;
    let to = (u64::from(shard) + 1) * u64::from(SLOTS) / k;
    // Both are at most 16,384.
    u32::try_from(from).unwrap_or(SLOTS)..u32::try_from(to).unwrap_or(SLOTS)
}

/// The hash slot of a key without braces: CRC16-XMODEM modulo 16,384, as Redis Cluster
/// computes it (the `redis` crate keeps its own private; a test holds this one to it).
pub(crate) fn slot(key: &[u8]) -> u32 {
    let mut crc: u16 = 0;
    for &byte in key {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    u32::from(crc) % SLOTS
}

/// Whether an id prefix can be stored: not empty, and no byte at or below the space, which
/// [`member`] uses as the separator that makes members sort like ids.
pub(crate) fn storable_prefix(prefix: &str) -> bool {
    !prefix.is_empty() && prefix.bytes().all(|b| b > b' ')
}

/// The member naming an id in the shard's sorted sets, and the tail of its entry key:
/// `<prefix> <count of digits as a letter, a = 1><digits>`, e.g. `SEC-RUL b42` for
/// `SEC-RUL-042` and `SEC-RUL d1000` for `SEC-RUL-1000`.
///
/// Members compare bytewise (`ZRANGEBYLEX`) in the order of ids: by prefix first (the space
/// sorts below every byte a storable prefix has, so a prefix sorts before its extensions), then
/// by number (fewer digits first, then digit by digit). Readable in `redis-cli`, and 12 bytes for
/// a typical id where a zero-padded 20-digit number would take 28.
pub(crate) fn member(id: &EntryId) -> Vec<u8> {
    let digits = id.number().to_string();
    let mut out = Vec::with_capacity(id.prefix().len() + 2 + digits.len());
    out.extend_from_slice(id.prefix().as_bytes());
    out.push(b' ');
    // A u64 has at most 20 digits: `a` to `t`.
    out.push(b'a' + (digits.len() as u8 - 1));
    out.extend_from_slice(digits.as_bytes());
    out
}

/// A member as an id in the usual form (`SEC-RUL b42` as `SEC-RUL-042`), for messages; a member
/// that [`member`] did not make is shown as it is.
pub(crate) fn member_text(member: &[u8]) -> String {
    match parse_member(member) {
        Some(id) => id.to_string(),
        None => String::from_utf8_lossy(member).into_owned(),
    }
}

/// The id a member names, if it is one [`member`] makes.
pub(crate) fn parse_member(member: &[u8]) -> Option<EntryId> {
    let text = std::str::from_utf8(member).ok()?;
    let (prefix, rest) = text.rsplit_once(' ')?;
    let mut chars = rest.chars();
    let count = chars.next()?;
    let digits = chars.as_str();
    if !storable_prefix(prefix)
        || digits.len() != (count as usize).checked_sub('a' as usize)? + 1
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(EntryId::new(prefix, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_sort_like_ids() {
        let mut ids = vec![
            EntryId::new("SEC-RUL", 1000),
            EntryId::new("SEC-RUL", 999),
            EntryId::new("SEC-RUL", 1),
            EntryId::new("SEC-RUL", 0),
            EntryId::new("SEC-RULE", 1),
            EntryId::new("OPS-SCR", 50),
            EntryId::new("SEC-RU", 7),
            EntryId::new("SEC-RUL", u64::MAX),
            EntryId::new("SEC-RUL", 10),
            EntryId::new("SEC-RUL", 9),
        ];
        let mut members: Vec<Vec<u8>> = ids.iter().map(member).collect();
        ids.sort();
        members.sort();
        let back: Vec<EntryId> = members
            .iter()
            .map(|m| parse_member(m).expect("made by member"))
            .collect();
        assert_eq!(back, ids);
        assert_eq!(member(&EntryId::new("SEC-RUL", 42)), b"SEC-RUL b42");
        assert_eq!(member(&EntryId::new("SEC-RUL", 1000)), b"SEC-RUL d1000");
    }

    #[test]
    fn bad_members_do_not_parse() {
        for bad in [
            &b"SEC-RUL"[..],
            b"SEC-RUL b4",
            b"SEC-RUL a42",
            b" b42",
            b"SEC-RUL bx2",
            b"SEC-RUL ",
            b"\xff b42",
        ] {
            assert_eq!(parse_member(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn storable_prefixes() {
        for (prefix, ok) in [
            ("SEC-RUL", true),
            ("A_B", true),
            ("", false),
            ("SEC RUL", false),
            ("a\tb", false),
        ] {
            assert_eq!(storable_prefix(prefix), ok, "{prefix:?}");
        }
    }

    #[test]
    fn slots_are_redis_clusters() {
        // Redis Cluster's specification: "123456789" is in slot 12739 (CRC16 0x31C3).
        assert_eq!(slot(b"123456789"), 0x31c3 % SLOTS);
        for key in ["registry/0", "a", "", "ünï/3/17", "test-dicts-1/0"] {
            let ours = u16::try_from(slot(key.as_bytes())).expect("below 16384");
            assert_eq!(
                redis::cluster_routing::Slot::new(ours),
                Some(redis::cluster_routing::Slot::for_key(key.as_bytes())),
                "{key}"
            );
        }
    }

    #[test]
    fn balanced_tags_spread_shards_evenly_over_the_slots() {
        for shards in [1u32, 3, 4, 12, 40] {
            let mut per_master = [0u32; 3];
            for shard in 0..shards {
                let keys = Keys::balanced("registry", shard, shards);
                let tag = keys
                    .prefix()
                    .strip_prefix('{')
                    .and_then(|t| t.strip_suffix("}:"))
                    .expect("a tag");
                assert!(tag.starts_with(&format!("registry/{shard}/")), "{tag}");
                let s = slot(tag.as_bytes());
                assert!(slot_range(shard, shards).contains(&s), "{tag} in {s}");
                // Three masters owning equal runs of slots, as `--cluster create` makes them.
                per_master[(s * 3 / SLOTS) as usize] += 1;
            }
            if shards % 3 == 0 {
                assert_eq!(per_master, [shards / 3; 3], "{shards} shards");
            }
        }
        // Shard 0's tag does not depend on the shard count.
        assert_eq!(Keys::balanced("r", 0, 5), Keys::balanced("r", 0, 12));
    }

    #[test]
    fn keys_share_the_shard_tag() {
        let keys = Keys::new("registry", 3);
        assert_eq!(keys.prefix(), "{registry/3}:");
        assert_eq!(keys.meta(), "{registry/3}:meta");
        assert_eq!(
            keys.entry(&member(&EntryId::new("SEC-RUL", 42))),
            b"{registry/3}:e:SEC-RUL b42"
        );
    }
}
