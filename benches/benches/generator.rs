//! The generator through its loaded plugin: training the model on Prowler's 1,631 checks
//! (5-fold cross-validation plus the final fit, and the final fit alone), and predicting the
//! fields of one request with the trained model. Run `cargo build --release --workspace` first.

use criterion::{Criterion, criterion_group, criterion_main};
use registry_core::{Context, Evaluation, Fields, Request, TrainOptions};

fn generator(c: &mut Criterion) {
    let (schema, examples) = registry_benches::prowler();
    let (pipeline, _dir) = registry_benches::pipeline_with(schema, "{}");
    let mut group = c.benchmark_group("generator");
    group.sample_size(10);
    group.bench_function("train_prowler_holdout", |b| {
        b.iter(|| {
            let options = TrainOptions { evaluation: Evaluation::Holdout(0.2), seed: 42 };
            pipeline.train(examples.clone(), &options).expect("trained")
        });
    });
    let report = pipeline
        .train(examples.clone(), &TrainOptions { evaluation: Evaluation::Folds(5), seed: 42 })
        .expect("trained");
    for f in &report.fields {
        eprintln!(
            "{}: 5-fold accuracy {:?}, baseline {:.3}, {} classes",
            f.field, f.accuracy, f.baseline, f.classes
        );
    }
    group.finish();

    let request = Request::new(
        "Ensure S3 buckets block public access and enforce encryption at rest",
        Fields::default(),
        None,
        Context::default(),
    )
    .expect("valid request");
    c.bench_function("generator/predict", |b| {
        b.iter(|| pipeline.predict(vec![request.clone()]).expect("predicted"));
    });
}

criterion_group!(benches, generator);
criterion_main!(benches);
