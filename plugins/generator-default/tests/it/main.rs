//! The generator conformance suite against `DefaultGenerator`, in process, with the default schema
//! and with a custom one that lacks most of the values the built-in keyword rules propose.

use registry_core::{Fields, FromConfig, Schema, Setup};
use registry_generator_default::{Config, DefaultGenerator};

fn generator(schema: &Schema) -> DefaultGenerator {
    let setup = Setup {
        schema: schema.clone(),
        data_dir: std::env::temp_dir(),
        config_dir: std::env::temp_dir(),
        shard: 0,
        shards: 1,
    };
    DefaultGenerator::from_config(Config::default(), &setup).expect("the default config works")
}

#[test]
fn conforms_with_the_default_schema() {
    let schema = Schema::default();
    registry_testkit::generator::check(&generator(&schema), &schema);
}

#[test]
fn conforms_with_a_custom_schema() {
    let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let schema = Schema::new(
        Fields {
            scope: list(&["Infra", "OPS"]),
            kind: list(&["Runbook", "CONFIG"]),
            variant: list(&["V1"]),
            status: list(&["Draft", "REQUIRED"]),
        },
        "v1".into(),
        Fields::default(),
    )
    .expect("valid schema");
    registry_testkit::generator::check(&generator(&schema), &schema);
}
