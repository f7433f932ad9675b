//! [`Pipeline::backup`] and the registry's high-water marks ([`Pipeline::high_water`],
//! [`Pipeline::raise_high_water`]): what `registry backup` and `registry restore` are made of.

use std::collections::BTreeMap;

use super::*;
use crate::stage::Sequence;

impl Pipeline {
    /// Copies every shard into the directory `dir` ([`Storage::backup`]), so that `dir` opens as
    /// this registry. The copy is consistent across shards when nothing else writes through
    /// this pipeline meanwhile (a command-line process: nothing does); each shard's copy is
    /// consistent by itself in any case. Returns the bytes copied.
    ///
    /// # Errors
    /// A shard that cannot be copied (its storage cannot copy itself, or the copy fails).
    pub fn backup(&self, dir: &str) -> Result<u64, Error> {
        let mut bytes = 0u64;
        for storage in &self.stages.storage {
            bytes += storage
                .backup(dir)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
        }
        Ok(bytes)
    }

    /// The registry's high-water marks: for each id prefix, the highest number any shard has
    /// handed out or stored, in prefix order.
    ///
    /// # Errors
    /// A shard whose sequences cannot be read.
    pub fn high_water(&self) -> Result<Vec<Sequence>, Error> {
        self.raise_high_water(&[])
    }

    /// Raises every shard's sequences to `marks`, so that no number up to a prefix's mark is
    /// handed out again, whatever shard allocates it (the interleaved numbering of format 1
    /// included); returns the marks after, as [`Pipeline::high_water`] does.
    ///
    /// # Errors
    /// A shard whose sequences cannot be read or raised (the shards before it are raised).
    pub fn raise_high_water(&self, marks: &[Sequence]) -> Result<Vec<Sequence>, Error> {
        let mut highest: BTreeMap<String, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for storage in &self.stages.storage {
            out.clear();
            storage
                .sequences(marks, &mut out)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            for s in out.drain(..) {
                let last = highest.entry(s.prefix).or_insert(0);
                *last = (*last).max(s.last);
            }
        }
        Ok(highest
            .into_iter()
            .map(|(prefix, last)| Sequence { prefix, last })
            .collect())
    }
}

impl Pipeline {
    /// Whether each shard answers: a read of its metadata, in shard order. A shard set aside as
    /// unavailable when the registry was opened answers with the reason.
    pub fn health(&self) -> Vec<Result<(), Error>> {
        self.stages
            .storage
            .iter()
            .map(|storage| {
                let mut meta = crate::stage::Meta::default();
                storage
                    .meta(&mut meta)
                    .map_err(|e| Error::stage(StageKind::Storage, e))
            })
            .collect()
    }
}
