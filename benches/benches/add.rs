//! Single `add` through the dynamically loaded default plugins: a new request (cache miss, a
//! durable write, and the same with durability off to show the pipeline without the fsync), and a
//! repeated request (cache hit). Run `cargo build --release --workspace` first.

use criterion::{Criterion, criterion_group, criterion_main};
use registry_core::{Context, Fields, Request};

fn request(i: u64) -> Request {
    Request::new(
        &format!("Block inbound SSH on security group {i}"),
        Fields::default(),
        None,
        Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid context"),
    )
    .expect("valid request")
}

fn single_add(c: &mut Criterion) {
    let mut group = c.benchmark_group("add");
    for (name, storage) in [
        ("miss_durable", r#"{"durable": true}"#),
        ("miss_no_fsync", r#"{"durable": false}"#),
    ] {
        let (pipeline, _dir) = registry_benches::pipeline(storage);
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let added = pipeline.add_one(request(i)).expect("added");
                assert!(added.created);
            });
        });
    }
    let (pipeline, _dir) = registry_benches::pipeline("{}");
    pipeline.add_one(request(0)).expect("added");
    group.bench_function("hit", |b| {
        b.iter(|| {
            let added = pipeline.add_one(request(0)).expect("added");
            assert!(!added.created);
        });
    });
    group.finish();
}

criterion_group!(benches, single_add);
criterion_main!(benches);
