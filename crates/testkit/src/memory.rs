//! Reference implementations of the five stage traits, kept in memory behind one `Mutex` each.
//!
//! They are as simple as the contracts allow, so that a pipeline test failing on them points at
//! the pipeline, and so that each conformance suite has an implementation it must accept. They
//! are not meant to be fast: every call takes a lock for its whole batch. The generator,
//! [`KeywordlessGenerator`], is `registry-conformance`'s reference generator, re-exported.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use registry_core::Fingerprint;
use registry_core::rules::{self, Numbering};
use registry_core::{
    Cache, CacheKey, CacheStats, Entry, EntryId, ErrorCode, Field, FromConfig, Inserted, ListQuery,
    Problem, RawHeader, Request, Restored, Router, Schema, Sequence, Setup, Severity, StageError,
    StageResult, Stages, Storage, Validator,
};

/// The reference generator lives with the suites, which render valid entries with it; the memory
/// stages use the same one.
pub use registry_conformance::reference::{KeywordlessGenerator, NoConfig, render_config};

/// Takes a lock, or reports that an earlier panic left the data behind it in doubt.
fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> StageResult<MutexGuard<'a, T>> {
    mutex.lock().map_err(|_| {
        StageError::new(
            ErrorCode::Internal,
            format!("{what} is unusable: a thread panicked while holding its lock"),
        )
    })
}

/// A cache in a `HashMap`, unbounded and without expiry, counting hits and misses.
#[derive(Debug, Default)]
pub struct MemoryCache {
    map: Mutex<HashMap<CacheKey, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> MemoryCache {
        MemoryCache::default()
    }
}

impl FromConfig for MemoryCache {
    type Config = NoConfig;

    fn from_config(_config: NoConfig, _setup: &Setup) -> StageResult<MemoryCache> {
        Ok(MemoryCache::new())
    }
}

impl Cache for MemoryCache {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let map = lock(&self.map, "the memory cache")?;
        let mut hits = 0;
        for key in keys {
            let found = map.get(key).cloned();
            hits += u64::from(found.is_some());
            out.push(found);
        }
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
        Ok(())
    }

    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        let mut map = lock(&self.map, "the memory cache")?;
        for entry in entries {
            for key in CacheKey::of_entry(entry) {
                map.insert(key, entry.clone());
            }
        }
        Ok(())
    }

    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        let mut map = lock(&self.map, "the memory cache")?;
        for key in keys {
            map.remove(key);
        }
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        // Counting needs no consistent view, so a poisoned lock still gives a usable count.
        let entries = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: entries as u64,
        }
    }
}

/// What one storage shard holds.
#[derive(Debug, Default)]
struct Shelf {
    /// Every revision of every entry, oldest first, in id order.
    revisions: BTreeMap<EntryId, Vec<Entry>>,
    by_fingerprint: HashMap<Fingerprint, EntryId>,
    /// The last number handed out per id prefix.
    last: HashMap<String, u64>,
    /// The registry metadata kept in this shard (see [`Storage::meta`]).
    meta: registry_core::Meta,
    /// The shard count the shelf was created with (0 for a private store, which has no layout).
    shards: u32,
    /// Shard 0 of a dense registry: the shard of each entry stored elsewhere
    /// ([`Storage::place`]).
    locations: HashMap<EntryId, u32>,
}

impl Shelf {
    fn latest(&self, id: &EntryId) -> Option<&Entry> {
        self.revisions.get(id).and_then(|r| r.last())
    }
}

/// The shelves of storages built with [`FromConfig`], by data directory and shard, shared by
/// every instance in the process. They stand in for the files a durable storage keeps in its
/// data directory: a storage built again on the same directory finds what the last one stored.
type Shelves = Mutex<HashMap<(PathBuf, u32), Arc<Mutex<Shelf>>>>;

fn shelves() -> &'static Shelves {
    static SHELVES: OnceLock<Shelves> = OnceLock::new();
    SHELVES.get_or_init(Shelves::default)
}

/// One storage shard in memory, with either numbering of [`Storage`]: dense (the default: shard
/// 0 hands out every number and records where the others are stored) or interleaved (shard `s`
/// of `K` hands out, per id prefix, increasing numbers `n` with `(n - 1) % K == s`; see
/// [`MemoryStorage::into_interleaved`]).
///
/// [`MemoryStorage::new`] gives a private store. [`FromConfig`] gives one shared with every other
/// memory storage built for the same data directory and shard, for the life of the process, so
/// "reopening" it behaves like reopening a durable store.
#[derive(Debug)]
pub struct MemoryStorage {
    shard: u32,
    shards: u32,
    dense: bool,
    shelf: Arc<Mutex<Shelf>>,
}

impl Default for MemoryStorage {
    /// The only shard of a one-shard registry.
    fn default() -> Self {
        MemoryStorage {
            shard: 0,
            shards: 1,
            dense: true,
            shelf: Arc::default(),
        }
    }
}

impl MemoryStorage {
    /// An empty, private store for shard `shard` of `shards`.
    ///
    /// # Errors
    /// Code `Config` when `shard` is not in `0..shards`.
    pub fn new(shard: u32, shards: u32) -> StageResult<MemoryStorage> {
        check_shard(shard, shards)?;
        Ok(MemoryStorage {
            shard,
            shards,
            dense: true,
            shelf: Arc::default(),
        })
    }

    /// The same store, numbering ids as the first storage format did: interleaved (shard `s` of
    /// `K` hands out the numbers `n` with `(n - 1) % K == s`), and reporting no `ids` record.
    pub fn into_interleaved(self) -> MemoryStorage {
        MemoryStorage {
            dense: false,
            ..self
        }
    }

    fn shelf(&self) -> StageResult<MutexGuard<'_, Shelf>> {
        lock(&self.shelf, "the memory storage")
    }

    /// The numbers this shard hands out.
    fn numbering(&self) -> Numbering {
        Numbering {
            shard: self.shard,
            shards: self.shards,
            dense: self.dense,
        }
    }

    /// Shard 0 of a dense registry, or the error any other shard gives for `place`/`locate`.
    fn check_locator(&self) -> StageResult<()> {
        if self.dense && self.shard == 0 {
            Ok(())
        } else {
            Err(rules::not_shard_zero(&format_args!("shard {}", self.shard)))
        }
    }
}

fn check_shard(shard: u32, shards: u32) -> StageResult<()> {
    if shard >= shards {
        return Err(StageError::new(
            ErrorCode::Config,
            format!(
                "shard {shard} does not exist: a registry of {shards} shards has shards 0 to {}",
                shards.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

impl FromConfig for MemoryStorage {
    type Config = NoConfig;

    /// The shelf of `setup.data_dir` and `setup.shard`, created (with the metadata
    /// `setup.create` gives) only when `setup.create` says so, as a durable store's file would
    /// be; with `shards` 0, shard 0 of the recorded count.
    fn from_config(_config: NoConfig, setup: &Setup) -> StageResult<MemoryStorage> {
        setup.check_shard()?;
        let mut shelves = lock(shelves(), "the shared memory storage")?;
        let key = (setup.data_dir.clone(), setup.shard);
        let shelf = match (shelves.get(&key), &setup.create) {
            (Some(shelf), _) => Arc::clone(shelf),
            (None, Some(meta)) => {
                let shelf = Arc::new(Mutex::new(Shelf {
                    meta: meta.clone(),
                    shards: setup.shards,
                    ..Shelf::default()
                }));
                shelves.insert(key, Arc::clone(&shelf));
                shelf
            }
            (None, None) => {
                return Err(StageError::new(
                    ErrorCode::NotFound,
                    format!(
                        "shard {} of `{}` does not exist",
                        setup.shard,
                        setup.data_dir.display()
                    ),
                ));
            }
        };
        let recorded = lock(&shelf, "the memory storage")?.shards;
        let shards = match setup.shards {
            0 => recorded,
            k if k == recorded => k,
            k => {
                let shard = format!("shard {}", setup.shard);
                return Err(rules::layout_changed(&shard, "shards", &recorded, k));
            }
        };
        Ok(MemoryStorage {
            shard: setup.shard,
            shards,
            dense: true,
            shelf,
        })
    }
}

impl Storage for MemoryStorage {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let shelf = self.shelf()?;
        out.extend(fingerprints.iter().map(|fp| {
            shelf
                .by_fingerprint
                .get(fp)
                .and_then(|id| shelf.latest(id))
                .cloned()
        }));
        Ok(())
    }

    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let shelf = self.shelf()?;
        out.extend(ids.iter().map(|id| shelf.latest(id).cloned()));
        Ok(())
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        if !self.numbering().allocates() {
            return Err(rules::not_shard_zero(&format_args!("shard {}", self.shard)));
        }
        let mut shelf = self.shelf()?;
        // Numbers are worked out first and recorded only if the whole batch gets one, so a
        // failing batch spends nothing.
        let mut last: HashMap<&str, u64> = HashMap::new();
        let mut numbers = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let previous = match last.get(prefix.as_str()) {
                Some(&n) => n,
                None => shelf.last.get(prefix).copied().unwrap_or(0),
            };
            let n = self
                .numbering()
                .next_after(previous)
                .ok_or_else(|| rules::exhausted(prefix, &format_args!("shard {}", self.shard)))?;
            last.insert(prefix, n);
            numbers.push(n);
        }
        for (prefix, n) in last {
            shelf.last.insert(prefix.to_owned(), n);
        }
        out.extend(numbers);
        Ok(())
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        let mut shelf = self.shelf()?;
        // Checked before anything is written: a rejected batch stores nothing.
        let mut batch_ids: HashMap<&EntryId, Fingerprint> = HashMap::new();
        for entry in entries {
            rules::check_new(entry)?;
            let taken_by = shelf
                .latest(&entry.header.id)
                .map(|e| e.fingerprint)
                .or_else(|| batch_ids.get(&entry.header.id).copied());
            if taken_by.is_some_and(|fp| fp != entry.fingerprint) {
                return Err(rules::id_taken(&entry.header.id));
            }
            batch_ids.insert(&entry.header.id, entry.fingerprint);
        }
        for entry in entries {
            let known = shelf.by_fingerprint.get(&entry.fingerprint).cloned();
            match known.and_then(|id| shelf.latest(&id).cloned()) {
                Some(kept) => out.push(Inserted::Existing(kept)),
                None => {
                    shelf
                        .by_fingerprint
                        .insert(entry.fingerprint, entry.header.id.clone());
                    shelf
                        .revisions
                        .insert(entry.header.id.clone(), vec![entry.clone()]);
                    out.push(Inserted::Created);
                }
            }
        }
        Ok(())
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        let mut shelf = self.shelf()?;
        for entry in entries {
            let id = &entry.header.id;
            let outcome = match shelf.revisions.get_mut(id) {
                None => Err(rules::no_entry(id)),
                Some(revisions) => {
                    let stored = revisions.last().map_or(0, |e| e.revision);
                    rules::check_follows(id, stored, entry.revision)
                        .map(|()| revisions.push(entry.clone()))
                }
            };
            out.push(outcome);
        }
        Ok(())
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        let shelf = self.shelf()?;
        if let Some(revisions) = shelf.revisions.get(id) {
            out.extend(revisions.iter().cloned());
        }
        Ok(())
    }

    /// Decides and writes item by item, under one lock held for the whole batch, so other
    /// callers see all of the batch or none of it.
    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        let mut shelf = self.shelf()?;
        let shard = format!("shard {}", self.shard);
        let mut claimed = rules::Claimed::default();
        for history in histories {
            let checked = rules::check_restore(history, self.numbering(), &shard)
                .and_then(|latest| claimed.claim(latest).map(|()| latest));
            let latest = match checked {
                Ok(latest) => latest,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            let id = &latest.header.id;
            let outcome = if let Some(stored) = shelf.latest(id) {
                rules::restore_over(stored, latest)
            } else if let Some(other) = shelf.by_fingerprint.get(&latest.fingerprint) {
                Err(rules::registered_as(id, other, &latest.fingerprint))
            } else {
                shelf.by_fingerprint.insert(latest.fingerprint, id.clone());
                shelf.revisions.insert(id.clone(), history.clone());
                let last = shelf.last.entry(id.prefix().to_owned()).or_insert(0);
                *last = (*last).max(id.number());
                Ok(Restored::Created)
            };
            out.push(outcome);
        }
        Ok(())
    }

    fn meta(&self, out: &mut registry_core::Meta) -> StageResult<()> {
        let shelf = self.shelf()?;
        out.extend(shelf.meta.clone());
        out.insert(
            registry_core::layout::SHARDS.to_owned(),
            self.shards.to_string(),
        );
        if self.dense {
            out.insert(
                registry_core::layout::IDS.to_owned(),
                registry_core::layout::DENSE.to_owned(),
            );
        }
        Ok(())
    }

    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        self.check_locator()?;
        rules::check_places(ids, shards, self.shards)?;
        let mut shelf = self.shelf()?;
        for (id, &shard) in ids.iter().zip(shards) {
            let last = shelf.last.entry(id.prefix().to_owned()).or_insert(0);
            *last = (*last).max(id.number());
            shelf.locations.insert(id.clone(), shard);
        }
        Ok(())
    }

    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.check_locator()?;
        let shelf = self.shelf()?;
        out.extend(
            ids.iter()
                .map(|id| shelf.locations.get(id).copied().unwrap_or(0)),
        );
        Ok(())
    }

    fn purge(&self, revision: &Entry) -> StageResult<()> {
        let mut shelf = self.shelf()?;
        let id = &revision.header.id;
        let stored = shelf
            .revisions
            .get_mut(id)
            .and_then(|h| h.get_mut((revision.revision as usize).checked_sub(1)?))
            .ok_or_else(|| rules::no_entry(id))?;
        rules::check_purge(stored, revision)?;
        *stored = revision.clone();
        Ok(())
    }

    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        let mut shelf = self.shelf()?;
        for s in raise {
            let last = shelf.last.entry(s.prefix.clone()).or_insert(0);
            *last = (*last).max(s.last);
        }
        let mut all: Vec<Sequence> = shelf
            .last
            .iter()
            .map(|(prefix, &last)| Sequence {
                prefix: prefix.clone(),
                last,
            })
            .collect();
        all.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        out.extend(all);
        Ok(())
    }

    fn set_meta(&self, changes: &registry_core::Meta) -> StageResult<()> {
        rules::check_meta_changes(changes)?;
        let mut shelf = self.shelf()?;
        for (key, value) in changes {
            if value.is_empty() {
                shelf.meta.remove(key);
            } else {
                shelf.meta.insert(key.clone(), value.clone());
            }
        }
        Ok(())
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        let shelf = self.shelf()?;
        let start = match &query.after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        out.extend(
            shelf
                .revisions
                .range((start, Bound::Unbounded))
                .filter_map(|(_, revisions)| revisions.last())
                .filter(|entry| query.matches(entry))
                .take(query.limit)
                .cloned(),
        );
        Ok(())
    }
}

/// A validator that checks one thing: every header field holds a value the schema declares
/// (compared case-insensitively, as the pipeline canonicalizes). It reads no config.
#[derive(Debug, Clone, Default)]
pub struct SchemaOnlyValidator {
    schema: Schema,
}

impl SchemaOnlyValidator {
    /// A validator for the given schema.
    pub fn new(schema: Schema) -> SchemaOnlyValidator {
        SchemaOnlyValidator { schema }
    }

    fn check_fields<'a>(
        &self,
        item: usize,
        fields: impl Iterator<Item = (Field, Option<&'a str>)>,
        out: &mut Vec<Problem>,
    ) {
        for (field, value) in fields {
            let (code, message) = match value {
                None => (
                    format!("missing-{field}"),
                    format!("{field} is missing: every header field needs a value"),
                ),
                Some(v) if self.schema.canonical(field, v).is_none() => (
                    format!("unknown-{field}"),
                    format!(
                        "{field} `{v}` is not declared in the schema: expected one of {}",
                        self.schema.allowed(field).join(", ")
                    ),
                ),
                Some(_) => continue,
            };
            out.push(Problem {
                item,
                severity: Severity::Error,
                code,
                field: field.name().to_owned(),
                message,
            });
        }
    }
}

impl FromConfig for SchemaOnlyValidator {
    type Config = NoConfig;

    fn from_config(_config: NoConfig, setup: &Setup) -> StageResult<SchemaOnlyValidator> {
        Ok(SchemaOnlyValidator::new(setup.schema.clone()))
    }
}

impl Validator for SchemaOnlyValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, request) in requests.iter().enumerate() {
            let fields = request.fields.iter().map(|(f, v)| (f, v.as_deref()));
            self.check_fields(item, fields, out);
        }
        Ok(())
    }

    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, entry) in entries.iter().enumerate() {
            let fields = entry
                .header
                .fields
                .iter()
                .map(|(f, v)| (f, Some(v.as_str())));
            self.check_fields(item, fields, out);
        }
        Ok(())
    }

    /// The enumerated fields only, case-insensitively, and the header's shape through
    /// [`RawHeader::check`] (version, id, prefix), as one `malformed-header` problem.
    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()> {
        for (item, header) in headers.iter().enumerate() {
            let fields = header.fields.iter().map(|(f, v)| (f, Some(v.as_str())));
            let before = out.len();
            self.check_fields(item, fields, out);
            if out.len() == before
                && let Err(e) = header.check(&header.text(), &self.schema)
            {
                out.push(Problem {
                    item,
                    severity: Severity::Error,
                    code: "malformed-header".to_owned(),
                    field: "header".to_owned(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// Routes key `k` to shard `k % shards`: balanced on well-spread keys such as fingerprints, but
/// it moves most keys when the shard count changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModuloRouter;

impl FromConfig for ModuloRouter {
    type Config = NoConfig;

    fn from_config(_config: NoConfig, _setup: &Setup) -> StageResult<ModuloRouter> {
        Ok(ModuloRouter)
    }
}

impl Router for ModuloRouter {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        if shards == 0 {
            return Err(StageError::new(
                ErrorCode::Invalid,
                "shard count is 0: a registry has at least one shard",
            ));
        }
        // The remainder is below `shards`, a `u32`, so it always fits.
        out.extend(
            keys.iter()
                .map(|&k| u32::try_from(k % u64::from(shards)).unwrap_or(0)),
        );
        Ok(())
    }
}

/// The stages of a registry of `shards` private memory storages (numbering ids densely), with
/// the other memory doubles. `Pipeline::new` refuses `shards == 0`.
pub fn stages(schema: &Schema, shards: u32) -> Stages {
    stages_numbered(schema, shards, true)
}

/// [`stages`] of a registry that numbers ids as the first storage format did, interleaved.
pub fn interleaved_stages(schema: &Schema, shards: u32) -> Stages {
    stages_numbered(schema, shards, false)
}

fn stages_numbered(schema: &Schema, shards: u32, dense: bool) -> Stages {
    Stages {
        cache: Box::new(MemoryCache::new()),
        generator: Box::new(KeywordlessGenerator),
        validator: Box::new(SchemaOnlyValidator::new(schema.clone())),
        router: Box::new(ModuloRouter),
        storage: (0..shards)
            .map(|shard| {
                Box::new(MemoryStorage {
                    shard,
                    shards,
                    dense,
                    shelf: Arc::default(),
                }) as Box<dyn Storage>
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_outside_the_count_is_refused() {
        assert!(MemoryStorage::new(2, 3).is_ok());
        assert_eq!(
            MemoryStorage::new(3, 3).map(|_| ()).map_err(|e| e.code),
            Err(ErrorCode::Config)
        );
    }
}
