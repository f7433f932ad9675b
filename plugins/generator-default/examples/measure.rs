//! Measures the model on the Prowler dataset: accuracy, training time and prediction latency.
//!
//! Run it in release, from anywhere in the workspace:
//!
//! ```text
//! cargo run --release -p registry-generator-default --example measure [CONFIG_JSON]
//! ```
//!
//! `CONFIG_JSON` is a `[generator.config]` table as JSON (default `{}`), e.g.
//! `'{"learner": "naive-bayes"}'`. The dataset (1,631 security checks) is read from
//! `data/prowler/checks.jsonl` in the repository. Each check becomes a request
//! whose title is the check's title and whose fields are its provider (scope, 20 values),
//! resource group (type, 17 values, an empty group being `UNGROUPED`) and severity (variant and
//! status, 5 values), so that all four fields are modelled when prediction is timed.

use std::error::Error;
use std::time::Instant;

use registry_core::{
    Context, Evaluation, Fields, FromConfig, Generator, Request, Schema, Setup, TrainOptions,
    TrainReport,
};
use registry_generator_default::{Config, DefaultGenerator};

const DATASET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/prowler/checks.jsonl"
);

fn main() -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(DATASET)?;
    let mut values: Fields<Vec<String>> = Fields::default();
    let mut labelled = Vec::new();
    for line in text.lines() {
        let check: serde_json::Value = serde_json::from_str(line)?;
        let get = |key: &str| check[key].as_str().unwrap_or("").to_uppercase();
        let group = match get("resource_group") {
            g if g.is_empty() => "UNGROUPED".to_owned(),
            g => g,
        };
        let fields = Fields {
            scope: get("provider"),
            kind: group,
            variant: get("severity"),
            status: get("severity"),
        };
        for (f, v) in fields.iter() {
            if !values[f].contains(v) {
                values[f].push(v.clone());
            }
        }
        let title = check["title"].as_str().ok_or("a check without a title")?;
        labelled.push((title.to_owned(), fields));
    }
    let schema =
        Schema::new(values, "v1".into(), Fields::default()).map_err(|e| format!("{e:?}"))?;
    let examples: Vec<Request> = labelled
        .iter()
        .map(|(title, fields)| {
            Request::new(
                title,
                fields.clone().map(|_, v| Some(v)),
                None,
                Context::default(),
            )
        })
        .collect::<Result<_, _>>()?;

    let config_json = std::env::args().nth(1).unwrap_or_else(|| "{}".to_owned());
    let config: Config = serde_json::from_str(&config_json)?;
    let dir = std::env::temp_dir().join(format!("registry-measure-{}", std::process::id()));
    let setup = Setup {
        schema,
        data_dir: dir.clone(),
        config_dir: dir.clone(),
        shard: 0,
        shards: 1,
        create: None,
    };
    let generator = DefaultGenerator::from_config(config, &setup)?;
    println!("config {config_json}, {} examples", examples.len());

    let train = |evaluation| -> Result<(TrainReport, f64), Box<dyn Error>> {
        let started = Instant::now();
        let report = generator.train(
            &examples,
            &TrainOptions {
                evaluation,
                seed: 42,
            },
        )?;
        Ok((report, started.elapsed().as_secs_f64() * 1e3))
    };
    let (cv, _) = train(Evaluation::Folds(5))?;
    println!("5-fold stratified cross-validation ({}):", cv.model);
    for f in &cv.fields {
        println!(
            "  {:<8} {:>2} classes  accuracy {:.4}  baseline {:.4}  {:>7.1} ms (6 fits)",
            f.field,
            f.classes,
            f.accuracy.unwrap_or(f64::NAN),
            f.baseline,
            f.train_ms
        );
    }
    println!(
        "  train call, 4 fields, 6 fits each: {:.1} ms",
        cv.elapsed_ms
    );
    // A holdout of one example makes the evaluation fit as large as the final one: half the
    // field's time is one fit on all the rows.
    let (holdout, total) = train(Evaluation::Holdout(1e-9))?;
    for f in &holdout.fields {
        println!(
            "  {:<8} one fit on all rows: {:.1} ms",
            f.field,
            f.train_ms / 2.0
        );
    }
    println!("  train call, 4 fields, 2 fits each: {total:.1} ms");

    let probes: Vec<Request> = labelled
        .iter()
        .map(|(title, _)| Request::new(title, Fields::default(), None, Context::default()))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(1);
    let mut micros = Vec::with_capacity(probes.len() * 5);
    for _ in 0..5 {
        for probe in &probes {
            out.clear();
            let started = Instant::now();
            generator.predict(std::slice::from_ref(probe), &mut out)?;
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "predict, one request a call, 4 fields: p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs",
        at(0.5),
        at(0.9),
        at(0.99)
    );
    let started = Instant::now();
    out.clear();
    generator.predict(&probes, &mut out)?;
    println!(
        "predict, {} requests in one call: {:.2} µs a request",
        probes.len(),
        started.elapsed().as_secs_f64() * 1e6 / probes.len() as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
