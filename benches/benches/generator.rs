//! The generator through its loaded plugin: training the model on Prowler's 1,631 checks
//! (5-fold cross-validation plus the final fit, and the final fit alone), and predicting the
//! fields of one request with the trained model. Run `cargo build --release --workspace` first.

use criterion::{Criterion, criterion_group, criterion_main};
use registry_core::{
    Context, Draft, EntryId, Evaluation, Fields, Header, Request, Schema, TrainOptions,
};

fn generator(c: &mut Criterion) {
    let (schema, examples) = registry_benches::prowler();
    let (pipeline, _dir) = registry_benches::pipeline_with(schema, "{}");
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

/// Rendering one config through the loaded plugin with the built-in templates.
fn render(c: &mut Criterion) {
    let (stages, _dir) = registry_benches::stages_with(Schema::default(), "{}");
    let header = Header {
        fields: Fields {
            scope: "SEC".into(),
            kind: "RULES".into(),
            variant: "LIVE".into(),
            status: "REQUIRED".into(),
        },
        id: EntryId::new("SEC-RUL", 42),
        version: "v2.9".into(),
    };
    let context = Context::new([
        ("env".to_owned(), "prod".to_owned()),
        ("owner".to_owned(), "secops".to_owned()),
    ])
    .expect("valid context");
    let draft = Draft {
        header,
        title: "Block SSH from the internet".into(),
        context,
    };
    let mut out = Vec::with_capacity(1);
    c.bench_function("generator/render", |b| {
        b.iter(|| {
            out.clear();
            stages
                .generator
                .render(std::slice::from_ref(&draft), &mut out)
                .expect("rendered");
        });
    });
}

criterion_group!(benches, generator, render);
criterion_main!(benches);
