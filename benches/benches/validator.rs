//! How the validator reads configs, through its loaded plugin: `check_entries` on 1,000 entries
//! a pipeline of the default stages registered, with the YAML fast path (`fast_yaml = true`,
//! the default) and with every config parsed in full (`fast_yaml = false`). Both report the same
//! problems (none here); the difference is the cost of reading the configs.
//!
//! `validator/check_entries` in both linkages is in `stages.rs`. Run
//! `cargo build --release --workspace` first.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_benches::Linkage;
use registry_core::{Schema, StageKind};

/// Entries in the batch, about what one `add` call of a bulk registration validates.
const BATCH: u64 = 1000;

fn check_entries(c: &mut Criterion) {
    let entries = registry_benches::registered(BATCH);
    let mut group = c.benchmark_group("validator/check_entries_yaml");
    group.throughput(Throughput::Elements(BATCH));
    for (name, config) in [
        ("fast_yaml", r#"{"fast_yaml": true}"#),
        ("full_parse", r#"{"fast_yaml": false}"#),
    ] {
        let (stages, _dir) = registry_benches::stages(
            Linkage::Dynamic,
            Schema::default(),
            &[(StageKind::Validator, config)],
            1,
        );
        let mut out = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                stages
                    .validator
                    .check_entries(&entries, &mut out)
                    .expect("checked");
                assert!(out.is_empty(), "{out:?}");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, check_entries);
criterion_main!(benches);
