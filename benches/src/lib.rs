//! Shared set-up for the benchmarks: a pipeline built from the plugin libraries next to the
//! benchmark binary (build them first with `cargo build --release --workspace`).

use std::path::PathBuf;

use registry_abi::load::{self, SearchPaths, StageSpec};
use registry_core::{Context, Fields, Pipeline, Request, Schema, Setup, StageKind, Stages};

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
    pipeline_with(Schema::default(), storage_config)
}

/// As [`pipeline`], with another schema.
pub fn pipeline_with(schema: Schema, storage_config: &str) -> (Pipeline, tempfile::TempDir) {
    let (stages, dir) = stages_with(schema.clone(), storage_config);
    (Pipeline::new(schema, stages), dir)
}

/// The loaded default stages themselves, for benchmarks of one stage.
pub fn stages_with(schema: Schema, storage_config: &str) -> (Stages, tempfile::TempDir) {
    stages_configured(schema, &[(StageKind::Storage, storage_config)])
}

/// The loaded default stages, each with the config table (JSON) `configs` gives for its stage,
/// or an empty one, in a fresh data directory that lives as long as the returned guard.
pub fn stages_configured(
    schema: Schema,
    configs: &[(StageKind, &str)],
) -> (Stages, tempfile::TempDir) {
    stages_sharded(schema, configs, 1)
}

/// As [`stages_configured`], with `shards` storage shards behind the router.
pub fn stages_sharded(
    schema: Schema,
    configs: &[(StageKind, &str)],
    shards: u32,
) -> (Stages, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |stage: StageKind| {
        configs
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or("{}", |(_, c)| *c)
    };
    let specs: Vec<StageSpec> = [
        (StageKind::Cache, "cache-moka"),
        (StageKind::Generator, "generator-default"),
        (StageKind::Validator, "validator-schema"),
        (StageKind::Storage, "storage-redb"),
        (StageKind::Router, "router-hash"),
    ]
    .into_iter()
    .map(|(stage, library)| StageSpec {
        stage,
        library: library.into(),
        config_json: config(stage).into(),
    })
    .collect();
    let paths = SearchPaths {
        plugin_dir: lib_dir(),
        base_dir: lib_dir(),
    };
    let setup = Setup {
        schema,
        data_dir: dir.path().to_owned(),
        config_dir: dir.path().to_owned(),
        shard: 0,
        shards,
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
    (loaded.stages, dir)
}

/// Prowler's security checks (`data/prowler/checks.jsonl`) as training requests:
/// provider → scope, resource group → type (empty → `UNGROUPED`), severity → status, and the
/// schema declaring exactly those values.
pub fn prowler() -> (Schema, Vec<Request>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/prowler/checks.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut rows = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("dataset lines are JSON");
        let get = |k: &str| v[k].as_str().unwrap_or("").to_uppercase();
        let group = match get("resource_group") {
            g if g.is_empty() => "UNGROUPED".to_owned(),
            g => g,
        };
        rows.push((
            v["title"].as_str().unwrap_or("").to_owned(),
            get("provider"),
            group,
            get("severity"),
        ));
    }
    let distinct = |pick: fn(&(String, String, String, String)) -> &String| {
        let mut values: Vec<String> = rows.iter().map(|r| pick(r).clone()).collect();
        values.sort();
        values.dedup();
        values
    };
    let schema = Schema::new(
        Fields {
            scope: distinct(|r| &r.1),
            kind: distinct(|r| &r.2),
            variant: vec!["CHECK".to_owned()],
            status: distinct(|r| &r.3),
        },
        "v5.46".to_owned(),
        Fields {
            scope: None,
            kind: None,
            variant: Some("CHECK".to_owned()),
            status: None,
        },
    )
    .expect("the dataset's values make a valid schema");
    let requests = rows
        .into_iter()
        .map(|(title, scope, kind, status)| {
            let fields = Fields {
                scope: Some(scope),
                kind: Some(kind),
                variant: None,
                status: Some(status),
            };
            Request::new(&title, fields, None, Context::default())
                .expect("dataset titles are valid")
        })
        .collect();
    (schema, requests)
}
