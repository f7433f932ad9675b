//! The generator's model, through its loaded plugin: training it on Prowler's 1,631 checks
//! (`train_prowler_holdout`: a hold-out evaluation plus the final fit), and predicting the fields
//! of 1,000 of those checks with the trained model (`predict_trained`), the cost `add` pays per
//! request once a registry has a model. The 5-fold accuracies are printed for reference.
//!
//! Prediction by keyword rules and rendering, in both linkages, are in `stages.rs`. Training is
//! slow: a quick run leaves this file out. Run `cargo build --release --workspace` first.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use registry_benches::Linkage;
use registry_core::{Evaluation, Fields, Request, TrainOptions};

/// Requests per prediction batch.
const BATCH: usize = 1000;

fn generator(c: &mut Criterion) {
    let (schema, examples) = registry_benches::prowler();
    let (pipeline, _dir) = registry_benches::pipeline(Linkage::Dynamic, schema, &[], 1);
    let mut group = c.benchmark_group("generator");
    group.sample_size(10);
    group.bench_function("train_prowler_holdout", |b| {
        b.iter(|| {
            let options = TrainOptions {
                evaluation: Evaluation::Holdout(0.2),
                seed: 42,
            };
            pipeline.train(examples.clone(), &options).expect("trained")
        });
    });
    let report = pipeline
        .train(
            examples.clone(),
            &TrainOptions {
                evaluation: Evaluation::Folds(5),
                seed: 42,
            },
        )
        .expect("trained");
    for f in &report.fields {
        eprintln!(
            "{}: 5-fold accuracy {:?}, baseline {:.3}, {} classes",
            f.field, f.accuracy, f.baseline, f.classes
        );
    }

    // The same checks with no field given: the model predicts every one.
    let requests: Vec<Request> = examples
        .iter()
        .take(BATCH)
        .map(|r| {
            Request::new(r.title(), Fields::default(), None, r.context.clone())
                .expect("a dataset title stays valid")
        })
        .collect();
    group.throughput(Throughput::Elements(requests.len() as u64));
    group.bench_function("predict_trained", |b| {
        b.iter(|| pipeline.predict(requests.clone()).expect("predicted"));
    });
    group.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
