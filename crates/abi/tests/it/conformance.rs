//! The conformance suites against the default plugins through their built libraries, so the FFI
//! conversions are held to the same contracts as the implementations behind them.

use registry_abi::load::{self, StageSpec};
use registry_core::{Schema, Setup};

use crate::{defaults, paths};

fn load_with(setup: &Setup) -> registry_abi::load::Loaded {
    load::load(&defaults(), &paths(), setup).unwrap_or_else(|e| panic!("{e:?}"))
}

fn scratch_setup(dir: &tempfile::TempDir) -> Setup {
    Setup { schema: Schema::default(), data_dir: dir.path().to_owned(), shard: 0, shards: 1 }
}

#[test]
fn loaded_storage_conforms() {
    let storage_only: Vec<StageSpec> = defaults();
    registry_testkit::storage::check(&|setup| {
        let mut loaded = load::load(&storage_only, &paths(), setup).unwrap_or_else(|e| panic!("{e:?}"));
        let shard = setup.shard as usize;
        assert!(shard < loaded.stages.storage.len());
        loaded.stages.storage.swap_remove(shard)
    });
}

#[test]
fn loaded_cache_conforms() {
    registry_testkit::cache::check(&|| {
        let dir = tempfile::tempdir().expect("temp dir");
        load_with(&scratch_setup(&dir)).stages.cache
    });
}

#[test]
fn loaded_router_generator_validator_conform() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loaded = load_with(&scratch_setup(&dir));
    let schema = Schema::default();
    registry_testkit::router::check(&*loaded.stages.router);
    registry_testkit::generator::check(&*loaded.stages.generator, &schema);
    registry_testkit::validator::check_with(&*loaded.stages.validator, &schema, &*loaded.stages.generator);
}
