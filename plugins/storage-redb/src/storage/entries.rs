//! Where a shard keeps the latest revision of each entry: one table per id prefix in storage
//! format 2 (`entries/{prefix}`, keyed by number), one table keyed by `(prefix, number)` in
//! format 1 (`entries`).
//!
//! Design decision: a shard's entries of several prefixes grow side by side. In one table keyed
//! by `(prefix, number)`, every prefix but the last grows in the middle of the tree, and redb
//! splits a full page in half there, so 43 % of that table's pages stayed unused (535 bytes of
//! pages per entry at 1,000,000 entries, for 307 bytes of rows). A table per prefix grows only
//! at its end, whose pages fill. A registry has a few dozen prefixes, so a few dozen tables.
//!
//! [`Latest`] opens a prefix's table the first time a transaction needs it and keeps it for the
//! rest of the transaction.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;

use redb::{
    AccessGuard, ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, TableHandle, WriteTransaction,
};
use registry_core::{EntryId, StageResult};

use super::{ENTRIES, RedbStorage};

/// The name of a format 2 shard's table of the entries of `prefix`.
pub(super) fn table_name(prefix: &str) -> String {
    format!("{PER_PREFIX}{prefix}")
}

/// What every per-prefix table's name starts with.
pub(super) const PER_PREFIX: &str = "entries/";

fn definition(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// The prefixes that have a table in a format 2 shard, sorted (so in id order).
pub(super) fn prefixes_of(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut prefixes: Vec<String> = names
        .filter_map(|n| n.strip_prefix(PER_PREFIX).map(str::to_owned))
        .collect();
    prefixes.sort();
    prefixes
}

/// The per-prefix tables a read transaction opened so far (`None`: the prefix has none).
type Opened = RefCell<HashMap<String, Option<ReadOnlyTable<u64, &'static [u8]>>>>;

/// The latest revisions, in a read transaction.
pub(super) enum Latest<'t> {
    Single(ReadOnlyTable<(&'static str, u64), &'static [u8]>),
    Split {
        txn: &'t ReadTransaction,
        open: Opened,
    },
}

/// The latest revisions, in a write transaction.
pub(super) enum LatestMut<'t> {
    Single(Table<'t, (&'static str, u64), &'static [u8]>),
    Split {
        txn: &'t WriteTransaction,
        open: HashMap<String, Table<'t, u64, &'static [u8]>>,
    },
}

impl RedbStorage {
    /// The latest revisions of this shard, read through `txn`.
    pub(super) fn latest_rows<'t>(&self, txn: &'t ReadTransaction) -> StageResult<Latest<'t>> {
        if self.format() >= 2 {
            Ok(Latest::Split {
                txn,
                open: RefCell::new(HashMap::new()),
            })
        } else {
            Ok(Latest::Single(self.read_table(txn, ENTRIES)?))
        }
    }

    /// The latest revisions of this shard, written through `txn`.
    pub(super) fn latest_rows_mut<'t>(
        &self,
        txn: &'t WriteTransaction,
    ) -> StageResult<LatestMut<'t>> {
        if self.format() >= 2 {
            Ok(LatestMut::Split {
                txn,
                open: HashMap::new(),
            })
        } else {
            Ok(LatestMut::Single(self.write_table(txn, ENTRIES)?))
        }
    }

    /// The prefixes of a format 2 shard, sorted.
    pub(super) fn prefixes_read(&self, txn: &ReadTransaction) -> StageResult<Vec<String>> {
        let names = txn.list_tables().map_err(|e| self.fail("read", e))?;
        Ok(prefixes_of(names.map(|t| t.name().to_owned())))
    }

    /// The prefixes of a format 2 shard, sorted.
    pub(super) fn prefixes_write(&self, txn: &WriteTransaction) -> StageResult<Vec<String>> {
        let names = txn.list_tables().map_err(|e| self.fail("read", e))?;
        Ok(prefixes_of(names.map(|t| t.name().to_owned())))
    }
}

impl Latest<'_> {
    /// Calls `f` with the stored bytes of `id`'s latest revision, if any.
    pub(super) fn with<R>(
        &self,
        s: &RedbStorage,
        id: &EntryId,
        f: impl FnOnce(&[u8]) -> StageResult<R>,
    ) -> StageResult<Option<R>> {
        self.guard(s, id)?.map(|bytes| f(bytes.value())).transpose()
    }

    /// The stored bytes of `id`'s latest revision, if any, held for as long as the guard is.
    pub(super) fn guard(
        &self,
        s: &RedbStorage,
        id: &EntryId,
    ) -> StageResult<Option<AccessGuard<'static, &'static [u8]>>> {
        match self {
            Latest::Single(table) => table
                .get((id.prefix(), id.number()))
                .map_err(|e| s.fail("read", e)),
            Latest::Split { txn, open } => {
                let mut open = open.borrow_mut();
                if !open.contains_key(id.prefix()) {
                    let name = table_name(id.prefix());
                    let table = match txn.open_table(definition(&name)) {
                        Ok(t) => Some(t),
                        Err(redb::TableError::TableDoesNotExist(_)) => None,
                        Err(e) => return Err(s.fail(&format!("open table `{name}` in"), e)),
                    };
                    open.insert(id.prefix().to_owned(), table);
                }
                let Some(Some(table)) = open.get(id.prefix()) else {
                    return Ok(None);
                };
                table.get(id.number()).map_err(|e| s.fail("read", e))
            }
        }
    }

    /// Calls `each` with every `(id, bytes)` in id order after `after`, until it returns false.
    pub(super) fn walk(
        &self,
        s: &RedbStorage,
        after: Option<&EntryId>,
        each: &mut dyn FnMut(EntryId, &[u8]) -> StageResult<bool>,
    ) -> StageResult<()> {
        match self {
            Latest::Single(table) => {
                let start = match after {
                    Some(a) => Bound::Excluded((a.prefix(), a.number())),
                    None => Bound::Unbounded,
                };
                let rows = table
                    .range((start, Bound::Unbounded))
                    .map_err(|e| s.fail("read", e))?;
                for row in rows {
                    let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                    let (prefix, number) = key.value();
                    if !each(EntryId::new(prefix, number), bytes.value())? {
                        break;
                    }
                }
                Ok(())
            }
            Latest::Split { txn, .. } => {
                for prefix in s.prefixes_read(txn)? {
                    let start = match after {
                        Some(a) if a.prefix() > prefix.as_str() => continue,
                        Some(a) if a.prefix() == prefix => Bound::Excluded(a.number()),
                        _ => Bound::Unbounded,
                    };
                    let table = s.read_table(txn, definition(&table_name(&prefix)))?;
                    let rows = table
                        .range::<u64>((start, Bound::Unbounded))
                        .map_err(|e| s.fail("read", e))?;
                    for row in rows {
                        let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                        if !each(EntryId::new(prefix.as_str(), key.value()), bytes.value())? {
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

impl<'t> LatestMut<'t> {
    /// The table of `prefix` in a format 2 shard, created if it does not exist.
    fn split_table<'a>(
        txn: &'t WriteTransaction,
        open: &'a mut HashMap<String, Table<'t, u64, &'static [u8]>>,
        s: &RedbStorage,
        prefix: &str,
    ) -> StageResult<&'a mut Table<'t, u64, &'static [u8]>> {
        if !open.contains_key(prefix) {
            let name = table_name(prefix);
            let table = s.write_table(txn, definition(&name))?;
            open.insert(prefix.to_owned(), table);
        }
        open.get_mut(prefix).ok_or_else(|| {
            registry_core::StageError::new(
                registry_core::ErrorCode::Internal,
                format!("the table of prefix {prefix} was lost"),
            )
        })
    }

    /// Calls `f` with the stored bytes of `id`'s latest revision, if any.
    pub(super) fn with<R>(
        &mut self,
        s: &RedbStorage,
        id: &EntryId,
        f: impl FnOnce(&[u8]) -> StageResult<R>,
    ) -> StageResult<Option<R>> {
        match self {
            LatestMut::Single(table) => match table
                .get((id.prefix(), id.number()))
                .map_err(|e| s.fail("read", e))?
            {
                Some(bytes) => f(bytes.value()).map(Some),
                None => Ok(None),
            },
            LatestMut::Split { txn, open } => {
                let table = Self::split_table(txn, open, s, id.prefix())?;
                match table.get(id.number()).map_err(|e| s.fail("read", e))? {
                    Some(bytes) => f(bytes.value()).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    /// Stores `bytes` as `id`'s latest revision; returns the bytes it replaces.
    pub(super) fn insert(
        &mut self,
        s: &RedbStorage,
        id: &EntryId,
        bytes: &[u8],
    ) -> StageResult<Option<Vec<u8>>> {
        let old = match self {
            LatestMut::Single(table) => table
                .insert((id.prefix(), id.number()), bytes)
                .map_err(|e| s.fail("write", e))?
                .map(|g| g.value().to_vec()),
            LatestMut::Split { txn, open } => Self::split_table(txn, open, s, id.prefix())?
                .insert(id.number(), bytes)
                .map_err(|e| s.fail("write", e))?
                .map(|g| g.value().to_vec()),
        };
        Ok(old)
    }

    /// How many entries the shard holds.
    pub(super) fn len(&mut self, s: &RedbStorage) -> StageResult<u64> {
        match self {
            LatestMut::Single(table) => table.len().map_err(|e| s.fail("read", e)),
            LatestMut::Split { txn, open } => {
                let mut total = 0;
                for prefix in s.prefixes_write(txn)? {
                    total += Self::split_table(txn, open, s, &prefix)?
                        .len()
                        .map_err(|e| s.fail("read", e))?;
                }
                Ok(total)
            }
        }
    }

    /// Calls `each` with the bytes of up to `max` of the latest revisions stored last (the
    /// highest numbers, spread over the prefixes), until it returns false.
    pub(super) fn last_rows(
        &mut self,
        s: &RedbStorage,
        max: usize,
        each: &mut dyn FnMut(EntryId, &[u8]) -> StageResult<()>,
    ) -> StageResult<()> {
        match self {
            LatestMut::Single(table) => {
                let rows = table.iter().map_err(|e| s.fail("read", e))?;
                for row in rows.rev().take(max) {
                    let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                    let (prefix, number) = key.value();
                    each(EntryId::new(prefix, number), bytes.value())?;
                }
                Ok(())
            }
            LatestMut::Split { txn, open } => {
                let prefixes = s.prefixes_write(txn)?;
                let per_prefix = max.div_ceil(prefixes.len().max(1));
                let mut taken = 0;
                for prefix in prefixes {
                    let table = Self::split_table(txn, open, s, &prefix)?;
                    let rows = table.iter().map_err(|e| s.fail("read", e))?;
                    for row in rows.rev().take(per_prefix.min(max - taken)) {
                        let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                        each(EntryId::new(prefix.as_str(), key.value()), bytes.value())?;
                        taken += 1;
                    }
                    if taken >= max {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// Up to `max` of the latest revisions after `after`, in id order, with their bytes.
    pub(super) fn chunk(
        &mut self,
        s: &RedbStorage,
        after: Option<&EntryId>,
        max: usize,
    ) -> StageResult<Vec<(EntryId, Vec<u8>)>> {
        let mut out = Vec::new();
        match self {
            LatestMut::Single(table) => {
                let start = match after {
                    Some(a) => Bound::Excluded((a.prefix(), a.number())),
                    None => Bound::Unbounded,
                };
                let rows = table
                    .range((start, Bound::Unbounded))
                    .map_err(|e| s.fail("read", e))?;
                for row in rows.take(max) {
                    let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                    let (prefix, number) = key.value();
                    out.push((EntryId::new(prefix, number), bytes.value().to_vec()));
                }
            }
            LatestMut::Split { txn, open } => {
                for prefix in s.prefixes_write(txn)? {
                    let start = match after {
                        Some(a) if a.prefix() > prefix.as_str() => continue,
                        Some(a) if a.prefix() == prefix => Bound::Excluded(a.number()),
                        _ => Bound::Unbounded,
                    };
                    let table = Self::split_table(txn, open, s, &prefix)?;
                    let rows = table
                        .range::<u64>((start, Bound::Unbounded))
                        .map_err(|e| s.fail("read", e))?;
                    for row in rows.take(max - out.len()) {
                        let (key, bytes) = row.map_err(|e| s.fail("read", e))?;
                        out.push((
                            EntryId::new(prefix.as_str(), key.value()),
                            bytes.value().to_vec(),
                        ));
                    }
                    if out.len() >= max {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}
