//! `migrate`: every shard brought to the newest storage format its storage writes, shard 0 last.

use super::*;

/// What migrating one shard did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShardMigration {
    pub shard: u32,
    /// The storage format before ([`crate::layout::FORMAT`]; 1 when the storage reports none).
    pub from: u32,
    /// The storage format after.
    pub to: u32,
    /// Stored revisions rewritten (0: the shard was of the newest format already).
    pub rewritten: u64,
}

impl Pipeline {
    /// Brings every shard to the newest storage format ([`Storage::migrate`]): the other shards
    /// first, then shard 0, given the shard of every entry stored elsewhere, so that it
    /// records them in the same transaction as its new format. A crash leaves each shard in its
    /// old form or its new one: the registry reads either way (no entry moves between shards,
    /// and the ids of an interleaved registry still name their shard until shard 0 is
    /// migrated), and running `migrate` again finishes the job. `progress` is told each shard
    /// as it starts.
    ///
    /// The pipeline keeps the numbering it was built with: build a new one to use the
    /// migrated registry. A storage that copies rather than converts in place (Redis) goes on
    /// reporting the old format until it is opened again: [`ShardMigration::to`] is what the
    /// shard reports right after, and [`Pipeline::formats`] of a new pipeline tells the rest.
    ///
    /// # Errors
    /// The first shard that fails: the shards before it are migrated, it and the ones after
    /// are as they were.
    pub fn migrate(&self, progress: &mut dyn FnMut(u32)) -> Result<Vec<ShardMigration>, Error> {
        let storage = &self.stages.storage;
        let k = self.shards_u32();
        let mut done = Vec::with_capacity(storage.len());
        for shard in (1..k).chain([0]) {
            progress(shard);
            let s = &*storage[shard as usize];
            let from = format_of(s)?;
            let (ids, places) = if shard == 0 && k > 1 && !self.dense {
                self.stored_elsewhere()?
            } else {
                (Vec::new(), Vec::new())
            };
            let rewritten = s
                .migrate(&ids, &places)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            done.push(ShardMigration {
                shard,
                from,
                to: format_of(s)?,
                rewritten,
            });
        }
        done.sort_by_key(|m| m.shard);
        Ok(done)
    }

    /// The storage format of each shard, as it reports it (1 when it reports none).
    ///
    /// # Errors
    /// When a shard's metadata cannot be read.
    pub fn formats(&self) -> Result<Vec<u32>, Error> {
        self.stages
            .storage
            .iter()
            .map(|s| format_of(&**s))
            .collect()
    }

    /// The id of every entry stored in a shard other than 0, with that shard.
    fn stored_elsewhere(&self) -> Result<(Vec<EntryId>, Vec<u32>), Error> {
        let mut ids = Vec::new();
        let mut places = Vec::new();
        for (shard, s) in self.stages.storage.iter().enumerate().skip(1) {
            let shard = u32::try_from(shard).unwrap_or(u32::MAX);
            self.walk_shard(&**s, None, &mut |page| {
                for entry in page {
                    ids.push(entry.header.id);
                    places.push(shard);
                }
                Ok(())
            })?;
        }
        Ok((ids, places))
    }
}

/// The storage format a shard reports (1 when it reports none).
fn format_of(storage: &dyn Storage) -> Result<u32, Error> {
    let mut meta = crate::Meta::new();
    match storage.meta(&mut meta) {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::Invalid => {}
        Err(e) => return Err(Error::stage(StageKind::Storage, e)),
    }
    Ok(meta
        .get(crate::layout::FORMAT)
        .and_then(|f| f.parse().ok())
        .unwrap_or(1))
}
