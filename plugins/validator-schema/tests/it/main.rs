//! The validator conformance suite against `SchemaValidator`, in process: with the suite's own
//! configs, and with the configs `DefaultGenerator` renders, which must pass; the nesting
//! pre-check the validator runs before `yaml_serde`, held to `yaml_serde`; and the fast YAML path
//! against the full parse.

mod fast_yaml;
mod nesting;

use registry_core::{FromConfig, Schema, Setup};
use registry_generator_default::DefaultGenerator;
use registry_validator_schema::{Config, SchemaValidator};

fn setup() -> Setup {
    Setup {
        schema: Schema::default(),
        data_dir: std::env::temp_dir(),
        config_dir: std::env::temp_dir(),
        shard: 0,
        shards: 1,
        create: None,
    }
}

fn validator() -> SchemaValidator {
    SchemaValidator::from_config(Config::default(), &setup()).expect("the default config works")
}

#[test]
fn conforms_to_the_validator_contract() {
    registry_testkit::validator::check(&validator(), &Schema::default());
}

#[test]
fn accepts_what_the_default_generator_renders() {
    let generator = DefaultGenerator::from_config(Default::default(), &setup())
        .expect("the default config works");
    registry_testkit::validator::check_with(&validator(), &Schema::default(), &generator);
}
