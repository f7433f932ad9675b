//! [`RedbStorage`]'s `restore`: histories exported from another registry, stored as they are.

use registry_core::rules;
use registry_core::{Entry, Restored, StageResult};

use super::{NewIndex, Pending, RedbStorage, Tables};
use crate::codec;

impl RedbStorage {
    /// Restores one history inside the batch's transaction. The outer error fails the whole
    /// batch (the store cannot be read or written); the inner one is this item's outcome.
    fn restore_one<'e>(
        &self,
        t: &mut Tables<'_>,
        pending: &Pending,
        history: &'e [Entry],
        claimed: &mut rules::Claimed,
        index: &mut NewIndex<'e>,
        writing: codec::Writing<'_>,
    ) -> StageResult<StageResult<Restored>> {
        let checked = rules::check_restore(history, self.numbering(), &self.name())
            .and_then(|latest| claimed.claim(latest).map(|()| latest));
        let latest = match checked {
            Ok(latest) => latest,
            Err(e) => return Ok(Err(e)),
        };
        let id = &latest.header.id;
        if let Some(stored) = self.latest_mut(&mut t.entries, id)? {
            return Ok(rules::restore_over(&stored, latest));
        }
        let other = self.registered_any(pending, &t.fingerprints, &latest.fingerprint)?;
        if let Some(other) = other {
            return Ok(Err(rules::registered_as(id, &other, &latest.fingerprint)));
        }
        // Every revision is coded before anything is written, so an entry too large to store
        // fails alone and leaves nothing of itself behind.
        let mut coded = Vec::with_capacity(history.len());
        for e in history {
            let mut buf = Vec::new();
            if let Err(err) = self.encode(e, writing, &mut buf) {
                return Ok(Err(err));
            }
            coded.push(buf);
        }
        let key = (id.prefix(), id.number());
        let write = |e| self.fail("write", e);
        let earlier = history.len().saturating_sub(1);
        for (e, bytes) in history.iter().zip(&coded).take(earlier) {
            t.revisions
                .insert((key.0, key.1, e.revision), bytes.as_slice())
                .map_err(write)?;
        }
        if let Some(bytes) = coded.last() {
            t.entries.insert(self, id, bytes)?;
        }
        t.fingerprints
            .insert(latest.fingerprint.0, key)
            .map_err(write)?;
        index.add(key, latest);
        Ok(Ok(Restored::Created))
    }

    /// One transaction for the batch, durable unless `durable = false`. Each history is checked
    /// by the rules every storage keeps ([`rules::check_restore`], [`rules::Claimed`],
    /// [`rules::restore_over`]): a malformed one, or one whose id's number belongs to another
    /// shard, is `Invalid`; an id or fingerprint named earlier in the batch, an id stored with
    /// another latest revision, or a fingerprint registered under another id is a `Conflict`;
    /// an entry stored with the same latest revision, hash and fingerprint is `Unchanged`. A
    /// batch that creates nothing skips the commit and its `fsync`.
    pub(super) fn restore_histories(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        if histories.is_empty() {
            return Ok(());
        }
        let _writing = self.writing();
        let txn = self.begin_write(self.write_durability())?;
        let mut outcomes = Vec::with_capacity(histories.len());
        let mut wrote = false;
        let saving;
        {
            let mut t = self.open_tables(&txn)?;
            let mut claimed = rules::Claimed::default();
            let mut index = NewIndex::default();
            let pending = self.pending_writing()?;
            let dictionaries = self.dictionaries();
            let writing = self.entry_writing(&dictionaries);
            for history in histories {
                let outcome =
                    self.restore_one(&mut t, &pending, history, &mut claimed, &mut index, writing)?;
                wrote |= outcome == Ok(Restored::Created);
                outcomes.push(outcome);
            }
            self.write_index(&mut t, index)?;
            saving = wrote && self.save_allocations(&mut t)?;
        }
        self.commit_if(txn, wrote)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        out.extend(outcomes);
        Ok(())
    }
}
