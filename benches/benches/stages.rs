//! Each stage on its own, through the plugins loaded from their libraries (`dynamic`) and through
//! the same implementations linked into this binary (`static`), on the same inputs: the ratio of
//! the two is the cost of the plugin boundary for that call.
//!
//! Every call handles a batch of 1,000 items, as the pipeline calls the stages during a bulk
//! `add`, and criterion reports items per second:
//!
//! - `cache/get_hit`, `cache/get_miss`: 1,000 fingerprint keys, all cached or none cached;
//!   `cache/put`: 1,000 entries new to the cache (so the cache evicts, as a busy one does);
//! - `generator/predict`: 1,000 requests with no header field given (keyword rules, no trained
//!   model); `generator/render`: the configs of 1,000 drafts;
//! - `validator/check_entries`: 1,000 entries, all valid;
//! - `storage/insert_1000`: one durable insert of 1,000 new entries; `storage/get`: 1,000 ids;
//! - `router/route`: 1,000 keys onto 4 shards.
//!
//! The entries are what a pipeline of the default stages made of the benchmark requests. Run
//! `cargo build --release --workspace` first, so that the plugin libraries are there.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use registry_benches::{DURABLE, Linkage, renewed, request};
use registry_core::{CacheKey, Draft, Entry, Inserted, Request, Schema, Stages};

/// Items per call.
const N: u64 = 1000;

/// The shard count the router spreads keys over.
const SHARDS: u32 = 4;

/// What every group measures: the same inputs, and the stages of each linkage.
struct Fixture {
    /// Entries registered by a pipeline of the default stages.
    entries: Vec<Entry>,
    /// Requests new to every registry here, with no header field given.
    requests: Vec<Request>,
    /// The drafts the entries' configs were rendered from.
    drafts: Vec<Draft>,
    /// The default stages of each linkage, one durable shard each, with their data directories.
    linked: Vec<(Linkage, Stages, tempfile::TempDir)>,
}

impl Fixture {
    fn new() -> Fixture {
        let entries = registry_benches::registered(N);
        let drafts = entries
            .iter()
            .map(|e| Draft {
                header: e.header.clone(),
                title: e.title.clone(),
                context: e.context.clone(),
            })
            .collect();
        let linked = Linkage::ALL
            .into_iter()
            .map(|linkage| {
                let (stages, dir) =
                    registry_benches::stages(linkage, Schema::default(), &[DURABLE], 1);
                (linkage, stages, dir)
            })
            .collect();
        Fixture {
            entries,
            requests: (N..2 * N).map(request).collect(),
            drafts,
            linked,
        }
    }

    /// The stages of each linkage.
    fn each(&self) -> impl Iterator<Item = (Linkage, &Stages)> {
        self.linked
            .iter()
            .map(|(linkage, stages, _)| (*linkage, stages))
    }
}

/// A group measuring `N` items per iteration.
fn group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(N));
    group
}

fn cache(c: &mut Criterion, f: &Fixture) {
    let mut g = group(c, "cache/get_hit");
    let keys: Vec<CacheKey> = f
        .entries
        .iter()
        .map(|e| CacheKey::of_fingerprint(&e.fingerprint))
        .collect();
    for (linkage, stages) in f.each() {
        stages
            .cache
            .put(&f.entries)
            .expect("the cache takes entries");
        let mut out = Vec::with_capacity(keys.len());
        stages
            .cache
            .get(&keys, &mut out)
            .expect("the cache answers");
        assert!(
            out.iter().all(Option::is_some),
            "every entry just put is cached"
        );
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .cache
                    .get(&keys, &mut out)
                    .expect("the cache answers");
            });
        });
    }
    g.finish();

    let mut g = group(c, "cache/get_miss");
    let keys: Vec<CacheKey> = f
        .requests
        .iter()
        .map(|r| CacheKey::of_fingerprint(&r.fingerprint()))
        .collect();
    for (linkage, stages) in f.each() {
        let mut out = Vec::with_capacity(keys.len());
        stages
            .cache
            .get(&keys, &mut out)
            .expect("the cache answers");
        assert!(out.iter().all(Option::is_none), "no request is cached");
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .cache
                    .get(&keys, &mut out)
                    .expect("the cache answers");
            });
        });
    }
    g.finish();

    let mut g = group(c, "cache/put");
    for (linkage, stages) in f.each() {
        let mut round = 0;
        g.bench_function(linkage.name(), |b| {
            b.iter_batched(
                || {
                    round += 1;
                    renewed(&f.entries, round, &*stages.storage[0])
                },
                |fresh| {
                    stages.cache.put(&fresh).expect("the cache takes entries");
                    fresh
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn generator(c: &mut Criterion, f: &Fixture) {
    let mut g = group(c, "generator/predict");
    for (linkage, stages) in f.each() {
        let mut out = Vec::with_capacity(f.requests.len());
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .generator
                    .predict(&f.requests, &mut out)
                    .expect("the generator predicts");
            });
        });
    }
    g.finish();

    let mut g = group(c, "generator/render");
    for (linkage, stages) in f.each() {
        let mut out = Vec::with_capacity(f.drafts.len());
        stages
            .generator
            .render(&f.drafts, &mut out)
            .expect("the generator renders");
        assert!(
            out.iter().zip(&f.entries).all(|(c, e)| *c == e.config),
            "{} rendering gives the configs the pipeline stored",
            linkage.name()
        );
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .generator
                    .render(&f.drafts, &mut out)
                    .expect("the generator renders");
            });
        });
    }
    g.finish();
}

fn validator(c: &mut Criterion, f: &Fixture) {
    let mut g = group(c, "validator/check_entries");
    for (linkage, stages) in f.each() {
        let mut out = Vec::new();
        stages
            .validator
            .check_entries(&f.entries, &mut out)
            .expect("the validator checks");
        assert!(out.is_empty(), "registered entries are valid: {out:?}");
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .validator
                    .check_entries(&f.entries, &mut out)
                    .expect("the validator checks");
            });
        });
    }
    g.finish();
}

fn storage(c: &mut Criterion, f: &Fixture) {
    let mut g = group(c, "storage/get");
    for (linkage, stages) in f.each() {
        let storage = &*stages.storage[0];
        let stored = renewed(&f.entries, 0, storage);
        let mut inserted = Vec::with_capacity(stored.len());
        storage
            .insert(&stored, &mut inserted)
            .expect("storage inserts");
        assert!(
            inserted.iter().all(|i| matches!(i, Inserted::Created)),
            "renewed entries are new"
        );
        let ids: Vec<_> = stored.iter().map(|e| e.header.id.clone()).collect();
        let mut out = Vec::with_capacity(ids.len());
        storage.get(&ids, &mut out).expect("storage reads");
        assert!(out.iter().all(Option::is_some), "every stored id is found");
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                storage.get(&ids, &mut out).expect("storage reads");
            });
        });
    }
    g.finish();

    let mut g = group(c, "storage/insert_1000");
    for (linkage, stages) in f.each() {
        let storage = &*stages.storage[0];
        let mut round = 0;
        g.bench_function(linkage.name(), |b| {
            b.iter_batched(
                || {
                    round += 1;
                    (
                        renewed(&f.entries, round, storage),
                        Vec::with_capacity(f.entries.len()),
                    )
                },
                |(fresh, mut out)| {
                    storage.insert(&fresh, &mut out).expect("storage inserts");
                    (fresh, out)
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

fn router(c: &mut Criterion, f: &Fixture) {
    let mut g = group(c, "router/route");
    let keys: Vec<u64> = f.entries.iter().map(|e| e.fingerprint.low64()).collect();
    for (linkage, stages) in f.each() {
        let mut out = Vec::with_capacity(keys.len());
        g.bench_function(linkage.name(), |b| {
            b.iter(|| {
                out.clear();
                stages
                    .router
                    .route(&keys, SHARDS, &mut out)
                    .expect("the router routes");
            });
        });
    }
    g.finish();
}

fn stages(c: &mut Criterion) {
    let f = Fixture::new();
    cache(c, &f);
    generator(c, &f);
    validator(c, &f);
    storage(c, &f);
    router(c, &f);
}

criterion_group! {
    name = benches;
    // Eighteen benchmarks: shorter than criterion's 3 s + 5 s each keeps the file near two
    // minutes; the command line still overrides both.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = stages
}
criterion_main!(benches);
