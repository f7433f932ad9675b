//! Every conformance suite accepts the reference implementation of its stage, built both
//! directly and through `FromConfig`, as the host builds plugins.

use registry_core::{FromConfig, Schema, Setup, Storage};
use registry_testkit::memory::{
    KeywordlessGenerator, MemoryCache, MemoryStorage, ModuloRouter, NoConfig, SchemaOnlyValidator,
};
use registry_testkit::{cache, generator, router, storage, validator};

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

#[test]
fn memory_storage() {
    storage::check(&|setup| {
        MemoryStorage::from_config(NoConfig {}, setup).map(|s| Box::new(s) as Box<dyn Storage>)
    });
}

#[test]
fn memory_cache() {
    cache::check(&|| Box::new(MemoryCache::new()));
    cache::check(&|| Box::new(MemoryCache::from_config(NoConfig {}, &setup()).expect("no config")));
}

#[test]
fn modulo_router() {
    router::check(&ModuloRouter);
}

#[test]
fn keywordless_generator() {
    generator::check(&KeywordlessGenerator, &Schema::default());
}

#[test]
fn schema_only_validator() {
    let schema = Schema::default();
    validator::check(&SchemaOnlyValidator::new(schema.clone()), &schema);
    let built = SchemaOnlyValidator::from_config(NoConfig {}, &setup()).expect("no config");
    validator::check_with(&built, &schema, &KeywordlessGenerator);
}

#[test]
fn suites_hold_for_another_schema() {
    use registry_core::Fields;
    let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let schema = Schema::new(
        Fields {
            scope: list(&["NET", "IAM"]),
            kind: list(&["POLICY"]),
            variant: list(&["A", "B", "C"]),
            status: list(&["ON", "OFF"]),
        },
        "v1".into(),
        Fields::default(),
    )
    .expect("valid schema");
    generator::check(&KeywordlessGenerator, &schema);
    validator::check(&SchemaOnlyValidator::new(schema.clone()), &schema);
}

#[test]
fn memory_storage_rejects_a_shard_outside_the_registry() {
    let setup = Setup {
        shard: 3,
        shards: 3,
        ..setup()
    };
    let err = MemoryStorage::from_config(NoConfig {}, &setup).expect_err("shard 3 of 3");
    assert_eq!(err.code, registry_core::ErrorCode::Config);
    assert!(err.message.contains("shard 3"), "{}", err.message);
}
