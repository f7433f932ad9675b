//! The pipeline against its ceiling, side by side in one run.
//!
//! - `pipeline_add_1000`: one `add` of 1,000 new requests through the loaded plugins, one shard
//!   (one durable transaction);
//! - `bare_redb_insert_1000`: the rows the redb storage writes for 1,000 such entries (latest
//!   revisions, pending fingerprints and their periodic merge, field index, sequences) written
//!   bare into a shard of its own, in one transaction at the same durability
//!   ([`RedbStorage::insert_encoded`]): the entries are encoded before the timed call, and the
//!   look-ups that make an insert idempotent are left out. The fastest that redb keeps what the
//!   registry keeps, on this disk;
//! - `pipeline_parallel`: one `add` of 1,000 per core at once, each worker into a registry of
//!   one shard of its own (one durable transaction per worker, as the bare side has);
//! - `pipeline_sharded`: one `add` of 1,000 per core at once into one registry of the default
//!   shard count (one per core), as `registry batch` runs: each batch is split over the shards;
//! - `bare_redb_parallel`: the bare rows of 1,000 entries per core at once, one shard per core.
//!
//! Criterion reports throughput in entries/s, so `pipeline_add_1000 / bare_redb_insert_1000`,
//! `pipeline_parallel / bare_redb_parallel` and `pipeline_sharded / bare_redb_parallel` are the
//! shares of the ceiling the pipeline reaches. Inputs are built before each timed call
//! (`iter_batched`), so neither side is charged for making them, and what a timed call returns
//! is dropped after its timing (criterion drops a routine's output untimed). Data directories
//! are under `target/bench-data/` ([`registry_benches::data_root`]), on the project's disk. Run
//! `cargo build --release --workspace` first.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use registry_benches::{DURABLE, Linkage, renewed, request};
use registry_core::{Entry, Pipeline, Request, Schema, Storage};
use registry_storage_redb::{Config, Encoded, RedbStorage};

/// Requests per batch, the default of `registry batch`.
const BATCH: u64 = 1000;

/// The `BATCH` new requests from `first` on.
fn requests(first: u64) -> Vec<Request> {
    (first..first + BATCH).map(request).collect()
}

/// One batch of new requests per worker, from `*next` on, which moves past them.
fn round_of(next: &mut u64, workers: usize) -> Vec<Vec<Request>> {
    let inputs = (0..workers as u64)
        .map(|w| requests(*next + w * BATCH))
        .collect();
    *next += BATCH * workers as u64;
    inputs
}

/// Registers `requests` (all new), and returns the entries, as the pipeline hands them out.
fn add_batch(pipeline: &Pipeline, requests: Vec<Request>) -> Vec<Arc<Entry>> {
    pipeline
        .add(requests)
        .into_iter()
        .map(|a| {
            let a = a.expect("added");
            assert!(a.created, "every request is new");
            a.entry
        })
        .collect()
}

/// Copies of the entries the pipeline handed out, for the bare side's inputs.
fn owned(entries: &[Arc<Entry>]) -> Vec<Entry> {
    entries.iter().map(|e| Entry::clone(e)).collect()
}

/// A durable redb shard of its own, in a one-shard registry created for it, that has stored
/// `entries` (renewed) through its real insert, so that it has trained its dictionary as the
/// pipeline's shard has.
fn bare_shard(entries: &[Entry]) -> (RedbStorage, tempfile::TempDir) {
    let (stages, dir) = registry_benches::stages(Linkage::Static, Schema::default(), &[DURABLE], 1);
    drop(stages);
    let setup = registry_benches::setup(Schema::default(), dir.path(), 1);
    let config = Config {
        durable: true,
        ..Config::default()
    };
    let storage = RedbStorage::open(&config, &setup).expect("open the bare shard");
    let mut out = Vec::new();
    storage
        .insert(&renewed(entries, 0, &storage), &mut out)
        .expect("the first insert");
    (storage, dir)
}

/// Copies of `entries` new to `storage` (round `round`), encoded as it stores them.
fn encoded(storage: &RedbStorage, entries: &[Entry], round: u64) -> Encoded {
    storage
        .encode_new(renewed(entries, round, storage))
        .expect("encode")
}

fn ceiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("ceiling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH));

    let (pipeline, _dir) =
        registry_benches::pipeline(Linkage::Dynamic, Schema::default(), &[DURABLE], 1);
    let mut next = 0u64;
    let mut entries: Vec<Arc<Entry>> = Vec::new();
    group.bench_function("pipeline_add_1000", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                requests(next - BATCH)
            },
            // The batch before is handed back to be dropped outside the timing, as the bare
            // side drops nothing while timed.
            |batch| std::mem::replace(&mut entries, add_batch(&pipeline, batch)),
            BatchSize::PerIteration,
        );
    });

    let entries = owned(&entries);
    let (bare, _bare_dir) = bare_shard(&entries);
    let mut round = 0u64;
    group.bench_function("bare_redb_insert_1000", |b| {
        b.iter_batched(
            || {
                round += 1;
                encoded(&bare, &entries, round)
            },
            |batch| bare.insert_encoded(&batch).expect("bare insert"),
            BatchSize::PerIteration,
        );
    });

    // A batch per core at once, each worker into a one-shard registry of its own, as each bare
    // worker writes a file of its own: a pipeline of several shards would split every batch
    // over all of them, one transaction per shard per batch, which the bare side does not pay.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    group.throughput(Throughput::Elements(BATCH * cores as u64));
    let registries: Vec<(Pipeline, tempfile::TempDir)> = (0..cores)
        .map(|_| registry_benches::pipeline(Linkage::Dynamic, Schema::default(), &[DURABLE], 1))
        .collect();
    let mut next = 0u64;
    let mut batches: Vec<Vec<Arc<Entry>>> = Vec::new();
    group.bench_function("pipeline_parallel", |b| {
        b.iter_batched(
            || round_of(&mut next, cores),
            |inputs| {
                let added = std::thread::scope(|s| {
                    let workers: Vec<_> = registries
                        .iter()
                        .zip(inputs)
                        .map(|((pipeline, _), batch)| s.spawn(move || add_batch(pipeline, batch)))
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().expect("a worker panicked"))
                        .collect()
                });
                std::mem::replace(&mut batches, added)
            },
            BatchSize::PerIteration,
        );
    });

    // The same batches into one registry of one shard per core, as `registry batch` runs.
    let (sharded, _sharded_dir) = registry_benches::pipeline(
        Linkage::Dynamic,
        Schema::default(),
        &[DURABLE],
        u32::try_from(cores).unwrap_or(u32::MAX),
    );
    let mut next = 0u64;
    group.bench_function("pipeline_sharded", |b| {
        b.iter_batched(
            || round_of(&mut next, cores),
            |inputs| {
                std::thread::scope(|s| {
                    let workers: Vec<_> = inputs
                        .into_iter()
                        .map(|batch| {
                            let sharded = &sharded;
                            s.spawn(move || add_batch(sharded, batch))
                        })
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| w.join().expect("a worker panicked"))
                        .collect::<Vec<_>>()
                })
            },
            BatchSize::PerIteration,
        );
    });

    let batches: Vec<Vec<Entry>> = batches.iter().map(|batch| owned(batch)).collect();
    let shards: Vec<(RedbStorage, tempfile::TempDir)> =
        batches.iter().map(|batch| bare_shard(batch)).collect();
    let mut round = 0u64;
    group.bench_function("bare_redb_parallel", |b| {
        b.iter_batched(
            || {
                round += 1;
                shards
                    .iter()
                    .zip(&batches)
                    .map(|((storage, _), batch)| encoded(storage, batch, round))
                    .collect::<Vec<Encoded>>()
            },
            |inputs| {
                std::thread::scope(|s| {
                    for ((storage, _), batch) in shards.iter().zip(&inputs) {
                        s.spawn(move || storage.insert_encoded(batch).expect("bare insert"));
                    }
                });
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, ceiling);
criterion_main!(benches);
