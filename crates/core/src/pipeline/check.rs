//! `check`: every entry and revision of every shard read and verified, and the indexes and
//! layout held against them.
//!
//! Per shard, page by page ([`CHECK_PAGE`] entries), in id order:
//!
//! - every history is read whole and verified ([`integrity::verify_history`]: revisions 1 to
//!   n, every hash, times in order, one id and fingerprint) — `damaged`;
//! - the entry is where the numbering says: in a dense registry, shard 0 records its shard
//!   ([`Storage::locate`]); in an interleaved one its number names its shard — `location`, or
//!   `duplicate-id` when the shard named holds the same id too;
//! - its fingerprint finds it where registration looks ([`Storage::find`] in the shard the
//!   router picks, and in the shards holding foreign fingerprints) — `fingerprint-index`, or
//!   `duplicate-fingerprint` when it finds another entry with the same fingerprint;
//! - each value it holds is one the schema declares — `undeclared-value`.
//!
//! Then, per shard and per field value held, the listing filtered by that value
//! ([`Storage::list`], which reads the field index) must give exactly the entries holding it —
//! `field-index`. Last, the sequence of every prefix in the shard that numbers it (shard 0 of a
//! dense registry, each shard of an interleaved one) must be at least the highest number
//! stored, or registering would hand out a number in use — `sequence` (skipped for a storage
//! that cannot show its sequences).
//!
//! Memory is bounded by a page and, per shard, a count per field value: nothing is kept per
//! entry across pages. An id or fingerprint held twice is found without a set of them all,
//! because each entry must be where the numbering and the fingerprint index say, and only one
//! of two holders can be. Only a field value whose index misses entries is listed once more,
//! holding the ids listed under it, to name the ones missing.
//! Rate: `pace` is called after every page ([`SHARD_PAGE`] entries), so a caller may sleep to bound the reads per
//! second beside a live registry.

use std::collections::BTreeMap;

use super::*;

/// One inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub shard: u32,
    /// What kind: `damaged`, `duplicate-id`, `duplicate-fingerprint`, `location`,
    /// `fingerprint-index`, `field-index`, `undeclared-value`, `sequence`, `unreadable`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EntryId>,
    pub message: String,
}

/// What `check` read and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub shards: u32,
    pub entries: u64,
    pub revisions: u64,
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    fn found(&mut self, shard: u32, code: &'static str, id: Option<&EntryId>, message: String) {
        self.findings.push(Finding {
            shard,
            code,
            id: id.cloned(),
            message,
        });
    }
}

impl Pipeline {
    /// Verifies every shard; see the module documentation. `pace(entries_so_far)` is called
    /// after every page.
    ///
    /// # Errors
    /// When a router or storage call fails other than by reading a shard; a shard that cannot
    /// be listed (an unavailable one) or an entry that cannot be read is a finding
    /// (`unreadable`), and the other shards are checked.
    pub fn check(&self, pace: &mut dyn FnMut(u64)) -> Result<CheckReport, Error> {
        let k = self.shards_u32();
        let mut report = CheckReport {
            shards: k,
            ..CheckReport::default()
        };
        // The highest number stored per (numbering shard, prefix).
        let mut highest: BTreeMap<(u32, String), u64> = BTreeMap::new();
        for shard in 0..k {
            let numbering = if self.dense { 0 } else { shard };
            let mut note = |id: &EntryId| {
                let high = highest
                    .entry((numbering, id.prefix().to_owned()))
                    .or_default();
                *high = (*high).max(id.number());
            };
            if let Err(e) = self.check_shard(shard, &mut report, &mut note, pace) {
                report.found(
                    shard,
                    "unreadable",
                    None,
                    format!("shard {shard} could not be read whole: {e}"),
                );
            }
        }
        self.check_sequences(&highest, &mut report);
        Ok(report)
    }

    /// The `sequence` findings: see the module documentation.
    fn check_sequences(&self, highest: &BTreeMap<(u32, String), u64>, report: &mut CheckReport) {
        // Each numbering shard's sequences, read once: `None` when it cannot show them (then
        // nothing is held against them) or could not be read (a finding of its own).
        let mut shown: BTreeMap<u32, Option<Vec<crate::stage::Sequence>>> = BTreeMap::new();
        for ((shard, prefix), &high) in highest {
            let sequences = shown.entry(*shard).or_insert_with(|| {
                let mut out = Vec::new();
                match self.stages.storage[*shard as usize].sequences(&[], &mut out) {
                    Ok(()) => Some(out),
                    Err(e) if e.code == ErrorCode::Invalid => None,
                    Err(e) => {
                        report.found(
                            *shard,
                            "unreadable",
                            None,
                            format!("the sequences of shard {shard} cannot be read: {e}"),
                        );
                        None
                    }
                }
            });
            let Some(sequences) = sequences else {
                continue;
            };
            let last = sequences
                .iter()
                .find(|s| &s.prefix == prefix)
                .map_or(0, |s| s.last);
            if last < high {
                let stored = EntryId::new(prefix.clone(), high);
                report.found(
                    *shard,
                    "sequence",
                    Some(&stored),
                    format!(
                        "the sequence of {prefix} is at {last} but {stored} is stored: \
                         registering would hand out a number in use (`check --repair` raises it)"
                    ),
                );
            }
        }
    }

    /// [`Pipeline::check`] of one shard.
    fn check_shard(
        &self,
        shard: u32,
        report: &mut CheckReport,
        note: &mut dyn FnMut(&EntryId),
        pace: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let storage = &*self.stages.storage[shard as usize];
        let mut values: BTreeMap<(Field, String), u64> = BTreeMap::new();
        self.walk_shard(storage, None, &mut |page| {
            self.check_page(shard, &page, report)?;
            for entry in &page {
                note(&entry.header.id);
                for (field, value) in entry.header.fields.iter() {
                    *values.entry((field, value.clone())).or_default() += 1;
                }
            }
            pace(report.entries);
            Ok(())
        })?;
        for ((field, value), count) in values {
            self.check_index(shard, field, &value, count, report, pace)?;
        }
        Ok(())
    }

    fn check_page(
        &self,
        shard: u32,
        page: &[Entry],
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let storage = &*self.stages.storage[shard as usize];
        for entry in page {
            let id = &entry.header.id;
            report.entries += 1;
            let mut history = Vec::new();
            match storage.history(id, &mut history) {
                Ok(()) => {
                    report.revisions += history.len() as u64;
                    if let Err(d) = integrity::verify_history(&history) {
                        report.found(shard, "damaged", Some(id), d.to_string());
                    } else if history.last() != Some(entry) {
                        report.found(
                            shard,
                            "damaged",
                            Some(id),
                            format!("entry {id}: its history ends with another revision than the one listed"),
                        );
                    }
                }
                Err(e) => report.found(shard, "unreadable", Some(id), e.message),
            }
            for (field, value) in entry.header.fields.iter() {
                if self.schema.canonical(field, value).is_none() {
                    report.found(
                        shard,
                        "undeclared-value",
                        Some(id),
                        format!(
                            "entry {id} has {field} `{value}`, which the schema no longer declares"
                        ),
                    );
                }
            }
        }
        self.check_locations(shard, page, report)?;
        self.check_fingerprints(shard, page, report)
    }

    /// Each entry of `page` (stored in `shard`) is where the numbering says.
    fn check_locations(
        &self,
        shard: u32,
        page: &[Entry],
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let ids: Vec<EntryId> = page.iter().map(|e| e.header.id.clone()).collect();
        let mut located = Vec::with_capacity(ids.len());
        if let Err(e) = self.locate(&ids, &mut located) {
            report.found(
                0,
                "unreadable",
                None,
                format!("the locations cannot be read: {e}"),
            );
            return Ok(());
        }
        for (id, at) in ids.iter().zip(located) {
            let at = at.and_then(|s| u32::try_from(s).ok());
            if let Some(other) = at.filter(|&a| a != shard)
                && self.holds(other, id)
            {
                report.found(
                    shard,
                    "duplicate-id",
                    Some(id),
                    format!("entry {id} is held by shard {other} and shard {shard}"),
                );
            } else if at != Some(shard) {
                let said = at.map_or_else(|| "no shard".to_owned(), |s| format!("shard {s}"));
                let by = if self.dense {
                    "shard 0 records"
                } else {
                    "its number names"
                };
                report.found(
                    shard,
                    "location",
                    Some(id),
                    format!("entry {id} is in shard {shard}, but {by} {said}"),
                );
            }
        }
        Ok(())
    }

    /// Whether shard `shard` holds an entry with this id (a read that fails counts as no).
    fn holds(&self, shard: u32, id: &EntryId) -> bool {
        let mut out = Vec::with_capacity(1);
        self.stages
            .storage
            .get(shard as usize)
            .is_some_and(|s| s.get(std::slice::from_ref(id), &mut out).is_ok())
            && out.first().is_some_and(Option::is_some)
    }

    /// Each entry of `page` is found by its fingerprint where registration looks for it.
    fn check_fingerprints(
        &self,
        shard: u32,
        page: &[Entry],
        report: &mut CheckReport,
    ) -> Result<(), Error> {
        let fps: Vec<Fingerprint> = page.iter().map(|e| e.fingerprint).collect();
        let all: Vec<usize> = (0..fps.len()).collect();
        let routed = self.route(&all, &fps)?;
        let mut found: Vec<bool> = vec![false; page.len()];
        for target in 0..self.shards_u32() {
            let foreign = self.is_foreign(target as usize);
            let asked: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| routed[i] == target || foreign)
                .collect();
            if asked.is_empty() {
                continue;
            }
            let wanted: Vec<Fingerprint> = asked.iter().map(|&i| fps[i]).collect();
            let mut out = Vec::with_capacity(wanted.len());
            if let Err(e) = self.stages.storage[target as usize].find(&wanted, &mut out) {
                report.found(target, "unreadable", None, e.message);
                return Ok(());
            }
            for (&i, hit) in asked.iter().zip(out) {
                match hit {
                    Some(e) if e.header.id == page[i].header.id => found[i] = true,
                    // Another entry under the same fingerprint: reported once, by the entry
                    // the index does not name.
                    Some(e) if routed[i] == target => {
                        found[i] = true;
                        let id = &page[i].header.id;
                        report.found(
                            shard,
                            "duplicate-fingerprint",
                            Some(id),
                            format!(
                                "entries {} and {id} have the same fingerprint {}: one request \
                                 is registered twice",
                                e.header.id, page[i].fingerprint
                            ),
                        );
                    }
                    _ => {}
                }
            }
        }
        for ((entry, ok), routed) in page.iter().zip(found).zip(routed) {
            if !ok {
                let id = &entry.header.id;
                report.found(
                    shard,
                    "fingerprint-index",
                    Some(id),
                    format!(
                        "entry {id} is not found by its fingerprint {} where registration looks \
                         (shard {routed}): registering its request again would duplicate it",
                        entry.fingerprint
                    ),
                );
            }
        }
        Ok(())
    }

    /// The listing of `shard` filtered by `field = value` gives the `count` entries holding
    /// that value, and only those.
    fn check_index(
        &self,
        shard: u32,
        field: Field,
        value: &str,
        count: u64,
        report: &mut CheckReport,
        pace: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        let storage = &*self.stages.storage[shard as usize];
        let mut listed = 0u64;
        self.walk_shard(storage, Some((field, value)), &mut |page| {
            for entry in page {
                let id = &entry.header.id;
                if entry.header.fields[field] == value {
                    listed += 1;
                } else {
                    report.found(
                        shard,
                        "field-index",
                        Some(id),
                        format!(
                            "the {field} index lists entry {id} under `{value}`, but it has `{}`",
                            entry.header.fields[field]
                        ),
                    );
                }
            }
            pace(report.entries);
            Ok(())
        })?;
        if listed == count {
            return Ok(());
        }
        // Some entries holding the value are not listed under it: only now are the listed ones
        // held, to name the others.
        let mut listed: HashSet<EntryId> = HashSet::new();
        self.walk_shard(storage, Some((field, value)), &mut |page| {
            listed.extend(
                page.into_iter()
                    .filter(|e| e.header.fields[field] == value)
                    .map(|e| e.header.id),
            );
            Ok(())
        })?;
        // Some entries holding the value are not listed under it: name them.
        self.walk_shard(storage, None, &mut |page| {
            for entry in page {
                let id = &entry.header.id;
                if entry.header.fields[field] == value && !listed.contains(id) {
                    report.found(
                        shard,
                        "field-index",
                        Some(id),
                        format!(
                            "entry {id} has {field} `{value}` but the {field} index does not list it"
                        ),
                    );
                }
            }
            Ok(())
        })
    }
}

/// What [`Pipeline::repair`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Repaired {
    /// Entries whose index rows were written anew, over every shard.
    pub reindexed: u64,
    /// Locations shard 0 recorded anew (a dense registry's entries it had lost or misplaced).
    pub placed: u64,
}

impl Pipeline {
    /// Rebuilds what `check` can find wrong besides the entries themselves: every shard's
    /// indexes from its entries ([`Storage::reindex`]), and in a dense registry the location
    /// of every entry whose recorded shard is not the one holding it ([`Storage::place`]).
    /// Changes no entry; a damaged entry, an id or fingerprint held twice, or a value the
    /// schema no longer declares stays for the operator to decide.
    ///
    /// # Errors
    /// The first shard that cannot be reindexed (the shards before it are), or shard 0 cannot
    /// record locations.
    pub fn repair(&self) -> Result<Repaired, Error> {
        let mut repaired = Repaired::default();
        for storage in &self.stages.storage {
            repaired.reindexed += storage
                .reindex()
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
        }
        if !self.dense || self.shards_u32() == 1 {
            return Ok(repaired);
        }
        for shard in 0..self.shards_u32() {
            let storage = &*self.stages.storage[shard as usize];
            self.walk_shard(storage, None, &mut |page| {
                let ids: Vec<EntryId> = page.into_iter().map(|e| e.header.id).collect();
                let mut located = Vec::with_capacity(ids.len());
                self.locate(&ids, &mut located)?;
                let wrong: Vec<EntryId> = ids
                    .into_iter()
                    .zip(located)
                    .filter(|(_, at)| *at != usize::try_from(shard).ok())
                    .map(|(id, _)| id)
                    .collect();
                if !wrong.is_empty() {
                    let shards = vec![shard; wrong.len()];
                    self.stages.storage[0]
                        .place(&wrong, &shards)
                        .map_err(|e| Error::stage(StageKind::Storage, e))?;
                    repaired.placed += wrong.len() as u64;
                }
                Ok(())
            })?;
        }
        Ok(repaired)
    }
}
