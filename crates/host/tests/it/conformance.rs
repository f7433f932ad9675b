//! The conformance suites against the default plugins through their built libraries, so the FFI
//! conversions are held to the same contracts as the implementations behind them.

use registry_abi::load::{self, BuildError, BuiltStage};
use registry_core::{Schema, Setup, StageKind};
use registry_host::assemble::Assembled;

use crate::{defaults, paths, setup};

fn load_with(setup: &Setup) -> Assembled {
    crate::load_all(&defaults(), &paths(), setup).unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn loaded_storage_conforms() {
    // One shard per call, as the suite asks: construct through the library's constructor.
    let (module, _) = load::open(&crate::lib("storage-redb"), StageKind::Storage).expect("open");
    registry_testkit::storage::check(&|setup| match load::build(
        module,
        StageKind::Storage,
        "{}",
        setup,
    ) {
        Ok(BuiltStage::Storage(s)) => Ok(s),
        Ok(other) => panic!("built {} for storage", other.kind()),
        Err(BuildError::Start(e)) => Err(e),
        Err(e) => panic!("{e}"),
    });
}

#[test]
fn loaded_cache_conforms() {
    registry_testkit::cache::check(&|| {
        let dir = tempfile::tempdir().expect("temp dir");
        load_with(&setup(&dir)).stages.cache
    });
}

#[test]
fn loaded_router_generator_validator_conform() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loaded = load_with(&setup(&dir));
    let schema = Schema::default();
    registry_testkit::router::check(&*loaded.stages.router);
    registry_testkit::generator::check(&*loaded.stages.generator, &schema);
    registry_testkit::validator::check_with(
        &*loaded.stages.validator,
        &schema,
        &*loaded.stages.generator,
    );
}
