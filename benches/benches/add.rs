//! `add` end to end, through the plugins loaded from their libraries (`dynamic`) and through the
//! same implementations linked into this binary (`static`), one shard:
//!
//! - `add/miss`: one `add` of one new request (a cache miss, a storage lookup, prediction,
//!   rendering, validation and one durable insert);
//! - `add/hit`: one `add` of a request already registered (answered from the cache);
//! - `add/batch_1000`: one `add` of 1,000 new requests (one durable insert);
//! - `add/miss_no_fsync`: as `add/miss` with durability off, the pipeline's own cost without
//!   the `fsync` that dominates a single durable insert, where the plugin boundary shows.
//!
//! Requests are built before they are timed. Run `cargo build --release --workspace` first.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use registry_benches::{DURABLE, Linkage, NO_FSYNC, request};
use registry_core::{Pipeline, Schema, StageKind};

/// Requests in a batch, the default of `registry batch`.
const BATCH: u64 = 1000;

/// A one-shard pipeline of `linkage` with the given storage config.
fn pipeline(linkage: Linkage, storage: (StageKind, &str)) -> (Pipeline, tempfile::TempDir) {
    registry_benches::pipeline(linkage, Schema::default(), &[storage], 1)
}

/// Single adds of new requests, each a fresh one.
fn miss(c: &mut Criterion, name: &str, storage: (StageKind, &str)) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for linkage in Linkage::ALL {
        let (pipeline, _dir) = pipeline(linkage, storage);
        let mut next = 0;
        group.bench_function(linkage.name(), |b| {
            b.iter_batched(
                || {
                    next += 1;
                    request(next)
                },
                |r| {
                    let added = pipeline.add_one(r).expect("a new request is added");
                    assert!(added.created, "the request is new");
                    added
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn single_miss(c: &mut Criterion) {
    miss(c, "add/miss", DURABLE);
}

fn single_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("add/hit");
    group.throughput(Throughput::Elements(1));
    for linkage in Linkage::ALL {
        let (pipeline, _dir) = pipeline(linkage, DURABLE);
        let registered = request(0);
        pipeline
            .add_one(registered.clone())
            .expect("a new request is added");
        group.bench_function(linkage.name(), |b| {
            b.iter_batched(
                || registered.clone(),
                |r| {
                    let added = pipeline.add_one(r).expect("a known request is found");
                    assert!(!added.created, "the request is registered");
                    added
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("add/batch_1000");
    group.throughput(Throughput::Elements(BATCH));
    for linkage in Linkage::ALL {
        let (pipeline, _dir) = pipeline(linkage, DURABLE);
        let mut next = 0;
        group.bench_function(linkage.name(), |b| {
            b.iter_batched(
                || {
                    let requests = (next..next + BATCH).map(request).collect();
                    next += BATCH;
                    requests
                },
                |requests| {
                    let added = pipeline.add(requests);
                    assert!(
                        added.iter().all(|a| a.as_ref().is_ok_and(|a| a.created)),
                        "every request of the batch is new and added"
                    );
                    added
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn single_miss_no_fsync(c: &mut Criterion) {
    miss(c, "add/miss_no_fsync", NO_FSYNC);
}

criterion_group! {
    name = benches;
    // Eight benchmarks, some of them a few milliseconds each: shorter than criterion's 3 s + 5 s
    // keeps the file near half a minute; the command line still overrides both.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single_miss, single_hit, batch, single_miss_no_fsync
}
criterion_main!(benches);
