//! [`RedbStorage`]'s `restore`: histories exported from another registry, stored as they are.

use super::*;

impl RedbStorage {
    /// Checks the shape of a history given to `restore` and returns its latest revision: at
    /// least one revision, numbered 1 to n, all with one id and fingerprint, and an id whose
    /// number belongs to this shard. The pipeline routes each history by its id, so the last
    /// check only catches a history sent to the wrong shard.
    fn check_history<'h>(&self, history: &'h [Entry]) -> Result<&'h Entry, StageError> {
        let invalid = |message: String| StageError::new(ErrorCode::Invalid, message);
        let Some(latest) = history.last() else {
            return Err(invalid(
                "a history to restore is empty: it must hold revisions 1 to n".to_owned(),
            ));
        };
        let id = &latest.header.id;
        for (at, e) in history.iter().enumerate() {
            let want = at + 1;
            if e.revision as usize != want {
                return Err(invalid(format!(
                    "entry {id}: revision {want} of its history is numbered {}: a history holds \
                     revisions 1 to n, oldest first",
                    e.revision
                )));
            }
            if e.header.id != *id {
                return Err(invalid(format!(
                    "entry {id}: revision {want} of its history has id {}: every revision has \
                     the entry's id",
                    e.header.id
                )));
            }
            if e.fingerprint != latest.fingerprint {
                return Err(invalid(format!(
                    "entry {id}: revision {want} of its history has fingerprint {}, the latest \
                     has {}: every revision has the entry's fingerprint",
                    e.fingerprint, latest.fingerprint
                )));
            }
        }
        let (s, k) = (u64::from(self.shard), u64::from(self.shards));
        match id.number().checked_sub(1) {
            None => Err(invalid(format!(
                "entry {id} has number 0: numbers start at 1"
            ))),
            Some(m) if m % k != s => Err(invalid(format!(
                "entry {id} belongs to shard {} of {k}, not to shard {s} (`{}`): the shard of \
                 number n is (n - 1) % shards",
                m % k,
                self.path.display()
            ))),
            Some(_) => Ok(latest),
        }
    }

    /// Restores one history inside the batch's transaction. The outer error fails the whole
    /// batch (the store cannot be read or written); the inner one is this item's outcome.
    fn restore_one<'e>(
        &self,
        t: &mut Tables<'_>,
        pending: &Pending,
        history: &'e [Entry],
        claimed: &mut Claimed,
        index: &mut NewIndex<'e>,
    ) -> StageResult<StageResult<Restored>> {
        let latest = match self.check_history(history) {
            Ok(latest) => latest,
            Err(e) => return Ok(Err(e)),
        };
        let id = &latest.header.id;
        // A second claim within the batch conflicts even when the first was not written: the
        // batch names one entry twice, and which one was meant is not storage's to guess.
        if !claimed.ids.insert(id.clone()) {
            return Ok(Err(conflict(format!(
                "entry {id} is given twice in one batch: only the first is restored"
            ))));
        }
        if !claimed.fingerprints.insert(latest.fingerprint) {
            return Ok(Err(conflict(format!(
                "entry {id} has the fingerprint {} of an entry given earlier in the batch: a \
                 request is registered once",
                latest.fingerprint
            ))));
        }
        if let Some(stored) = self.latest(&t.entries, id)? {
            return Ok(if same_latest(&stored, latest) {
                Ok(Restored::Unchanged)
            } else {
                Err(conflict(format!(
                    "entry {id} is already stored with other content: stored revision {} \
                     ({}), given revision {} ({})",
                    stored.revision, stored.hash, latest.revision, latest.hash
                )))
            });
        }
        let other = self.registered_any(pending, &t.fingerprints, &latest.fingerprint)?;
        if let Some(other) = other {
            return Ok(Err(conflict(format!(
                "the request of entry {id} is already registered as entry {other} (fingerprint \
                 {})",
                latest.fingerprint
            ))));
        }
        // Every revision is coded before anything is written, so an entry too large to store
        // fails alone and leaves nothing of itself behind.
        let mut coded = Vec::with_capacity(history.len());
        for e in history {
            let mut buf = Vec::new();
            if let Err(err) = self.encode(e, &mut buf) {
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
            t.entries.insert(key, bytes.as_slice()).map_err(write)?;
        }
        t.fingerprints
            .insert(latest.fingerprint.0, key)
            .map_err(write)?;
        index.add(key, latest);
        Ok(Ok(Restored::Created))
    }

    /// One transaction for the batch, durable unless `durable = false`. A history is malformed
    /// (`Invalid`) when it is empty, its revisions are not numbered 1 to n, they differ in id or
    /// fingerprint, or its id's number belongs to another shard. An entry stored with the
    /// same latest revision, hash and fingerprint is `Unchanged`; the fingerprint is compared too,
    /// because an entry that matches in content but was registered from another request is not
    /// the one being restored. A batch that creates nothing skips the commit and its `fsync`.
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
            let mut claimed = Claimed::default();
            let mut index = NewIndex::default();
            let pending = self.pending();
            for history in histories {
                let outcome =
                    self.restore_one(&mut t, &pending, history, &mut claimed, &mut index)?;
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

/// The ids and fingerprints the items of one `restore` batch have named so far.
#[derive(Default)]
struct Claimed {
    ids: HashSet<EntryId>,
    fingerprints: HashSet<Fingerprint>,
}

/// Whether a stored entry is the latest revision being restored: same revision, content hash
/// and fingerprint.
fn same_latest(stored: &Entry, given: &Entry) -> bool {
    stored.revision == given.revision
        && stored.hash == given.hash
        && stored.fingerprint == given.fingerprint
}

fn conflict(message: String) -> StageError {
    StageError::new(ErrorCode::Conflict, message)
}
