//! [`RedbStorage`]'s `reindex`: the fingerprint index and the field index of a format 2 shard
//! rebuilt from its entries (`registry check --repair`).
//!
//! The new indexes are built in staging tables, [`CHUNK`] entries per transaction, from the
//! entries in id order; one durable transaction then deletes the old ones (`fingerprints`,
//! `pending_fingerprints`, `field_bits`), renames the staging tables in their place and raises
//! each prefix's sequence to its highest stored number (a sequence never goes down). Until
//! then the old indexes serve, and a crash leaves them; a second run drops the first one's
//! staging tables. Writers wait for the whole rebuild (it holds the shard's writer lock), so the
//! entries cannot change under it. No entry is written.

use redb::{Durability, TableDefinition, TableHandle};
use registry_core::{EntryId, ErrorCode, StageError, StageResult};

use super::bits::BitChanges;
use super::{FIELD_BITS, FINGERPRINTS, PENDING, Pending, RedbStorage, tag};

const FINGERPRINTS_STAGED: TableDefinition<[u8; 16], (&str, u64)> =
    TableDefinition::new("fingerprints.rebuilding");
const BITS_STAGED: TableDefinition<(u8, &str, &str, u64), &[u8]> =
    TableDefinition::new("field_bits.rebuilding");

/// Entries indexed per transaction.
const CHUNK: usize = 10_000;

impl RedbStorage {
    pub(super) fn reindex_shard(&self) -> StageResult<u64> {
        if self.format() < 2 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!(
                    "{} is of storage format 1: run `registry migrate`, which rebuilds its \
                     indexes, before repairing them",
                    self.name()
                ),
            ));
        }
        let _writing = self.writing();
        {
            let txn = self.begin_write(Durability::Immediate)?;
            for name in [FINGERPRINTS_STAGED.name(), BITS_STAGED.name()] {
                let table: TableDefinition<(), ()> = TableDefinition::new(name);
                txn.delete_table(table).map_err(|e| self.fail("write", e))?;
            }
            self.commit(txn)?;
        }
        let mut after: Option<EntryId> = None;
        let mut indexed = 0u64;
        let mut highest: Vec<(String, u64)> = Vec::new();
        loop {
            let txn = self.begin_write(Durability::None)?;
            let seen;
            {
                let mut rows = self.latest_rows_mut(&txn)?;
                let chunk = rows.chunk(self, after.as_ref(), CHUNK)?;
                seen = chunk.len();
                let mut fps = self.write_table(&txn, FINGERPRINTS_STAGED)?;
                let mut bits = self.write_table(&txn, BITS_STAGED)?;
                let mut entries = Vec::with_capacity(chunk.len());
                for (id, bytes) in &chunk {
                    entries.push(self.decode(id, None, bytes)?);
                }
                let mut changes = BitChanges::default();
                for entry in &entries {
                    let id = &entry.header.id;
                    fps.insert(entry.fingerprint.0, (id.prefix(), id.number()))
                        .map_err(|e| self.fail("write", e))?;
                    for (field, value) in entry.header.fields.iter() {
                        changes.change(tag(field), value, id.prefix(), id.number(), true);
                    }
                    match highest.iter_mut().find(|(p, _)| p == id.prefix()) {
                        Some((_, n)) => *n = (*n).max(id.number()),
                        None => highest.push((id.prefix().to_owned(), id.number())),
                    }
                }
                self.apply_bits(&mut bits, changes)?;
                after = chunk.into_iter().last().map(|(id, _)| id);
            }
            self.commit(txn)?;
            indexed += seen as u64;
            if seen < CHUNK {
                break;
            }
        }
        let txn = self.begin_write(Durability::Immediate)?;
        for table in [FINGERPRINTS.name(), PENDING.name(), FIELD_BITS.name()] {
            let def: TableDefinition<(), ()> = TableDefinition::new(table);
            txn.delete_table(def).map_err(|e| self.fail("write", e))?;
        }
        txn.rename_table(FINGERPRINTS_STAGED, FINGERPRINTS)
            .map_err(|e| self.fail("write", e))?;
        txn.rename_table(BITS_STAGED, FIELD_BITS)
            .map_err(|e| self.fail("write", e))?;
        {
            let mut t = self.open_tables(&txn)?;
            for (prefix, number) in &highest {
                self.raise_sequence(&mut t, prefix, *number)?;
            }
        }
        self.commit(txn)?;
        *self.pending_mut() = Pending::default();
        self.pending_loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(indexed)
    }
}
