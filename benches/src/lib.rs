//! Shared set-up for the benchmarks: the default stages, either loaded from the plugin libraries
//! next to the benchmark binary as `registry` loads a library it is given, or built in as the
//! `registry` binary's defaults are (`registry_builtin`); and the requests and entries the
//! benchmarks feed them.
//!
//! Every stage and pipeline benchmark runs one workload through both [`Linkage`]s, so the cost of
//! the plugin boundary is the ratio of two figures measured in the same run. The dynamic linkage
//! needs the plugin libraries: build them first with `cargo build --release --workspace` (same
//! profile and target directory as the benchmarks).

pub mod args;

use std::path::{Path, PathBuf};

use registry_abi::load::{self, SearchPaths, StageSpec};
use registry_core::layout::Access;
use registry_core::{
    Context, Entry, EntryId, Fields, Pipeline, Request, Schema, Setup, StageKind, Stages, Storage,
};
use registry_host::assemble::{self, Source};

/// How the benchmarked stages reach the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Linkage {
    /// Loaded from the plugin libraries through `abi_stable`, as `registry` does: every call
    /// crosses the plugin boundary and its values are converted both ways.
    Dynamic,
    /// The same implementation crates linked into the benchmark as the `registry` binary's
    /// built-in plugins are (`registry_builtin`), called as Rust trait objects under the same
    /// panic guard: what the pipeline costs with no plugin boundary.
    Static,
}

impl Linkage {
    /// Both linkages, in the order the benchmarks run them.
    pub const ALL: [Linkage; 2] = [Linkage::Dynamic, Linkage::Static];

    /// The name benchmarks use as their function id: `dynamic` or `static`.
    pub fn name(self) -> &'static str {
        match self {
            Linkage::Dynamic => "dynamic",
            Linkage::Static => "static",
        }
    }
}

/// The storage config of a durable registry (the default): every insert waits for the disk.
pub const DURABLE: (StageKind, &str) = (StageKind::Storage, r#"{"durable": true}"#);

/// The storage config of a registry that does not wait for the disk: the pipeline's own cost,
/// without the `fsync` that dominates a small durable insert.
pub const NO_FSYNC: (StageKind, &str) = (StageKind::Storage, r#"{"durable": false}"#);

/// The default plugin of each stage, by name.
const PLUGINS: [(StageKind, &str); 5] = [
    (StageKind::Cache, "cache-quick"),
    (StageKind::Generator, "generator-default"),
    (StageKind::Validator, "validator-schema"),
    (StageKind::Storage, "storage-redb"),
    (StageKind::Router, "router-hash"),
];

/// The directory with the built plugin libraries: `target/<profile>/`, the parent of the
/// benchmark binary's `deps/`.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark binary has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the benchmark binary lives in target/<profile>/deps")
        .to_owned()
}

/// Where the benchmarks keep their data directories: `target/bench-data/`, on the disk the
/// project lives on. Never the system's temporary directory, which may be memory-backed (a
/// tmpfs `/tmp`), where a durable commit's fsync costs nothing and every storage figure would
/// flatter. `cargo xtask bench` names this directory and its file system in its report.
///
/// # Panics
/// When the directory cannot be made: nothing could be measured.
pub fn data_root() -> PathBuf {
    let root = lib_dir()
        .parent()
        .map_or_else(|| lib_dir().join("bench-data"), |t| t.join("bench-data"));
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot make {}: {e}", root.display()));
    root
}

/// A fresh data directory under [`data_root`], removed when the guard drops.
///
/// # Panics
/// When it cannot be made.
pub fn data_dir() -> tempfile::TempDir {
    let root = data_root();
    tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("cannot make a data directory in {}: {e}", root.display()))
}

/// The default stages, linked as `linkage` says, with `shards` storage shards and the config
/// table (JSON) `configs` gives for each stage (an empty one for the others), in a fresh data
/// directory that lives as long as the returned guard.
///
/// Both linkages build the same stages from the same schema, configs and shard count; the
/// static one does what the plugin loader does, one storage per shard, without the FFI.
///
/// # Panics
/// When a stage cannot be built: the plugin libraries are missing (build them first), or a
/// config is wrong. A benchmark cannot measure anything then.
pub fn stages(
    linkage: Linkage,
    schema: Schema,
    configs: &[(StageKind, &str)],
    shards: u32,
) -> (Stages, tempfile::TempDir) {
    let dir = data_dir();
    let config = |stage: StageKind| {
        configs
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or("{}", |(_, c)| *c)
    };
    let setup = setup(schema, dir.path(), shards);
    let stages = match linkage {
        Linkage::Dynamic => loaded(&setup, config),
        Linkage::Static => linked(&setup, config),
    };
    (stages, dir)
}

/// The setup of shard 0 of a registry of `shards` shards in `dir`, which holds its config too.
pub fn setup(schema: Schema, dir: &Path, shards: u32) -> Setup {
    Setup {
        schema,
        data_dir: dir.to_owned(),
        config_dir: dir.to_owned(),
        shard: 0,
        shards,
        create: None,
    }
}

/// A pipeline over [`stages`] with the same arguments.
///
/// # Panics
/// As [`stages`].
pub fn pipeline(
    linkage: Linkage,
    schema: Schema,
    configs: &[(StageKind, &str)],
    shards: u32,
) -> (Pipeline, tempfile::TempDir) {
    let (stages, dir) = stages(linkage, schema.clone(), configs, shards);
    (Pipeline::new(schema, stages), dir)
}

/// The stages loaded from the plugin libraries in [`lib_dir`] (named by file), assembled as
/// `registry` assembles them (`registry_host::assemble`).
fn loaded<'c>(setup: &Setup, config: impl Fn(StageKind) -> &'c str) -> Stages {
    let specs = specs(config, load::library_file_name);
    assembled(&specs, setup).unwrap_or_else(|e| {
        panic!("cannot load the plugins (run `cargo build --release --workspace` first): {e}")
    })
}

/// The same stages built into this binary, as the `registry` binary's built-in plugins are
/// (`registry_builtin`), through the same assembly: the settings differ only in naming the
/// built-ins instead of the files.
fn linked<'c>(setup: &Setup, config: impl Fn(StageKind) -> &'c str) -> Stages {
    let specs = specs(config, str::to_owned);
    assembled(&specs, setup).unwrap_or_else(|e| panic!("cannot build the built-in stages: {e}"))
}

/// Each stage's spec: its default plugin, named by `name`, with its config table.
fn specs<'c>(
    config: impl Fn(StageKind) -> &'c str,
    name: impl Fn(&str) -> String,
) -> Vec<StageSpec> {
    PLUGINS
        .into_iter()
        .map(|(stage, plugin)| StageSpec {
            stage,
            library: name(plugin),
            config_json: config(stage).into(),
        })
        .collect()
}

/// Every stage, in a registry created with the setup's shard count.
fn assembled(specs: &[StageSpec], setup: &Setup) -> Result<Stages, String> {
    let paths = SearchPaths {
        plugin_dir: lib_dir(),
        base_dir: lib_dir(),
        trust: load::Trust {
            own: vec![lib_dir()],
            trusted: Vec::new(),
        },
    };
    let source = Source {
        specs,
        paths: &paths,
        builtins: registry_builtin::BUILTINS,
    };
    let options = assemble::Options {
        stages: &StageKind::ALL,
        access: Access::Create,
        shards: Some(setup.shards.max(1)),
        new_shards: setup.shards.max(1),
    };
    assemble::assemble(&source, setup, &options)
        .map(|a| a.stages)
        .map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// The `i`-th benchmark request: titles of eight kinds, which the default generator's keyword
/// rules send to different scopes and types, and a context, a third of them in production with
/// an owner and a region (the configs of production entries are larger). The header fields are
/// left to the generator, as most requests leave them.
///
/// Different `i` give different requests (different fingerprints).
pub fn request(i: u64) -> Request {
    let title = match i % 8 {
        0 => format!("Block inbound SSH on security group {i}"),
        1 => format!("Rotate the access keys of service account {i} every ninety days"),
        2 => format!("Restart the ops worker pool {i} after a failed deploy"),
        3 => format!("Dashboard of request latency for checkout service {i}"),
        4 => format!("Nightly etl job {i} loading billing records into the warehouse"),
        5 => format!("Alert when disk usage on node {i} stays above 90 percent"),
        6 => format!("Shell script {i} pruning container images older than a week"),
        _ => format!("Require two approving reviews on repository {i}"),
    };
    let pairs = if i.is_multiple_of(3) {
        vec![
            ("env".to_owned(), "prod".to_owned()),
            ("owner".to_owned(), format!("team-{}", i % 13)),
            ("region".to_owned(), "eu-west-1".to_owned()),
        ]
    } else {
        vec![("env".to_owned(), "dev".to_owned())]
    };
    let context = Context::new(pairs).expect("the benchmark's context pairs are valid");
    Request::new(&title, Fields::default(), None, context)
        .expect("the benchmark's titles are valid")
}

/// The entries a registry makes of `requests(0..n)`: registered through a pipeline of the
/// statically linked default stages, in one batch, into a throwaway data directory.
///
/// # Panics
/// When a request is not registered: the default stages reject their own workload.
pub fn registered(n: u64) -> Vec<Entry> {
    let (pipeline, _dir) = pipeline(Linkage::Static, Schema::default(), &[NO_FSYNC], 1);
    pipeline
        .add((0..n).map(request).collect())
        .into_iter()
        .map(|added| {
            let added =
                added.unwrap_or_else(|e| panic!("a benchmark request was not registered: {e}"));
            assert!(added.created, "every benchmark request is new");
            std::sync::Arc::unwrap_or_clone(added.entry)
        })
        .collect()
}

/// Copies of `entries` that are new to a registry: each title gets the suffix `(copy {round})`,
/// hence a new fingerprint, and each entry a new id that `storage` allocates, as the pipeline
/// allocates them before inserting. Configs are kept; hashes are recomputed, so every copy
/// verifies. Different rounds give different copies.
///
/// # Panics
/// When `storage` cannot allocate ids.
pub fn renewed(entries: &[Entry], round: u64, storage: &dyn Storage) -> Vec<Entry> {
    let prefixes: Vec<String> = entries
        .iter()
        .map(|e| e.header.id.prefix().to_owned())
        .collect();
    let mut numbers = Vec::with_capacity(prefixes.len());
    storage
        .allocate(&prefixes, &mut numbers)
        .unwrap_or_else(|e| panic!("storage cannot allocate ids: {}", e.message));
    entries
        .iter()
        .zip(numbers)
        .map(|(e, number)| {
            let title = format!("{} (copy {round})", e.title);
            let fingerprint = Request::new(&title, Fields::default(), None, e.context.clone())
                .expect("a benchmark title with a short suffix is still valid")
                .fingerprint();
            let mut header = e.header.clone();
            header.id = EntryId::new(e.header.id.prefix(), number);
            Entry {
                hash: Entry::compute_hash(&header, &title, &e.context, &e.config),
                previous: None,
                purge: None,
                header,
                title,
                context: e.context.clone(),
                config: e.config.clone(),
                fingerprint,
                revision: 1,
                created_at: e.created_at,
                updated_at: e.updated_at,
                provenance: None,
                lifecycle: registry_core::Lifecycle::Active,
                author: e.author.clone(),
            }
        })
        .collect()
}

/// Prowler's security checks (`data/prowler/checks.jsonl`) as training requests:
/// provider → scope, resource group → type (empty → `UNGROUPED`), severity → status, and the
/// schema declaring exactly those values.
///
/// # Panics
/// When the dataset cannot be read or is not what it was.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_differ_and_reach_several_scopes() {
        let entries = registered(64);
        let mut fingerprints: Vec<_> = entries.iter().map(|e| e.fingerprint).collect();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        assert_eq!(fingerprints.len(), 64);
        let mut scopes: Vec<&str> = entries
            .iter()
            .map(|e| e.header.fields.scope.as_str())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        assert!(scopes.len() >= 5, "scopes: {scopes:?}");
    }

    /// With the built-in cache, a registration answered from the cache hands out the entry the
    /// cache keeps, which is the one the first registration handed out: nothing was copied on
    /// either side. Through the plugin libraries it is an equal entry.
    #[test]
    fn a_cached_add_shares_the_entry_the_cache_keeps() {
        for linkage in Linkage::ALL {
            let (pipeline, _dir) = pipeline(linkage, Schema::default(), &[NO_FSYNC], 1);
            let first = pipeline.add_one(request(3)).expect("registered");
            assert!(first.created);
            let again = pipeline.add_one(request(3)).expect("found");
            assert!(!again.created, "{}", linkage.name());
            assert_eq!(again.entry, first.entry, "{}", linkage.name());
            assert_eq!(
                std::sync::Arc::ptr_eq(&again.entry, &first.entry),
                linkage == Linkage::Static,
                "{}",
                linkage.name()
            );
        }
    }

    #[test]
    fn renewed_entries_are_new_to_the_storage_and_verify() {
        let entries = registered(8);
        let (stages, _dir) = stages(Linkage::Static, Schema::default(), &[NO_FSYNC], 1);
        let storage = &*stages.storage[0];
        for round in 0..3 {
            let copies = renewed(&entries, round, storage);
            assert!(copies.iter().all(Entry::verify));
            let mut out = Vec::new();
            storage.insert(&copies, &mut out).expect("inserted");
            assert!(
                out.iter()
                    .all(|o| matches!(o, registry_core::Inserted::Created)),
                "round {round}: {out:?}"
            );
        }
    }
}
