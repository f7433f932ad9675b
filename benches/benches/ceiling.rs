//! The pipeline against its ceiling, side by side in one run.
//!
//! - `pipeline_add_1000`: one `add` of 1,000 new requests through the loaded plugins, one shard
//!   (one durable transaction);
//! - `bare_redb_insert_1000`: the same 1,000 entries, as they came out of the pipeline, inserted
//!   into a bare redb table (sequential keys, no index, one durable transaction), the fastest
//!   any storage on this disk can keep them;
//! - `pipeline_parallel`: one `add` of 1,000 per core at once, each worker into a registry of
//!   one shard of its own (one durable transaction per worker, as the bare side has);
//! - `bare_redb_parallel`: bare inserts of 1,000 entries per core at once, one file per core.
//!
//! Criterion reports throughput in entries/s, so `pipeline_add_1000 / bare_redb_insert_1000` and
//! `pipeline_parallel / bare_redb_parallel` are the shares of the ceiling the pipeline reaches.
//! The requests are built before each timed call (`iter_batched`), so neither side is charged
//! for making its input. Data directories are under `target/bench-data/`
//! ([`registry_benches::data_root`]), on the project's disk. Run `cargo build --release
//! --workspace` first.

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use redb::{Database, Durability, TableDefinition};
use registry_benches::{DURABLE, Linkage, request};
use registry_core::{Entry, Pipeline, Request, Schema};

/// Requests per batch, the default of `registry batch`.
const BATCH: u64 = 1000;

const TABLE: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("entries");

/// The bytes a store would keep for an entry: its text parts and fixed-size fields, about what
/// the redb plugin's codec writes.
fn record(e: &Entry, out: &mut Vec<u8>) {
    out.clear();
    for part in [
        e.header.readable().as_bytes(),
        e.title.as_bytes(),
        e.config.as_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part);
    }
    for (k, v) in e.context.iter() {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&e.hash.0);
    out.extend_from_slice(&e.fingerprint.0);
    out.extend_from_slice(&e.created_at.0.to_le_bytes());
}

/// The `BATCH` new requests from `first` on.
fn requests(first: u64) -> Vec<Request> {
    (first..first + BATCH).map(request).collect()
}

/// Registers `requests` (all new), and returns the entries.
fn add_batch(pipeline: &Pipeline, requests: Vec<Request>) -> Vec<Entry> {
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

/// Inserts `entries` into a bare table in one durable transaction, numbering from `*number`.
fn bare_insert(db: &Database, entries: &[Entry], number: &mut u64) {
    let mut buf = Vec::new();
    let mut txn = db.begin_write().expect("begin");
    txn.set_durability(Durability::Immediate)
        .expect("durability");
    {
        let mut table = txn.open_table(TABLE).expect("table");
        for e in entries {
            *number += 1;
            record(e, &mut buf);
            table
                .insert((e.header.id.prefix(), *number), buf.as_slice())
                .expect("insert");
        }
    }
    txn.commit().expect("commit");
}

fn bare_db(dir: &Path, name: &str) -> Database {
    Database::create(dir.join(name)).expect("create redb")
}

fn ceiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("ceiling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH));

    let (pipeline, _dir) =
        registry_benches::pipeline(Linkage::Dynamic, Schema::default(), &[DURABLE], 1);
    let mut next = 0u64;
    let mut entries: Vec<Entry> = Vec::new();
    group.bench_function("pipeline_add_1000", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                requests(next - BATCH)
            },
            |batch| entries = add_batch(&pipeline, batch),
            BatchSize::PerIteration,
        );
    });

    let dir = registry_benches::data_dir();
    let db = bare_db(dir.path(), "bare.redb");
    let mut number = 0u64;
    group.bench_function("bare_redb_insert_1000", |b| {
        b.iter(|| bare_insert(&db, &entries, &mut number));
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
    let mut batches: Vec<Vec<Entry>> = Vec::new();
    group.bench_function("pipeline_parallel", |b| {
        b.iter_batched(
            || {
                let inputs: Vec<Vec<Request>> = (0..cores as u64)
                    .map(|w| requests(next + w * BATCH))
                    .collect();
                next += BATCH * cores as u64;
                inputs
            },
            |inputs| {
                batches = std::thread::scope(|s| {
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
            },
            BatchSize::PerIteration,
        );
    });

    let dbs: Vec<Database> = (0..cores)
        .map(|i| bare_db(dir.path(), &format!("bare-{i}.redb")))
        .collect();
    let mut numbers = vec![0u64; cores];
    group.bench_function("bare_redb_parallel", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for ((db, batch), number) in dbs.iter().zip(&batches).zip(numbers.iter_mut()) {
                    s.spawn(move || bare_insert(db, batch, number));
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, ceiling);
criterion_main!(benches);
