//! Shared set-up for the benchmarks: a pipeline built from the plugin libraries next to the
//! benchmark binary (build them first with `cargo build --release --workspace`).

use std::path::PathBuf;

use registry_abi::load::{self, SearchPaths, StageSpec};
use registry_core::{Pipeline, Schema, Setup, StageKind};

/// The directory with the built plugin libraries: `target/<profile>/`, the parent of the
/// benchmark binary's `deps/`.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("benchmark binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("benchmark binary lives in target/<profile>/deps")
        .to_owned()
}

/// A pipeline over the default plugins, with `storage_config` (JSON) for the redb plugin, in a
/// fresh data directory that lives as long as the returned guard.
pub fn pipeline(storage_config: &str) -> (Pipeline, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs: Vec<StageSpec> = [
        (StageKind::Cache, "cache-moka", "{}"),
        (StageKind::Generator, "generator-default", "{}"),
        (StageKind::Validator, "validator-schema", "{}"),
        (StageKind::Storage, "storage-redb", storage_config),
        (StageKind::Router, "router-hash", "{}"),
    ]
    .into_iter()
    .map(|(stage, library, config)| StageSpec {
        stage,
        library: library.into(),
        config_json: config.into(),
    })
    .collect();
    let paths = SearchPaths {
        plugin_dir: lib_dir(),
        base_dir: lib_dir(),
    };
    let setup = Setup {
        schema: Schema::default(),
        data_dir: dir.path().to_owned(),
        config_dir: dir.path().to_owned(),
        shard: 0,
        shards: 1,
    };
    let loaded = load::load(&specs, &paths, &setup).unwrap_or_else(|errors| {
        panic!(
            "cannot load the plugins (run `cargo build --release --workspace` first): {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    });
    (Pipeline::new(Schema::default(), loaded.stages), dir)
}
