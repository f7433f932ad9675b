//! The rules every storage keeps the same way, written once: which shard hands out a number,
//! what a history given to [`Storage::restore`](crate::Storage::restore) must look like, what a
//! batch may not name twice, and the errors (code and message) a storage reports when one of
//! them is broken.
//!
//! Storages differ in where they keep entries (a redb file, a Redis hash slot, memory), never in
//! these rules: the pipeline sends an id to the shard [`shard_of`] names, so a storage whose
//! numbering disagreed would hand out ids another shard also hands out, and a restore that one
//! storage accepts and another refuses would make an export's fate depend on the deployment.
//! Each storage (and the testkit's reference storage) once had its own copy of each rule, and
//! the copies' messages had drifted apart; now they call this module, and the tests here pin
//! every message.
//!
//! Design decision: the errors are [`StageError`]s (a code and one line), the form in which a
//! storage's errors cross the plugin boundary; callers branch on the code, never on the text.
//! What a history must satisfy is defined by [`integrity`]: [`check_history`] here is its shape
//! part, as a storage reports it, not a second definition.

use std::collections::HashSet;
use std::fmt::Display;

use crate::entry::{Entry, Fingerprint};
use crate::error::{ErrorCode, StageError, StageResult};
use crate::header::EntryId;
use crate::integrity;
use crate::stage::{Meta, Restored};

/// The shard of `shards` that hands out `number`: `(number - 1) % shards`. `None` for number 0
/// (numbers start at 1) and for 0 shards (a registry has at least one).
pub fn shard_of(number: u64, shards: u32) -> Option<u32> {
    let residue = number.checked_sub(1)?.checked_rem(u64::from(shards))?;
    // Below `shards`, a `u32`.
    u32::try_from(residue).ok()
}

/// The numbers one shard hands out.
///
/// - Interleaved (`dense` false, the first storage format): shard `shard` of `shards` hands out,
///   per id prefix, the numbers `n` with `(n - 1) % shards == shard`, so ids never collide across
///   shards and an id names its shard ([`shard_of`]).
/// - Dense: shard 0 hands out every number, `1, 2, 3, …`; the other shards hand out none, but
///   hold (and may restore) any number the pipeline sends them.
///
/// Every method is total: a numbering whose shard is not below its shard count owns no number
/// and hands out none, and every overflow past `u64::MAX` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Numbering {
    pub shard: u32,
    pub shards: u32,
    pub dense: bool,
}

impl Numbering {
    /// Whether this shard may hold `number`: hands it out (interleaved), or holds what it is
    /// sent (dense).
    pub fn owns(self, number: u64) -> bool {
        if self.dense {
            return self.shard < self.shards && number > 0;
        }
        self.shard < self.shards && shard_of(number, self.shards) == Some(self.shard)
    }

    /// Whether this shard allocates numbers at all: every shard of an interleaved registry,
    /// only shard 0 of a dense one.
    pub fn allocates(self) -> bool {
        self.shard < self.shards && (!self.dense || self.shard == 0)
    }

    /// The smallest number above `last` that this shard hands out: the next one to allocate when
    /// `last` is the highest handed out or stored (which may be another shard's, raised by a
    /// restore). `None` when there is none up to `u64::MAX`, or the shard allocates nothing.
    pub fn next_after(self, last: u64) -> Option<u64> {
        if !self.allocates() {
            return None;
        }
        if self.dense {
            return last.checked_add(1);
        }
        let (s, k) = (u64::from(self.shard), u64::from(self.shards));
        // Work with m = n - 1, which must be at least `last` and leave the remainder s; s + k
        // is below 2^33, so the sum cannot overflow.
        let m = last.checked_add((s + k - last % k) % k)?;
        m.checked_add(1)
    }

    /// The `count`-th number (from 1) this shard hands out (interleaved:
    /// `shard + 1 + shards * (count - 1)`), for a store that keeps how many numbers it handed
    /// out rather than the last one. `None` for count 0, past `u64::MAX`, and when the shard
    /// allocates nothing.
    pub fn nth(self, count: u64) -> Option<u64> {
        if !self.allocates() || count == 0 {
            return None;
        }
        if self.dense {
            return Some(count);
        }
        let step = count.checked_sub(1)?.checked_mul(u64::from(self.shards))?;
        step.checked_add(u64::from(self.shard) + 1)
    }

    /// How many of this shard's numbers are at most `number`: the count a store keeping counts
    /// must reach so that it never hands out `number` or anything below it.
    pub fn count_through(self, number: u64) -> u64 {
        if !self.allocates() {
            return 0;
        }
        if self.dense {
            return number;
        }
        let first = u64::from(self.shard) + 1;
        match number.checked_sub(first) {
            Some(above) => above / u64::from(self.shards) + 1,
            None => 0,
        }
    }
}

/// How many numbers one block of recorded locations covers ([`Storage::place`] in a dense
/// registry): a block is a byte string of two bytes per number, little-endian shard indexes,
/// as long as its highest recorded number needs; numbers past its end are in shard 0.
///
/// Design decision: a block of 4,096 numbers is 8 KiB at most, one redb value or one Redis
/// string, rewritten once per batch that places entries in it. A row per number cost redb
/// about 30 bytes each (key, value and page overhead) against 2 here, and a Redis hash field
/// about 60.
///
/// [`Storage::place`]: crate::Storage::place
pub const LOCATION_BLOCK: u64 = 4096;

/// The block of a number's location and its byte offset in that block.
pub fn location_slot(number: u64) -> (u64, usize) {
    let offset = (number % LOCATION_BLOCK) * 2;
    // Below 2 * LOCATION_BLOCK.
    (number / LOCATION_BLOCK, offset as usize)
}

/// The shard a location block records at `offset` (from [`location_slot`]).
pub fn read_location(block: &[u8], offset: usize) -> u32 {
    match block.get(offset..offset + 2) {
        Some(&[lo, hi]) => u32::from(u16::from_le_bytes([lo, hi])),
        _ => 0,
    }
}

/// Records `shard` at `offset` of a location block, growing it as needed.
///
/// # Errors
/// `Invalid` for a shard index that two bytes cannot hold (a registry has at most 1,024).
pub fn write_location(block: &mut Vec<u8>, offset: usize, shard: u32) -> StageResult<()> {
    let shard = u16::try_from(shard).map_err(|_| {
        StageError::new(
            ErrorCode::Invalid,
            format!("shard {shard} cannot be recorded: a registry has at most 65,536 shards"),
        )
    })?;
    if block.len() < offset + 2 {
        block.resize(offset + 2, 0);
    }
    block[offset..offset + 2].copy_from_slice(&shard.to_le_bytes());
    Ok(())
}

/// `Invalid`: a shard of a dense registry other than shard 0 was asked to allocate or record
/// locations; `shard` names it.
pub fn not_shard_zero(shard: &dyn Display) -> StageError {
    StageError::new(
        ErrorCode::Invalid,
        format!("{shard} does not number ids: shard 0 numbers every id of this registry"),
    )
}

/// Checks a [`Storage::place`](crate::Storage::place) call's arguments: as many shards as ids,
/// each below `shards`.
///
/// # Errors
/// `Invalid`, naming the first bad one.
pub fn check_places(ids: &[EntryId], places: &[u32], shards: u32) -> StageResult<()> {
    if ids.len() != places.len() {
        return Err(StageError::new(
            ErrorCode::Invalid,
            format!("{} ids were given {} shards", ids.len(), places.len()),
        ));
    }
    for (id, &shard) in ids.iter().zip(places) {
        if shard >= shards || id.number() == 0 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!("entry {id} cannot be placed in shard {shard} of {shards}"),
            ));
        }
    }
    Ok(())
}

/// Checks that an entry given to `insert` is new: revision 1.
///
/// # Errors
/// `Invalid`, naming the entry and its revision.
pub fn check_new(entry: &Entry) -> StageResult<()> {
    if entry.revision == 1 {
        return Ok(());
    }
    Err(StageError::new(
        ErrorCode::Invalid,
        format!(
            "entry {} has revision {}: a new entry has revision 1",
            entry.header.id, entry.revision
        ),
    ))
}

/// Checks that an update's revision `given` follows the stored one: the compare-and-set of
/// `update`.
///
/// # Errors
/// [`stale_revision`] when it does not.
pub fn check_follows(id: &EntryId, stored: u32, given: u32) -> StageResult<()> {
    if stored.checked_add(1) == Some(given) {
        Ok(())
    } else {
        Err(stale_revision(id, stored, given))
    }
}

/// Checks that `given` may replace the `stored` revision it purges ([`crate::Storage::purge`]): it
/// carries a purge record, its hash verifies, and everything but its title, context and config
/// is as stored (id, revision, fingerprint, header, lifecycle, times, provenance, the link before
/// it and the link it gives the next revision), so a purge cannot move an entry in any index or
/// break its chain.
///
/// # Errors
/// `Invalid`, naming the entry, the revision and what differs.
pub fn check_purge(stored: &Entry, given: &Entry) -> StageResult<()> {
    let id = &stored.header.id;
    let why = if given.purge.is_none() {
        Some("it records no purge")
    } else if !given.verify() {
        Some("its hash does not match its content")
    } else if given.header != stored.header
        || given.revision != stored.revision
        || given.fingerprint != stored.fingerprint
        || given.lifecycle != stored.lifecycle
        || given.created_at != stored.created_at
        || given.updated_at != stored.updated_at
        || given.provenance != stored.provenance
        || given.previous != stored.previous
    {
        Some("it changes more than the title, the context and the config")
    } else if given.link() != stored.link() {
        Some("it gives the next revision another link than the stored one")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(StageError::new(
            ErrorCode::Invalid,
            format!(
                "revision {} of entry {id} cannot be purged as given: {why}",
                stored.revision
            ),
        )),
    }
}

/// The latest revision of a history given to `restore`, when its shape is right
/// ([`integrity::check_shape`]: revisions 1 to n, oldest first, one id, fingerprint and
/// provenance).
///
/// # Errors
/// `Invalid`, with the shape's flaw after the entry's id (`entry SEC-RUL-001: revision 2 of its
/// history is numbered 3: …`).
pub fn check_history(history: &[Entry]) -> StageResult<&Entry> {
    integrity::check_shape(history).map_err(|flaw| {
        let message = match history.last() {
            Some(latest) => format!("entry {}: {}", latest.header.id, flaw.message),
            None => flaw.message,
        };
        StageError::new(ErrorCode::Invalid, message)
    })
}

/// Checks that shard `numbering` hands out `id`'s number: the pipeline sends each history to the
/// shard its id names, so this catches only a history sent to the wrong shard. `shard` names
/// the shard for the message, e.g. "shard 1 (`data/shard-001.redb`)".
///
/// # Errors
/// `Invalid`, naming the id and the shard it belongs to.
pub fn check_owner(id: &EntryId, numbering: Numbering, shard: &dyn Display) -> StageResult<()> {
    let invalid = |message: String| Err(StageError::new(ErrorCode::Invalid, message));
    if numbering.dense && id.number() > 0 && numbering.shard < numbering.shards {
        return Ok(());
    }
    let k = numbering.shards;
    match shard_of(id.number(), k) {
        Some(s) if s == numbering.shard => Ok(()),
        Some(s) => invalid(format!(
            "entry {id} belongs to shard {s} of {k}, not to {shard}: the shard of number n is \
             (n - 1) % shards"
        )),
        None if id.number() == 0 => invalid(format!("entry {id} has number 0: numbers start at 1")),
        None => invalid(format!(
            "entry {id} cannot be restored into {shard}: it was opened with 0 shards"
        )),
    }
}

/// What a storage checks of each history given to `restore` before it looks at what it holds:
/// [`check_history`], then [`check_owner`]. Returns the latest revision.
///
/// # Errors
/// The first of those errors.
pub fn check_restore<'h>(
    history: &'h [Entry],
    numbering: Numbering,
    shard: &dyn Display,
) -> StageResult<&'h Entry> {
    let latest = check_history(history)?;
    check_owner(&latest.header.id, numbering, shard)?;
    Ok(latest)
}

/// The ids and fingerprints the histories of one `restore` batch have named so far.
///
/// A second claim conflicts even when the first was not written: the batch names one entry (or
/// one registration) twice, and which one was meant is not storage's to guess.
#[derive(Debug, Default)]
pub struct Claimed {
    ids: HashSet<EntryId>,
    fingerprints: HashSet<Fingerprint>,
}

impl Claimed {
    /// Claims the id and then the fingerprint of a history's latest revision. A refused id
    /// claims no fingerprint; a refused fingerprint leaves the id claimed, so a later history
    /// with that id conflicts too.
    ///
    /// # Errors
    /// [`given_twice`] or [`fingerprint_given_twice`] (`Conflict`).
    pub fn claim(&mut self, latest: &Entry) -> StageResult<()> {
        let id = &latest.header.id;
        if !self.ids.insert(id.clone()) {
            return Err(given_twice(id));
        }
        if !self.fingerprints.insert(latest.fingerprint) {
            return Err(fingerprint_given_twice(id, &latest.fingerprint));
        }
        Ok(())
    }
}

/// Whether a stored entry is the latest revision being restored: same revision, content hash
/// and fingerprint. The fingerprint counts too: an entry with the same content registered from
/// another request is not the one being restored.
pub fn same_latest(stored: &Entry, given: &Entry) -> bool {
    stored.revision == given.revision
        && stored.hash == given.hash
        && stored.fingerprint == given.fingerprint
}

/// The outcome of restoring `given` (a history's latest revision) over the `stored` latest
/// revision of its id: `Unchanged` when they are the same ([`same_latest`]).
///
/// # Errors
/// [`stored_otherwise`] when they differ.
pub fn restore_over(stored: &Entry, given: &Entry) -> StageResult<Restored> {
    if same_latest(stored, given) {
        Ok(Restored::Unchanged)
    } else {
        Err(stored_otherwise(stored, given))
    }
}

/// Checks that metadata changes leave the shard count and the numbering alone: the storage
/// records them at creation.
///
/// # Errors
/// [`shard_count_fixed`] when `changes` names [`crate::layout::SHARDS`] or
/// [`crate::layout::IDS`].
pub fn check_meta_changes(changes: &Meta) -> StageResult<()> {
    if [
        crate::layout::SHARDS,
        crate::layout::IDS,
        crate::layout::FORMAT,
    ]
    .iter()
    .any(|key| changes.contains_key(*key))
    {
        Err(shard_count_fixed())
    } else {
        Ok(())
    }
}

fn conflict(message: String) -> StageError {
    StageError::new(ErrorCode::Conflict, message)
}

/// `NotFound`: no entry has the id (an update of an unknown entry).
pub fn no_entry(id: &EntryId) -> StageError {
    StageError::new(ErrorCode::NotFound, format!("no entry with id {id}"))
}

/// `Conflict`: `insert` was given a new entry whose id another entry holds; `id` is the id, or
/// what the store knows of it.
pub fn id_taken(id: &dyn Display) -> StageError {
    conflict(format!("id {id} is already taken by another entry"))
}

/// `Conflict`: an update's revision `given` does not follow the `stored` one, as the store
/// reports it (someone else updated the entry first).
pub fn stale_revision(id: &EntryId, stored: impl Display, given: u32) -> StageError {
    conflict(format!(
        "entry {id} is at revision {stored}: revision {given} does not follow it"
    ))
}

/// `Conflict`: a `restore` batch names the id of an earlier history of the batch.
pub fn given_twice(id: &EntryId) -> StageError {
    conflict(format!(
        "entry {id} is given twice in one batch: only the first is restored"
    ))
}

/// `Conflict`: a `restore` batch names the fingerprint of an earlier history of the batch.
pub fn fingerprint_given_twice(id: &EntryId, fingerprint: &Fingerprint) -> StageError {
    conflict(format!(
        "entry {id} has the fingerprint {fingerprint} of an entry given earlier in the batch: a \
         request is registered once"
    ))
}

/// `Conflict`: a restored history's id holds another latest revision (`stored`) than the
/// history's (`given`).
pub fn stored_otherwise(stored: &Entry, given: &Entry) -> StageError {
    conflict(format!(
        "entry {} is already stored with other content: stored revision {} ({}), given revision \
         {} ({})",
        given.header.id, stored.revision, stored.hash, given.revision, given.hash
    ))
}

/// `Conflict`: a restored history's fingerprint is registered under another entry, `other`
/// (an id, or what the store knows of it).
pub fn registered_as(id: &EntryId, other: &dyn Display, fingerprint: &Fingerprint) -> StageError {
    conflict(format!(
        "the request of entry {id} is already registered as entry {other} (fingerprint \
         {fingerprint})"
    ))
}

/// `Storage`: shard `shard` has handed out its last number of `prefix` below `u64::MAX`.
pub fn exhausted(prefix: &str, shard: &dyn Display) -> StageError {
    StageError::new(
        ErrorCode::Storage,
        format!("the numbers of prefix {prefix} are exhausted in {shard}"),
    )
}

/// `Invalid`: metadata changes that name the shard count or the numbering
/// ([`check_meta_changes`]).
pub fn shard_count_fixed() -> StageError {
    StageError::new(
        ErrorCode::Invalid,
        "the shard count and the numbering are recorded at creation and cannot be set",
    )
}

/// `Config`: a store created with `key` (`shard` or `shards`) = `have` is opened with another
/// value, `want`; going on would hand out numbers another shard already gave.
pub fn layout_changed(store: &dyn Display, key: &str, have: &dyn Display, want: u32) -> StageError {
    StageError::new(
        ErrorCode::Config,
        format!(
            "{store} was created with {key} = {have}, but is opened with {key} = {want}: changing \
             the shard layout would reuse ids"
        ),
    )
}

/// `Storage`: what the store holds for an entry (`id`, or how it was found) cannot be what it
/// stored, e.g. bytes that do not decode; `store` names the file or shard.
pub fn damaged(id: &dyn Display, why: &dyn Display, store: &dyn Display) -> StageError {
    StageError::new(
        ErrorCode::Storage,
        format!("entry {id} is damaged: {why} (in {store})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{ContentHash, Provenance};
    use crate::header::{Fields, Header};
    use crate::request::Context;
    use crate::stage::Source;
    use crate::time::Timestamp;

    fn entry(number: u64, revision: u32) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "LIVE".into(),
            },
            id: EntryId::new("SEC-RUL", number),
            version: "v2.9".into(),
        };
        Entry {
            hash: ContentHash([revision as u8; 32]),
            previous: None,
            purge: None,
            author: None,
            header,
            title: "rule".into(),
            context: Context::default(),
            config: String::new(),
            fingerprint: Fingerprint([number as u8; 16]),
            revision,
            created_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            provenance: None,
            lifecycle: crate::Lifecycle::Active,
        }
    }

    /// Revisions 1 to `n` of entry `number`.
    fn history(number: u64, n: u32) -> Vec<Entry> {
        (1..=n).map(|r| entry(number, r)).collect()
    }

    /// The code and message of an error, for comparing with one line.
    fn text(e: StageError) -> (ErrorCode, String) {
        (e.code, e.message)
    }

    #[test]
    fn shard_of_is_n_minus_one_mod_k() {
        let check = |number: u64, shards: u32, want: Option<u32>| {
            assert_eq!(shard_of(number, shards), want, "{number} of {shards}");
        };
        check(1, 1, Some(0));
        check(42, 1, Some(0));
        check(1, 3, Some(0));
        check(2, 3, Some(1));
        check(3, 3, Some(2));
        check(4, 3, Some(0));
        check(1000, 7, Some(999 % 7));
        check(u64::MAX, 2, Some(0));
        // 2^64 - 2 = -1 modulo 2^32 - 1.
        check(u64::MAX, u32::MAX, Some(u32::MAX - 1));
        check(0, 3, None);
        check(5, 0, None);
    }

    #[test]
    fn next_after_keeps_the_shard_residue() {
        // (shard, shards, last allocated or stored, next)
        let check = |shard: u32, shards: u32, last: u64, want: Option<u64>| {
            let n = Numbering {
                shard,
                shards,
                dense: false,
            };
            assert_eq!(n.next_after(last), want, "{shard}/{shards} after {last}");
            if let Some(next) = want {
                assert!(n.owns(next) && next > last);
                assert!((last + 1..next).all(|m| !n.owns(m)), "not the smallest");
            }
        };
        check(0, 1, 0, Some(1));
        check(0, 1, 41, Some(42));
        check(0, 3, 0, Some(1));
        check(1, 3, 0, Some(2));
        check(2, 3, 0, Some(3));
        check(0, 3, 1, Some(4));
        check(1, 3, 2, Some(5));
        check(2, 3, 3, Some(6));
        check(2, 3, 4, Some(6));
        // A stored number of another residue raised the sequence.
        check(1, 3, 7, Some(8));
        check(1, 3, 6, Some(8));
        check(1, 3, 5, Some(8));
        check(0, 1, u64::MAX - 1, Some(u64::MAX));
        check(0, 1, u64::MAX, None);
        check(0, 2, u64::MAX - 1, Some(u64::MAX));
        check(1, 2, u64::MAX - 1, None);
        // A numbering that is no shard hands out nothing.
        check(3, 3, 0, None);
        check(0, 0, 0, None);
    }

    #[test]
    fn nth_and_count_through_agree_with_next_after() {
        // (shard, shards, count, number)
        let check = |shard: u32, shards: u32, count: u64, want: Option<u64>| {
            let n = Numbering {
                shard,
                shards,
                dense: false,
            };
            assert_eq!(n.nth(count), want, "{shard}/{shards} count {count}");
            if let Some(number) = want {
                assert!(n.owns(number));
                assert_eq!(n.count_through(number), count);
            }
        };
        check(0, 1, 1, Some(1));
        check(0, 1, 42, Some(42));
        check(0, 3, 1, Some(1));
        check(1, 3, 1, Some(2));
        check(2, 3, 1, Some(3));
        check(2, 3, 2, Some(6));
        check(1, 3, 3, Some(8));
        check(0, 1, 0, None);
        check(0, 1, u64::MAX, Some(u64::MAX));
        check(1, 3, u64::MAX, None);
        check(3, 3, 1, None);

        let n = Numbering {
            shard: 1,
            shards: 3,
            dense: false,
        };
        // 2, 5, 8 are shard 1's; a number of another shard counts the ones below it.
        for (number, count) in [(0, 0), (1, 0), (2, 1), (4, 1), (5, 2), (7, 2), (8, 3)] {
            assert_eq!(n.count_through(number), count, "{number}");
        }
        assert!(!n.owns(0) && !n.owns(3) && n.owns(5));
        assert_eq!(
            Numbering {
                shard: 0,
                shards: 0,
                dense: false,
            }
            .count_through(9),
            0
        );
        // Walking with `next_after` gives the same numbers as counting.
        let mut last = 0;
        for count in 1..=20 {
            last = n.next_after(last).expect("room");
            assert_eq!(Some(last), n.nth(count));
        }
    }

    #[test]
    fn a_dense_registry_numbers_every_id_in_shard_0() {
        let zero = Numbering {
            shard: 0,
            shards: 3,
            dense: true,
        };
        let two = Numbering { shard: 2, ..zero };
        assert_eq!(zero.next_after(0), Some(1));
        assert_eq!(zero.next_after(41), Some(42));
        assert_eq!(zero.next_after(u64::MAX), None);
        assert_eq!((zero.nth(7), zero.count_through(7)), (Some(7), 7));
        assert!(zero.allocates() && !two.allocates());
        assert_eq!(
            (two.next_after(0), two.nth(1), two.count_through(9)),
            (None, None, 0)
        );
        // Any shard holds what it is sent, and restores it.
        assert!(two.owns(1) && two.owns(5) && !two.owns(0));
        assert_eq!(
            check_owner(&EntryId::new("SEC-RUL", 4), two, &"shard 2"),
            Ok(())
        );
        assert!(check_owner(&EntryId::new("SEC-RUL", 0), two, &"shard 2").is_err());
    }

    #[test]
    fn locations_take_two_bytes_a_number_and_default_to_shard_0() {
        let (block, offset) = location_slot(LOCATION_BLOCK + 3);
        assert_eq!((block, offset), (1, 6));
        let mut bytes = Vec::new();
        assert_eq!(read_location(&bytes, offset), 0);
        write_location(&mut bytes, offset, 513).expect("fits");
        assert_eq!(bytes.len(), 8);
        assert_eq!(read_location(&bytes, offset), 513);
        assert_eq!(read_location(&bytes, 2), 0);
        assert_eq!(read_location(&bytes, 200), 0);
        let (_, last) = location_slot(LOCATION_BLOCK - 1);
        write_location(&mut bytes, last, 1).expect("fits");
        assert_eq!(bytes.len(), 2 * LOCATION_BLOCK as usize);
        assert_eq!(read_location(&bytes, offset), 513);
        assert!(write_location(&mut bytes, 0, 70_000).is_err());
        let ids = [EntryId::new("SEC-RUL", 1), EntryId::new("SEC-RUL", 2)];
        assert_eq!(check_places(&ids, &[1, 2], 3), Ok(()));
        assert!(check_places(&ids, &[1], 3).is_err());
        assert!(check_places(&ids, &[1, 3], 3).is_err());
    }

    #[test]
    fn new_entries_and_updates_are_checked() {
        assert_eq!(check_new(&entry(1, 1)), Ok(()));
        assert_eq!(
            check_new(&entry(5, 2)).map_err(text),
            Err((
                ErrorCode::Invalid,
                "entry SEC-RUL-005 has revision 2: a new entry has revision 1".to_owned()
            ))
        );
        let id = EntryId::new("SEC-RUL", 1);
        assert_eq!(check_follows(&id, 2, 3), Ok(()));
        for (stored, given) in [(2, 2), (2, 4), (u32::MAX, 0), (3, 1)] {
            assert_eq!(
                check_follows(&id, stored, given).map_err(text),
                Err((
                    ErrorCode::Conflict,
                    format!(
                        "entry SEC-RUL-001 is at revision {stored}: revision {given} does not \
                         follow it"
                    )
                ))
            );
        }
    }

    #[test]
    fn restore_checks_name_the_entry_and_what_is_wrong() {
        let two_of_three = Numbering {
            shard: 1,
            shards: 3,
            dense: false,
        };
        let check = |history: Vec<Entry>, want: Result<u64, &str>| {
            let got = check_restore(&history, two_of_three, &"shard 1 (`x`)")
                .map(|latest| latest.header.id.number())
                .map_err(|e| {
                    assert_eq!(e.code, ErrorCode::Invalid, "{}", e.message);
                    e.message
                });
            assert_eq!(got, want.map_err(str::to_owned), "{history:?}");
        };
        check(history(2, 1), Ok(2));
        check(history(5, 3), Ok(5));
        check(
            vec![],
            Err("the history has no revisions: it must hold revisions 1 to n"),
        );
        check(
            vec![entry(2, 1), entry(2, 3)],
            Err(
                "entry SEC-RUL-002: revision 2 of its history is numbered 3: a history holds \
                 revisions 1 to n, oldest first",
            ),
        );
        check(
            vec![entry(2, 2), entry(2, 1)],
            Err(
                "entry SEC-RUL-002: revision 1 of its history is numbered 2: a history holds \
                 revisions 1 to n, oldest first",
            ),
        );
        let mut other_id = entry(8, 1);
        other_id.fingerprint = entry(2, 1).fingerprint;
        check(
            vec![other_id, entry(2, 2)],
            Err(
                "entry SEC-RUL-002: revision 1 has id SEC-RUL-008: every revision has the entry's id",
            ),
        );
        let mut other_fp = entry(2, 1);
        other_fp.fingerprint = Fingerprint([0xab; 16]);
        check(
            vec![other_fp, entry(2, 2)],
            Err(
                "entry SEC-RUL-002: revision 1 has fingerprint abababababababababababababababab, \
                 the latest has 02020202020202020202020202020202: every revision has the \
                 entry's fingerprint",
            ),
        );
        let mut recorded = entry(2, 2);
        recorded.provenance = Some(Provenance {
            derivation: 2,
            fields: Fields::from_fn(|_| Source::Given),
            version: Source::Given,
        });
        check(
            vec![entry(2, 1), recorded],
            Err(
                "entry SEC-RUL-002: revision 1 records another provenance than the latest: every \
                 revision has the entry's",
            ),
        );
        check(
            history(3, 1),
            Err(
                "entry SEC-RUL-003 belongs to shard 2 of 3, not to shard 1 (`x`): the shard of \
                 number n is (n - 1) % shards",
            ),
        );
        check(
            history(0, 1),
            Err("entry SEC-RUL-000 has number 0: numbers start at 1"),
        );
        // The shape is checked before the shard.
        check(
            vec![entry(3, 2)],
            Err(
                "entry SEC-RUL-003: revision 1 of its history is numbered 2: a history holds \
                 revisions 1 to n, oldest first",
            ),
        );
        let nowhere = check_owner(
            &EntryId::new("SEC-RUL", 1),
            Numbering {
                shard: 0,
                shards: 0,
                dense: false,
            },
            &"shard 0",
        );
        assert_eq!(
            nowhere.map_err(text),
            Err((
                ErrorCode::Invalid,
                "entry SEC-RUL-001 cannot be restored into shard 0: it was opened with 0 shards"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn a_batch_claims_each_id_and_fingerprint_once() {
        let mut claimed = Claimed::default();
        let mut same_fp = entry(3, 1);
        same_fp.fingerprint = entry(1, 1).fingerprint;
        let mut got = Vec::new();
        for e in [entry(1, 1), entry(2, 1), entry(1, 2), same_fp, entry(3, 1)] {
            got.push(claimed.claim(&e).map_err(text));
        }
        let conflict = |m: String| Err((ErrorCode::Conflict, m));
        assert_eq!(
            got,
            [
                Ok(()),
                Ok(()),
                conflict(
                    "entry SEC-RUL-001 is given twice in one batch: only the first is restored"
                        .to_owned()
                ),
                conflict(format!(
                    "entry SEC-RUL-003 has the fingerprint {} of an entry given earlier in the \
                     batch: a request is registered once",
                    entry(1, 1).fingerprint
                )),
                // The history with the refused fingerprint claimed id 3.
                conflict(
                    "entry SEC-RUL-003 is given twice in one batch: only the first is restored"
                        .to_owned()
                ),
            ]
        );
    }

    #[test]
    fn restore_over_a_stored_entry() {
        let stored = entry(2, 2);
        assert_eq!(
            restore_over(&stored, &stored.clone()),
            Ok(Restored::Unchanged)
        );
        let mut other_fp = stored.clone();
        other_fp.fingerprint = Fingerprint([9; 16]);
        for given in [entry(2, 1), entry(2, 3), other_fp] {
            assert!(!same_latest(&stored, &given));
            assert_eq!(
                restore_over(&stored, &given).map_err(text),
                Err((
                    ErrorCode::Conflict,
                    format!(
                        "entry SEC-RUL-002 is already stored with other content: stored revision \
                         2 ({}), given revision {} ({})",
                        stored.hash, given.revision, given.hash
                    )
                ))
            );
        }
    }

    #[test]
    fn messages() {
        let id = EntryId::new("SEC-RUL", 42);
        let fp = Fingerprint([0x0f; 16]);
        let check = |got: StageError, code: ErrorCode, message: &str| {
            assert_eq!(text(got), (code, message.to_owned()));
        };
        check(
            no_entry(&id),
            ErrorCode::NotFound,
            "no entry with id SEC-RUL-042",
        );
        check(
            id_taken(&id),
            ErrorCode::Conflict,
            "id SEC-RUL-042 is already taken by another entry",
        );
        check(
            stale_revision(&id, -3, 4),
            ErrorCode::Conflict,
            "entry SEC-RUL-042 is at revision -3: revision 4 does not follow it",
        );
        check(
            given_twice(&id),
            ErrorCode::Conflict,
            "entry SEC-RUL-042 is given twice in one batch: only the first is restored",
        );
        check(
            fingerprint_given_twice(&id, &fp),
            ErrorCode::Conflict,
            "entry SEC-RUL-042 has the fingerprint 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f of an entry \
             given earlier in the batch: a request is registered once",
        );
        check(
            registered_as(&id, &EntryId::new("SEC-RUL", 7), &fp),
            ErrorCode::Conflict,
            "the request of entry SEC-RUL-042 is already registered as entry SEC-RUL-007 \
             (fingerprint 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f)",
        );
        check(
            exhausted("SEC-RUL", &"`data/shard-000.redb`"),
            ErrorCode::Storage,
            "the numbers of prefix SEC-RUL are exhausted in `data/shard-000.redb`",
        );
        check(
            shard_count_fixed(),
            ErrorCode::Invalid,
            "the shard count and the numbering are recorded at creation and cannot be set",
        );
        check(
            layout_changed(&"`data/shard-001.redb`", "shards", &3, 4),
            ErrorCode::Config,
            "`data/shard-001.redb` was created with shards = 3, but is opened with shards = 4: \
             changing the shard layout would reuse ids",
        );
        check(
            damaged(&id, &"truncated", &"shard 2 (`{registry/2}`)"),
            ErrorCode::Storage,
            "entry SEC-RUL-042 is damaged: truncated (in shard 2 (`{registry/2}`))",
        );
        let shards: Meta = [(crate::layout::SHARDS.to_owned(), "2".to_owned())].into();
        let other: Meta = [("state".to_owned(), "ready".to_owned())].into();
        assert_eq!(check_meta_changes(&other), Ok(()));
        assert_eq!(check_meta_changes(&shards), Err(shard_count_fixed()));
    }
}
