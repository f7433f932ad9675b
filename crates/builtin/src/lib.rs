//! The plugins built into the `registry` binary: the five default stages and the Redis Cluster
//! storage, linked in from the same crates their plugin libraries export, under the same names.
//!
//! `library = "storage-redb"` names the built-in, and nothing else: a bare name never resolves
//! to a file, so no file placed anywhere can stand in for a built-in. A plugin library is named
//! by its file name (`libstorage_redb.so`, in the plugin directory) or its path, and loads
//! through the plugin interface under the trust rules, as before (see
//! `registry_abi::load::library`).
//!
//! Why built in: a binary installed alone (`cargo install`, a CI image, a pre-commit hook) has
//! no plugin libraries beside it, and must still run every command with the defaults. Linked
//! stages also skip the plugin boundary's conversions (the bench report's `dynamic_over_static`
//! ratios measure that cost); each of their calls still runs under the same panic guard as a
//! library's ([`registry_abi::linked`]).

use registry_abi::linked::{Builtin, Guarded};
use registry_abi::linked_stage;
use registry_abi::load::{BuildError, BuiltStage};
use registry_core::{Setup, StageKind};
use registry_generator_default::DefaultGenerator;

/// Every plugin built in, by name.
pub static BUILTINS: &[Builtin] = &[
    Builtin {
        name: "cache-quick",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Cache],
        build: cache_quick,
    },
    Builtin {
        name: "cache-moka",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Cache],
        build: cache_moka,
    },
    Builtin {
        name: "generator-default",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Generator],
        build: generator_default,
    },
    Builtin {
        name: "validator-schema",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Validator],
        build: validator_schema,
    },
    Builtin {
        name: "storage-redb",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Storage],
        build: storage_redb,
    },
    Builtin {
        name: "storage-redis",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Storage],
        build: storage_redis,
    },
    Builtin {
        name: "router-hash",
        version: env!("CARGO_PKG_VERSION"),
        stages: &[StageKind::Router],
        build: router_hash,
    },
];

fn cache_quick(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(Cache, registry_cache_quick::QuickCache, config, setup)
}

fn cache_moka(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(Cache, registry_cache_moka::MokaCache, config, setup)
}

fn generator_default(
    _: StageKind,
    config: &str,
    setup: &Setup,
    notes: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    let generator: DefaultGenerator = registry_abi::linked::construct(config, setup)?;
    notes.extend(generator.notes().iter().cloned());
    Ok(BuiltStage::Generator(Box::new(Guarded(generator))))
}

fn validator_schema(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(
        Validator,
        registry_validator_schema::SchemaValidator,
        config,
        setup
    )
}

fn storage_redb(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(Storage, registry_storage_redb::RedbStorage, config, setup)
}

fn storage_redis(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(Storage, registry_storage_redis::RedisStorage, config, setup)
}

fn router_hash(
    _: StageKind,
    config: &str,
    setup: &Setup,
    _: &mut Vec<String>,
) -> Result<BuiltStage, BuildError> {
    linked_stage!(Router, registry_router_hash::HashRouter, config, setup)
}

/// The built-in plugin named `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_each_stage_has_a_builtin() {
        let mut names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BUILTINS.len());
        for stage in StageKind::ALL {
            assert!(
                BUILTINS.iter().any(|b| b.stages.contains(&stage)),
                "{stage}"
            );
        }
    }
}
