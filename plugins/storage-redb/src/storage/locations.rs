//! `place` and `locate`: where shard 0 of a dense registry records the entries stored in other
//! shards, in blocks of [`rules::LOCATION_BLOCK`] numbers (two bytes each) per prefix.
//!
//! `place` always commits durably, even with `durable = false`: the other shards' files depend
//! on it. An entry stored elsewhere whose location (and raised sequence) a crash lost would be
//! unreachable by id, and its number handed out again.

use std::collections::BTreeMap;

use redb::{Durability, ReadableTable, WriteTransaction};
use registry_core::rules;
use registry_core::{EntryId, StageResult};

use super::{LOCATIONS, RedbStorage, Tables};

impl RedbStorage {
    /// Shard 0 of a dense registry, or the error any other shard gives.
    pub(super) fn check_locator(&self) -> StageResult<()> {
        let numbering = self.numbering();
        if numbering.dense && numbering.shard == 0 {
            Ok(())
        } else {
            Err(rules::not_shard_zero(&self.name()))
        }
    }

    pub(super) fn place_ids(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        self.check_locator()?;
        rules::check_places(ids, shards, self.shards)?;
        if ids.is_empty() {
            return Ok(());
        }
        let _writer = self.writing();
        let txn = self.begin_write(Durability::Immediate)?;
        let saving = {
            let mut t = self.open_tables(&txn)?;
            let saving = self.save_allocations(&mut t)?;
            if let Err(e) = self.record_places(&txn, &mut t, ids, shards) {
                self.unsave_allocations(saving);
                return Err(e);
            }
            saving
        };
        self.commit(txn)
            .inspect_err(|_| self.unsave_allocations(saving))
    }

    /// Within `txn`: raises each prefix's sequence to the highest number of `ids` and records
    /// the shard of each in `locations`. The caller checked the arguments.
    pub(super) fn record_places(
        &self,
        txn: &WriteTransaction,
        t: &mut Tables<'_>,
        ids: &[EntryId],
        shards: &[u32],
    ) -> StageResult<()> {
        // Each block is read and written once, however many of the batch's ids it holds.
        let mut blocks: BTreeMap<(&str, u64), Vec<(usize, u32)>> = BTreeMap::new();
        let mut highest: Vec<(&str, u64)> = Vec::new();
        for (id, &shard) in ids.iter().zip(shards) {
            let (block, offset) = rules::location_slot(id.number());
            blocks
                .entry((id.prefix(), block))
                .or_default()
                .push((offset, shard));
            match highest.iter_mut().find(|(p, _)| *p == id.prefix()) {
                Some((_, n)) => *n = (*n).max(id.number()),
                None => highest.push((id.prefix(), id.number())),
            }
        }
        for (prefix, number) in highest {
            self.raise_sequence(t, prefix, number)?;
        }
        let mut table = self.write_table(txn, LOCATIONS)?;
        for ((prefix, block), places) in blocks {
            let mut bytes = table
                .get((prefix, block))
                .map_err(|e| self.fail("read", e))?
                .map(|g| g.value().to_vec())
                .unwrap_or_default();
            for (offset, shard) in places {
                rules::write_location(&mut bytes, offset, shard)?;
            }
            table
                .insert((prefix, block), bytes.as_slice())
                .map_err(|e| self.fail("write", e))?;
        }
        Ok(())
    }

    pub(super) fn locate_ids(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.check_locator()?;
        if ids.is_empty() {
            return Ok(());
        }
        let txn = self.begin_read()?;
        let table = match txn.open_table(LOCATIONS) {
            Ok(table) => table,
            // A shard created before locations were kept has placed nothing.
            Err(redb::TableError::TableDoesNotExist(_)) => {
                out.extend(ids.iter().map(|_| 0));
                return Ok(());
            }
            Err(e) => return Err(self.fail("open table `locations` in", e)),
        };
        let mut cached: Option<((String, u64), Vec<u8>)> = None;
        for id in ids {
            let (block, offset) = rules::location_slot(id.number());
            let hit = cached
                .as_ref()
                .is_some_and(|((p, b), _)| p == id.prefix() && *b == block);
            if !hit {
                let bytes = table
                    .get((id.prefix(), block))
                    .map_err(|e| self.fail("read", e))?
                    .map(|g| g.value().to_vec())
                    .unwrap_or_default();
                cached = Some(((id.prefix().to_owned(), block), bytes));
            }
            let bytes = cached.as_ref().map_or(&[][..], |(_, b)| b.as_slice());
            out.push(rules::read_location(bytes, offset));
        }
        Ok(())
    }
}
