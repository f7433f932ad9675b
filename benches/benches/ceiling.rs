//! The pipeline against its ceiling, side by side in one run.
//!
//! - `pipeline_add_1000`: one `add` of 1,000 new requests through the loaded plugins, one shard
//!   (one durable transaction); `pipeline_add_1000_builtin` the same with the plugins built in,
//!   as `registry` runs them by default;
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
//!   `pipeline_sharded_builtin` the same with the plugins built in;
//! - `bare_redb_parallel`: the bare rows of 1,000 entries per core at once, one shard per core.
//!
//! Criterion reports throughput in entries/s, so `pipeline_add_1000 / bare_redb_insert_1000`,
//! `pipeline_parallel / bare_redb_parallel` and `pipeline_sharded / bare_redb_parallel` are the
//! shares of the ceiling the pipeline reaches. Inputs are built before each timed call
//! (`iter_batched`), so neither side is charged for making them, and what a timed call returns
//! is dropped after its timing (criterion drops a routine's output untimed). The parallel runs'
//! workers are threads that live through the benchmark, as `registry batch`'s do. Data
//! directories are under `target/bench-data/` ([`registry_benches::data_root`]), on the
//! project's disk. Run `cargo build --release --workspace` first.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, mpsc};
use std::thread::Scope;

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

/// Worker threads that live as long as the pool, one per input of a round, as `registry
/// batch`'s thread pool lives as long as the command: each keeps its thread's state (zstd
/// contexts, a plugin's kept copies) from one round to the next. Threads spawned per round
/// would charge every round for warming them, which no user pays.
struct Pool<I, O> {
    jobs: Vec<mpsc::Sender<I>>,
    done: mpsc::Receiver<(usize, std::thread::Result<O>)>,
}

impl<I: Send, O: Send> Pool<I, O> {
    /// `workers` threads of `scope`, worker `w` calling `work(w, input)` for each input it is
    /// sent. They end when the pool is dropped.
    fn new<'s, 'e: 's, F>(scope: &'s Scope<'s, 'e>, workers: usize, work: &'e F) -> Self
    where
        F: Fn(usize, I) -> O + Sync,
        I: 'e,
        O: 'e,
    {
        let (answer, done) = mpsc::channel();
        let jobs = (0..workers)
            .map(|w| {
                let (job, jobs) = mpsc::channel::<I>();
                let answer = answer.clone();
                scope.spawn(move || {
                    for input in jobs {
                        let output = catch_unwind(AssertUnwindSafe(|| work(w, input)));
                        if answer.send((w, output)).is_err() {
                            break;
                        }
                    }
                });
                job
            })
            .collect();
        Pool { jobs, done }
    }

    /// Hands input `w` to worker `w`, all at once, and returns their outputs in input order.
    fn run(&self, inputs: Vec<I>) -> Vec<O> {
        let n = inputs.len();
        assert!(n <= self.jobs.len(), "more inputs than workers");
        for (job, input) in self.jobs.iter().zip(inputs) {
            job.send(input).expect("a worker is gone");
        }
        let mut outputs: Vec<Option<O>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let (w, output) = self.done.recv().expect("a worker is gone");
            match output {
                Ok(output) => outputs[w] = Some(output),
                Err(panic) => resume_unwind(panic),
            }
        }
        outputs
            .into_iter()
            .map(|o| o.expect("each worker answers once"))
            .collect()
    }
}

fn ceiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("ceiling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH));

    // Through the plugin libraries, then built in, as `registry` runs by default (its
    // `registry.toml` names built-in plugins): each into a one-shard registry of its own.
    let mut entries: Vec<Arc<Entry>> = Vec::new();
    for (name, linkage) in [
        ("pipeline_add_1000", Linkage::Dynamic),
        ("pipeline_add_1000_builtin", Linkage::Static),
    ] {
        let (pipeline, _dir) =
            registry_benches::pipeline(linkage, Schema::default(), &[DURABLE], 1);
        let mut next = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    next += BATCH;
                    requests(next - BATCH)
                },
                // The batch before is handed back to be dropped outside the timing, as the
                // bare side drops nothing while timed.
                |batch| std::mem::replace(&mut entries, add_batch(&pipeline, batch)),
                BatchSize::PerIteration,
            );
        });
    }

    let entries = owned(&entries);
    let (bare, _bare_dir) = bare_shard(&entries);
    let mut round = 0u64;
    group.bench_function("bare_redb_insert_1000", |b| {
        b.iter_batched(
            || {
                round += 1;
                encoded(&bare, &entries, round)
            },
            // The input is handed back, to be dropped outside the timing.
            |batch| {
                bare.insert_encoded(&batch).expect("bare insert");
                batch
            },
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
    let work = |w: usize, batch: Vec<Request>| add_batch(&registries[w].0, batch);
    std::thread::scope(|s| {
        let pool = Pool::new(s, cores, &work);
        group.bench_function("pipeline_parallel", |b| {
            b.iter_batched(
                || round_of(&mut next, cores),
                |inputs| std::mem::replace(&mut batches, pool.run(inputs)),
                BatchSize::PerIteration,
            );
        });
    });

    // The same batches into one registry of one shard per core, as `registry batch` runs,
    // through the plugin libraries and built in.
    for (name, linkage) in [
        ("pipeline_sharded", Linkage::Dynamic),
        ("pipeline_sharded_builtin", Linkage::Static),
    ] {
        let (sharded, _sharded_dir) = registry_benches::pipeline(
            linkage,
            Schema::default(),
            &[DURABLE],
            u32::try_from(cores).unwrap_or(u32::MAX),
        );
        let mut next = 0u64;
        let work = |_: usize, batch: Vec<Request>| add_batch(&sharded, batch);
        std::thread::scope(|s| {
            let pool = Pool::new(s, cores, &work);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || round_of(&mut next, cores),
                    |inputs| pool.run(inputs),
                    BatchSize::PerIteration,
                );
            });
        });
    }

    let batches: Vec<Vec<Entry>> = batches.iter().map(|batch| owned(batch)).collect();
    let shards: Vec<(RedbStorage, tempfile::TempDir)> =
        batches.iter().map(|batch| bare_shard(batch)).collect();
    let mut round = 0u64;
    // Each worker hands its input back, to be dropped outside the timing.
    let work = |w: usize, batch: Encoded| {
        shards[w].0.insert_encoded(&batch).expect("bare insert");
        batch
    };
    std::thread::scope(|s| {
        let pool = Pool::new(s, cores, &work);
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
                |inputs| pool.run(inputs),
                BatchSize::PerIteration,
            );
        });
    });
    group.finish();
}

criterion_group!(benches, ceiling);
criterion_main!(benches);
