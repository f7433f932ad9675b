//! The validator through its loaded plugin: `check_entries` on a batch of 1,000 entries whose
//! configs the default generator rendered, with the YAML fast path (`fast_yaml = true`, the
//! default) and with every config parsed in full (`fast_yaml = false`). Both report the same
//! problems (none here); the difference is the cost of reading the configs. Run
//! `cargo build --release --workspace` first.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_core::{
    Context, Draft, Entry, EntryId, Field, Fields, Fingerprint, Header, Schema, StageKind, Stages,
    Timestamp,
};

/// Entries in the batch, about what one `add` call of a bulk registration validates.
const BATCH: usize = 1000;

/// The default stages, with `validator_config` (JSON) for the validator.
fn stages(validator_config: &str) -> (Stages, tempfile::TempDir) {
    registry_benches::stages_configured(
        Schema::default(),
        &[(StageKind::Validator, validator_config)],
    )
}

/// A batch of entries across every scope and type, a third of them in production with an
/// owner and a region, their configs rendered by the loaded default generator.
fn entries(stages: &Stages) -> Vec<Entry> {
    let schema = Schema::default();
    let scopes = schema.allowed(Field::Scope);
    let kinds = schema.allowed(Field::Type);
    let drafts: Vec<Draft> = (0..BATCH)
        .map(|i| {
            let (scope, kind) = (&scopes[i % scopes.len()], &kinds[i / 7 % kinds.len()]);
            let context = if i % 3 == 0 {
                Context::new([
                    ("env".to_owned(), "prod".to_owned()),
                    ("owner".to_owned(), format!("team-{}", i % 13)),
                    ("region".to_owned(), "eu-west-1".to_owned()),
                ])
                .expect("valid context")
            } else {
                Context::default()
            };
            Draft {
                header: Header {
                    fields: Fields {
                        scope: scope.clone(),
                        kind: kind.clone(),
                        variant: "LIVE".into(),
                        status: "REQUIRED".into(),
                    },
                    id: EntryId::new(EntryId::prefix_for(scope, kind), i as u64 + 1),
                    version: "v2.9".into(),
                },
                title: format!("Block inbound SSH on security group {i}"),
                context,
            }
        })
        .collect();
    let mut configs = Vec::with_capacity(BATCH);
    stages
        .generator
        .render(&drafts, &mut configs)
        .expect("rendered");
    drafts
        .into_iter()
        .zip(configs)
        .map(|(draft, config)| Entry {
            hash: Entry::compute_hash(&draft.header, &draft.title, &draft.context, &config),
            header: draft.header,
            title: draft.title,
            context: draft.context,
            config,
            fingerprint: Fingerprint([0; 16]),
            revision: 1,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        })
        .collect()
}

fn check_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("validator/check_entries");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut batch = None;
    for (name, config) in [
        ("fast_yaml", r#"{"fast_yaml": true}"#),
        ("full_parse", r#"{"fast_yaml": false}"#),
    ] {
        let (stages, _dir) = stages(config);
        let entries = batch.get_or_insert_with(|| entries(&stages));
        let mut out = Vec::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                stages
                    .validator
                    .check_entries(entries, &mut out)
                    .expect("checked");
                assert!(out.is_empty(), "{out:?}");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, check_entries);
criterion_main!(benches);
