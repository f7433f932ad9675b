//! The pipeline against its ceiling: registering a batch of 1,000 new requests through the loaded
//! plugins (one `add` call, which is one durable transaction per shard), next to inserting the
//! same 1,000 entries, as they came out of the pipeline, into a bare redb table (sequential keys,
//! no index, one durable transaction), the fastest any storage on this disk can keep them.
//! Criterion reports both per batch, so their ratio is the share of the ceiling the pipeline
//! reaches. Run `cargo build --release --workspace` first.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use redb::{Database, Durability, TableDefinition};
use registry_core::{Context, Entry, Fields, Request};

/// Requests per batch, the default of `registry batch`.
const BATCH: u64 = 1000;

const TABLE: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("entries");

fn request(i: u64) -> Request {
    Request::new(
        &format!("Rotate the access keys of service account {i} every ninety days"),
        Fields::default(),
        None,
        Context::new([
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), format!("team-{}", i % 17)),
        ])
        .expect("valid context"),
    )
    .expect("valid request")
}

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

fn ceiling(c: &mut Criterion) {
    let mut group = c.benchmark_group("ceiling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH));

    let (pipeline, _dir) = registry_benches::pipeline(r#"{"durable": true}"#);
    let mut next = 0u64;
    let mut entries: Vec<Entry> = Vec::new();
    group.bench_function("pipeline_add_1000", |b| {
        b.iter(|| {
            let requests: Vec<Request> = (next..next + BATCH).map(request).collect();
            next += BATCH;
            let added = pipeline.add(requests);
            entries.clear();
            for a in added {
                let a = a.expect("added");
                assert!(a.created);
                entries.push(a.entry);
            }
        });
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let db = Database::create(dir.path().join("bare.redb")).expect("create redb");
    let mut number = 0u64;
    let mut buf = Vec::new();
    group.bench_function("bare_redb_insert_1000", |b| {
        b.iter(|| {
            let mut txn = db.begin_write().expect("begin");
            txn.set_durability(Durability::Immediate)
                .expect("durability");
            {
                let mut table = txn.open_table(TABLE).expect("table");
                for e in &entries {
                    number += 1;
                    record(e, &mut buf);
                    table
                        .insert((e.header.id.prefix(), number), buf.as_slice())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        });
    });
    group.finish();
}

criterion_group!(benches, ceiling);
criterion_main!(benches);
