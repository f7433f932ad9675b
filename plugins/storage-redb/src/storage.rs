//! [`RedbStorage`]: the tables of one shard, and the `Storage` operations on them.
//!
//! Tables (all keys start with what grows, so inserts append to the B-trees):
//!
//! | table          | key                                        | value                  |
//! |----------------|--------------------------------------------|------------------------|
//! | `entries/{prefix}` | `number`                               | latest revision, coded (format 2; see `entries`) |
//! | `entries`      | `(prefix, number)`                         | latest revision, coded (format 1) |
//! | `revisions`    | `(prefix, number, revision)`               | earlier revisions, coded |
//! | `fingerprints` | fingerprint bytes                          | `(prefix, number)`     |
//! | `pending_fingerprints` | insertion sequence                 | `(fingerprint, prefix, number)` |
//! | `field_index`  | `(field tag, value, prefix, number)`       | `()` (format 1)        |
//! | `field_bits`   | `(field tag, value, prefix, block)`        | a bit per number (format 2, see `bits`) |
//! | `sequences`    | `prefix`                                   | last allocated number  |
//! | `layout`       | `"shard"`, `"shards"` or `"format"`        | the shard's place, and its storage format |
//! | `meta`         | name                                       | registry metadata ([`registry_core::layout`]) |
//! | `dictionaries` | dictionary id                              | a zstd dictionary trained on the shard's configs |
//! | `locations`    | `(prefix, block)`                          | shard 0 of a dense registry: where entries stored in other shards are ([`rules::LOCATION_BLOCK`]) |
//!
//! # Storage formats
//!
//! A shard records its storage format in `layout` (no `format` row: format 1, every file made
//! before formats were recorded). A file of a newer format than [`STORAGE_FORMAT`] is refused
//! at open, naming both. Format 1 shards are written as the builds that made them wrote (entry
//! formats 2 and 3, configs as they are), so those builds can still read them. Format 2 shards
//! (every shard this build creates) write entry format 4: the config compressed with zstd and
//! the shard's newest dictionary ([`registry_codec`]; docs/STORAGE.md has the measurements).
//! A format 2 shard trains its first dictionary in the insert whose batch holds
//! [`TRAIN_SAMPLES`] configs, or that brings it to [`TRAIN_AT`] entries
//! ([`registry_codec::compress::training_due`]), on up to [`TRAIN_SAMPLES`] of the batch's and
//! its latest configs, in that insert's transaction; the entries stored before it keep their
//! own compression (zstd without a dictionary), which `registry compact` improves.
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
//!
//! # Modules
//!
//! This module holds the shard's state and the helpers every operation uses; the operations are
//! in submodules by kind, and the [`Storage`] implementation at the end only names them:
//! `open` (opening a file, creating it whole), `read` (`find`, `get`, `history`, `list`,
//! `meta`), `write` (`allocate`, `insert`, `update`, `set_meta`) and `restore`.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, Table, TableDefinition, TableHandle,
    WriteTransaction,
};
use registry_core::rules::{self, Numbering};
use registry_core::{
    Entry, EntryId, EntryRef, ErrorCode, Field, Fingerprint, FromConfig, Inserted, ListQuery, Meta,
    Restored, Sequence, Setup, StageError, StageResult, Storage,
};

use registry_codec::compress::Dictionaries;

use crate::Config;
use crate::codec;

mod backup;
mod bits;
mod compact;
mod entries;
mod locations;
mod migrate;
mod open;
mod read;
mod reindex;
mod restore;
mod write;

pub use write::Encoded;

use open::one_line;

const ENTRIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("entries");
const REVISIONS: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("revisions");
const FINGERPRINTS: TableDefinition<[u8; 16], (&str, u64)> = TableDefinition::new("fingerprints");
const FIELD_INDEX: TableDefinition<(u8, &str, &str, u64), ()> = TableDefinition::new("field_index");
const FIELD_BITS: TableDefinition<(u8, &str, &str, u64), &[u8]> =
    TableDefinition::new("field_bits");
const PENDING: TableDefinition<u64, ([u8; 16], &str, u64)> =
    TableDefinition::new("pending_fingerprints");
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
const LAYOUT: TableDefinition<&str, u32> = TableDefinition::new("layout");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const DICTIONARIES: TableDefinition<u32, &[u8]> = TableDefinition::new("dictionaries");
const LOCATIONS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("locations");

/// The storage format this build creates and reads (and every one before it).
pub(crate) const STORAGE_FORMAT: u32 = 2;

pub(crate) use registry_codec::compress::{TRAIN_AT, TRAIN_SAMPLES};

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
    /// Behind a lock only for `compact`, which needs the database to itself; every transaction
    /// begins under a read guard, which it does not outlive (redb's transactions own what they
    /// need).
    db: RwLock<Database>,
    path: PathBuf,
    shard: u32,
    shards: u32,
    /// The storage format the file records (see the module documentation); raised only by
    /// `migrate`, under the writer lock.
    format: AtomicU32,
    /// The dictionaries of `dictionaries`, prepared, as of the last commit.
    dictionaries: RwLock<Dictionaries>,
    durable: bool,
    /// The last number handed out per prefix since the file was opened.
    allocated: Mutex<Allocated>,
    /// The fingerprints in `pending_fingerprints`, as of the last commit, once `pending_loaded`:
    /// read at the first call that needs them (`find`, `insert`, `restore`), not when the file
    /// opens, so that a command that only reads entries by id does not load up to
    /// `merge_every` rows per shard first.
    pending: RwLock<Pending>,
    pending_loaded: AtomicBool,
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

/// A path in backquotes, as messages name files.
struct Quoted<'p>(&'p Path);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0.display())
    }
}

/// A shard and its file, as messages name the shard: "shard 1 (`data/shard-001.redb`)".
struct Named<'p>(u32, &'p Path);

impl Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {} ({})", self.0, Quoted(self.1))
    }
}

/// The write-side handles of every table but `layout`, opened once per write transaction.
struct Tables<'txn> {
    entries: entries::LatestMut<'txn>,
    revisions: Table<'txn, (&'static str, u64, u32), &'static [u8]>,
    fingerprints: Table<'txn, [u8; 16], (&'static str, u64)>,
    index: Table<'txn, (u8, &'static str, &'static str, u64), ()>,
    bits: Table<'txn, (u8, &'static str, &'static str, u64), &'static [u8]>,
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
    /// The pending fingerprints for reading, loaded first if no call has needed them yet. A
    /// poisoned lock only means a panic elsewhere while it was held; the map is changed only
    /// after a commit, whole, so it is never half-updated.
    ///
    /// # Errors
    /// When they are not loaded yet and `pending_fingerprints` cannot be read.
    fn pending(&self) -> StageResult<RwLockReadGuard<'_, Pending>> {
        if !self.pending_loaded.load(Ordering::Acquire) {
            // Under the writer, as every change of the map is: a writer that committed while
            // this thread read the table would otherwise have its fingerprints overwritten.
            let _writing = self.writing();
            self.load_pending()?;
        }
        Ok(self.pending.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// [`Self::pending`] for a caller that holds the writer ([`Self::writing`]).
    fn pending_writing(&self) -> StageResult<RwLockReadGuard<'_, Pending>> {
        self.load_pending()?;
        Ok(self.pending.read().unwrap_or_else(PoisonError::into_inner))
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
        rules::damaged(id, &why, &self.file())
    }

    /// The storage format the file records.
    fn format(&self) -> u32 {
        self.format.load(Ordering::Acquire)
    }

    /// The numbers this shard hands out: dense from storage format 2 on.
    fn numbering(&self) -> Numbering {
        Numbering {
            shard: self.shard,
            shards: self.shards,
            dense: self.format() >= 2,
        }
    }

    /// The shard's file, for messages: "`data/shard-001.redb`".
    fn file(&self) -> Quoted<'_> {
        Quoted(&self.path)
    }

    /// The shard, for messages: "shard 1 (`data/shard-001.redb`)".
    fn name(&self) -> Named<'_> {
        Named(self.shard, &self.path)
    }

    fn begin_write(&self, durability: Durability) -> StageResult<WriteTransaction> {
        let mut txn = self
            .db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
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
            .read()
            .unwrap_or_else(PoisonError::into_inner)
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
            entries: self.latest_rows_mut(txn)?,
            revisions: self.write_table(txn, REVISIONS)?,
            fingerprints: self.write_table(txn, FINGERPRINTS)?,
            index: self.write_table(txn, FIELD_INDEX)?,
            bits: self.write_table(txn, FIELD_BITS)?,
            sequences: self.write_table(txn, SEQUENCES)?,
            pending: self.write_table(txn, PENDING)?,
        })
    }

    /// The prepared dictionaries, as of the last commit.
    fn dictionaries(&self) -> RwLockReadGuard<'_, Dictionaries> {
        self.dictionaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How this shard writes entries, given its dictionaries.
    fn entry_writing<'d>(&self, dictionaries: &'d Dictionaries) -> codec::Writing<'d> {
        if self.format() >= 2 {
            codec::Writing::Compressed(dictionaries.newest())
        } else {
            codec::Writing::Uncompressed
        }
    }

    fn encode(
        &self,
        entry: &Entry,
        writing: codec::Writing<'_>,
        buf: &mut Vec<u8>,
    ) -> StageResult<()> {
        buf.clear();
        if matches!(writing, codec::Writing::Uncompressed)
            && (entry.previous.is_some() || entry.purge.is_some())
        {
            // Format 1 has no room for it, and dropping it would leave a hash that no longer
            // verifies.
            return Err(StageError::new(
                ErrorCode::Invalid,
                format!(
                    "entry {}: a shard of storage format 1 cannot keep a revision's hash chain or purge record; \
                     run `registry migrate`",
                    entry.header.id
                ),
            ));
        }
        codec::encode(entry, writing, buf).map_err(|e| {
            StageError::new(
                ErrorCode::Invalid,
                format!("entry {} cannot be stored: {e}", entry.header.id),
            )
        })
    }
}

impl Storage for RedbStorage {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.find_latest(fingerprints, out)
    }

    /// Copies what `get_lent` lends: each string allocated once, at its
    /// size (3 to 5 % faster than decoding into new entries, `storage/get/static`).
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let start = out.len();
        let got = self.get_latest_lent(ids, &mut Vec::new(), &mut |views| {
            out.reserve(views.len());
            for (id, view) in ids.iter().zip(views) {
                let entry = view.map(|v| v.to_entry()).transpose();
                out.push(entry.map_err(|e| self.damaged(id, format!("invalid context: {e}")))?);
            }
            Ok(())
        });
        if got.is_err() {
            out.truncate(start);
        }
        got
    }

    /// Decodes into the spare entries' strings: through the plugin boundary, which lends what
    /// it gets and hands it back, a `get` then allocates nothing per entry here, and the host's
    /// copy is the only one (`cargo xtask bench`, `storage/get`).
    fn get_reusing(
        &self,
        ids: &[EntryId],
        out: &mut Vec<Option<Entry>>,
        spare: &mut Vec<Entry>,
    ) -> StageResult<()> {
        self.get_latest(ids, out, spare)
    }

    /// Lends the stored bytes in place: through the plugin boundary the host's copy of each
    /// string is then the only one (`cargo xtask bench`, `storage/get`).
    fn get_lent(
        &self,
        ids: &[EntryId],
        spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        self.get_latest_lent(ids, spare, each)
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        self.allocate_numbers(prefixes, out)
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        self.insert_new(entries, None, out)
    }

    fn insert_placed(
        &self,
        entries: &[Entry],
        ids: &[EntryId],
        shards: &[u32],
        out: &mut Vec<Inserted>,
    ) -> StageResult<()> {
        if entries.is_empty() {
            return self.place_ids(ids, shards);
        }
        if ids.is_empty() {
            return self.insert_new(entries, None, out);
        }
        self.check_locator()?;
        rules::check_places(ids, shards, self.shards)?;
        self.insert_new(entries, Some((ids, shards)), out)
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        self.update_latest(entries, out)
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        self.read_history(id, out)
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        self.list_entries(query, out)
    }

    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        self.restore_histories(histories, out)
    }

    fn meta(&self, out: &mut Meta) -> StageResult<()> {
        self.read_meta(out)
    }

    fn set_meta(&self, changes: &Meta) -> StageResult<()> {
        self.write_meta(changes)
    }

    fn compact(&self) -> StageResult<u64> {
        self.compact_shard()
    }

    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        self.place_ids(ids, shards)
    }

    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.locate_ids(ids, out)
    }

    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        self.migrate_shard(ids, shards)
    }

    fn reindex(&self) -> StageResult<u64> {
        self.reindex_shard()
    }

    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        self.shard_sequences(raise, out)
    }

    fn backup(&self, dir: &str) -> StageResult<u64> {
        self.backup_shard(dir)
    }

    fn purge(&self, revision: &Entry) -> StageResult<()> {
        self.purge_revision(revision)
    }
}

#[cfg(test)]
mod faults;
#[cfg(test)]
mod tests;
