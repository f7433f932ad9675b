//! [`RedbStorage`]'s `backup` and `sequences`: a consistent copy of the shard's file, and its
//! id sequences read and raised (what `registry backup` and `registry restore` use).
//!
//! **Why a copy of the file.** redb keeps one file per shard and has no backup call of its
//! own. While this process holds the file (redb's lock keeps every other process out) and
//! holds the shard's writer lock (every write of this process takes it), the file does not
//! change; a durable commit first writes out what non-durable commits left in redb's buffers.
//! A byte copy taken then is the file as a clean reopen would see it, but marked as still open:
//! redb repairs it when it is next opened, which with quick-repair (on for every commit here)
//! reads the allocator state saved by that last commit instead of walking the file. A logical
//! copy (every table read and written into a new file) would compact as it goes, but is
//! several times slower and would have to know every table; the host checks the copy entry
//! by entry anyway.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use redb::{Durability, ReadableTable};
use registry_core::{ErrorCode, Sequence, StageError, StageResult};

use super::open::{io_reason, sync_dir};
use super::{RedbStorage, SEQUENCES};

impl RedbStorage {
    pub(super) fn backup_shard(&self, dir: &str) -> StageResult<u64> {
        let dir = Path::new(dir);
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.fail("copy", "the shard's path has no file name"))?;
        let to = dir.join(name);
        let tmp = dir.join(format!(".{}.copying", name.to_string_lossy()));
        let _writing = self.writing();
        // Writes out what non-durable commits left behind, and the allocator state quick-repair
        // reads when the copy is opened.
        let txn = self.begin_write(Durability::Immediate)?;
        {
            let mut t = self.open_tables(&txn)?;
            let saving = self.save_allocations(&mut t)?;
            drop(t);
            self.commit(txn)
                .inspect_err(|_| self.unsave_allocations(saving))?;
        }
        let copied = copy_synced(&self.path, &tmp).and_then(|bytes| {
            fs::rename(&tmp, &to)?;
            Ok(bytes)
        });
        match copied {
            Ok(bytes) => {
                sync_dir(dir)?;
                Ok(bytes)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(StageError::new(
                    ErrorCode::Storage,
                    format!(
                        "cannot copy `{}` to `{}`: {}",
                        self.path.display(),
                        to.display(),
                        io_reason(&e)
                    ),
                ))
            }
        }
    }

    pub(super) fn shard_sequences(
        &self,
        raise: &[Sequence],
        out: &mut Vec<Sequence>,
    ) -> StageResult<()> {
        if !raise.is_empty() {
            let _writing = self.writing();
            let txn = self.begin_write(Durability::Immediate)?;
            {
                let mut t = self.open_tables(&txn)?;
                for s in raise {
                    self.raise_sequence(&mut t, &s.prefix, s.last)?;
                }
            }
            self.commit(txn)?;
        }
        let txn = self.begin_read()?;
        let table = self.read_table(&txn, SEQUENCES)?;
        let allocated = self.allocated();
        let mut all = Vec::new();
        for row in table.iter().map_err(|e| self.fail("read", e))? {
            let (prefix, last) = row.map_err(|e| self.fail("read", e))?;
            let prefix = prefix.value();
            let handed = allocated.last.get(prefix).copied().unwrap_or(0);
            all.push(Sequence {
                prefix: prefix.to_owned(),
                last: last.value().max(handed),
            });
        }
        for (prefix, &last) in &allocated.last {
            if !all.iter().any(|s| &s.prefix == prefix) {
                all.push(Sequence {
                    prefix: prefix.clone(),
                    last,
                });
            }
        }
        all.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out.extend(all);
        Ok(())
    }
}

/// Copies `from` to a new file `to` and syncs it; returns the bytes copied.
fn copy_synced(from: &Path, to: &Path) -> io::Result<u64> {
    let mut source = File::open(from)?;
    let mut copy = File::options().write(true).create_new(true).open(to)?;
    let bytes = io::copy(&mut source, &mut copy)?;
    copy.sync_all()?;
    Ok(bytes)
}
