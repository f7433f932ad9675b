//! [`RedbStorage`]'s `migrate`: a shard of storage format 1 brought to format 2, all at once.
//!
//! The revisions are copied, rewritten in entry format 4 (compressed with a dictionary trained
//! on the shard's own configs), into two staging tables, [`REWRITE_CHUNK`] rows per
//! transaction; nobody reads those. One last durable transaction then deletes `entries` and
//! `revisions`, renames the staging tables in their place, records format 2 and, for shard 0,
//! the location of every entry stored in another shard (with the sequences raised past them).
//! So a crash before that transaction leaves the format 1 shard as it was (its builds can still
//! read it: they ignore the staging tables and the stored dictionary), and one after it leaves
//! format 2; a second run drops a first run's staging tables and starts over. Nothing else
//! changes: the keys of every other table are the same in both formats. Last, redb's own
//! compaction gives the old tables' pages back to the file system.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use redb::{Durability, ReadableTable, TableDefinition, TableHandle};
use registry_codec::compress::Dictionaries;
use registry_core::rules;
use registry_core::{EntryId, ErrorCode, StageError, StageResult};

use super::bits::BitChanges;
use super::compact::REWRITE_CHUNK;
use super::entries;
use super::{
    ENTRIES, FIELD_BITS, FIELD_INDEX, LAYOUT, REVISIONS, RedbStorage, STORAGE_FORMAT, TRAIN_AT,
};
use crate::codec;

/// What the name of a staging table of one prefix's entries starts with.
const ENTRIES_STAGED: &str = "entries.migrating/";
const REVISIONS_STAGED: TableDefinition<(&str, u64, u32), &[u8]> =
    TableDefinition::new("revisions.migrating");
const BITS_STAGED: TableDefinition<(u8, &str, &str, u64), &[u8]> =
    TableDefinition::new("field_bits.migrating");

impl RedbStorage {
    pub(super) fn migrate_shard(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        let _writing = self.writing();
        if self.format() >= STORAGE_FORMAT {
            return Ok(0);
        }
        if !ids.is_empty() && self.shard != 0 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!(
                    "{} keeps no locations: only shard 0 records where entries are",
                    self.name()
                ),
            ));
        }
        rules::check_places(ids, shards, self.shards)?;
        let dictionaries = self.train_for_migration()?;
        let mut rewritten = self.stage_entries(&dictionaries)?;
        rewritten += self.stage_revisions(&dictionaries)?;
        self.stage_index()?;

        let txn = self.begin_write(Durability::Immediate)?;
        txn.delete_table(ENTRIES)
            .map_err(|e| self.fail("write", e))?;
        txn.delete_table(REVISIONS)
            .map_err(|e| self.fail("write", e))?;
        for prefix in self.staged_prefixes(&txn)? {
            let from = format!("{ENTRIES_STAGED}{prefix}");
            let to = entries::table_name(&prefix);
            let from: TableDefinition<u64, &[u8]> = TableDefinition::new(&from);
            let to: TableDefinition<u64, &[u8]> = TableDefinition::new(&to);
            txn.rename_table(from, to)
                .map_err(|e| self.fail("write", e))?;
        }
        txn.rename_table(REVISIONS_STAGED, REVISIONS)
            .map_err(|e| self.fail("write", e))?;
        txn.delete_table(FIELD_INDEX)
            .map_err(|e| self.fail("write", e))?;
        txn.delete_table(FIELD_BITS)
            .map_err(|e| self.fail("write", e))?;
        txn.rename_table(BITS_STAGED, FIELD_BITS)
            .map_err(|e| self.fail("write", e))?;
        self.write_table(&txn, LAYOUT)?
            .insert("format", STORAGE_FORMAT)
            .map_err(|e| self.fail("write", e))?;
        {
            let mut t = self.open_tables(&txn)?;
            if !ids.is_empty() {
                self.record_places(&txn, &mut t, ids, shards)?;
            }
        }
        self.commit(txn)?;
        self.format.store(STORAGE_FORMAT, Ordering::Release);
        // The old tables' pages are free now: give them back to the file system.
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        db.compact().map_err(|e| self.fail("compact", e))?;
        Ok(rewritten)
    }

    /// The dictionaries to rewrite with: the shard's, plus one trained now on its latest
    /// configs when it has none and holds [`TRAIN_AT`] entries, stored durably (a format 1 shard
    /// ignores it). Also drops the staging tables of an interrupted run.
    pub(super) fn train_for_migration(&self) -> StageResult<Dictionaries> {
        let mut dictionaries = self.dictionaries().clone();
        let txn = self.begin_write(Durability::Immediate)?;
        let mut staged: Vec<String> = self
            .staged_prefixes(&txn)?
            .into_iter()
            .map(|p| format!("{ENTRIES_STAGED}{p}"))
            .collect();
        staged.push(REVISIONS_STAGED.name().to_owned());
        staged.push(BITS_STAGED.name().to_owned());
        for name in &staged {
            let table: TableDefinition<(), ()> = TableDefinition::new(name);
            txn.delete_table(table).map_err(|e| self.fail("write", e))?;
        }
        let trained = {
            let mut entries = self.latest_rows_mut(&txn)?;
            let due = dictionaries.is_empty() && entries.len(self)? >= TRAIN_AT;
            if due {
                self.train_dictionary(&txn, &mut entries, Vec::new(), dictionaries.next_id())?
            } else {
                None
            }
        };
        self.commit(txn)?;
        if let Some(dictionary) = trained {
            dictionaries.add(Arc::clone(&dictionary));
            self.dictionaries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .add(dictionary);
        }
        Ok(dictionaries)
    }

    /// The prefixes that have a staging table of entries.
    fn staged_prefixes(&self, txn: &redb::WriteTransaction) -> StageResult<Vec<String>> {
        let names = txn.list_tables().map_err(|e| self.fail("read", e))?;
        Ok(names
            .filter_map(|t| t.name().strip_prefix(ENTRIES_STAGED).map(str::to_owned))
            .collect())
    }

    /// Copies `entries` into one staging table per prefix in entry format 4, chunk by chunk in
    /// key order.
    pub(super) fn stage_entries(&self, dictionaries: &Dictionaries) -> StageResult<u64> {
        let writing = codec::Writing::Compressed(dictionaries.newest());
        let mut after: Option<(String, u64)> = None;
        let mut copied = 0;
        loop {
            let txn = self.begin_write(Durability::None)?;
            let mut seen = 0;
            {
                let source = self.write_table(&txn, ENTRIES)?;
                let mut staged: HashMap<String, redb::Table<'_, u64, &[u8]>> = HashMap::new();
                let from = after
                    .as_ref()
                    .map_or(Bound::Unbounded, |(p, n)| Bound::Excluded((p.as_str(), *n)));
                let rows = source
                    .range::<(&str, u64)>((from, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                let mut buf = Vec::new();
                for row in rows.take(REWRITE_CHUNK) {
                    let (key, bytes) = row.map_err(|e| self.fail("read", e))?;
                    let (prefix, number) = key.value();
                    seen += 1;
                    after = Some((prefix.to_owned(), number));
                    let entry = self.decode(&EntryId::new(prefix, number), None, bytes.value())?;
                    self.encode(&entry, writing, &mut buf)?;
                    if !staged.contains_key(prefix) {
                        let name = format!("{ENTRIES_STAGED}{prefix}");
                        let table = self.write_table(&txn, TableDefinition::new(&name))?;
                        staged.insert(prefix.to_owned(), table);
                    }
                    if let Some(table) = staged.get_mut(prefix) {
                        table
                            .insert(number, buf.as_slice())
                            .map_err(|e| self.fail("write", e))?;
                    }
                }
            }
            self.commit(txn)?;
            copied += seen as u64;
            if seen < REWRITE_CHUNK {
                return Ok(copied);
            }
        }
    }

    /// Copies `revisions` into its staging table in entry format 4, chunk by chunk.
    pub(super) fn stage_revisions(&self, dictionaries: &Dictionaries) -> StageResult<u64> {
        let writing = codec::Writing::Compressed(dictionaries.newest());
        let (copied, _) =
            self.recode_revisions(writing, REVISIONS_STAGED, false, Durability::None)?;
        Ok(copied)
    }

    /// Turns the rows of `field_index` into the blocks of bits of format 2, in a staging table,
    /// chunk by chunk.
    pub(super) fn stage_index(&self) -> StageResult<()> {
        let mut after: Option<(u8, String, String, u64)> = None;
        loop {
            let txn = self.begin_write(Durability::None)?;
            let seen;
            {
                let source = self.write_table(&txn, FIELD_INDEX)?;
                let mut staged = self.write_table(&txn, BITS_STAGED)?;
                let from = after.as_ref().map_or(Bound::Unbounded, |(t, v, p, n)| {
                    Bound::Excluded((*t, v.as_str(), p.as_str(), *n))
                });
                let rows = source
                    .range::<(u8, &str, &str, u64)>((from, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                let mut keys = Vec::with_capacity(REWRITE_CHUNK);
                for row in rows.take(REWRITE_CHUNK) {
                    let (key, _) = row.map_err(|e| self.fail("read", e))?;
                    let (tag, value, prefix, number) = key.value();
                    keys.push((tag, value.to_owned(), prefix.to_owned(), number));
                }
                seen = keys.len();
                let mut changes = BitChanges::default();
                for (tag, value, prefix, number) in &keys {
                    changes.change(*tag, value, prefix, *number, true);
                }
                self.apply_bits(&mut staged, changes)?;
                after = keys.pop();
            }
            self.commit(txn)?;
            if seen < REWRITE_CHUNK {
                return Ok(());
            }
        }
    }
}
