//! The writing operations of [`RedbStorage`] but `restore`: `allocate`, `insert`, `update` and
//! `set_meta`, and what they share (the field index, the sequences, the pending fingerprints).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLockReadGuard};

use redb::{Durability, ReadableTable, WriteTransaction};
use registry_codec::compress::{Dictionaries, Dictionary};
use registry_core::rules;
use registry_core::{
    Entry, EntryId, ErrorCode, Fingerprint, Inserted, Meta, StageError, StageResult,
};

use crate::codec;

use super::bits::BitChanges;
use super::entries::LatestMut;

use super::{
    DICTIONARIES, FINGERPRINTS, META, NewIndex, PENDING, Pending, RedbStorage, SEQUENCES,
    TRAIN_SAMPLES, Tables, tag,
};

/// New entries and their encodings: see [`RedbStorage::encode_new`].
#[derive(Debug)]
pub struct Encoded {
    entries: Vec<Entry>,
    encodings: Encodings,
}

/// A batch's entries encoded outside a write transaction ([`RedbStorage::encode_batch`]), one
/// after the other in `bytes`, each ending at its `ends`.
#[derive(Debug)]
struct Encodings {
    made_with: EncodedWith,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Encodings {
    /// The encoding of the batch's `i`th entry.
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// How a batch was encoded: uncompressed (storage format 1), or compressed with the dictionary
/// of that id or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncodedWith {
    Uncompressed,
    Compressed(Option<u32>),
}

impl EncodedWith {
    fn of(writing: codec::Writing<'_>) -> EncodedWith {
        match writing {
            codec::Writing::Uncompressed => EncodedWith::Uncompressed,
            codec::Writing::Compressed(d) => EncodedWith::Compressed(d.map(Dictionary::id)),
        }
    }
}

impl RedbStorage {
    /// Trains the shard's first dictionary when this insert's batch holds [`TRAIN_SAMPLES`]
    /// configs or brings a format 2 shard to [`TRAIN_AT`](registry_codec::compress::TRAIN_AT)
    /// entries, on the batch's configs and the latest stored ones ([`Self::train_dictionary`]),
    /// within `txn`. Returns it, for the batch to use and for the shard's own set once the
    /// transaction commits. A shard zstd cannot train on yet goes on without, and tries again
    /// at its next insert.
    pub(super) fn train_if_due(
        &self,
        txn: &WriteTransaction,
        t: &mut Tables<'_>,
        batch: &[Entry],
        current: &Dictionaries,
    ) -> StageResult<Option<Arc<Dictionary>>> {
        if self.format() < 2 || !current.is_empty() {
            return Ok(None);
        }
        let due = registry_codec::compress::training_due(batch.len(), || t.entries.len(self))?;
        if !due {
            return Ok(None);
        }
        let samples = batch
            .iter()
            .rev()
            .take(TRAIN_SAMPLES)
            .map(|e| e.config.as_bytes().to_vec())
            .collect();
        self.train_dictionary(txn, &mut t.entries, samples, current.next_id())
    }

    /// Trains a dictionary on `samples` and, up to [`TRAIN_SAMPLES`], the latest configs of
    /// `entries`, and stores it as dictionary `id` within `txn`. `None` when zstd cannot train
    /// on them.
    pub(super) fn train_dictionary(
        &self,
        txn: &WriteTransaction,
        entries: &mut LatestMut<'_>,
        mut samples: Vec<Vec<u8>>,
        id: u32,
    ) -> StageResult<Option<Arc<Dictionary>>> {
        let wanted = TRAIN_SAMPLES.saturating_sub(samples.len());
        entries.last_rows(self, wanted, &mut |id, bytes| {
            let entry = self.decode(&id, None, bytes)?;
            samples.push(entry.config.into_bytes());
            Ok(())
        })?;
        let Ok(bytes) = registry_codec::compress::train(&samples) else {
            return Ok(None);
        };
        let dictionary = Dictionary::new(id, bytes)
            .map_err(|e| StageError::new(ErrorCode::Internal, e.to_string()))?;
        self.write_table(txn, DICTIONARIES)?
            .insert(dictionary.id(), dictionary.bytes())
            .map_err(|e| self.fail("write", e))?;
        Ok(Some(Arc::new(dictionary)))
    }

    /// Writes what a batch's new entries add to the field index, in key order, and raises each
    /// prefix's sequence to the highest number stored, so `allocate` never hands out a stored
    /// number, whatever a crash forgot or a restore brought. Fingerprints are the caller's:
    /// `insert` makes them pending, `restore` writes them to `fingerprints`.
    pub(super) fn write_index(
        &self,
        t: &mut Tables<'_>,
        mut index: NewIndex<'_>,
    ) -> StageResult<()> {
        if self.format() >= 2 {
            let mut changes = BitChanges::default();
            for (tag, value, prefix, number) in index.rows {
                changes.change(tag, value, prefix, number, true);
            }
            self.apply_bits(&mut t.bits, changes)?;
        } else {
            // In key order, each page of the index is visited once rather than once per row.
            index.rows.sort_unstable();
            for row in index.rows {
                t.index.insert(row, ()).map_err(|e| self.fail("write", e))?;
            }
        }
        for (prefix, number) in index.highest {
            self.raise_sequence(t, prefix, number)?;
        }
        Ok(())
    }

    /// Raises the stored sequence of `prefix` to `number` if it is below.
    pub(super) fn raise_sequence(
        &self,
        t: &mut Tables<'_>,
        prefix: &str,
        number: u64,
    ) -> StageResult<()> {
        let last = t
            .sequences
            .get(prefix)
            .map_err(|e| self.fail("read", e))?
            .map_or(0, |g| g.value());
        if last < number {
            t.sequences
                .insert(prefix, number)
                .map_err(|e| self.fail("write", e))?;
        }
        Ok(())
    }

    /// Saves the numbers handed out since the last save into `sequences`, inside a write
    /// transaction. Returns whether there were any, so a caller whose commit fails can mark them
    /// unsaved again with [`RedbStorage::unsave_allocations`].
    pub(super) fn save_allocations(&self, t: &mut Tables<'_>) -> StageResult<bool> {
        let last = {
            let mut allocated = self.allocated();
            if !allocated.unsaved {
                return Ok(false);
            }
            allocated.unsaved = false;
            allocated.last.clone()
        };
        for (prefix, number) in &last {
            if let Err(e) = self.raise_sequence(t, prefix, *number) {
                self.unsave_allocations(true);
                return Err(e);
            }
        }
        Ok(true)
    }

    /// Marks the allocations unsaved again after a commit that was to save them failed.
    pub(super) fn unsave_allocations(&self, saving: bool) {
        if saving {
            self.allocated().unsaved = true;
        }
    }

    /// Moves every pending fingerprint into `fingerprints`, in key order, and empties
    /// `pending_fingerprints`, inside `txn`. The caller empties the map after committing.
    fn merge_pending(&self, txn: &WriteTransaction, pending: &Pending) -> StageResult<()> {
        {
            let mut table = self.write_table(txn, FINGERPRINTS)?;
            for (fp, prefix, number) in pending.sorted() {
                table
                    .insert(fp.0, (prefix, number))
                    .map_err(|e| self.fail("write", e))?;
            }
        }
        txn.delete_table(PENDING)
            .map_err(|e| self.fail("write", e))?;
        Ok(())
    }

    pub(super) fn allocate_numbers(
        &self,
        prefixes: &[String],
        out: &mut Vec<u64>,
    ) -> StageResult<()> {
        if prefixes.is_empty() {
            return Ok(());
        }
        if !self.numbering().allocates() {
            return Err(rules::not_shard_zero(&self.name()));
        }
        // See the type's documentation for why a counter in memory is enough.
        let txn = self.begin_read()?;
        let sequences = self.read_table(&txn, SEQUENCES)?;
        let mut allocated = self.allocated();
        let mut numbers = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let stored = sequences
                .get(prefix.as_str())
                .map_err(|e| self.fail("read", e))?
                .map_or(0, |g| g.value());
            let handed = allocated.last.get(prefix.as_str()).copied().unwrap_or(0);
            let next = self
                .numbering()
                .next_after(stored.max(handed))
                .ok_or_else(|| rules::exhausted(prefix, &self.file()))?;
            match allocated.last.get_mut(prefix.as_str()) {
                Some(last) => *last = next,
                None => {
                    allocated.last.insert(prefix.clone(), next);
                }
            }
            allocated.unsaved = true;
            numbers.push(next);
        }
        out.extend(numbers);
        Ok(())
    }

    /// Stores new entries in one transaction; with `places` (checked by the caller), records
    /// those locations in the same transaction, durable whatever the configured durability
    /// (other shards' entries are stored after it returns).
    pub(super) fn insert_new(
        &self,
        entries: &[Entry],
        places: Option<(&[EntryId], &[u32])>,
        out: &mut Vec<Inserted>,
    ) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        // Encoded before the writer is taken, so compression runs beside another batch's writes
        // and commit; `None` if an entry does not encode, for the loop below to report it under
        // its own rules.
        let early = self.encode_batch(entries).ok();
        let _writing = self.writing();
        let durability = match places {
            Some(_) => Durability::Immediate,
            None => self.write_durability(),
        };
        let txn = self.begin_write(durability)?;
        let (pending, merge, mut next) = self.pending_for_write(&txn)?;
        let mut outcomes = Vec::with_capacity(entries.len());
        // The fingerprints this batch adds, each with the position of its entry.
        let mut added: HashMap<Fingerprint, usize> = HashMap::with_capacity(entries.len());
        let saving;
        let trained;
        {
            let mut t = self.open_tables(&txn)?;
            let mut buf = Vec::new();
            let mut index = NewIndex::default();
            let current = self.dictionaries();
            trained = self.train_if_due(&txn, &mut t, entries, &current)?;
            let writing = match &trained {
                Some(dictionary) => codec::Writing::Compressed(Some(dictionary)),
                None => self.entry_writing(&current),
            };
            // Encoded before the writer was taken: used if the shard still writes that way.
            let early = early.filter(|e| e.made_with == EncodedWith::of(writing));
            for (i, entry) in entries.iter().enumerate() {
                let id = &entry.header.id;
                rules::check_new(entry)?;
                // A fingerprint repeated within the batch finds the first entry, which the
                // tables already hold.
                let known = match added.get(&entry.fingerprint) {
                    Some(&first) => Some(entries[first].header.id.clone()),
                    None => self.registered_any(&pending, &t.fingerprints, &entry.fingerprint)?,
                };
                if let Some(known) = known {
                    let found = self.latest_mut(&mut t.entries, &known)?;
                    let stored = self.registered_entry(found, &known, &entry.fingerprint)?;
                    outcomes.push(Inserted::Existing(stored));
                    continue;
                }
                if t.entries.with(self, id, |_| Ok(()))?.is_some() {
                    return Err(rules::id_taken(id));
                }
                let bytes = match &early {
                    Some(early) => early.get(i),
                    None => {
                        self.encode(entry, writing, &mut buf)?;
                        &buf
                    }
                };
                self.put_new(&mut t, entry, bytes, &mut next, &mut index)?;
                added.insert(entry.fingerprint, i);
                outcomes.push(Inserted::Created);
            }
            self.write_index(&mut t, index)?;
            if let Some((ids, shards)) = places {
                self.record_places(&txn, &mut t, ids, shards)?;
            }
            saving = self.save_allocations(&mut t)?;
        }
        self.commit(txn)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        if let Some(dictionary) = trained {
            self.dictionaries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .add(dictionary);
        }
        let added = added.iter().map(|(fp, &i)| (*fp, &entries[i].header.id));
        self.pending_committed(pending, merge, added, next);
        out.extend(outcomes);
        Ok(())
    }

    /// `entries` encoded as an insert would write them now (with the shard's newest
    /// dictionary), outside a write transaction. An insert uses these bytes only if it writes
    /// the same way once it holds the writer (no dictionary was trained or format changed in
    /// between).
    ///
    /// # Errors
    /// `Invalid` for an entry the shard's format cannot keep.
    fn encode_batch(&self, entries: &[Entry]) -> StageResult<Encodings> {
        let dictionaries = self.dictionaries();
        let writing = self.entry_writing(&dictionaries);
        let mut encodings = Encodings {
            made_with: EncodedWith::of(writing),
            bytes: Vec::new(),
            ends: Vec::with_capacity(entries.len()),
        };
        let mut buf = Vec::new();
        for entry in entries {
            self.encode(entry, writing, &mut buf)?;
            encodings.bytes.extend_from_slice(&buf);
            encodings.ends.push(encodings.bytes.len());
        }
        Ok(encodings)
    }

    /// The pending fingerprints as a writer's transaction `txn` starts: merged into the
    /// fingerprint table within `txn` when a merge is due. Returns the map, whether it was merged
    /// and the number of the next pending row.
    ///
    /// Only a writer changes the pending map, after its commit and under `writer`, so the map
    /// read here stays the committed one until this transaction ends. After a merge the table
    /// holds every fingerprint the map does, so looking in both stays right.
    fn pending_for_write(
        &self,
        txn: &WriteTransaction,
    ) -> StageResult<(RwLockReadGuard<'_, Pending>, bool, u64)> {
        let pending = self.pending_writing()?;
        let merge = pending.len() >= self.merge_every;
        if merge {
            self.merge_pending(txn, &pending)?;
        }
        let next = if merge { 0 } else { pending.next };
        Ok((pending, merge, next))
    }

    /// The pending map once the transaction that began with [`Self::pending_for_write`] has
    /// committed: emptied if it merged, with the fingerprints it `added`, numbered up to `next`.
    fn pending_committed<'a>(
        &self,
        read: RwLockReadGuard<'_, Pending>,
        merged: bool,
        added: impl Iterator<Item = (Fingerprint, &'a EntryId)>,
        next: u64,
    ) {
        drop(read);
        let mut pending = self.pending_mut();
        if merged {
            pending.ids.clear();
        }
        for (fp, id) in added {
            pending.add(fp, id);
        }
        pending.next = next;
    }

    /// The rows of one new entry, `bytes` its encoding: its latest revision, its pending
    /// fingerprint (numbered `*next`, then advanced) and its field-index rows (in `index`, written
    /// by [`Self::write_index`]). What [`Self::insert_new`] and [`Self::insert_encoded`] share.
    fn put_new<'e>(
        &self,
        t: &mut Tables<'_>,
        entry: &'e Entry,
        bytes: &[u8],
        next: &mut u64,
        index: &mut NewIndex<'e>,
    ) -> StageResult<()> {
        let id = &entry.header.id;
        let key = (id.prefix(), id.number());
        t.entries.insert(self, id, bytes)?;
        t.pending
            .insert(*next, (entry.fingerprint.0, key.0, key.1))
            .map_err(|e| self.fail("write", e))?;
        *next += 1;
        index.add(key, entry);
        Ok(())
    }

    /// New entries encoded as [`Storage::insert`](registry_core::Storage::insert) would store
    /// them (with the shard's newest dictionary), for [`Self::insert_encoded`].
    ///
    /// # Errors
    /// `Invalid` for an entry the shard's format cannot keep.
    pub fn encode_new(&self, entries: Vec<Entry>) -> StageResult<Encoded> {
        let encodings = self.encode_batch(&entries)?;
        Ok(Encoded { entries, encodings })
    }

    /// Writes exactly the rows an insert of `batch`'s entries writes, in one transaction at the
    /// shard's durability: each entry's latest revision and pending fingerprint, the field
    /// index, the sequences, and the merge of the pending fingerprints when one is due. It skips
    /// what an insert does besides writing rows: encoding (done by [`Self::encode_new`]), the
    /// look-ups that make an insert idempotent and refuse a taken id, and training the first
    /// dictionary. The bare side of the `ceiling` benchmark, which measures the pipeline against
    /// it; not for storing entries, since nothing is checked.
    ///
    /// # Errors
    /// What redb fails with.
    pub fn insert_encoded(&self, batch: &Encoded) -> StageResult<()> {
        let _writing = self.writing();
        let txn = self.begin_write(self.write_durability())?;
        let (pending, merge, mut next) = self.pending_for_write(&txn)?;
        let saving;
        {
            let mut t = self.open_tables(&txn)?;
            let mut index = NewIndex::default();
            for (i, entry) in batch.entries.iter().enumerate() {
                let bytes = batch.encodings.get(i);
                self.put_new(&mut t, entry, bytes, &mut next, &mut index)?;
            }
            self.write_index(&mut t, index)?;
            saving = self.save_allocations(&mut t)?;
        }
        self.commit(txn)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        let added = batch.entries.iter().map(|e| (e.fingerprint, &e.header.id));
        self.pending_committed(pending, merge, added, next);
        Ok(())
    }

    pub(super) fn update_latest(
        &self,
        entries: &[Entry],
        out: &mut Vec<StageResult<()>>,
    ) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _writing = self.writing();
        let txn = self.begin_write(self.write_durability())?;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut wrote = false;
        let saving;
        let mut moved: Vec<(u8, String, String, u64, bool)> = Vec::new();
        {
            let mut t = self.open_tables(&txn)?;
            let mut buf = Vec::new();
            let dictionaries = self.dictionaries();
            let writing = self.entry_writing(&dictionaries);
            for entry in entries {
                let id = &entry.header.id;
                let key = (id.prefix(), id.number());
                // Earlier updates of this batch are already in the tables, so two updates of one
                // entry to the same revision conflict, as they would in two batches.
                let Some(stored) = self.latest_mut(&mut t.entries, id)? else {
                    outcomes.push(Err(rules::no_entry(id)));
                    continue;
                };
                if let Err(stale) = rules::check_follows(id, stored.revision, entry.revision) {
                    outcomes.push(Err(stale));
                    continue;
                }
                self.encode(entry, writing, &mut buf)?;
                let write = |e| self.fail("write", e);
                // The revision being replaced moves to `revisions`, as it was coded.
                let replaced = t.entries.insert(self, id, &buf)?;
                if let Some(old) = replaced {
                    t.revisions
                        .insert((key.0, key.1, stored.revision), old.as_slice())
                        .map_err(write)?;
                }
                for (field, new) in entry.header.fields.iter() {
                    let old = &stored.header.fields[field];
                    if old == new {
                        continue;
                    }
                    if self.format() >= 2 {
                        for (value, on) in [(old, false), (new, true)] {
                            moved.push((tag(field), value.clone(), key.0.to_owned(), key.1, on));
                        }
                    } else {
                        t.index
                            .remove((tag(field), old.as_str(), key.0, key.1))
                            .map_err(write)?;
                        t.index
                            .insert((tag(field), new.as_str(), key.0, key.1), ())
                            .map_err(write)?;
                    }
                }
                wrote = true;
                outcomes.push(Ok(()));
            }
            let mut changes = BitChanges::default();
            for (tag, value, prefix, number, on) in &moved {
                changes.change(*tag, value, prefix, *number, *on);
            }
            self.apply_bits(&mut t.bits, changes)?;
            saving = wrote && self.save_allocations(&mut t)?;
        }
        self.commit_if(txn, wrote)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        out.extend(outcomes);
        Ok(())
    }

    pub(super) fn write_meta(&self, changes: &Meta) -> StageResult<()> {
        rules::check_meta_changes(changes)?;
        let txn = self.begin_write(Durability::Immediate)?;
        {
            let mut table = self.write_table(&txn, META)?;
            for (key, value) in changes {
                if value.is_empty() {
                    table
                        .remove(key.as_str())
                        .map_err(|e| self.fail("write", e))?;
                } else {
                    table
                        .insert(key.as_str(), value.as_str())
                        .map_err(|e| self.fail("write", e))?;
                }
            }
        }
        self.commit(txn)
    }

    /// `purge`: the stored revision checked against the purged one and replaced, where it is
    /// (the latest row, or its row in `revisions`), as the shard writes entries now.
    pub(super) fn purge_revision(&self, revision: &Entry) -> StageResult<()> {
        let id = &revision.header.id;
        let _writing = self.writing();
        let txn = self.begin_write(Durability::Immediate)?;
        {
            let mut t = self.open_tables(&txn)?;
            let dictionaries = self.dictionaries();
            let writing = self.entry_writing(&dictionaries);
            let mut buf = Vec::new();
            let latest = self
                .latest_mut(&mut t.entries, id)?
                .ok_or_else(|| rules::no_entry(id))?;
            if latest.revision == revision.revision {
                rules::check_purge(&latest, revision)?;
                self.encode(revision, writing, &mut buf)?;
                t.entries.insert(self, id, &buf)?;
            } else {
                let key = (id.prefix(), id.number(), revision.revision);
                let stored = t
                    .revisions
                    .get(key)
                    .map_err(|e| self.fail("read", e))?
                    .map(|g| g.value().to_vec())
                    .ok_or_else(|| {
                        StageError::new(
                            ErrorCode::NotFound,
                            format!("entry {id} has no revision {}", revision.revision),
                        )
                    })?;
                let stored = self.decode(id, Some(revision.revision), &stored)?;
                rules::check_purge(&stored, revision)?;
                self.encode(revision, writing, &mut buf)?;
                t.revisions
                    .insert(key, buf.as_slice())
                    .map_err(|e| self.fail("write", e))?;
            }
        }
        self.commit(txn)
    }
}
