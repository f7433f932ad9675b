//! Opening a shard's file, and creating it whole or not at all (see the parent module).

use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, Durability, ReadableTable, StorageError, TableHandle,
};
use registry_codec::compress::{Dictionaries, Dictionary};
use registry_core::rules;
use registry_core::{EntryId, ErrorCode, Fingerprint, Meta, Setup, StageError, StageResult};

use super::{
    Allocated, DICTIONARIES, ENTRIES, FIELD_BITS, FIELD_INDEX, FINGERPRINTS, LAYOUT, LOCATIONS,
    LOCK_RETRY, META, MIN_CACHE_MB, PENDING, Pending, REVISIONS, RedbStorage, SEQUENCES,
    STORAGE_FORMAT,
};
use crate::Config;

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
        RedbStorage::on(config, setup, path, db, created.is_some())
    }

    /// The storage of a shard whose database `db` is open (at `path`, for messages); `created`
    /// when this process just made it.
    fn on(
        config: &Config,
        setup: &Setup,
        path: PathBuf,
        db: Database,
        created: bool,
    ) -> StageResult<RedbStorage> {
        let mut storage = RedbStorage {
            db: RwLock::new(db),
            path,
            shard: setup.shard,
            shards: setup.shards,
            // A file this build created is of its format; `prepare` reads an existing one's.
            format: AtomicU32::new(STORAGE_FORMAT),
            dictionaries: RwLock::new(Dictionaries::default()),
            durable: config.durable,
            allocated: Mutex::new(Allocated::default()),
            pending: RwLock::new(Pending::default()),
            pending_loaded: AtomicBool::new(false),
            merge_every: config.fingerprint_merge.max(1),
            writer: Mutex::new(()),
        };
        if !created {
            storage.prepare()?;
        }
        storage.load_dictionaries()?;
        Ok(storage)
    }

    /// Opens a shard kept by `backend` rather than a file (the fault-injection tests' disk),
    /// creating its tables when `setup.create` says so; `name` stands for its path in messages.
    #[cfg(test)]
    pub(super) fn on_backend(
        config: &Config,
        setup: &Setup,
        name: &str,
        backend: impl redb::StorageBackend,
    ) -> StageResult<RedbStorage> {
        let fail = |e: &dyn Display| {
            StageError::new(
                ErrorCode::Storage,
                format!("cannot open `{name}`: {}", one_line(&e.to_string())),
            )
        };
        let db = Builder::new()
            .create_with_backend(backend)
            .map_err(|e| fail(&e))?;
        let created = match &setup.create {
            Some(meta) => {
                init_tables(&db, setup, meta, &fail)?;
                true
            }
            None => false,
        };
        RedbStorage::on(config, setup, PathBuf::from(name), db, created)
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
            FIELD_BITS.name(),
            SEQUENCES.name(),
            PENDING.name(),
            META.name(),
            DICTIONARIES.name(),
            LOCATIONS.name(),
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
            // No `format` row: a file made before formats were recorded, format 1.
            let format = layout
                .get("format")
                .map_err(|e| self.fail("read", e))?
                .map_or(1, |g| g.value());
            self.format.store(format, Ordering::Release);
            if format > STORAGE_FORMAT {
                return Err(StageError::new(
                    ErrorCode::Config,
                    format!(
                        "`{}` is of storage format {}, newer than this build's {STORAGE_FORMAT}: \
                         open it with the build of the registry that wrote it, or a newer one",
                        self.path.display(),
                        format
                    ),
                ));
            }
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
                        return Err(rules::layout_changed(&self.file(), key, &have, want));
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
            self.write_table(&txn, DICTIONARIES)?;
            self.write_table(&txn, LOCATIONS)?;
            self.commit(txn)
        } else {
            txn.abort()
                .map_err(|e| self.fail("abort a transaction on", e))
        }
    }

    /// Reads and prepares the dictionaries, at open.
    fn load_dictionaries(&self) -> StageResult<()> {
        let txn = self.begin_read()?;
        let table = self.read_table(&txn, DICTIONARIES)?;
        let mut all = Dictionaries::default();
        for row in table.iter().map_err(|e| self.fail("read", e))? {
            let (id, bytes) = row.map_err(|e| self.fail("read", e))?;
            let dictionary = Dictionary::new(id.value(), bytes.value().to_vec()).map_err(|e| {
                StageError::new(
                    ErrorCode::Storage,
                    format!("`{}` holds a damaged dictionary: {e}", self.path.display()),
                )
            })?;
            all.add(Arc::new(dictionary));
        }
        *self
            .dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner) = all;
        Ok(())
    }

    /// Reads `pending_fingerprints` into memory, at open.
    /// Reads `pending_fingerprints` into the pending map unless it was read already. The
    /// caller holds the writer ([`Self::writing`]).
    pub(super) fn load_pending(&self) -> StageResult<()> {
        if self.pending_loaded.load(Ordering::Acquire) {
            return Ok(());
        }
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
        self.pending_loaded.store(true, Ordering::Release);
        Ok(())
    }
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
    init_tables(&db, setup, meta, &fail)?;
    Ok(db)
}

/// Creates every table of a new shard and records its layout and `meta`, in one transaction.
fn init_tables(
    db: &Database,
    setup: &Setup,
    meta: &Meta,
    fail: &dyn Fn(&dyn Display) -> StageError,
) -> StageResult<()> {
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        txn.open_table(ENTRIES).map_err(|e| fail(&e))?;
        txn.open_table(REVISIONS).map_err(|e| fail(&e))?;
        txn.open_table(FINGERPRINTS).map_err(|e| fail(&e))?;
        txn.open_table(FIELD_INDEX).map_err(|e| fail(&e))?;
        txn.open_table(FIELD_BITS).map_err(|e| fail(&e))?;
        txn.open_table(SEQUENCES).map_err(|e| fail(&e))?;
        txn.open_table(PENDING).map_err(|e| fail(&e))?;
        txn.open_table(DICTIONARIES).map_err(|e| fail(&e))?;
        txn.open_table(LOCATIONS).map_err(|e| fail(&e))?;
        let mut layout = txn.open_table(LAYOUT).map_err(|e| fail(&e))?;
        layout.insert("shard", setup.shard).map_err(|e| fail(&e))?;
        layout
            .insert("format", STORAGE_FORMAT)
            .map_err(|e| fail(&e))?;
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
    txn.commit().map_err(|e| fail(&e))
}

/// Makes a new name in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> StageResult<()> {
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
pub(super) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    one_line(text)
}

/// A message from another library as house style wants it: one lowercase line, no trailing
/// period. Only library text goes through here, never a path, whose case matters.
pub(super) fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches('.').to_lowercase()
}
