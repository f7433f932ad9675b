//! The pipeline: drives the five stages for each operation, batch by batch.
//!
//! `add` runs cache → storage lookup by fingerprint (idempotency) → generator prediction →
//! validation of the completed request → id allocation → config rendering → validation of the
//! entry → durable insert → cache fill. Each stage is called once per batch (once per shard for
//! storage), and a failing item never sinks the others: results come back one per request.
//!
//! `restore` takes entries exported from a registry, histories included, and stores them as they
//! are: hashes verified, the core's structural rules and the validator applied, conflicts looked
//! up in every shard, then one storage call per shard.
//!
//! Timing is optional ([`Pipeline::enable_timings`]): when on, the wall time of each stage call
//! `add` makes is kept per kind of call, so a bulk load can say where its time goes; when off,
//! each call costs one relaxed atomic load more.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::entry::{Author, ContentHash, Entry, Fingerprint, Lifecycle, Provenance};
use crate::error::{Error, ErrorCode, LifecycleError, Problem, Severity, StageError, StageKind};
use crate::header::{EntryId, Field, Fields, Header};
use crate::integrity::{self, Damaged};
use crate::request::{FINGERPRINT_DERIVATION, Request, RequestError, check_title};
use crate::schema::Schema;
use crate::stage::{
    Cache, CacheKey, CacheStats, Draft, Generator, Guess, Inserted, ListQuery, Prediction,
    Restored, Router, Source, Storage, TrainOptions, TrainReport, Validator,
};
use crate::time::Timestamp;

mod backup;
mod check;
mod create;
mod migrate;
mod observe;
mod purge;
mod rename;
mod restore;
mod split;
mod turns;

pub use check::{CheckReport, Finding, Repaired};
pub use migrate::ShardMigration;
pub use observe::{ChangeKind, Observer};
pub use purge::Purged;
pub use rename::Renamed;
pub use turns::{Turn, Turns};

/// The stage implementations a pipeline drives: one storage per shard.
pub struct Stages {
    pub cache: Box<dyn Cache>,
    pub generator: Box<dyn Generator>,
    pub validator: Box<dyn Validator>,
    pub router: Box<dyn Router>,
    pub storage: Vec<Box<dyn Storage>>,
}

impl std::fmt::Debug for Stages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stages")
            .field("shards", &self.storage.len())
            .finish_non_exhaustive()
    }
}

/// The outcome of registering one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    /// Shared with the cache that keeps it, so a registration answered from the cache copies
    /// nothing ([`Cache::get_shared`](crate::Cache::get_shared)); `Arc::unwrap_or_clone` gives a
    /// caller its own.
    #[serde(flatten)]
    pub entry: Arc<Entry>,
    /// False when the request was already registered and `entry` is the existing one.
    pub created: bool,
    /// Where each header field came from, for a created entry; empty for an existing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Fields<Guess>>,
}

/// A page of [`Pipeline::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The entries whose content matches their hash, in id order.
    pub entries: Vec<Entry>,
    /// Entries of the page that fail their hash check: left out of `entries` and reported here,
    /// so a damaged entry never hides the others.
    pub damaged: Vec<Damaged>,
    /// Where the next page starts ([`ListQuery::after`]) when this one is full and more may
    /// follow.
    pub next: Option<EntryId>,
}

/// What `update` may change. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub title: Option<String>,
    pub variant: Option<String>,
    pub status: Option<String>,
    pub version: Option<String>,
    /// Context pairs to set (replacing a value with the same key).
    pub context: Vec<(String, String)>,
    /// Context keys to remove; each must be set, and none may also be in `context`.
    pub unset_context: Vec<String>,
    /// Apply the changes only if the entry is at this revision (optimistic concurrency, as an
    /// HTTP `If-Match`). The new revision is numbered one more than this, so storage's
    /// compare-and-set refuses it ([`Error::Conflict`]) unless this is the stored revision.
    pub expected_revision: Option<u32>,
    /// Who makes the change; the pipeline's author ([`Pipeline::set_author`]) when `None`.
    pub author: Option<Author>,
}

/// The outcome of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    #[serde(flatten)]
    pub entry: Entry,
    /// False when the changes left the content as it was; no revision was written.
    pub changed: bool,
}

/// Entries read per storage call by the operations that walk whole shards (`check`,
/// `repair`, `rename`, `migrate`).
pub const SHARD_PAGE: usize = 1000;

/// The most merges [`Pipeline::resolve`] follows from one id.
pub const MAX_MERGE_HOPS: usize = 16;

/// Drives the stages. Cheap to share: every method takes `&self` and may run on many threads.
pub struct Pipeline {
    schema: Schema,
    stages: Stages,
    cache_errors: AtomicU64,
    /// Per shard: whether it holds entries whose fingerprints the router sends to another shard
    /// (restored from a registry with another layout). `add` looks for a new request in these
    /// shards too before creating anything.
    foreign: Vec<AtomicBool>,
    /// Whether shard 0 numbers every id ([`crate::layout::IDS`]), read from its metadata when
    /// the pipeline is built; otherwise each shard numbers its own (interleaved).
    dense: bool,
    /// Whether `add` caches the entries it creates (see [`Pipeline::set_cache_new_entries`]).
    cache_new_entries: AtomicBool,
    /// [`Pipeline::set_author`].
    author: Mutex<Option<Author>>,
    /// Whether stage calls are timed; see [`Pipeline::enable_timings`].
    timing: AtomicBool,
    /// Microseconds per timed call, indexed by [`StageCall::index`].
    samples: [Mutex<Vec<u32>>; StageCall::ALL.len()],
    /// [`Pipeline::set_observer`].
    observer: std::sync::OnceLock<std::sync::Arc<dyn Observer>>,
    /// Batches in `add` now: one alone splits its steps over two cores (`split`).
    in_flight: AtomicUsize,
    /// The cores this process may use.
    cores: usize,
}

/// A kind of stage call `add` makes once per batch (storage calls once per shard of the batch),
/// as timed when [`Pipeline::enable_timings`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum StageCall {
    CacheGet,
    StorageFind,
    GeneratorPredict,
    ValidatorCheckRequests,
    StorageAllocate,
    GeneratorRender,
    ValidatorCheckEntries,
    StoragePlace,
    StorageInsert,
    CachePut,
}

impl StageCall {
    /// Every call, in the order `add` makes them.
    pub const ALL: [StageCall; 10] = [
        StageCall::CacheGet,
        StageCall::StorageFind,
        StageCall::GeneratorPredict,
        StageCall::ValidatorCheckRequests,
        StageCall::StorageAllocate,
        StageCall::GeneratorRender,
        StageCall::ValidatorCheckEntries,
        StageCall::StoragePlace,
        StageCall::StorageInsert,
        StageCall::CachePut,
    ];

    /// The stage and method, e.g. `storage.insert`.
    pub fn name(self) -> &'static str {
        match self {
            StageCall::CacheGet => "cache.get",
            StageCall::StorageFind => "storage.find",
            StageCall::GeneratorPredict => "generator.predict",
            StageCall::ValidatorCheckRequests => "validator.check_requests",
            StageCall::StorageAllocate => "storage.allocate",
            StageCall::GeneratorRender => "generator.render",
            StageCall::ValidatorCheckEntries => "validator.check_entries",
            StageCall::StoragePlace => "storage.place",
            StageCall::StorageInsert => "storage.insert",
            StageCall::CachePut => "cache.put",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The latency of one kind of stage call since timing was enabled. Each sample is one call on a
/// whole batch (or on a shard's part of it), not one item: divide by the batch size for a cost
/// per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CallTiming {
    pub call: StageCall,
    /// How many calls were timed.
    pub calls: u64,
    /// Median call latency, in microseconds.
    pub p50_us: u64,
    /// 99th percentile call latency, in microseconds.
    pub p99_us: u64,
    /// Sum of all call latencies, in microseconds.
    pub total_us: u64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

/// The result of one item of a batch, once known.
type Slot<T = Added> = Option<Result<T, Error>>;

/// A new entry on its way to storage: its index in the batch, where each field came from, and
/// the entry.
struct Created {
    item: usize,
    provenance: Fields<Guess>,
    entry: Entry,
}

/// A new request on its way to storage: its index in the batch, the request with every field
/// filled, and where each field came from.
struct Pending {
    item: usize,
    request: Request,
    provenance: Fields<Guess>,
    /// Where the version came from: given or the schema's default.
    version: Source,
}

impl Pipeline {
    /// # Panics
    /// If `stages.storage` is empty: a registry has at least one shard.
    pub fn new(schema: Schema, stages: Stages) -> Pipeline {
        assert!(
            !stages.storage.is_empty(),
            "a pipeline needs at least one storage shard"
        );
        let foreign = stages
            .storage
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        // A storage that keeps no metadata, or a shard 0 that cannot be read, is taken to number
        // ids interleaved; shards of a dense registry then refuse to allocate rather than hand
        // out a number twice.
        let mut meta = crate::Meta::new();
        let dense = stages.storage[0].meta(&mut meta).is_ok()
            && meta.get(crate::layout::IDS).map(String::as_str) == Some(crate::layout::DENSE);
        Pipeline {
            schema,
            stages,
            cache_errors: AtomicU64::new(0),
            foreign,
            dense,
            timing: AtomicBool::new(false),
            samples: std::array::from_fn(|_| Mutex::new(Vec::new())),
            cache_new_entries: AtomicBool::new(true),
            author: Mutex::new(None),
            observer: std::sync::OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }

    /// Tells `observer` of every write from now on ([`Observer`]). One observer per pipeline:
    /// `false`, and nothing changed, when one is set already.
    pub fn set_observer(&self, observer: std::sync::Arc<dyn Observer>) -> bool {
        self.observer.set(observer).is_ok()
    }

    /// Reports `entries` to the observer, if there is one.
    fn report(&self, kind: ChangeKind, entries: &[&Entry]) {
        if let Some(observer) = self.observer.get()
            && !entries.is_empty()
        {
            observer.changed(kind, entries);
        }
    }

    /// Who the writes of this pipeline are by when the call does not say
    /// ([`Request::author`], [`Changes::author`]): the command line sets its user once.
    pub fn set_author(&self, author: Option<Author>) {
        if let Ok(mut a) = self.author.lock() {
            *a = author;
        }
    }

    /// The author of a write that names none.
    fn default_author(&self) -> Option<Author> {
        self.author.lock().ok().and_then(|a| a.clone())
    }

    /// Whether `add` puts the entries it creates into the cache (the default), so that asking
    /// for one right after finds it there. A bulk load turns this off: caching every new entry
    /// copies each across the plugin boundary once more, for entries nobody asks for, and
    /// evicts those that are asked for. Lookups still fill the cache.
    pub fn set_cache_new_entries(&self, on: bool) {
        self.cache_new_entries.store(on, Ordering::Relaxed);
    }

    /// Starts timing the stage calls `add` makes (see [`Pipeline::timings`]). Samples are kept
    /// in memory, four bytes per call: one call per batch and stage, so a million requests in
    /// batches of a thousand keep a few tens of kilobytes.
    pub fn enable_timings(&self) {
        self.timing.store(true, Ordering::Relaxed);
    }

    /// The latency of each kind of stage call timed since [`Pipeline::enable_timings`], in the
    /// order `add` makes them; calls never made are left out. These are per batch call
    /// latencies: one sample per call on a batch (per shard for storage), not per item.
    pub fn timings(&self) -> Vec<CallTiming> {
        StageCall::ALL
            .iter()
            .filter_map(|&call| {
                let mut v = self.samples[call.index()]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                if v.is_empty() {
                    return None;
                }
                v.sort_unstable();
                // Nearest rank: the smallest sample with at least p% of the samples at or below it.
                let rank = |p: usize| v[(v.len() * p).div_ceil(100).max(1) - 1];
                Some(CallTiming {
                    call,
                    calls: v.len() as u64,
                    p50_us: u64::from(rank(50)),
                    p99_us: u64::from(rank(99)),
                    total_us: v.iter().map(|&us| u64::from(us)).sum(),
                })
            })
            .collect()
    }

    /// Runs one stage call, timing it when timing is on.
    fn timed<T>(&self, call: StageCall, f: impl FnOnce() -> T) -> T {
        if !self.timing.load(Ordering::Relaxed) {
            return f();
        }
        let start = Instant::now();
        let out = f();
        self.record(call, start.elapsed());
        out
    }

    fn record(&self, call: StageCall, elapsed: Duration) {
        let us = u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX);
        self.samples[call.index()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(us);
    }

    /// Tells the pipeline which shards hold entries whose fingerprints the router sends to
    /// another shard (as their metadata say, [`crate::layout::FOREIGN_FINGERPRINTS`]), so that
    /// `add` looks for a request in those shards too before creating an entry. It costs one
    /// more lookup per such shard for each new request. [`Pipeline::restore`] keeps this up to
    /// date for the entries it stores.
    pub fn set_foreign_shards(&self, foreign: &[bool]) {
        for (flag, &on) in self.foreign.iter().zip(foreign) {
            flag.store(on, Ordering::Relaxed);
        }
    }

    /// Marks every shard or none as holding foreign fingerprints; see
    /// [`Pipeline::set_foreign_shards`].
    pub fn set_fingerprints_anywhere(&self, on: bool) {
        for flag in &self.foreign {
            flag.store(on, Ordering::Relaxed);
        }
    }

    /// Whether some shard holds entries whose fingerprints route elsewhere, so that `add` looks
    /// beyond the routed shard.
    pub fn fingerprints_anywhere(&self) -> bool {
        self.foreign.iter().any(|f| f.load(Ordering::Relaxed))
    }

    /// Records in every shard's metadata that it may hold foreign fingerprints, and marks them
    /// so here: for a registry that knows some shard does but not which.
    ///
    /// # Errors
    /// When a shard's metadata cannot be written.
    pub fn mark_every_shard_foreign(&self) -> Result<(), Error> {
        let mark: crate::Meta = [(
            crate::layout::FOREIGN_FINGERPRINTS.to_owned(),
            "true".to_owned(),
        )]
        .into();
        for (storage, flag) in self.stages.storage.iter().zip(&self.foreign) {
            storage
                .set_meta(&mark)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            flag.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn is_foreign(&self, shard: usize) -> bool {
        self.foreign
            .get(shard)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn shards(&self) -> usize {
        self.stages.storage.len()
    }

    /// Cache counters, plus how many cache calls failed (a failing cache is bypassed: it only
    /// ever makes the registry slower, never wrong).
    pub fn cache_stats(&self) -> (CacheStats, u64) {
        (
            self.stages.cache.stats(),
            self.cache_errors.load(Ordering::Relaxed),
        )
    }

    /// Registers a batch of requests; returns one result per request, in order.
    pub fn add(&self, requests: Vec<Request>) -> Vec<Result<Added, Error>> {
        self.add_with(requests, None)
    }

    /// [`Pipeline::add`] for one of several batches run at once: in a dense registry, the
    /// batch's new entries are numbered after those of every batch whose turn was taken
    /// earlier ([`Turns`]), so a bulk load numbers its entries in input order.
    pub fn add_in_turn(&self, requests: Vec<Request>, mut turn: Turn) -> Vec<Result<Added, Error>> {
        self.add_with(requests, Some(&mut turn))
    }

    fn add_with(
        &self,
        mut requests: Vec<Request>,
        turn: Option<&mut Turn>,
    ) -> Vec<Result<Added, Error>> {
        let _batch = split::InFlight::enter(&self.in_flight);
        let n = requests.len();
        let mut slots: Vec<Slot> = (0..n).map(|_| None).collect();
        for r in &mut requests {
            self.canonicalize(&mut r.fields);
        }
        let fps: Vec<Fingerprint> = requests.iter().map(Request::fingerprint).collect();

        // Repeats inside the batch resolve to the first occurrence (a batch of one has none).
        let mut repeat_of = vec![None; n];
        if n > 1 {
            let mut first: HashMap<Fingerprint, usize> = HashMap::with_capacity(n);
            for (i, fp) in fps.iter().enumerate() {
                if let Some(&j) = first.get(fp) {
                    repeat_of[i] = Some(j);
                } else {
                    first.insert(*fp, i);
                }
            }
        }
        let mut todo: Vec<usize> = (0..n).filter(|&i| repeat_of[i].is_none()).collect();

        self.lookup_cached(&fps, &mut todo, &mut slots);
        // A batch the cache answered whole (a repeated registration) has nothing left to route,
        // look up or create; its turn, if any, passes when dropped.
        if !todo.is_empty() {
            let shard_of = match self.route(&todo, &fps) {
                Ok(s) => s,
                Err(e) => {
                    fail_all(&todo, &e, &mut slots);
                    todo.clear();
                    Vec::new()
                }
            };
            self.lookup_stored(&fps, &shard_of, &mut todo, &mut slots);
            self.lookup_legacy(&requests, &mut todo, &mut slots);
            self.create(requests, &fps, &shard_of, &todo, &mut slots, turn);
        }

        let mut out: Vec<Result<Added, Error>> = Vec::with_capacity(n);
        for i in 0..n {
            // A repeat's first occurrence comes earlier, so its result is already in `out`.
            let result = match repeat_of[i] {
                Some(j) => match &out[j] {
                    Ok(a) => Ok(existing(a.entry.clone())),
                    Err(e) => Err(e.clone()),
                },
                None => slots[i]
                    .take()
                    .unwrap_or_else(|| Err(internal("request was not processed"))),
            };
            out.push(result);
        }
        out
    }

    /// Registers one request.
    ///
    /// # Errors
    /// As the item results of [`Pipeline::add`].
    pub fn add_one(&self, request: Request) -> Result<Added, Error> {
        self.add(vec![request])
            .pop()
            .unwrap_or_else(|| Err(internal("empty batch result")))
    }

    fn canonicalize(&self, fields: &mut Fields<Option<String>>) {
        for f in Field::ALL {
            if let Some(v) = &fields[f]
                && let Some(c) = self.schema.canonical(f, v)
                && c != v
            {
                fields[f] = Some(c.to_owned());
            }
        }
    }

    fn lookup_cached(&self, fps: &[Fingerprint], todo: &mut Vec<usize>, slots: &mut [Slot]) {
        let keys: Vec<CacheKey> = todo
            .iter()
            .map(|&i| CacheKey::of_fingerprint(&fps[i]))
            .collect();
        let mut hits = Vec::with_capacity(keys.len());
        let got = self.timed(StageCall::CacheGet, || {
            self.stages.cache.get_shared(&keys, &mut hits)
        });
        if got.is_err() || hits.len() != keys.len() {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Allocated at the first miss only: a registration answered from the cache needs none.
        let mut rest = Vec::new();
        for (&i, hit) in todo.iter().zip(hits) {
            match hit {
                Some(entry) if entry.fingerprint == fps[i] => slots[i] = Some(Ok(existing(entry))),
                _ => rest.push(i),
            }
        }
        *todo = rest;
    }

    /// The shard of each request in `todo`, indexed like `fps`.
    fn route(&self, todo: &[usize], fps: &[Fingerprint]) -> Result<Vec<u32>, Error> {
        let mut shard_of = vec![0u32; fps.len()];
        let shards = self.shards_u32();
        if shards == 1 || todo.is_empty() {
            return Ok(shard_of);
        }
        let keys: Vec<u64> = todo.iter().map(|&i| fps[i].low64()).collect();
        let mut out = Vec::with_capacity(keys.len());
        self.stages
            .router
            .route(&keys, shards, &mut out)
            .map_err(|e| Error::stage(StageKind::Router, e))?;
        if out.len() != keys.len() || out.iter().any(|&s| s >= shards) {
            return Err(Error::stage(
                StageKind::Router,
                StageError::new(ErrorCode::Internal, "router returned shards out of range"),
            ));
        }
        for (&i, s) in todo.iter().zip(out) {
            shard_of[i] = s;
        }
        Ok(shard_of)
    }

    fn lookup_stored(
        &self,
        fps: &[Fingerprint],
        shard_of: &[u32],
        todo: &mut Vec<usize>,
        slots: &mut [Slot],
    ) {
        let mut rest = Vec::with_capacity(todo.len());
        for (shard, items) in group_by_shard(todo, shard_of) {
            rest.extend(self.find_in(shard, &items, fps, slots));
        }
        if self.fingerprints_anywhere() && self.shards() > 1 {
            self.lookup_elsewhere(fps, shard_of, &mut rest, slots);
        }
        rest.sort_unstable();
        *todo = rest;
    }

    /// Looks for the requests of `todo` whose title is not in Unicode NFC under the fingerprint
    /// derivation 1 gave them (see [`Request::legacy_fingerprint`]): an entry registered before
    /// derivation 2 is stored under that one. Keeps in `todo` only those found under neither.
    fn lookup_legacy(&self, requests: &[Request], todo: &mut Vec<usize>, slots: &mut [Slot]) {
        let mut legacy = vec![Fingerprint([0; 16]); requests.len()];
        let mut asked = Vec::new();
        for &i in todo.iter() {
            if let Some(fp) = requests[i].legacy_fingerprint() {
                legacy[i] = fp;
                asked.push(i);
            }
        }
        if asked.is_empty() {
            return;
        }
        let shard_of = match self.route(&asked, &legacy) {
            Ok(s) => s,
            Err(e) => {
                fail_all(&asked, &e, slots);
                todo.retain(|i| !asked.contains(i));
                return;
            }
        };
        let mut missed = asked.clone();
        self.lookup_stored(&legacy, &shard_of, &mut missed, slots);
        todo.retain(|i| !asked.contains(i) || missed.contains(i));
    }

    /// Looks for the fingerprints of `rest` in every shard that holds foreign fingerprints but
    /// the one each was routed to; keeps in `rest` only those found nowhere. An item whose
    /// lookup fails is failed, not kept: creating its entry could duplicate one in the shard
    /// that could not be read.
    fn lookup_elsewhere(
        &self,
        fps: &[Fingerprint],
        shard_of: &[u32],
        rest: &mut Vec<usize>,
        slots: &mut [Slot],
    ) {
        for shard in (0..self.shards()).filter(|&s| self.is_foreign(s)) {
            let asked: Vec<usize> = rest
                .iter()
                .copied()
                .filter(|&i| shard_of[i] as usize != shard)
                .collect();
            if asked.is_empty() {
                continue;
            }
            // `asked` is in `rest`'s order and the missed ones in `asked`'s.
            let mut missed = self
                .find_in(shard, &asked, fps, slots)
                .into_iter()
                .peekable();
            rest.retain(|&i| shard_of[i] as usize == shard || missed.next_if_eq(&i).is_some());
        }
    }

    /// Looks up the fingerprints of `items` in one shard: the items found get their entry (and
    /// go into the cache), all of them fail if the shard cannot be read; returns the items not
    /// found, in order.
    fn find_in(
        &self,
        shard: usize,
        items: &[usize],
        fps: &[Fingerprint],
        slots: &mut [Slot],
    ) -> Vec<usize> {
        let wanted: Vec<Fingerprint> = items.iter().map(|&i| fps[i]).collect();
        let mut found = Vec::with_capacity(wanted.len());
        let result = self.timed(StageCall::StorageFind, || {
            self.stages.storage[shard].find(&wanted, &mut found)
        });
        let error = match result {
            Err(e) => Some(Error::stage(StageKind::Storage, e)),
            Ok(()) if found.len() != wanted.len() => Some(miscount(StageKind::Storage)),
            Ok(()) => None,
        };
        if let Some(e) = error {
            fail_all(items, &e, slots);
            return Vec::new();
        }
        let mut missed = Vec::new();
        let mut hits = Vec::new();
        for (&i, f) in items.iter().zip(found) {
            match f {
                Some(entry) => {
                    let entry = Arc::new(entry);
                    hits.push(Arc::clone(&entry));
                    slots[i] = Some(Ok(existing(entry)));
                }
                None => missed.push(i),
            }
        }
        self.fill_cache_shared(&hits);
        missed
    }

    /// Fills every field of a request: the given value, else the generator's guess, else the
    /// schema's default (each in the schema's spelling), and the version likewise.
    fn complete(
        &self,
        mut request: Request,
        mut prediction: Prediction,
    ) -> Result<(Request, Fields<Guess>, Source), Error> {
        let mut sources: Fields<Option<Guess>> = Fields::default();
        for f in Field::ALL {
            // Each value moves from the request or the prediction into its guess, is spelled
            // as the schema spells it in place, and is copied once, back into the request.
            let mut guess = match request.fields[f].take() {
                Some(value) => Guess {
                    value,
                    confidence: None,
                    source: Source::Given,
                },
                None => match prediction[f].take().or_else(|| {
                    self.schema.default_value(f).map(|v| Guess {
                        value: v.to_owned(),
                        confidence: None,
                        source: Source::Default,
                    })
                }) {
                    Some(g) => g,
                    None => {
                        return Err(Error::Invalid(vec![Problem {
                            item: 0,
                            severity: Severity::Error,
                            code: format!("missing-{f}"),
                            field: f.name().to_owned(),
                            message: format!(
                                "{f}: not given, not predicted, and the schema has no default"
                            ),
                        }]));
                    }
                },
            };
            if let Some(spelled) = self.schema.canonical(f, &guess.value)
                && spelled != guess.value
            {
                guess.value.clear();
                guess.value.push_str(spelled);
            }
            request.fields[f] = Some(guess.value.clone());
            sources[f] = Some(guess);
        }
        let version = if request.version.is_none() {
            request.version = Some(self.schema.version().to_owned());
            Source::Default
        } else {
            Source::Given
        };
        match sources {
            Fields {
                scope: Some(scope),
                kind: Some(kind),
                variant: Some(variant),
                status: Some(status),
            } => Ok((
                request,
                Fields {
                    scope,
                    kind,
                    variant,
                    status,
                },
                version,
            )),
            _ => Err(internal("field lost while completing request")),
        }
    }

    /// What `add` would fill in for each request, and where each value comes from; nothing is
    /// stored and no id is allocated.
    ///
    /// # Errors
    /// The whole batch fails when the generator does; an item fails when a field has no value.
    pub fn predict(
        &self,
        mut requests: Vec<Request>,
    ) -> Result<Vec<Result<Fields<Guess>, Error>>, Error> {
        for r in &mut requests {
            self.canonicalize(&mut r.fields);
        }
        let mut predictions = Vec::with_capacity(requests.len());
        self.stages
            .generator
            .predict(&requests, &mut predictions)
            .map_err(|e| Error::stage(StageKind::Generator, e))?;
        if predictions.len() != requests.len() {
            return Err(miscount(StageKind::Generator));
        }
        Ok(requests
            .into_iter()
            .zip(predictions)
            .map(|(r, p)| self.complete(r, p).map(|(_, fields, _)| fields))
            .collect())
    }

    /// Trains the generator on examples (requests with their known fields given).
    ///
    /// # Errors
    /// What the generator reports, e.g. a value outside the schema or a generator that cannot
    /// be trained.
    pub fn train(
        &self,
        mut examples: Vec<Request>,
        options: &TrainOptions,
    ) -> Result<TrainReport, Error> {
        for r in &mut examples {
            self.canonicalize(&mut r.fields);
        }
        self.stages
            .generator
            .train(&examples, options)
            .map_err(|e| Error::stage(StageKind::Generator, e))
    }

    fn fill_cache(&self, entries: &[Entry]) {
        if !entries.is_empty()
            && self
                .timed(StageCall::CachePut, || self.stages.cache.put(entries))
                .is_err()
        {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`Pipeline::fill_cache`] with the entries handed out in [`Added`], which a cache that
    /// keeps `Arc`s shares instead of copying.
    fn fill_cache_shared(&self, entries: &[Arc<Entry>]) {
        if !entries.is_empty()
            && self
                .timed(StageCall::CachePut, || {
                    self.stages.cache.put_shared(entries)
                })
                .is_err()
        {
            self.cache_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn shards_u32(&self) -> u32 {
        u32::try_from(self.stages.storage.len()).unwrap_or(u32::MAX)
    }

    /// Calls `each` with every page of [`SHARD_PAGE`] latest revisions of one shard, in id
    /// order, only those holding `filter`'s value when given. A page starts after the last id
    /// of the one before, so entries `each` changes so that they leave the filter are not met
    /// again.
    ///
    /// # Errors
    /// When the shard cannot be listed, or what `each` returns.
    fn walk_shard(
        &self,
        storage: &dyn Storage,
        filter: Option<(Field, &str)>,
        each: &mut dyn FnMut(Vec<Entry>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut after: Option<EntryId> = None;
        loop {
            let mut query = ListQuery {
                after: after.take(),
                limit: SHARD_PAGE,
                ..ListQuery::default()
            };
            if let Some((field, value)) = filter {
                query.filter[field] = Some(value.to_owned());
            }
            let mut page = Vec::with_capacity(SHARD_PAGE);
            storage
                .list(&query, &mut page)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.header.id.clone());
            let full = page.len() == SHARD_PAGE;
            each(page)?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Whether shard 0 numbers every id (see [`Storage`]).
    pub fn dense_ids(&self) -> bool {
        self.dense
    }

    /// The index of the shard that holds an id: in a dense registry the one shard 0 recorded
    /// ([`Storage::locate`]), else the one that allocated it ([`crate::rules::shard_of`]).
    /// `None` for number 0, which no shard hands out.
    ///
    /// # Errors
    /// When shard 0 cannot be read.
    fn shard_index(&self, id: &EntryId) -> Result<Option<usize>, Error> {
        let mut shards = Vec::with_capacity(1);
        self.locate(std::slice::from_ref(id), &mut shards)?;
        Ok(shards.pop().flatten())
    }

    /// [`Pipeline::shard_index`] for many ids: pushes one shard index per id.
    fn locate(&self, ids: &[EntryId], out: &mut Vec<Option<usize>>) -> Result<(), Error> {
        let shards = self.shards_u32();
        if !self.dense {
            out.extend(ids.iter().map(|id| {
                let shard = crate::rules::shard_of(id.number(), shards)?;
                usize::try_from(shard).ok()
            }));
            return Ok(());
        }
        if shards == 1 {
            out.extend(ids.iter().map(|id| (id.number() > 0).then_some(0)));
            return Ok(());
        }
        let mut located = Vec::with_capacity(ids.len());
        self.stages.storage[0]
            .locate(ids, &mut located)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        if located.len() != ids.len() {
            return Err(miscount(StageKind::Storage));
        }
        out.extend(ids.iter().zip(located).map(|(id, shard)| {
            (id.number() > 0 && shard < shards).then(|| usize::try_from(shard).ok())?
        }));
        Ok(())
    }

    /// The shard that holds an id.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an id no shard can hold, or shard 0 cannot be read.
    fn shard_of_id(&self, id: &EntryId) -> Result<&dyn Storage, Error> {
        self.shard_index(id)?
            .and_then(|s| self.stages.storage.get(s))
            .map(|s| &**s)
            .ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// The latest revision of an entry, from the cache when it holds it. What storage returns
    /// is checked against its hash first.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Damaged`], or a storage failure.
    pub fn get(&self, id: &EntryId) -> Result<Entry, Error> {
        if let Some(entry) = self.get_cached(id) {
            return Ok(entry);
        }
        let entry = self.get_stored(id)?;
        self.fill_cache(std::slice::from_ref(&entry));
        Ok(entry)
    }

    /// The latest revision of `id` if the cache holds it, without reaching storage: what a
    /// server answers on the thread that read the request, when it can, rather than handing
    /// the call to a thread that may block (a cache is in memory; storage may fsync or wait
    /// on the network).
    pub fn get_cached(&self, id: &EntryId) -> Option<Entry> {
        let key = [CacheKey::of_id(id)];
        let mut hit = Vec::with_capacity(1);
        match self.stages.cache.get(&key, &mut hit) {
            Ok(()) => {
                if let Some(Some(entry)) = hit.pop()
                    && entry.header.id == *id
                {
                    return Some(entry);
                }
            }
            Err(_) => {
                self.cache_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }

    /// The entry to use for `id`: its latest revision, or, when it is merged into another
    /// entry, that entry's (following merges, which never form a cycle: a merge target is
    /// active when merged into).
    ///
    /// # Errors
    /// As [`Pipeline::get`], for `id` or any entry it leads to; [`Error::Damaged`] for a chain
    /// of merges longer than [`MAX_MERGE_HOPS`], which only concurrent merges into each other
    /// could make.
    pub fn resolve(&self, id: &EntryId) -> Result<Entry, Error> {
        let mut entry = self.get(id)?;
        for _ in 0..MAX_MERGE_HOPS {
            let Lifecycle::Merged(target) = &entry.lifecycle else {
                return Ok(entry);
            };
            entry = self.get(&target.clone())?;
        }
        if entry.lifecycle.is_active() {
            return Ok(entry);
        }
        Err(LifecycleError::MergeChain(id.clone()).into())
    }

    /// As [`Pipeline::get`], but always from storage, never the cache, and without filling
    /// it: for a reader that must see the latest write, such as an index following the writes
    /// ([`Observer`]), which a cache filled by a read racing that write could hide.
    ///
    /// # Errors
    /// As [`Pipeline::get`].
    pub fn get_uncached(&self, id: &EntryId) -> Result<Entry, Error> {
        self.get_stored(id)
    }

    fn get_stored(&self, id: &EntryId) -> Result<Entry, Error> {
        let storage = self.shard_of_id(id)?;
        let mut out = Vec::with_capacity(1);
        storage
            .get(std::slice::from_ref(id), &mut out)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        let entry = out
            .pop()
            .flatten()
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        integrity::verify_entry(&entry).map_err(Error::Damaged)?;
        Ok(entry)
    }

    /// Up to `query.limit` entries matching the query, in id order, across all shards, each
    /// checked against its hash: those that fail are in [`Page::damaged`] instead.
    ///
    /// # Errors
    /// A storage failure.
    pub fn list(&self, query: &ListQuery) -> Result<Page, Error> {
        let mut query = query.clone();
        self.canonicalize(&mut query.filter);
        let mut all = Vec::new();
        for storage in &self.stages.storage {
            let before = all.len();
            storage
                .list(&query, &mut all)
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
            all.truncate(before.saturating_add(query.limit));
        }
        if self.stages.storage.len() > 1 {
            all.sort_by(|a, b| a.header.id.cmp(&b.header.id));
            all.truncate(query.limit);
        }
        let next = (all.len() == query.limit && query.limit > 0)
            .then(|| all.last().map(|e| e.header.id.clone()))
            .flatten();
        let mut page = Page {
            entries: Vec::with_capacity(all.len()),
            damaged: Vec::new(),
            next,
        };
        for entry in all {
            match integrity::verify_entry(&entry) {
                Ok(()) => page.entries.push(entry),
                Err(d) => page.damaged.push(d),
            }
        }
        Ok(page)
    }

    /// Compacts every shard ([`Storage::compact`]), one after another; returns how many stored
    /// revisions were rewritten in all.
    ///
    /// # Errors
    /// The first shard's failure; the shards before it are compacted.
    pub fn compact(&self) -> Result<u64, Error> {
        let mut rewritten = 0u64;
        for storage in &self.stages.storage {
            rewritten += storage
                .compact()
                .map_err(|e| Error::stage(StageKind::Storage, e))?;
        }
        Ok(rewritten)
    }

    /// Every revision of an entry, oldest first, checked as a whole (see [`crate::integrity`]).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Damaged`], or a storage failure.
    pub fn history(&self, id: &EntryId) -> Result<Vec<Entry>, Error> {
        let storage = self.shard_of_id(id)?;
        let mut out = Vec::new();
        storage
            .history(id, &mut out)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        if out.is_empty() {
            return Err(Error::NotFound(id.clone()));
        }
        integrity::verify_history(&out).map_err(Error::Damaged)?;
        Ok(out)
    }

    /// Writes a new revision of an entry with the given changes, keeping every earlier one.
    ///
    /// The new revision is built on the latest stored one and numbered one more than it, or,
    /// with [`Changes::expected_revision`], one more than the expected revision: storage stores
    /// a revision only on top of the one before it (compare-and-set), so the update is stored
    /// only if the entry is still at the revision it was built on and, when one is expected,
    /// that revision is the expected one. The conflict is storage's answer, so it holds against
    /// writers in other processes too. Changes that leave the content as it was write nothing
    /// and reach no storage: then the revision read is compared with the expected one.
    ///
    /// # Errors
    /// [`Error::NotFound`], an invalid change, [`Error::Conflict`] when another writer stored a
    /// revision meanwhile or the entry is not at the expected revision, or a stage failure.
    pub fn update(&self, id: &EntryId, changes: Changes) -> Result<Updated, Error> {
        let current = self.get_stored(id)?;
        if !current.lifecycle.is_active() {
            return Err(LifecycleError::NotActive {
                id: id.clone(),
                state: current.lifecycle,
            }
            .into());
        }
        // The number storage will accept only on top of the revision it follows.
        let revision = match changes.expected_revision {
            None => current.revision.checked_add(1),
            Some(expected) => expected.checked_add(1),
        }
        .ok_or_else(|| Error::Conflict(id.clone()))?;
        let title = match &changes.title {
            Some(t) => check_title(t)?,
            None => current.title.clone(),
        };
        let mut fields: Fields<Option<String>> = current.header.fields.clone().map(|_, v| Some(v));
        if let Some(v) = changes.variant {
            fields.variant = Some(v);
        }
        if let Some(s) = changes.status {
            fields.status = Some(s);
        }
        self.canonicalize(&mut fields);
        let mut context = current.context.clone();
        for key in &changes.unset_context {
            if changes.context.iter().any(|(k, _)| k == key) {
                return Err(RequestError::SetAndUnsetContextKey(key.clone()).into());
            }
            context.remove(key)?;
        }
        for (k, v) in changes.context {
            context.set(k, v)?;
        }
        let version = changes
            .version
            .unwrap_or_else(|| current.header.version.clone());
        let request = Request::new(&title, fields, Some(version), context)?;
        let mut problems = Vec::new();
        self.stages
            .validator
            .check_requests(std::slice::from_ref(&request), &mut problems)
            .map_err(|e| Error::stage(StageKind::Validator, e))?;
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(Error::Invalid(problems));
        }

        let draft = Draft {
            header: Header {
                fields: request.fields.clone().map(|_, v| v.unwrap_or_default()),
                id: id.clone(),
                version: request.version.clone().unwrap_or_default(),
            },
            title: request.title().to_owned(),
            context: request.context.clone(),
        };
        let config = self.render_one(&draft)?;
        let unchanged = Entry::compute_hash(&draft.header, &draft.title, &draft.context, &config)
            == current.content_hash_without_chain();
        if unchanged {
            if changes
                .expected_revision
                .is_some_and(|expected| expected != current.revision)
            {
                return Err(Error::Conflict(id.clone()));
            }
            return Ok(Updated {
                entry: current,
                changed: false,
            });
        }
        let entry = Entry {
            header: draft.header,
            title: draft.title,
            context: draft.context,
            config,
            hash: current.hash,
            previous: None,
            purge: None,
            fingerprint: current.fingerprint,
            revision,
            created_at: current.created_at,
            updated_at: Timestamp::now().max(current.updated_at),
            provenance: current.provenance,
            lifecycle: Lifecycle::Active,
            author: changes.author,
        };
        let entry = self.seal(&current, entry);
        self.check_entry(&entry)?;
        self.store_revision(id, entry, ChangeKind::Updated)
    }

    /// The config the generator renders for one draft.
    fn render_one(&self, draft: &Draft) -> Result<String, Error> {
        let mut configs = Vec::with_capacity(1);
        self.stages
            .generator
            .render(std::slice::from_ref(draft), &mut configs)
            .map_err(|e| Error::stage(StageKind::Generator, e))?;
        configs.pop().ok_or_else(|| miscount(StageKind::Generator))
    }

    /// The validator's check of one entry the pipeline built and sealed
    /// ([`Validator::check_built`]); its errors are an [`Error::Invalid`].
    fn check_entry(&self, entry: &Entry) -> Result<(), Error> {
        let mut problems = Vec::new();
        self.stages
            .validator
            .check_built(std::slice::from_ref(entry), &mut problems)
            .map_err(|e| Error::stage(StageKind::Validator, e))?;
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(Error::Invalid(problems));
        }
        Ok(())
    }

    /// Moves an entry to another lifecycle state (retired, merged into another entry, or active
    /// again), as a new revision whose content is otherwise the latest one's: history keeps
    /// every state the entry went through. A merge target must exist, be another entry and be
    /// active, so merges never form a cycle. Asking for the state the entry is in writes
    /// nothing (`changed` is false). `expected_revision` works as in [`Pipeline::update`].
    ///
    /// # Errors
    /// [`Error::NotFound`] for the entry or the merge target, [`Error::Lifecycle`] for a merge
    /// into itself or into an entry that is not active, [`Error::Conflict`], or a stage failure.
    pub fn set_lifecycle(
        &self,
        id: &EntryId,
        lifecycle: Lifecycle,
        expected_revision: Option<u32>,
    ) -> Result<Updated, Error> {
        self.set_lifecycle_by(id, lifecycle, expected_revision, None)
    }

    /// [`Pipeline::set_lifecycle`] by `author` (the pipeline's author when `None`).
    ///
    /// # Errors
    /// As [`Pipeline::set_lifecycle`].
    pub fn set_lifecycle_by(
        &self,
        id: &EntryId,
        lifecycle: Lifecycle,
        expected_revision: Option<u32>,
        author: Option<Author>,
    ) -> Result<Updated, Error> {
        let current = self.get_stored(id)?;
        if let Lifecycle::Merged(target) = &lifecycle {
            if target == id {
                return Err(LifecycleError::IntoItself(id.clone()).into());
            }
            let target_entry = self.get_stored(target)?;
            if !target_entry.lifecycle.is_active() {
                return Err(LifecycleError::TargetNotActive {
                    target: target.clone(),
                    state: target_entry.lifecycle,
                }
                .into());
            }
        }
        if current.lifecycle == lifecycle {
            if expected_revision.is_some_and(|expected| expected != current.revision) {
                return Err(Error::Conflict(id.clone()));
            }
            return Ok(Updated {
                entry: current,
                changed: false,
            });
        }
        let revision = match expected_revision {
            None => current.revision.checked_add(1),
            Some(expected) => expected.checked_add(1),
        }
        .ok_or_else(|| Error::Conflict(id.clone()))?;
        let entry = Entry {
            revision,
            updated_at: Timestamp::now().max(current.updated_at),
            lifecycle,
            author,
            ..current.clone()
        };
        let kind = match &entry.lifecycle {
            Lifecycle::Active => ChangeKind::Revived,
            Lifecycle::Retired => ChangeKind::Retired,
            Lifecycle::Merged(_) => ChangeKind::Merged,
        };
        let entry = self.seal(&current, entry);
        self.store_revision(id, entry, kind)
    }

    /// What a new revision built on `current` records as the revision before it: `current`'s
    /// link (its hash, or the one it had before a purge), so the new hash covers the whole history ([`Entry::previous`]). A registry of
    /// storage format 1 (numbered interleaved: only format 2 is dense) cannot keep it, and
    /// writes revisions unchained as it always did.
    fn chain_after(&self, current: &Entry) -> Option<ContentHash> {
        // A purged revision's link is the hash it had before the purge (`Entry::link`).
        self.dense.then(|| current.link())
    }

    /// Makes `entry`, a new revision built on `current`, the next link of the chain: the
    /// previous hash ([`Pipeline::chain_after`]), no purge record (a purge belongs to the
    /// revision it was made in, not to those built on it), its author (the pipeline's when it
    /// has none), and its hash over all that (the author is not covered: it is no content).
    fn seal(&self, current: &Entry, mut entry: Entry) -> Entry {
        if entry.author.is_none() {
            entry.author = self.default_author();
        }
        entry.previous = self.chain_after(current);
        entry.purge = None;
        entry.hash = entry.content_hash();
        entry
    }

    /// Stores a new revision built on the latest one, caches it and reports it as `kind`.
    fn store_revision(
        &self,
        id: &EntryId,
        entry: Entry,
        kind: ChangeKind,
    ) -> Result<Updated, Error> {
        let storage = self.shard_of_id(id)?;
        let mut outcome = Vec::with_capacity(1);
        storage
            .update(std::slice::from_ref(&entry), &mut outcome)
            .map_err(|e| Error::stage(StageKind::Storage, e))?;
        match outcome.pop() {
            Some(Ok(())) => {}
            Some(Err(e)) if e.code == ErrorCode::Conflict => {
                return Err(Error::Conflict(id.clone()));
            }
            Some(Err(e)) if e.code == ErrorCode::NotFound => {
                return Err(Error::NotFound(id.clone()));
            }
            Some(Err(e)) => return Err(Error::stage(StageKind::Storage, e)),
            None => return Err(miscount(StageKind::Storage)),
        }
        self.fill_cache(std::slice::from_ref(&entry));
        self.report(kind, &[&entry]);
        Ok(Updated {
            entry,
            changed: true,
        })
    }
}

/// The results of a batch, an internal error for any item left without one.
fn finish<T>(slots: Vec<Slot<T>>) -> Vec<Result<T, Error>> {
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(internal("history was not processed"))))
        .collect()
}

/// A conflict with what is stored, reported as storage reports one.
fn conflict(message: String) -> Error {
    Error::stage(
        StageKind::Storage,
        StageError::new(ErrorCode::Conflict, message),
    )
}

fn field(fields: &Fields<Option<String>>, f: Field) -> &str {
    fields[f].as_deref().unwrap_or("")
}

fn existing(entry: Arc<Entry>) -> Added {
    Added {
        entry,
        created: false,
        fields: None,
    }
}

fn internal(message: &str) -> Error {
    Error::stage(
        StageKind::Storage,
        StageError::new(ErrorCode::Internal, message),
    )
}

fn miscount(stage: StageKind) -> Error {
    Error::stage(
        stage,
        StageError::new(
            ErrorCode::Internal,
            "plugin returned a different number of results than items",
        ),
    )
}

fn fail_all<T>(items: &[usize], error: &Error, slots: &mut [Slot<T>]) {
    for &i in items {
        slots[i] = Some(Err(error.clone()));
    }
}

/// Records the problems of each item (indexes into `items`) and returns the items with errors.
fn reject<T>(items: &[usize], problems: Vec<Problem>, slots: &mut [Slot<T>]) -> Vec<usize> {
    let mut per_item: HashMap<usize, Vec<Problem>> = HashMap::new();
    for p in problems {
        if let Some(&i) = items.get(p.item) {
            per_item
                .entry(i)
                .or_default()
                .push(Problem { item: 0, ..p });
        }
    }
    let mut rejected = Vec::new();
    for (i, problems) in per_item {
        if problems.iter().any(|p| p.severity == Severity::Error) {
            slots[i] = Some(Err(Error::Invalid(problems)));
            rejected.push(i);
        }
    }
    rejected
}

fn group_by_shard(items: &[usize], shard_of: &[u32]) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in items {
        let s = shard_of.get(i).copied().unwrap_or(0) as usize;
        match groups.iter_mut().find(|(g, _)| *g == s) {
            Some((_, v)) => v.push(i),
            None => groups.push((s, vec![i])),
        }
    }
    groups
}

#[cfg(test)]
mod tests;
