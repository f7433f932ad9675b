//! [`RedbStorage`]'s `compact`: a dictionary trained afresh, every revision rewritten with it,
//! and the file's free pages given back.

use std::ops::Bound;
use std::sync::{Arc, PoisonError};

use redb::{Durability, ReadableTable, TableDefinition};
use registry_codec::Dictionaries;
use registry_core::{EntryId, StageResult};

use super::{REVISIONS, RedbStorage, TRAIN_AT};
use crate::codec;

/// How many rows one transaction of the rewrite changes at most: it bounds the memory a
/// rewrite holds and the work a crash can undo.
pub(super) const REWRITE_CHUNK: usize = 10_000;

impl RedbStorage {
    /// Compacts the shard. In a shard of storage format 2: trains a dictionary on its latest
    /// configs (once it holds [`TRAIN_AT`] entries), then rewrites every revision whose stored
    /// bytes that changes, [`REWRITE_CHUNK`] rows per durable transaction. Earlier dictionaries
    /// are kept, so a crash in the middle leaves every revision readable, with the old
    /// dictionary or the new. A format 1 shard is not rewritten: its builds could not read
    /// format 4. Then redb's own compaction gives the free pages back.
    pub(super) fn compact_shard(&self) -> StageResult<u64> {
        let _writing = self.writing();
        let rewritten = if self.format() >= 2 {
            let dictionaries = self.retrain()?;
            self.rewrite_entries(&dictionaries)? + self.rewrite_revisions(&dictionaries)?
        } else {
            0
        };
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        db.compact().map_err(|e| self.fail("compact", e))?;
        Ok(rewritten)
    }

    /// Trains a new dictionary on the latest configs ([`Self::train_dictionary`]), when the
    /// shard holds at least [`TRAIN_AT`] entries, and stores it durably. Returns the
    /// dictionaries to rewrite with.
    fn retrain(&self) -> StageResult<Dictionaries> {
        let mut dictionaries = self.dictionaries().clone();
        let txn = self.begin_write(Durability::Immediate)?;
        let trained = {
            let mut entries = self.latest_rows_mut(&txn)?;
            if entries.len(self)? < TRAIN_AT {
                None
            } else {
                self.train_dictionary(&txn, &mut entries, Vec::new(), dictionaries.next_id())?
            }
        };
        let Some(dictionary) = trained else {
            txn.abort()
                .map_err(|e| self.fail("abort a transaction on", e))?;
            return Ok(dictionaries);
        };
        self.commit(txn)?;
        dictionaries.add(Arc::clone(&dictionary));
        self.dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add(dictionary);
        Ok(dictionaries)
    }

    /// Rewrites the latest revisions, chunk by chunk in id order.
    fn rewrite_entries(&self, dictionaries: &Dictionaries) -> StageResult<u64> {
        let writing = self.entry_writing(dictionaries);
        let mut after: Option<EntryId> = None;
        let mut rewritten = 0;
        loop {
            let txn = self.begin_write(Durability::Immediate)?;
            let seen;
            let mut changed = 0;
            {
                let mut rows = self.latest_rows_mut(&txn)?;
                let chunk = rows.chunk(self, after.as_ref(), REWRITE_CHUNK)?;
                seen = chunk.len();
                let mut buf = Vec::new();
                for (id, bytes) in &chunk {
                    let entry = self.decode(id, None, bytes)?;
                    self.encode(&entry, writing, &mut buf)?;
                    if buf != *bytes {
                        rows.insert(self, id, &buf)?;
                        changed += 1;
                    }
                }
                after = chunk.into_iter().last().map(|(id, _)| id);
            }
            self.commit(txn)?;
            rewritten += changed;
            if seen < REWRITE_CHUNK {
                return Ok(rewritten);
            }
        }
    }

    /// Rewrites the earlier revisions, chunk by chunk in key order.
    fn rewrite_revisions(&self, dictionaries: &Dictionaries) -> StageResult<u64> {
        let writing = self.entry_writing(dictionaries);
        let (_, written) =
            self.recode_revisions(writing, REVISIONS, true, Durability::Immediate)?;
        Ok(written)
    }

    /// Reads `revisions` [`REWRITE_CHUNK`] rows per transaction, in key order, codes each as
    /// `writing` says and writes it to `target`: `revisions` itself (`compact`, then only the
    /// rows whose bytes change, `changed_only`) or a staging table (`migrate`, every row).
    /// Returns the rows read and the rows written.
    pub(super) fn recode_revisions(
        &self,
        writing: codec::Writing<'_>,
        target: TableDefinition<(&str, u64, u32), &[u8]>,
        changed_only: bool,
        durability: Durability,
    ) -> StageResult<(u64, u64)> {
        let mut after: Option<(String, u64, u32)> = None;
        let (mut read, mut written) = (0, 0);
        loop {
            let txn = self.begin_write(durability)?;
            let mut recoded = Vec::new();
            let mut seen = 0;
            {
                let source = self.write_table(&txn, REVISIONS)?;
                let from = after.as_ref().map_or(Bound::Unbounded, |(p, n, r)| {
                    Bound::Excluded((p.as_str(), *n, *r))
                });
                let rows = source
                    .range::<(&str, u64, u32)>((from, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                for row in rows.take(REWRITE_CHUNK) {
                    let (key, bytes) = row.map_err(|e| self.fail("read", e))?;
                    let (prefix, number, revision) = key.value();
                    seen += 1;
                    after = Some((prefix.to_owned(), number, revision));
                    let id = EntryId::new(prefix, number);
                    let entry = self.decode(&id, Some(revision), bytes.value())?;
                    let mut buf = Vec::new();
                    self.encode(&entry, writing, &mut buf)?;
                    if !changed_only || buf != bytes.value() {
                        recoded.push((prefix.to_owned(), number, revision, buf));
                    }
                }
            }
            {
                // `source` is closed: the target may be the same table.
                let mut table = self.write_table(&txn, target)?;
                for (prefix, number, revision, bytes) in &recoded {
                    table
                        .insert((prefix.as_str(), *number, *revision), bytes.as_slice())
                        .map_err(|e| self.fail("write", e))?;
                }
            }
            self.commit(txn)?;
            read += seen;
            written += recoded.len() as u64;
            if seen < REWRITE_CHUNK as u64 {
                return Ok((read, written));
            }
        }
    }
}
