//! [`RedbStorage`]: the tables of one shard, and the `Storage` operations on them.
//!
//! Tables (all keys start with what grows, so inserts append to the B-trees):
//!
//! | table          | key                                        | value                  |
//! |----------------|--------------------------------------------|------------------------|
//! | `entries`      | `(prefix, number)`                         | latest revision, coded |
//! | `revisions`    | `(prefix, number, revision)`               | earlier revisions, coded |
//! | `fingerprints` | fingerprint bytes                          | `(prefix, number)`     |
//! | `pending_fingerprints` | insertion sequence                 | `(fingerprint, prefix, number)` |
//! | `field_index`  | `(field tag, value, prefix, number)`       | `()`                   |
//! | `sequences`    | `prefix`                                   | last allocated number  |
//! | `layout`       | `"shard"` or `"shards"`                    | the shard's place      |
//! | `meta`         | name                                       | registry metadata ([`registry_core::layout`]) |
//!
//! # Creating and opening
//!
//! A shard's file is created only when the host asks for it ([`Setup::create`]), and then
//! atomically: the database is initialised in a temporary file beside it (every table, the
//! layout and the metadata the host gives, in one durable transaction), and only then linked
//! under its name, which fails if another process got there first. A disk that fills up during
//! creation leaves no file that can never be opened, and a crash leaves at most a temporary
//! file nobody opens. Otherwise the file must exist: a missing one is `NotFound`, an empty one
//! (truncated) `Missing`, and neither is ever recreated, which would hide the shard's entries
//! and hand out their ids again.
//!
//! Each revision is stored once: the latest in `entries`, and an update moves the one it
//! replaces into `revisions`, so registering an entry writes its config once, not twice. Files
//! written before this layout also hold the latest revision in `revisions`; reading a history
//! skips a revision there that is not older than the latest, so both read the same.
//!
//! # The fingerprint index in two levels
//!
//! Fingerprints are hashes, so each new one lands on a random page of `fingerprints`: once the
//! table is larger than a batch, every registration rewrites a whole page of it, which made the
//! index cost more than the entry itself. So `insert` appends a new fingerprint to
//! `pending_fingerprints` instead (keyed by a growing sequence, so it costs an append) and keeps
//! it in memory too, in a map of the pending ones that lookups consult before the table. When
//! `fingerprint_merge` fingerprints are pending, the next `insert` moves them into
//! `fingerprints` in key order and empties `pending_fingerprints`, inside its own transaction,
//! before its batch: each page of the table is then rewritten once per merge rather than once
//! per entry. Opening a shard reads `pending_fingerprints` back into memory, so a crash loses
//! nothing that was committed. `restore`, which is rare, indexes into `fingerprints` directly.
//!
//! Every operation is one redb transaction, so a batch is stored entirely or not at all, and
//! readers see either all of a batch or none of it.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Display};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageError, Table, TableDefinition, TableHandle, WriteTransaction,
};
use registry_core::layout;
use registry_core::{
    Entry, EntryId, ErrorCode, Field, Fingerprint, FromConfig, Inserted, ListQuery, Meta, Restored,
    Setup, StageError, StageResult, Storage,
};

use crate::Config;
use crate::codec;

const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
const REVISIONS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("revisions");
const FINGERPRINTS: TableDefinition<[u8; 16], (&str, u64)> = TableDefinition::new("fingerprints");
const FIELD_INDEX: TableDefinition<(u8, &str, &str, u64), ()> = TableDefinition::new("field_index");
const PENDING: TableDefinition<u64, ([u8; 16], &str, u64)> =
    TableDefinition::new("pending_fingerprints");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
const LAYOUT: TableDefinition<&str, u32> = TableDefinition::new("layout");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// The smallest page cache a shard gets, in MiB, however many shards share `cache_size_mb`.
const MIN_CACHE_MB: u64 = 4;

/// How long to sleep between attempts to open a file another process holds.
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// The tag of a field in `field_index` keys. Stored on disk: never renumber.
fn tag(field: Field) -> u8 {
    match field {
        Field::Scope => 0,
        Field::Type => 1,
        Field::Variant => 2,
        Field::Status => 3,
    }
}

/// One storage shard: one redb file, `{data_dir}/shard-{shard:03}.redb`.
///
/// # Allocation and durability
///
/// [`Storage::allocate`] writes nothing itself: it hands out the next numbers from a counter in
/// memory per prefix, started from the `sequences` table, so allocating never waits for a
/// writer. The next write transaction (an `insert`, `update` or `restore`, or the close of the
/// shard) saves the counters into `sequences`, and they reach the disk with its commit. This is
/// safe because a number counts as used only once an entry holding it is stored, only this
/// process can open the file (redb locks it), and:
///
/// - `insert` and `restore` raise the prefix's sequence to at least every number they store, in
///   the same transaction as the entries, so whatever state a crash leaves, the sequence is never
///   below a stored number;
/// - an entry is stored by a write transaction, which saves the counters too, so an allocation
///   not yet saved is lost only in a crash, together with every entry meant to use it.
///
/// So a crash may hand out a number again, but only one that no stored entry holds: ids may have
/// gaps, never collisions. The cost saved is a write transaction per allocation, which had to
/// wait for the shard's writer.
///
/// With `durable = false` in the [`Config`], `insert` and `update` also commit with
/// `Durability::None`; the same argument keeps ids unique among the entries that survive a crash.
pub struct RedbStorage {
    db: Database,
    path: PathBuf,
    shard: u32,
    shards: u32,
    durable: bool,
    /// The last number handed out per prefix since the file was opened.
    allocated: Mutex<Allocated>,
    /// The fingerprints in `pending_fingerprints`, as of the last commit.
    pending: RwLock<Pending>,
    /// How many pending fingerprints make the next `insert` merge them into `fingerprints`.
    merge_every: usize,
    /// Held by `insert`, `update` and `restore` from before their transaction begins until
    /// the pending map matches what they committed. redb lets the next writer in as soon as a
    /// commit ends; without this, it could read the map (and the next key of
    /// `pending_fingerprints`) before the previous writer updated it, and overwrite that
    /// writer's pending rows.
    writer: Mutex<()>,
}

/// The numbers handed out since the file was opened.
#[derive(Default)]
struct Allocated {
    last: HashMap<String, u64>,
    /// Whether some of `last` is above what `sequences` holds.
    unsaved: bool,
}

/// The fingerprints registered since the last merge, mirrored from `pending_fingerprints`.
///
/// Ids are kept as a number and the index of their prefix in `prefixes` (a registry has few
/// prefixes), about 40 bytes per fingerprint and no allocation each.
#[derive(Default)]
struct Pending {
    ids: HashMap<Fingerprint, (u32, u64)>,
    prefixes: Vec<String>,
    /// The key the next row of `pending_fingerprints` gets.
    next: u64,
}

impl Pending {
    fn get(&self, fingerprint: &Fingerprint) -> Option<EntryId> {
        let &(prefix, number) = self.ids.get(fingerprint)?;
        let prefix = self.prefixes.get(prefix as usize)?;
        Some(EntryId::new(prefix.as_str(), number))
    }

    fn add(&mut self, fingerprint: Fingerprint, id: &EntryId) {
        let at = match self.prefixes.iter().position(|p| p == id.prefix()) {
            Some(at) => at,
            None => {
                self.prefixes.push(id.prefix().to_owned());
                self.prefixes.len() - 1
            }
        };
        // A shard with more than 2^32 prefixes cannot be opened in memory anyway.
        let at = u32::try_from(at).unwrap_or(u32::MAX);
        self.ids.insert(fingerprint, (at, id.number()));
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Every pending fingerprint with its id's prefix and number, in key order.
    fn sorted(&self) -> Vec<(&Fingerprint, &str, u64)> {
        let mut rows: Vec<(&Fingerprint, &str, u64)> = self
            .ids
            .iter()
            .filter_map(|(fp, &(prefix, number))| {
                Some((fp, self.prefixes.get(prefix as usize)?.as_str(), number))
            })
            .collect();
        rows.sort_unstable_by_key(|&(fp, _, _)| *fp);
        rows
    }
}

/// What the entries a batch stores add to the field index and the sequences, gathered while
/// the batch is stored and written at its end by [`RedbStorage::write_index`].
#[derive(Default)]
struct NewIndex<'e> {
    rows: Vec<(u8, &'e str, &'e str, u64)>,
    /// The highest number stored per prefix: a batch has few prefixes.
    highest: Vec<(&'e str, u64)>,
}

impl<'e> NewIndex<'e> {
    /// Adds a newly stored entry (its latest revision) stored under `key`.
    fn add(&mut self, key: (&'e str, u64), entry: &'e Entry) {
        for (field, value) in entry.header.fields.iter() {
            self.rows.push((tag(field), value.as_str(), key.0, key.1));
        }
        match self.highest.iter_mut().find(|(prefix, _)| *prefix == key.0) {
            Some((_, number)) => *number = (*number).max(key.1),
            None => self.highest.push(key),
        }
    }
}

impl fmt::Debug for RedbStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStorage")
            .field("path", &self.path)
            .field("shard", &self.shard)
            .field("shards", &self.shards)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl Drop for RedbStorage {
    /// Saves the numbers handed out since the last write, so a clean close never hands them
    /// out again. A failure is not reported: no entry holds those numbers, so handing them out
    /// again is harmless.
    fn drop(&mut self) {
        if !self.allocated().unsaved {
            return;
        }
        let Ok(txn) = self.begin_write(Durability::Immediate) else {
            return;
        };
        let saved = self
            .open_tables(&txn)
            .and_then(|mut t| self.save_allocations(&mut t));
        if saved.is_ok() {
            let _ = self.commit(txn);
        }
    }
}

/// The write-side handles of every table but `layout`, opened once per write transaction.
struct Tables<'txn> {
    entries: Table<'txn, (&'static str, u64), &'static [u8]>,
    revisions: Table<'txn, (&'static str, u64, u32), &'static [u8]>,
    fingerprints: Table<'txn, [u8; 16], (&'static str, u64)>,
    index: Table<'txn, (u8, &'static str, &'static str, u64), ()>,
    sequences: Table<'txn, &'static str, u64>,
    pending: Table<'txn, u64, ([u8; 16], &'static str, u64)>,
}

impl FromConfig for RedbStorage {
    type Config = Config;

    /// Opens (or creates) the shard's file; see [`RedbStorage::open`].
    fn from_config(config: Config, setup: &Setup) -> StageResult<Self> {
        RedbStorage::open(&config, setup)
    }
}

impl RedbStorage {
    /// Opens the shard `setup.shard` of `setup.shards` in `setup.data_dir`; creates it (and the
    /// directory) only when `setup.create` says so and it does not exist. With `shards` 0 (shard
    /// 0, asked for the registry's shard count), the recorded count is used.
    ///
    /// # Errors
    /// - `NotFound` when the file does not exist and may not be created (for shard 0 asked for
    ///   the count: when no shard file exists in the directory at all);
    /// - `Missing` when the file is empty (truncated), or when shard 0 is asked for the count
    ///   while other shard files exist without it;
    /// - `Config` when the shard numbers are impossible, the data directory cannot be created or
    ///   written, or the file was created for another shard layout;
    /// - `Unavailable` when another process still holds the file after `lock_timeout_ms`;
    /// - `Storage` when the file cannot be opened or initialised (e.g. it is not a redb file).
    pub fn open(config: &Config, setup: &Setup) -> StageResult<RedbStorage> {
        setup.check_shard()?;
        let dir = &setup.data_dir;
        let path = shard_path(dir, setup.shard);
        let mut builder = Builder::new();
        let per_shard = (config.cache_size_mb / u64::from(setup.shards.max(1))).max(MIN_CACHE_MB);
        let cache_bytes = per_shard.saturating_mul(1024 * 1024);
        builder.set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX));
        let (db, created) = match (existing(&path)?, &setup.create) {
            (true, _) => (open_waiting(&builder, &path, config.lock_timeout_ms)?, None),
            (false, None) => return Err(not_found(dir, &path, setup)),
            (false, Some(meta)) => match create_atomically(&builder, dir, &path, setup, meta)? {
                Created::New(db) => (db, Some(meta)),
                Created::Raced => (open_waiting(&builder, &path, config.lock_timeout_ms)?, None),
            },
        };
        let mut storage = RedbStorage {
            db,
            path,
            shard: setup.shard,
            shards: setup.shards,
            durable: config.durable,
            allocated: Mutex::new(Allocated::default()),
            pending: RwLock::new(Pending::default()),
            merge_every: config.fingerprint_merge.max(1),
            writer: Mutex::new(()),
        };
        if created.is_none() {
            storage.prepare()?;
        }
        storage.load_pending()?;
        Ok(storage)
    }

    /// The shard's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the shard layout of an existing file (reopening a file as another shard, or with
    /// another shard count, would hand out numbers another shard already gave; with `shards` 0,
    /// adopts the recorded count), and creates the tables an older file lacks, so read
    /// transactions always find them. Commits only when a table was missing.
    fn prepare(&mut self) -> StageResult<()> {
        let txn = self.begin_write(Durability::Immediate)?;
        let tables: HashSet<String> = txn
            .list_tables()
            .map_err(|e| self.fail("read", e))?
            .map(|t| t.name().to_owned())
            .collect();
        let missing = [
            ENTRIES.name(),
            REVISIONS.name(),
            FINGERPRINTS.name(),
            FIELD_INDEX.name(),
            SEQUENCES.name(),
            PENDING.name(),
            META.name(),
        ]
        .iter()
        .any(|t| !tables.contains(*t));
        {
            if !tables.contains(LAYOUT.name()) {
                return Err(StageError::new(
                    ErrorCode::Storage,
                    format!(
                        "`{}` has no shard layout: it is not a shard of this registry",
                        self.path.display()
                    ),
                ));
            }
            let layout = self.write_table(&txn, LAYOUT)?;
            let mut recorded = [None, None];
            for (slot, key) in recorded.iter_mut().zip(["shard", "shards"]) {
                *slot = layout
                    .get(key)
                    .map_err(|e| self.fail("read", e))?
                    .map(|g| g.value());
            }
            if self.shards == 0 {
                self.shards = recorded[1].unwrap_or(0);
            }
            for ((key, want), stored) in [("shard", self.shard), ("shards", self.shards)]
                .into_iter()
                .zip(recorded)
            {
                match stored {
                    Some(have) if have != want => {
                        return Err(config_error(format!(
                            "`{}` was created with {key} = {have}, but is opened with {key} = \
                             {want}: changing the shard layout would reuse ids",
                            self.path.display()
                        )));
                    }
                    Some(_) => {}
                    None => {
                        return Err(StageError::new(
                            ErrorCode::Storage,
                            format!(
                                "`{}` records no `{key}` in its layout: it is damaged",
                                self.path.display()
                            ),
                        ));
                    }
                }
            }
        }
        if missing {
            self.open_tables(&txn)?;
            self.write_table(&txn, META)?;
            self.commit(txn)
        } else {
            txn.abort()
                .map_err(|e| self.fail("abort a transaction on", e))
        }
    }

    /// The metadata table and the layout's shard count.
    fn read_meta(&self, out: &mut Meta) -> StageResult<()> {
        let txn = self.begin_read()?;
        let table = self.read_table(&txn, META)?;
        for row in table.iter().map_err(|e| self.fail("read", e))? {
            let (key, value) = row.map_err(|e| self.fail("read", e))?;
            out.insert(key.value().to_owned(), value.value().to_owned());
        }
        out.insert(layout::SHARDS.to_owned(), self.shards.to_string());
        Ok(())
    }

    /// Writes what a batch's new entries add to the field index, in key order, and raises each
    /// prefix's sequence to the highest number stored, so `allocate` never hands out a stored
    /// number, whatever a crash forgot or a restore brought. Fingerprints are the caller's:
    /// `insert` makes them pending, `restore` writes them to `fingerprints`.
    fn write_index(&self, t: &mut Tables<'_>, mut index: NewIndex<'_>) -> StageResult<()> {
        // In key order, each page of the index is visited once rather than once per row.
        index.rows.sort_unstable();
        for row in index.rows {
            t.index.insert(row, ()).map_err(|e| self.fail("write", e))?;
        }
        for (prefix, number) in index.highest {
            self.raise_sequence(t, prefix, number)?;
        }
        Ok(())
    }

    /// Raises the stored sequence of `prefix` to `number` if it is below.
    fn raise_sequence(&self, t: &mut Tables<'_>, prefix: &str, number: u64) -> StageResult<()> {
        let last = t
            .sequences
            .get(prefix)
            .map_err(|e| self.fail("read", e))?
            .map_or(0, |g| g.value());
        if last < number {
            t.sequences
                .insert(prefix, number)
                .map_err(|e| self.fail("write", e))?;
        }
        Ok(())
    }

    /// Saves the numbers handed out since the last save into `sequences`, inside a write
    /// transaction. Returns whether there were any, so a caller whose commit fails can mark them
    /// unsaved again with [`RedbStorage::unsave_allocations`].
    fn save_allocations(&self, t: &mut Tables<'_>) -> StageResult<bool> {
        let last = {
            let mut allocated = self.allocated();
            if !allocated.unsaved {
                return Ok(false);
            }
            allocated.unsaved = false;
            allocated.last.clone()
        };
        for (prefix, number) in &last {
            if let Err(e) = self.raise_sequence(t, prefix, *number) {
                self.unsave_allocations(true);
                return Err(e);
            }
        }
        Ok(true)
    }

    /// Marks the allocations unsaved again after a commit that was to save them failed.
    fn unsave_allocations(&self, saving: bool) {
        if saving {
            self.allocated().unsaved = true;
        }
    }

    /// Reads `pending_fingerprints` into memory, at open.
    fn load_pending(&self) -> StageResult<()> {
        let txn = self.begin_read()?;
        let table = self.read_table(&txn, PENDING)?;
        let mut pending = Pending::default();
        for row in table.iter().map_err(|e| self.fail("read", e))? {
            let (key, value) = row.map_err(|e| self.fail("read", e))?;
            let (fingerprint, prefix, number) = value.value();
            pending.add(Fingerprint(fingerprint), &EntryId::new(prefix, number));
            pending.next = key.value() + 1;
        }
        *self.pending_mut() = pending;
        Ok(())
    }

    /// The pending fingerprints for reading. A poisoned lock only means a panic elsewhere while
    /// it was held; the map is changed only after a commit, whole, so it is never half-updated.
    fn pending(&self) -> RwLockReadGuard<'_, Pending> {
        self.pending.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending_mut(&self) -> RwLockWriteGuard<'_, Pending> {
        self.pending.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serializes the writers with their updates of the pending map; see `writer`.
    fn writing(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn allocated(&self) -> MutexGuard<'_, Allocated> {
        self.allocated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The id registered under a fingerprint, pending or merged.
    fn registered_any(
        &self,
        pending: &Pending,
        fingerprints: &impl ReadableTable<[u8; 16], (&'static str, u64)>,
        fingerprint: &Fingerprint,
    ) -> StageResult<Option<EntryId>> {
        match pending.get(fingerprint) {
            Some(id) => Ok(Some(id)),
            None => self.registered(fingerprints, fingerprint),
        }
    }

    /// Moves every pending fingerprint into `fingerprints`, in key order, and empties
    /// `pending_fingerprints`, inside `txn`. The caller empties the map after committing.
    fn merge_pending(&self, txn: &WriteTransaction, pending: &Pending) -> StageResult<()> {
        {
            let mut table = self.write_table(txn, FINGERPRINTS)?;
            for (fp, prefix, number) in pending.sorted() {
                table
                    .insert(fp.0, (prefix, number))
                    .map_err(|e| self.fail("write", e))?;
            }
        }
        txn.delete_table(PENDING)
            .map_err(|e| self.fail("write", e))?;
        Ok(())
    }

    /// A one-line `Storage` error naming the file: "cannot {doing} `{file}`: {reason}".
    fn fail(&self, doing: &str, e: impl Display) -> StageError {
        StageError::new(
            ErrorCode::Storage,
            format!(
                "cannot {doing} `{}`: {}",
                self.path.display(),
                one_line(&e.to_string())
            ),
        )
    }

    fn damaged(&self, id: &EntryId, why: impl Display) -> StageError {
        StageError::new(
            ErrorCode::Storage,
            format!(
                "entry {id} is damaged: {why} (in `{}`)",
                self.path.display()
            ),
        )
    }

    fn begin_write(&self, durability: Durability) -> StageResult<WriteTransaction> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| self.fail("begin a write transaction on", e))?;
        txn.set_durability(durability)
            .map_err(|e| self.fail("set the durability of a transaction on", e))?;
        // Quick repair records the allocator state with each durable commit, so reopening after
        // a crash need not walk the whole file.
        txn.set_quick_repair(true);
        Ok(txn)
    }

    fn commit(&self, txn: WriteTransaction) -> StageResult<()> {
        txn.commit().map_err(|e| self.fail("commit to", e))
    }

    /// Commits a transaction that wrote something; aborts one that did not, skipping the commit
    /// and its fsync.
    fn commit_if(&self, txn: WriteTransaction, wrote: bool) -> StageResult<()> {
        if wrote {
            self.commit(txn)
        } else {
            txn.abort()
                .map_err(|e| self.fail("abort a transaction on", e))
        }
    }

    fn write_durability(&self) -> Durability {
        if self.durable {
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    fn begin_read(&self) -> StageResult<ReadTransaction> {
        self.db
            .begin_read()
            .map_err(|e| self.fail("begin a read transaction on", e))
    }

    fn write_table<'txn, K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &'txn WriteTransaction,
        def: TableDefinition<K, V>,
    ) -> StageResult<Table<'txn, K, V>> {
        txn.open_table(def)
            .map_err(|e| self.fail(&format!("open table `{}` in", def.name()), e))
    }

    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> StageResult<redb::ReadOnlyTable<K, V>> {
        txn.open_table(def)
            .map_err(|e| self.fail(&format!("open table `{}` in", def.name()), e))
    }

    fn open_tables<'txn>(&self, txn: &'txn WriteTransaction) -> StageResult<Tables<'txn>> {
        Ok(Tables {
            entries: self.write_table(txn, ENTRIES)?,
            revisions: self.write_table(txn, REVISIONS)?,
            fingerprints: self.write_table(txn, FINGERPRINTS)?,
            index: self.write_table(txn, FIELD_INDEX)?,
            sequences: self.write_table(txn, SEQUENCES)?,
            pending: self.write_table(txn, PENDING)?,
        })
    }

    /// Decodes a stored entry and checks it is the one its key names.
    fn decode(&self, id: &EntryId, revision: Option<u32>, bytes: &[u8]) -> StageResult<Entry> {
        let entry = codec::decode(bytes).map_err(|e| self.damaged(id, e))?;
        if entry.header.id != *id {
            return Err(self.damaged(id, format!("its row holds entry {}", entry.header.id)));
        }
        if let Some(want) = revision
            && entry.revision != want
        {
            return Err(self.damaged(
                id,
                format!("row of revision {want} holds revision {}", entry.revision),
            ));
        }
        Ok(entry)
    }

    /// The latest revision of `id`, read through either kind of transaction.
    fn latest(
        &self,
        entries: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
        id: &EntryId,
    ) -> StageResult<Option<Entry>> {
        let row = entries
            .get((id.prefix(), id.number()))
            .map_err(|e| self.fail("read", e))?;
        match row {
            Some(bytes) => self.decode(id, None, bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The id registered under a fingerprint, if any.
    fn registered(
        &self,
        fingerprints: &impl ReadableTable<[u8; 16], (&'static str, u64)>,
        fingerprint: &Fingerprint,
    ) -> StageResult<Option<EntryId>> {
        let row = fingerprints
            .get(fingerprint.0)
            .map_err(|e| self.fail("read", e))?;
        Ok(row.map(|g| {
            let (prefix, number) = g.value();
            EntryId::new(prefix, number)
        }))
    }

    /// The entry a fingerprint row names, which must exist.
    fn registered_entry(
        &self,
        entries: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
        id: &EntryId,
        fingerprint: &Fingerprint,
    ) -> StageResult<Entry> {
        self.latest(entries, id)?.ok_or_else(|| {
            self.damaged(
                id,
                format!("fingerprint {fingerprint} names it but the entry is missing"),
            )
        })
    }

    /// The smallest number above `last` that belongs to this shard: `(n - 1) % shards == shard`.
    fn next_number(&self, last: u64) -> Option<u64> {
        let (s, k) = (u64::from(self.shard), u64::from(self.shards));
        // Work with m = n - 1, which must be at least `last` and leave the remainder s.
        let m = last.checked_add((s + k - last % k) % k)?;
        m.checked_add(1)
    }

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

    fn encode(&self, entry: &Entry, buf: &mut Vec<u8>) -> StageResult<()> {
        buf.clear();
        codec::encode(entry, buf).map_err(|e| {
            StageError::new(
                ErrorCode::Invalid,
                format!("entry {} cannot be stored: {e}", entry.header.id),
            )
        })
    }
}

impl Storage for RedbStorage {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        if fingerprints.is_empty() {
            return Ok(());
        }
        // The snapshot is taken before the pending map is read, so an id the map names that
        // the snapshot lacks was committed since: this lookup happened before it, and finds
        // nothing (the map never names an entry that is not committed).
        let txn = self.begin_read()?;
        let fps = self.read_table(&txn, FINGERPRINTS)?;
        let entries = self.read_table(&txn, ENTRIES)?;
        let pending = self.pending();
        let mut found = Vec::with_capacity(fingerprints.len());
        for fp in fingerprints {
            found.push(match pending.get(fp) {
                Some(id) => self.latest(&entries, &id)?,
                None => match self.registered(&fps, fp)? {
                    Some(id) => Some(self.registered_entry(&entries, &id, fp)?),
                    None => None,
                },
            });
        }
        drop(pending);
        out.extend(found);
        Ok(())
    }

    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let txn = self.begin_read()?;
        let entries = self.read_table(&txn, ENTRIES)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.push(self.latest(&entries, id)?);
        }
        out.extend(found);
        Ok(())
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        if prefixes.is_empty() {
            return Ok(());
        }
        // See the type's documentation for why a counter in memory is enough.
        let txn = self.begin_read()?;
        let sequences = self.read_table(&txn, SEQUENCES)?;
        let mut allocated = self.allocated();
        let mut numbers = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let stored = sequences
                .get(prefix.as_str())
                .map_err(|e| self.fail("read", e))?
                .map_or(0, |g| g.value());
            let handed = allocated.last.get(prefix.as_str()).copied().unwrap_or(0);
            let next = self.next_number(stored.max(handed)).ok_or_else(|| {
                StageError::new(
                    ErrorCode::Storage,
                    format!(
                        "the numbers of prefix {prefix} are exhausted in `{}`",
                        self.path.display()
                    ),
                )
            })?;
            match allocated.last.get_mut(prefix.as_str()) {
                Some(last) => *last = next,
                None => {
                    allocated.last.insert(prefix.clone(), next);
                }
            }
            allocated.unsaved = true;
            numbers.push(next);
        }
        out.extend(numbers);
        Ok(())
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _writing = self.writing();
        let txn = self.begin_write(self.write_durability())?;
        // Only a writer changes the pending map, after its commit and under `writer`, so the
        // map read here stays the committed one until this transaction ends. After a merge
        // the table holds every fingerprint the map does, so looking in both stays right.
        let pending = self.pending();
        let merge = pending.len() >= self.merge_every;
        if merge {
            self.merge_pending(&txn, &pending)?;
        }
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut added: HashMap<Fingerprint, EntryId> = HashMap::new();
        let mut next = if merge { 0 } else { pending.next };
        let saving;
        {
            let mut t = self.open_tables(&txn)?;
            let mut buf = Vec::new();
            let mut index = NewIndex::default();
            for entry in entries {
                let id = &entry.header.id;
                let key = (id.prefix(), id.number());
                if entry.revision != 1 {
                    return Err(StageError::new(
                        ErrorCode::Invalid,
                        format!(
                            "entry {id} has revision {}: a new entry has revision 1",
                            entry.revision
                        ),
                    ));
                }
                // A fingerprint repeated within the batch finds the first entry, which the
                // tables already hold.
                let known = match added.get(&entry.fingerprint) {
                    Some(id) => Some(id.clone()),
                    None => self.registered_any(&pending, &t.fingerprints, &entry.fingerprint)?,
                };
                if let Some(known) = known {
                    let stored = self.registered_entry(&t.entries, &known, &entry.fingerprint)?;
                    outcomes.push(Inserted::Existing(stored));
                    continue;
                }
                if t.entries
                    .get(key)
                    .map_err(|e| self.fail("read", e))?
                    .is_some()
                {
                    return Err(StageError::new(
                        ErrorCode::Conflict,
                        format!("id {id} is already taken by another entry"),
                    ));
                }
                self.encode(entry, &mut buf)?;
                let write = |e| self.fail("write", e);
                t.entries.insert(key, buf.as_slice()).map_err(write)?;
                t.pending
                    .insert(next, (entry.fingerprint.0, key.0, key.1))
                    .map_err(write)?;
                next += 1;
                index.add(key, entry);
                added.insert(entry.fingerprint, id.clone());
                outcomes.push(Inserted::Created);
            }
            self.write_index(&mut t, index)?;
            saving = self.save_allocations(&mut t)?;
        }
        self.commit(txn)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        drop(pending);
        let mut pending = self.pending_mut();
        if merge {
            pending.ids.clear();
        }
        for (fp, id) in &added {
            pending.add(*fp, id);
        }
        pending.next = next;
        drop(pending);
        out.extend(outcomes);
        Ok(())
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let _writing = self.writing();
        let txn = self.begin_write(self.write_durability())?;
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut wrote = false;
        let saving;
        {
            let mut t = self.open_tables(&txn)?;
            let mut buf = Vec::new();
            for entry in entries {
                let id = &entry.header.id;
                let key = (id.prefix(), id.number());
                // Earlier updates of this batch are already in the tables, so two updates of one
                // entry to the same revision conflict, as they would in two batches.
                let Some(stored) = self.latest(&t.entries, id)? else {
                    outcomes.push(Err(StageError::new(
                        ErrorCode::NotFound,
                        format!("no entry with id {id}"),
                    )));
                    continue;
                };
                if stored.revision.checked_add(1) != Some(entry.revision) {
                    outcomes.push(Err(StageError::new(
                        ErrorCode::Conflict,
                        format!(
                            "entry {id} is at revision {}: revision {} does not follow it",
                            stored.revision, entry.revision
                        ),
                    )));
                    continue;
                }
                self.encode(entry, &mut buf)?;
                let write = |e| self.fail("write", e);
                // The revision being replaced moves to `revisions`, as it was coded.
                let replaced = t
                    .entries
                    .insert(key, buf.as_slice())
                    .map_err(write)?
                    .map(|old| old.value().to_vec());
                if let Some(old) = replaced {
                    t.revisions
                        .insert((key.0, key.1, stored.revision), old.as_slice())
                        .map_err(write)?;
                }
                for (field, new) in entry.header.fields.iter() {
                    let old = &stored.header.fields[field];
                    if old != new {
                        t.index
                            .remove((tag(field), old.as_str(), key.0, key.1))
                            .map_err(write)?;
                        t.index
                            .insert((tag(field), new.as_str(), key.0, key.1), ())
                            .map_err(write)?;
                    }
                }
                wrote = true;
                outcomes.push(Ok(()));
            }
            saving = wrote && self.save_allocations(&mut t)?;
        }
        self.commit_if(txn, wrote)
            .inspect_err(|_| self.unsave_allocations(saving))?;
        out.extend(outcomes);
        Ok(())
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        let txn = self.begin_read()?;
        let entries = self.read_table(&txn, ENTRIES)?;
        let Some(latest) = self.latest(&entries, id)? else {
            return Ok(());
        };
        let revisions = self.read_table(&txn, REVISIONS)?;
        let (prefix, number) = (id.prefix(), id.number());
        let rows = revisions
            .range((prefix, number, 0)..(prefix, number, latest.revision))
            .map_err(|e| self.fail("read", e))?;
        let mut found = Vec::new();
        for row in rows {
            let (key, bytes) = row.map_err(|e| self.fail("read", e))?;
            found.push(self.decode(id, Some(key.value().2), bytes.value())?);
        }
        found.push(latest);
        out.extend(found);
        Ok(())
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        if query.limit == 0 {
            return Ok(());
        }
        let txn = self.begin_read()?;
        let entries = self.read_table(&txn, ENTRIES)?;
        let mut found = Vec::new();
        let mut take = |entry: Entry| {
            if query.matches(&entry) {
                found.push(entry);
            }
            found.len() < query.limit
        };
        // Any filter narrows the scan to its index, which is in id order within one value; the
        // other filters are checked on each entry. Without estimates of how many entries each
        // value has, the first given filter is as good a choice as any.
        let filter = Field::ALL
            .into_iter()
            .find_map(|f| query.filter[f].as_deref().map(|v| (f, v)));
        match filter {
            None => {
                let start = match &query.after {
                    Some(after) => Bound::Excluded((after.prefix(), after.number())),
                    None => Bound::Unbounded,
                };
                let rows = entries
                    .range((start, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                for row in rows {
                    let (key, bytes) = row.map_err(|e| self.fail("read", e))?;
                    let (prefix, number) = key.value();
                    let entry = self.decode(&EntryId::new(prefix, number), None, bytes.value())?;
                    if !take(entry) {
                        break;
                    }
                }
            }
            Some((field, value)) => {
                let index = self.read_table(&txn, FIELD_INDEX)?;
                let t = tag(field);
                let start = match &query.after {
                    Some(after) => Bound::Excluded((t, value, after.prefix(), after.number())),
                    None => Bound::Included((t, value, "", 0)),
                };
                let rows = index
                    .range((start, Bound::Unbounded))
                    .map_err(|e| self.fail("read", e))?;
                for row in rows {
                    let (key, _) = row.map_err(|e| self.fail("read", e))?;
                    let (row_tag, row_value, prefix, number) = key.value();
                    if row_tag != t || row_value != value {
                        break;
                    }
                    let id = EntryId::new(prefix, number);
                    let entry = self.latest(&entries, &id)?.ok_or_else(|| {
                        self.damaged(
                            &id,
                            format!("the {field} index lists it but the entry is missing"),
                        )
                    })?;
                    if !take(entry) {
                        break;
                    }
                }
            }
        }
        out.extend(found);
        Ok(())
    }

    /// One transaction for the batch, durable unless `durable = false`. A history is malformed
    /// (`Invalid`) when it is empty, its revisions are not numbered 1 to n, they differ in id or
    /// fingerprint, or its id's number belongs to another shard. An entry stored with the
    /// same latest revision, hash and fingerprint is `Unchanged`; the fingerprint is compared too,
    /// because an entry that matches in content but was registered from another request is not
    /// the one being restored. A batch that creates nothing skips the commit and its `fsync`.
    fn restore(
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

    fn meta(&self, out: &mut Meta) -> StageResult<()> {
        self.read_meta(out)
    }

    fn set_meta(&self, changes: &Meta) -> StageResult<()> {
        if changes.contains_key(layout::SHARDS) {
            return Err(StageError::new(
                ErrorCode::Invalid,
                "the shard count is recorded at creation and cannot be set",
            ));
        }
        let txn = self.begin_write(Durability::Immediate)?;
        {
            let mut table = self.write_table(&txn, META)?;
            for (key, value) in changes {
                if value.is_empty() {
                    table
                        .remove(key.as_str())
                        .map_err(|e| self.fail("write", e))?;
                } else {
                    table
                        .insert(key.as_str(), value.as_str())
                        .map_err(|e| self.fail("write", e))?;
                }
            }
        }
        self.commit(txn)
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

/// The file of shard `shard`.
fn shard_path(dir: &Path, shard: u32) -> PathBuf {
    dir.join(format!("shard-{shard:03}.redb"))
}

/// Whether the shard's file exists (and holds something).
///
/// # Errors
/// `Missing` for an empty file, which `Builder::create` would silently turn into an empty
/// database, and `Storage` or `Config` when it cannot be looked at or is not a file.
fn existing(path: &Path) -> StageResult<bool> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(StageError::new(
            ErrorCode::Storage,
            format!("`{}` is not a file", path.display()),
        )),
        Ok(m) if m.len() == 0 => Err(StageError::new(
            ErrorCode::Missing,
            format!(
                "`{}` is empty (0 bytes): it was truncated, and its entries are gone",
                path.display()
            ),
        )),
        Ok(_) => Ok(true),
        // A file where a directory of the path should be: the shard is not there either, and
        // creating it says why not.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(io_error("look at", path, &e)),
    }
}

/// The error for a shard file that does not exist and may not be created.
fn not_found(dir: &Path, path: &Path, setup: &Setup) -> StageError {
    if setup.shards == 0 {
        // Asked for the registry's shard count: is there a registry without shard 0?
        let others: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("shard-") && n.ends_with(".redb"))
            .collect();
        if let Some(other) = others.iter().min() {
            return StageError::new(
                ErrorCode::Missing,
                format!(
                    "`{}` does not exist, but `{other}` does: shard 0 of this registry is gone",
                    path.display()
                ),
            );
        }
        return StageError::new(
            ErrorCode::NotFound,
            format!("no registry in `{}`", dir.display()),
        );
    }
    StageError::new(
        ErrorCode::NotFound,
        format!("`{}` does not exist", path.display()),
    )
}

/// What [`create_atomically`] did.
enum Created {
    /// It created the file: the database, initialised.
    New(Database),
    /// Another process created it first.
    Raced,
}

/// Creates the shard's file whole or not at all: initialises the database in a temporary file
/// in the same directory (tables, layout and `meta` in one durable transaction), then links it
/// under its name, which fails if the name exists.
fn create_atomically(
    builder: &Builder,
    dir: &Path,
    path: &Path,
    setup: &Setup,
    meta: &Meta,
) -> StageResult<Created> {
    std::fs::create_dir_all(dir).map_err(|e| {
        config_error(format!(
            "cannot create data directory `{}`: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let tmp = dir.join(format!(
        ".shard-{:03}.redb.{}.creating",
        setup.shard,
        std::process::id()
    ));
    let result = initialise(builder, &tmp, setup, meta).and_then(|db| {
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {
                sync_dir(dir)?;
                Ok(Created::New(db))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::Raced),
            Err(e) => Err(io_error("create", path, &e)),
        }
    });
    // The link holds the file now (or nobody needs it): the temporary name goes either way.
    let _ = std::fs::remove_file(&tmp);
    result
}

fn initialise(builder: &Builder, tmp: &Path, setup: &Setup, meta: &Meta) -> StageResult<Database> {
    let _ = std::fs::remove_file(tmp);
    let fail = |e: &dyn Display| {
        StageError::new(
            ErrorCode::Storage,
            format!(
                "cannot create `{}`: {}",
                tmp.display(),
                one_line(&e.to_string())
            ),
        )
    };
    let db = builder.create(tmp).map_err(|e| match e {
        DatabaseError::Storage(StorageError::Io(io)) => io_error("create", tmp, &io),
        e => fail(&e),
    })?;
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        txn.open_table(ENTRIES).map_err(|e| fail(&e))?;
        txn.open_table(REVISIONS).map_err(|e| fail(&e))?;
        txn.open_table(FINGERPRINTS).map_err(|e| fail(&e))?;
        txn.open_table(FIELD_INDEX).map_err(|e| fail(&e))?;
        txn.open_table(SEQUENCES).map_err(|e| fail(&e))?;
        txn.open_table(PENDING).map_err(|e| fail(&e))?;
        let mut layout = txn.open_table(LAYOUT).map_err(|e| fail(&e))?;
        layout.insert("shard", setup.shard).map_err(|e| fail(&e))?;
        layout
            .insert("shards", setup.shards)
            .map_err(|e| fail(&e))?;
        let mut table = txn.open_table(META).map_err(|e| fail(&e))?;
        for (key, value) in meta {
            table
                .insert(key.as_str(), value.as_str())
                .map_err(|e| fail(&e))?;
        }
    }
    txn.commit().map_err(|e| fail(&e))?;
    Ok(db)
}

/// Makes a new name in `dir` durable.
fn sync_dir(dir: &Path) -> StageResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", dir, &e))
}

/// An I/O failure on `path`: `Config` when this process may not use it (permissions, a file
/// where a directory should be), `Storage` otherwise (the disk's).
fn io_error(doing: &str, path: &Path, e: &std::io::Error) -> StageError {
    let code = match e.kind() {
        std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::ReadOnlyFilesystem
        | std::io::ErrorKind::NotADirectory
        | std::io::ErrorKind::IsADirectory => ErrorCode::Config,
        _ => ErrorCode::Storage,
    };
    StageError::new(
        code,
        format!("cannot {doing} `{}`: {}", path.display(), io_reason(e)),
    )
}

/// Opens the existing file, waiting up to `timeout_ms` for another process holding it to let
/// go.
fn open_waiting(builder: &Builder, path: &Path, timeout_ms: u64) -> StageResult<Database> {
    // A timeout too large for the clock means waiting for as long as it takes.
    let deadline = Instant::now().checked_add(Duration::from_millis(timeout_ms));
    loop {
        match builder.open(path) {
            Ok(db) => return Ok(db),
            Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                let now = Instant::now();
                let left = deadline.map_or(LOCK_RETRY, |d| d.saturating_duration_since(now));
                if left.is_zero() {
                    return Err(StageError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "`{}` is in use by another registry process: gave up after waiting \
                             {timeout_ms} ms for it (lock_timeout_ms)",
                            path.display()
                        ),
                    ));
                }
                std::thread::sleep(left.min(LOCK_RETRY));
            }
            Err(DatabaseError::Storage(StorageError::Io(e))) => {
                return Err(io_error("open", path, &e));
            }
            Err(e) => {
                return Err(StageError::new(
                    ErrorCode::Storage,
                    format!(
                        "cannot open `{}`: {}",
                        path.display(),
                        one_line(&e.to_string())
                    ),
                ));
            }
        }
    }
}

fn config_error(message: String) -> StageError {
    StageError::new(ErrorCode::Config, message)
}

/// The operating system's reason, as `permission denied`: without the error number.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    one_line(text)
}

/// A message from another library as house style wants it: one lowercase line, no trailing
/// period. Only library text goes through here, never a path, whose case matters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches('.').to_lowercase()
}

#[cfg(test)]
mod tests {
    use registry_core::{Context, Fields, Header, Schema, Timestamp};
    use tempfile::TempDir;

    use super::*;

    /// The setup of a shard that is created if it does not exist.
    fn setup(dir: &Path, shard: u32, shards: u32) -> Setup {
        Setup {
            schema: Schema::default(),
            data_dir: dir.to_path_buf(),
            config_dir: dir.to_path_buf(),
            shard,
            shards,
            create: Some(Meta::new()),
        }
    }

    /// The setup of a shard that must exist.
    fn existing(dir: &Path, shard: u32, shards: u32) -> Setup {
        Setup {
            create: None,
            ..setup(dir, shard, shards)
        }
    }

    fn open(dir: &Path) -> RedbStorage {
        RedbStorage::from_config(Config::default(), &setup(dir, 0, 1)).expect("opens")
    }

    /// An entry of `SEC-RUL-{number}` at revision 1, with a fingerprint unique to `number` unless
    /// the test sets another.
    fn entry(number: u64, status: &str) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: status.into(),
            },
            id: EntryId::new("SEC-RUL", number),
            version: "v2.9".into(),
        };
        let title = format!("rule {number}");
        let context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid");
        let config = format!("rule: {number}\n");
        let mut fp = [0u8; 16];
        fp[..8].copy_from_slice(&number.to_le_bytes());
        Entry {
            hash: Entry::compute_hash(&header, &title, &context, &config),
            header,
            title,
            context,
            config,
            fingerprint: Fingerprint(fp),
            revision: 1,
            created_at: Timestamp(1_000),
            updated_at: Timestamp(1_000),
            provenance: None,
        }
    }

    /// The next revision of `e` with another status.
    fn revised(e: &Entry, status: &str) -> Entry {
        let mut next = e.clone();
        next.header.fields.status = status.into();
        next.revision += 1;
        next.updated_at = Timestamp(e.updated_at.0 + 1);
        next.hash = Entry::compute_hash(&next.header, &next.title, &next.context, &next.config);
        next
    }

    fn insert(s: &RedbStorage, entries: &[Entry]) -> StageResult<Vec<Inserted>> {
        let mut out = Vec::new();
        s.insert(entries, &mut out).map(|()| out)
    }

    fn get(s: &RedbStorage, number: u64) -> Option<Entry> {
        let mut out = Vec::new();
        s.get(&[EntryId::new("SEC-RUL", number)], &mut out)
            .expect("reads");
        assert_eq!(out.len(), 1);
        out.pop().flatten()
    }

    fn allocate(s: &RedbStorage, prefixes: &[&str]) -> Vec<u64> {
        let prefixes: Vec<String> = prefixes.iter().map(|&p| p.to_owned()).collect();
        let mut out = Vec::new();
        s.allocate(&prefixes, &mut out).expect("allocates");
        out
    }

    fn list(
        s: &RedbStorage,
        filter: &[(Field, &str)],
        after: Option<u64>,
        limit: usize,
    ) -> Vec<u64> {
        let mut query = ListQuery {
            after: after.map(|n| EntryId::new("SEC-RUL", n)),
            limit,
            ..ListQuery::default()
        };
        for &(field, value) in filter {
            query.filter[field] = Some(value.to_owned());
        }
        let mut out = Vec::new();
        s.list(&query, &mut out).expect("lists");
        out.iter().map(|e| e.header.id.number()).collect()
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RedbStorage>();
    }

    #[test]
    fn next_number_keeps_the_shard_residue() {
        // (shard, shards, last allocated or stored, expected next)
        for (shard, shards, last, next) in [
            (0, 1, 0, 1),
            (0, 1, 41, 42),
            (0, 3, 0, 1),
            (1, 3, 0, 2),
            (2, 3, 0, 3),
            (0, 3, 1, 4),
            (1, 3, 2, 5),
            (2, 3, 3, 6),
            // An inserted number of another residue raised the sequence.
            (1, 3, 7, 8),
            (1, 3, 6, 8),
            (1, 3, 5, 8),
            (0, 1, u64::MAX - 1, u64::MAX),
        ] {
            let dir = TempDir::new().expect("temp dir");
            let s = RedbStorage::open(&Config::default(), &setup(dir.path(), shard, shards))
                .expect("opens");
            assert_eq!(
                s.next_number(last),
                Some(next),
                "{shard}/{shards} after {last}"
            );
        }
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        assert_eq!(s.next_number(u64::MAX), None);
    }

    #[test]
    fn allocates_per_shard_and_prefix_and_persists() {
        let dir = TempDir::new().expect("temp dir");
        for shard in 0..3 {
            let s =
                RedbStorage::open(&Config::default(), &setup(dir.path(), shard, 3)).expect("opens");
            let numbers = allocate(&s, &["SEC-RUL", "SEC-RUL", "OPS-SCR", "SEC-RUL"]);
            let s1 = u64::from(shard) + 1;
            assert_eq!(numbers, [s1, s1 + 3, s1, s1 + 6], "shard {shard}");
            let more = allocate(&s, &["SEC-RUL"]);
            assert_eq!(more, [s1 + 9]);
            assert!(
                numbers
                    .iter()
                    .chain(&more)
                    .all(|n| (n - 1) % 3 == u64::from(shard))
            );
        }
        // Reopening continues where each shard left off.
        let s = RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 3)).expect("reopens");
        assert_eq!(allocate(&s, &["SEC-RUL", "OPS-SCR"]), [14, 5]);
        let mut out = Vec::new();
        s.allocate(&[], &mut out).expect("nothing to do");
        assert!(out.is_empty());
    }

    #[test]
    fn insert_raises_the_sequence() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        assert_eq!(allocate(&s, &["SEC-RUL"]), [1]);
        insert(&s, &[entry(7, "LIVE")]).expect("inserts");
        assert_eq!(allocate(&s, &["SEC-RUL"]), [8]);
    }

    #[test]
    fn inserts_and_reads_back() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let entries: Vec<Entry> = (1..=5).map(|n| entry(n, "LIVE")).collect();
        let outcomes = insert(&s, &entries).expect("inserts");
        assert_eq!(outcomes, vec![Inserted::Created; 5]);

        assert_eq!(get(&s, 3), Some(entries[2].clone()));
        assert_eq!(get(&s, 6), None);
        let mut out = Vec::new();
        s.get(
            &[EntryId::new("SEC-RUL", 5), EntryId::new("OPS-SCR", 1)],
            &mut out,
        )
        .expect("reads");
        assert_eq!(out, [Some(entries[4].clone()), None]);

        let mut out = Vec::new();
        s.find(&[entries[1].fingerprint, Fingerprint([9; 16])], &mut out)
            .expect("reads");
        assert_eq!(out, [Some(entries[1].clone()), None]);

        let mut out = Vec::new();
        s.history(&EntryId::new("SEC-RUL", 4), &mut out)
            .expect("reads");
        assert_eq!(out, [entries[3].clone()]);
        let mut out = Vec::new();
        s.history(&EntryId::new("SEC-RUL", 40), &mut out)
            .expect("reads");
        assert!(out.is_empty());
    }

    #[test]
    fn insert_is_idempotent_by_fingerprint() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let first = entry(1, "LIVE");
        insert(&s, std::slice::from_ref(&first)).expect("inserts");

        // Same fingerprint, another id: the stored entry comes back, nothing is written.
        let mut again = entry(2, "DEV");
        again.fingerprint = first.fingerprint;
        // Within one batch, the first of two equal fingerprints wins.
        let third = entry(3, "LIVE");
        let mut third_again = entry(4, "LIVE");
        third_again.fingerprint = third.fingerprint;
        let outcomes = insert(&s, &[again, third.clone(), third_again]).expect("inserts");
        assert_eq!(
            outcomes,
            [
                Inserted::Existing(first),
                Inserted::Created,
                Inserted::Existing(third)
            ]
        );
        assert_eq!(get(&s, 2), None);
        assert_eq!(get(&s, 4), None);
        assert_eq!(list(&s, &[], None, 10), [1, 3]);
    }

    #[test]
    fn a_taken_id_fails_the_whole_batch() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        insert(&s, &[entry(2, "LIVE")]).expect("inserts");
        let mut clash = entry(2, "DEV");
        clash.fingerprint = Fingerprint([1; 16]);
        let mut out = Vec::new();
        let err = s
            .insert(&[entry(1, "LIVE"), clash], &mut out)
            .expect_err("id 2 is taken");
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(
            err.message,
            "id SEC-RUL-002 is already taken by another entry"
        );
        assert!(out.is_empty());
        assert_eq!(get(&s, 1), None, "the batch was rolled back");

        // Two new entries with one id in one batch clash too.
        let mut twin = entry(3, "LIVE");
        twin.fingerprint = Fingerprint([2; 16]);
        let err = insert(&s, &[entry(3, "LIVE"), twin]).expect_err("id 3 twice");
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(get(&s, 3), None);

        let mut later = entry(5, "LIVE");
        later.revision = 2;
        let err = insert(&s, &[later]).expect_err("not revision 1");
        assert_eq!(err.code, ErrorCode::Invalid);
    }

    #[test]
    fn each_revision_is_stored_once_and_older_files_read_the_same() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let v1 = entry(1, "LIVE");
        insert(&s, std::slice::from_ref(&v1)).expect("inserts");
        let v2 = revised(&v1, "DEPRECATED");
        let v3 = revised(&v2, "DEV");
        for v in [&v2, &v3] {
            let mut out = Vec::new();
            s.update(std::slice::from_ref(v), &mut out)
                .expect("updates");
            assert!(out[0].is_ok(), "{out:?}");
        }
        let count_revisions = |s: &RedbStorage| {
            use redb::ReadableTableMetadata as _;
            let txn = s.db.begin_read().expect("read");
            let table = txn.open_table(REVISIONS).expect("table");
            table.len().expect("len")
        };
        // Revisions 1 and 2 in `revisions`, the latest only in `entries`.
        assert_eq!(count_revisions(&s), 2);
        let history = |s: &RedbStorage| {
            let mut out = Vec::new();
            s.history(&EntryId::new("SEC-RUL", 1), &mut out)
                .expect("reads");
            out
        };
        assert_eq!(history(&s), [v1.clone(), v2.clone(), v3.clone()]);

        // A file of the earlier layout also holds the latest revision in `revisions`.
        let mut buf = Vec::new();
        s.encode(&v3, &mut buf).expect("encodes");
        let txn = s.db.begin_write().expect("write");
        {
            let mut table = txn.open_table(REVISIONS).expect("table");
            table
                .insert(("SEC-RUL", 1, 3), buf.as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
        assert_eq!(count_revisions(&s), 3);
        assert_eq!(history(&s), [v1, v2, v3]);
    }

    #[test]
    fn updates_keep_history_and_check_revisions() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let v1 = entry(1, "LIVE");
        insert(&s, &[v1.clone(), entry(2, "LIVE")]).expect("inserts");
        let v2 = revised(&v1, "DEPRECATED");
        let stale = revised(&revised(&revised(&v1, "DEV"), "DEV"), "DEV");
        let mut unknown = revised(&entry(9, "LIVE"), "DEV");
        unknown.fingerprint = Fingerprint([3; 16]);

        let mut out = Vec::new();
        s.update(&[v2.clone(), stale, unknown, v2.clone()], &mut out)
            .expect("updates");
        let codes: Vec<Option<ErrorCode>> = out
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.code))
            .collect();
        assert_eq!(
            codes,
            [
                None,
                Some(ErrorCode::Conflict),
                Some(ErrorCode::NotFound),
                Some(ErrorCode::Conflict)
            ]
        );
        assert_eq!(
            out[1].as_ref().err().map(|e| e.message.as_str()),
            Some("entry SEC-RUL-001 is at revision 2: revision 4 does not follow it")
        );
        assert_eq!(get(&s, 1), Some(v2.clone()));
        let mut history = Vec::new();
        s.history(&EntryId::new("SEC-RUL", 1), &mut history)
            .expect("reads");
        assert_eq!(history, [v1.clone(), v2.clone()]);

        // The fingerprint still finds the entry, now at its latest revision.
        let mut found = Vec::new();
        s.find(&[v1.fingerprint], &mut found).expect("reads");
        assert_eq!(found, [Some(v2)]);

        // A batch with nothing to store succeeds and pushes one result per entry.
        let mut out = Vec::new();
        s.update(&[revised(&v1, "DEV")], &mut out).expect("runs");
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .as_ref()
                .is_err_and(|e| e.code == ErrorCode::Conflict)
        );
    }

    #[test]
    fn restore_messages_name_the_entry_and_what_is_wrong() {
        let dir = TempDir::new().expect("temp dir");
        let s = RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 2)).expect("opens");
        let restore = |histories: &[Vec<Entry>]| {
            let mut out = Vec::new();
            s.restore(histories, &mut out).expect("restores");
            out.into_iter()
                .map(|r| r.map_err(|e| (e.code, e.message)))
                .collect::<Vec<_>>()
        };
        let e2 = entry(2, "LIVE");
        let e2b = revised(&e2, "DEV");
        let mut twin = entry(4, "LIVE");
        twin.fingerprint = e2.fingerprint;
        let got = restore(&[
            vec![e2.clone(), e2b.clone()],
            vec![entry(3, "LIVE")],
            vec![e2.clone()],
            vec![twin.clone()],
        ]);
        assert_eq!(got[0], Ok(Restored::Created));
        let message = |i: usize| got[i].clone().expect_err("fails").1;
        assert!(
            message(1).starts_with("entry SEC-RUL-003 belongs to shard 0 of 2, not to shard 1"),
            "{}",
            message(1)
        );
        assert_eq!(
            message(2),
            "entry SEC-RUL-002 is given twice in one batch: only the first is restored"
        );
        assert!(message(3).starts_with("entry SEC-RUL-004 has the fingerprint"));

        // In a later batch: the fingerprint is registered, and a stale history conflicts.
        let mut got = restore(&[vec![twin]]);
        got.extend(restore(&[vec![e2.clone()]]));
        assert_eq!(
            got[0].clone().expect_err("taken").1,
            format!(
                "the request of entry SEC-RUL-004 is already registered as entry SEC-RUL-002 \
                 (fingerprint {})",
                e2.fingerprint
            )
        );
        assert_eq!(
            got[1].clone().expect_err("stale").1,
            format!(
                "entry SEC-RUL-002 is already stored with other content: stored revision 2 ({}), \
                 given revision 1 ({})",
                e2b.hash, e2.hash
            )
        );
        assert_eq!(get(&s, 2), Some(e2b));
        assert_eq!(allocate(&s, &["SEC-RUL"]), [4]);
    }

    #[test]
    fn lists_in_id_order_with_filters_and_pages() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let statuses = ["LIVE", "DEV", "LIVE", "DEV", "LIVE", "LIVE"];
        // Inserted out of order; 1000 sorts after 999 and before nothing else of its prefix.
        let mut entries: Vec<Entry> = statuses
            .iter()
            .enumerate()
            .rev()
            .map(|(i, st)| entry(i as u64 + 1, st))
            .collect();
        entries.push(entry(1000, "DEV"));
        insert(&s, &entries).expect("inserts");

        let live = [(Field::Status, "LIVE")];
        let dev = [(Field::Status, "DEV")];
        for (filter, after, limit, want) in [
            (&[][..], None, 100, &[1, 2, 3, 4, 5, 6, 1000][..]),
            (&[], None, 3, &[1, 2, 3]),
            (&[], Some(3), 2, &[4, 5]),
            (&[], Some(1000), 5, &[]),
            (&[], None, 0, &[]),
            (&live, None, 100, &[1, 3, 5, 6]),
            (&live, Some(3), 100, &[5, 6]),
            (&live, Some(1), 2, &[3, 5]),
            (&dev, None, 100, &[2, 4, 1000]),
            (
                &[(Field::Scope, "SEC"), (Field::Status, "DEV")],
                Some(2),
                100,
                &[4, 1000],
            ),
            (&[(Field::Scope, "OPS")], None, 100, &[]),
            (&[(Field::Status, "LIV")], None, 100, &[]),
            (
                &[(Field::Variant, "LIVE"), (Field::Status, "LIVE")],
                None,
                100,
                &[1, 3, 5, 6],
            ),
        ] {
            assert_eq!(
                list(&s, filter, after, limit),
                want,
                "{filter:?} after {after:?}"
            );
        }

        // An `after` of another prefix orders by prefix first.
        let mut query = ListQuery {
            after: Some(EntryId::new("OPS-SCR", 50)),
            limit: 2,
            ..ListQuery::default()
        };
        let mut out = Vec::new();
        s.list(&query, &mut out).expect("lists");
        assert_eq!(out.len(), 2);
        query.after = Some(EntryId::new("ZZZ-ZZZ", 1));
        out.clear();
        s.list(&query, &mut out).expect("lists");
        assert!(out.is_empty());
    }

    #[test]
    fn indexes_follow_updates() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        let e1 = entry(1, "LIVE");
        insert(&s, &[e1.clone(), entry(2, "LIVE")]).expect("inserts");
        let mut out = Vec::new();
        s.update(&[revised(&e1, "DEPRECATED")], &mut out)
            .expect("updates");
        assert!(out[0].is_ok());
        assert_eq!(list(&s, &[(Field::Status, "LIVE")], None, 10), [2]);
        assert_eq!(list(&s, &[(Field::Status, "DEPRECATED")], None, 10), [1]);
        // Unchanged fields keep their index rows.
        assert_eq!(list(&s, &[(Field::Variant, "LIVE")], None, 10), [1, 2]);
    }

    /// Rows in `pending_fingerprints`.
    fn pending_rows(s: &RedbStorage) -> u64 {
        let txn = s.begin_read().expect("reads");
        let table = s.read_table(&txn, PENDING).expect("opens");
        redb::ReadableTableMetadata::len(&table).expect("counts")
    }

    #[test]
    fn fingerprints_are_found_pending_merged_and_after_reopening() {
        let dir = TempDir::new().expect("temp dir");
        let config = Config {
            fingerprint_merge: 3,
            ..Config::default()
        };
        let fps = |upto: u64| -> Vec<Fingerprint> {
            (1..=upto).map(|n| entry(n, "LIVE").fingerprint).collect()
        };
        let find = |s: &RedbStorage, upto: u64| -> Vec<Option<u64>> {
            let mut out = Vec::new();
            s.find(&fps(upto), &mut out).expect("finds");
            out.iter()
                .map(|e| e.as_ref().map(|e| e.header.id.number()))
                .collect()
        };
        {
            let s =
                RedbStorage::from_config(config.clone(), &setup(dir.path(), 0, 1)).expect("opens");
            // Batches of two: merges happen before the batches that find 3 or more pending.
            let mut rows = Vec::new();
            for first in [1, 3, 5, 7, 9] {
                let batch = [entry(first, "LIVE"), entry(first + 1, "LIVE")];
                let outcomes = insert(&s, &batch).expect("inserts");
                assert!(outcomes.iter().all(|o| *o == Inserted::Created));
                rows.push(pending_rows(&s));
                let want: Vec<Option<u64>> = (1..=first + 1).map(Some).collect();
                assert_eq!(find(&s, first + 1), want, "after {}", first + 1);
                // A repeat is found whether its fingerprint is pending or merged.
                let again = insert(&s, &[entry(1, "LIVE"), entry(first, "LIVE")]).expect("ok");
                assert!(
                    matches!(&again[..], [Inserted::Existing(a), Inserted::Existing(b)]
                        if a.header.id.number() == 1 && b.header.id.number() == first),
                    "{again:?}"
                );
            }
            assert_eq!(rows, [2, 4, 2, 4, 2], "pending rows after each batch");
        }
        // The pending ones are read back at open; merged ones are in the table.
        let s = RedbStorage::from_config(config, &setup(dir.path(), 0, 1)).expect("reopens");
        assert_eq!(pending_rows(&s), 2);
        assert_eq!(find(&s, 10), (1..=10).map(Some).collect::<Vec<_>>());
        let again = insert(&s, &[entry(10, "LIVE"), entry(2, "LIVE")]).expect("ok");
        assert!(
            again.iter().all(|o| matches!(o, Inserted::Existing(_))),
            "{again:?}"
        );
        // A restore names a fingerprint pending in memory as taken.
        let mut other = entry(11, "LIVE");
        other.fingerprint = entry(10, "LIVE").fingerprint;
        let mut out = Vec::new();
        s.restore(&[vec![other]], &mut out).expect("restores");
        assert!(
            matches!(&out[..], [Err(e)] if e.code == ErrorCode::Conflict),
            "{out:?}"
        );
    }

    #[test]
    fn concurrent_inserts_keep_every_pending_fingerprint_on_disk() {
        let dir = TempDir::new().expect("temp dir");
        let (threads, batches, size) = (4u64, 40u64, 10u64);
        {
            let s = open(dir.path());
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let s = &s;
                    scope.spawn(move || {
                        for b in 0..batches {
                            let first = 1 + (t * batches + b) * size;
                            let batch: Vec<Entry> =
                                (first..first + size).map(|n| entry(n, "LIVE")).collect();
                            insert(s, &batch).expect("inserts");
                        }
                    });
                }
            });
        }
        let total = threads * batches * size;
        let s = open(dir.path());
        assert_eq!(pending_rows(&s), total, "a pending row was overwritten");
        let fps: Vec<Fingerprint> = (1..=total).map(|n| entry(n, "LIVE").fingerprint).collect();
        let mut found = Vec::new();
        s.find(&fps, &mut found).expect("finds");
        let missing: Vec<u64> = (1..=total)
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(n, _)| n)
            .collect();
        assert!(missing.is_empty(), "lost after reopening: {missing:?}");
    }

    #[test]
    fn allocations_are_saved_by_the_next_write_and_at_close() {
        let dir = TempDir::new().expect("temp dir");
        {
            let s = open(dir.path());
            assert_eq!(allocate(&s, &["SEC-RUL", "SEC-RUL", "SEC-RUL"]), [1, 2, 3]);
            insert(&s, &[entry(1, "LIVE")]).expect("inserts");
            // Saved by the insert: a store that is not closed cleanly still knows them.
            let txn = s.begin_read().expect("reads");
            let seq = s.read_table(&txn, SEQUENCES).expect("opens");
            let saved = seq.get("SEC-RUL").expect("reads").map(|g| g.value());
            assert_eq!(saved, Some(3));
            drop((seq, txn));
            assert_eq!(allocate(&s, &["SEC-RUL"]), [4]);
        }
        // 4 was saved by the close.
        let s = open(dir.path());
        assert_eq!(allocate(&s, &["SEC-RUL"]), [5]);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = TempDir::new().expect("temp dir");
        let e1 = entry(1, "LIVE");
        let e2 = revised(&e1, "DEV");
        {
            let s = open(dir.path());
            assert_eq!(allocate(&s, &["SEC-RUL", "SEC-RUL"]), [1, 2]);
            insert(&s, &[e1.clone(), entry(2, "LIVE")]).expect("inserts");
            let mut out = Vec::new();
            s.update(std::slice::from_ref(&e2), &mut out)
                .expect("updates");
            assert_eq!(allocate(&s, &["SEC-RUL"]), [3]);
        }
        assert!(dir.path().join("shard-000.redb").is_file());
        let s = open(dir.path());
        assert_eq!(get(&s, 1), Some(e2.clone()));
        let mut history = Vec::new();
        s.history(&EntryId::new("SEC-RUL", 1), &mut history)
            .expect("reads");
        assert_eq!(history, [e1.clone(), e2]);
        assert_eq!(list(&s, &[(Field::Status, "DEV")], None, 10), [1]);
        assert_eq!(allocate(&s, &["SEC-RUL"]), [4]);
        let outcomes = insert(&s, std::slice::from_ref(&e1)).expect("inserts");
        assert!(matches!(&outcomes[..], [Inserted::Existing(e)] if e.revision == 2));
    }

    #[test]
    fn non_durable_mode_works_and_survives_a_clean_close() {
        let dir = TempDir::new().expect("temp dir");
        let config = Config {
            durable: false,
            ..Config::default()
        };
        {
            let s = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect("opens");
            insert(&s, &[entry(1, "LIVE")]).expect("inserts");
        }
        let s = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect("reopens");
        assert_eq!(get(&s, 1), Some(entry(1, "LIVE")));
    }

    #[test]
    fn damaged_rows_are_reported_with_their_id() {
        let dir = TempDir::new().expect("temp dir");
        let s = open(dir.path());
        insert(&s, &[entry(4, "LIVE")]).expect("inserts");
        let txn = s.db.begin_write().expect("writes");
        {
            let mut entries = txn.open_table(ENTRIES).expect("table exists");
            entries
                .insert(("SEC-RUL", 4), [1u8, 0xff, 0, 0].as_slice())
                .expect("writes");
        }
        txn.commit().expect("commits");
        let mut out = Vec::new();
        let err = s
            .get(&[EntryId::new("SEC-RUL", 4)], &mut out)
            .expect_err("damaged");
        assert_eq!(err.code, ErrorCode::Storage);
        assert!(
            err.message
                .starts_with("entry SEC-RUL-004 is damaged: truncated"),
            "{}",
            err.message
        );
        assert!(err.message.contains("shard-000.redb"), "{}", err.message);
        assert!(out.is_empty());
    }

    #[test]
    fn a_held_file_times_out_as_unavailable() {
        let dir = TempDir::new().expect("temp dir");
        let _holder = open(dir.path());
        let config = Config {
            lock_timeout_ms: 60,
            ..Config::default()
        };
        let started = Instant::now();
        let err = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect_err("held");
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.message.contains("shard-000.redb"), "{}", err.message);
        assert!(
            err.message.contains("another registry process"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_unwritable_data_dir_is_a_config_error() {
        let dir = TempDir::new().expect("temp dir");
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "not a directory").expect("writes");
        let data_dir = file.join("data");
        let err = RedbStorage::open(&Config::default(), &setup(&data_dir, 0, 1))
            .expect_err("cannot create");
        assert_eq!(err.code, ErrorCode::Config);
        assert_eq!(
            err.message,
            format!(
                "cannot create data directory `{}`: not a directory",
                data_dir.display()
            )
        );
    }

    #[test]
    fn a_file_that_is_not_redb_is_a_storage_error() {
        let dir = TempDir::new().expect("temp dir");
        std::fs::write(dir.path().join("shard-000.redb"), vec![7u8; 8192]).expect("writes");
        let err =
            RedbStorage::open(&Config::default(), &setup(dir.path(), 0, 1)).expect_err("not redb");
        assert_eq!(err.code, ErrorCode::Storage);
        assert!(err.message.starts_with("cannot open `"), "{}", err.message);
        assert!(!err.message.contains('\n'));
    }

    #[test]
    fn a_missing_or_emptied_file_is_never_recreated() {
        let dir = TempDir::new().expect("temp dir");
        let config = Config::default();
        let err = RedbStorage::open(&config, &existing(dir.path(), 0, 2)).expect_err("missing");
        assert_eq!(err.code, ErrorCode::NotFound, "{}", err.message);
        assert!(
            err.message.contains("shard-000.redb` does not exist"),
            "{}",
            err.message
        );
        assert!(
            !dir.path().join("shard-000.redb").exists(),
            "a shard that must exist is not created"
        );
        let probe = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect_err("none");
        assert_eq!(probe.code, ErrorCode::NotFound, "{}", probe.message);
        for shard in 0..2 {
            let mut s = RedbStorage::open(&config, &setup(dir.path(), shard, 2)).expect("creates");
            s.shards = 2;
            drop(s);
        }
        let probe = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect("exists");
        assert_eq!(
            probe.shards, 2,
            "shard 0 tells the count it was created with"
        );
        drop(probe);
        // Truncated to nothing: `Builder::create` would make a fresh empty database of it.
        let one = dir.path().join("shard-001.redb");
        std::fs::File::create(&one).expect("truncates");
        for create in [None, Some(Meta::new())] {
            let err = RedbStorage::open(
                &config,
                &Setup {
                    create,
                    ..setup(dir.path(), 1, 2)
                },
            )
            .expect_err("emptied");
            assert_eq!(err.code, ErrorCode::Missing, "{}", err.message);
            assert!(
                err.message.contains("is empty (0 bytes)"),
                "{}",
                err.message
            );
        }
        assert_eq!(std::fs::metadata(&one).expect("still there").len(), 0);
        // Shard 0 gone while another shard is there: not "no registry".
        std::fs::remove_file(dir.path().join("shard-000.redb")).expect("removes");
        let err = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect_err("gone");
        assert_eq!(err.code, ErrorCode::Missing, "{}", err.message);
        assert!(err.message.contains("shard-001.redb"), "{}", err.message);
    }

    #[test]
    fn creation_is_whole_or_nothing() {
        let dir = TempDir::new().expect("temp dir");
        let config = Config::default();
        let meta: Meta = [("state".to_owned(), "creating".to_owned())].into();
        let creating = Setup {
            create: Some(meta.clone()),
            ..setup(dir.path(), 0, 1)
        };
        // The temporary file cannot be made (a directory holds its name), as when the disk is
        // full: no file is left under the shard's name, and none that could never be opened.
        let tmp = dir
            .path()
            .join(format!(".shard-000.redb.{}.creating", std::process::id()));
        std::fs::create_dir(&tmp).expect("blocks the temporary name");
        std::fs::write(tmp.join("x"), "x").expect("makes it non-empty");
        let err = RedbStorage::open(&config, &creating).expect_err("cannot create");
        assert!(err.message.contains("cannot create"), "{}", err.message);
        assert!(!dir.path().join("shard-000.redb").exists());
        std::fs::remove_dir_all(&tmp).expect("unblocks");
        // Created whole: its metadata came in the same transaction as its tables.
        let s = RedbStorage::open(&config, &creating).expect("creates");
        let mut got = Meta::new();
        s.meta(&mut got).expect("reads");
        assert_eq!(got.get("state").map(String::as_str), Some("creating"));
        assert_eq!(got.get(layout::SHARDS).map(String::as_str), Some("1"));
        drop(s);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("lists")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["shard-000.redb"], "no temporary file is left");
        // Opening an existing shard with `create` keeps what it holds.
        let again = RedbStorage::open(
            &config,
            &Setup {
                create: Some(Meta::new()),
                ..setup(dir.path(), 0, 1)
            },
        )
        .expect("opens");
        let mut got = Meta::new();
        again.meta(&mut got).expect("reads");
        assert_eq!(got.get("state").map(String::as_str), Some("creating"));
    }

    #[test]
    fn shard_layout_is_checked() {
        let dir = TempDir::new().expect("temp dir");
        for (shard, shards) in [(0, 0), (3, 3)] {
            let err = RedbStorage::open(&Config::default(), &setup(dir.path(), shard, shards))
                .expect_err("impossible shard");
            assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
        }
        drop(RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 3)).expect("opens"));
        let err = RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 4))
            .expect_err("other layout");
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains("shards = 3"), "{}", err.message);
    }

    #[test]
    fn config_keys_and_defaults() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v);
        assert_eq!(
            parse(serde_json::json!({})).expect("empty is default"),
            Config::default()
        );
        assert_eq!(
            parse(serde_json::json!({
                "cache_size_mb": 8, "lock_timeout_ms": 0, "durable": false, "fingerprint_merge": 3
            }))
            .expect("all keys"),
            Config {
                cache_size_mb: 8,
                lock_timeout_ms: 0,
                durable: false,
                fingerprint_merge: 3,
            }
        );
        let err = parse(serde_json::json!({"cache_size": 8})).expect_err("misspelt");
        assert!(
            err.to_string().contains("unknown field `cache_size`"),
            "{err}"
        );
        assert!(parse(serde_json::json!({"durable": "yes"})).is_err());
    }

    #[test]
    fn messages_are_one_lowercase_line() {
        for (input, want) in [
            (
                "Database already open. Cannot acquire lock.",
                "database already open. cannot acquire lock",
            ),
            ("I/O error:\n  disk full.", "i/o error: disk full"),
            ("", ""),
        ] {
            assert_eq!(one_line(input), want);
        }
        let e = std::io::Error::from_raw_os_error(13);
        assert_eq!(io_reason(&e), "permission denied");
    }
}
