//! The generator's integration tests: the conformance suite against `DefaultGenerator` (with the
//! keyword rules alone and with a trained model, with the default schema and a custom one), the
//! model's life cycle through the public API, and its accuracy on real titles.

mod model;
mod prowler;

use std::path::Path;

use registry_core::{Fields, FromConfig, Generator, Schema, Setup};
use registry_generator_default::{Config, DefaultGenerator};

/// The setup of a generator keeping its files in `dir`.
pub fn setup(schema: &Schema, dir: &Path) -> Setup {
    Setup {
        schema: schema.clone(),
        data_dir: dir.to_owned(),
        config_dir: dir.to_owned(),
        shard: 0,
        shards: 1,
        create: None,
    }
}

/// A generator with `config` over `schema`, keeping its model in `dir`.
pub fn generator_in(schema: &Schema, dir: &Path, config: Config) -> DefaultGenerator {
    DefaultGenerator::from_config(config, &setup(schema, dir)).expect("the config works")
}

fn custom_schema() -> Schema {
    let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    Schema::new(
        Fields {
            scope: list(&["Infra", "OPS"]),
            kind: list(&["Runbook", "CONFIG"]),
            variant: list(&["V1"]),
            status: list(&["Draft", "REQUIRED"]),
        },
        "v1".into(),
        Fields::default(),
    )
    .expect("valid schema")
}

#[test]
fn conforms_with_the_default_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = Schema::default();
    let g = generator_in(&schema, dir.path(), Config::default());
    registry_testkit::generator::check(&g, &schema);
}

#[test]
fn conforms_with_a_custom_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = custom_schema();
    let g = generator_in(&schema, dir.path(), Config::default());
    registry_testkit::generator::check(&g, &schema);
}

#[test]
fn conforms_with_a_trained_model() {
    for schema in [Schema::default(), custom_schema()] {
        for learner in ["logistic", "naive-bayes"] {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = serde_json::from_value(serde_json::json!({ "learner": learner }))
                .expect("valid config");
            let g = generator_in(&schema, dir.path(), config);
            let examples = model::examples(&schema, 40);
            g.train(&examples, &Default::default()).expect("trains");
            registry_testkit::generator::check(&g, &schema);
        }
    }
}
