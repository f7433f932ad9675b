//! `RedisStorage` against a running Redis Cluster: the storage conformance suite, several hosts
//! writing one shard at once, durability with `WAIT`, and failures.
//!
//! The cluster is named by `REGISTRY_TEST_REDIS_NODES` (comma-separated `redis://` URLs), which
//! `cargo xtask test` sets after starting one with `scripts/redis-cluster`. Without it these
//! tests fail and say how to run them: a storage test that silently passes without its store
//! would hide every regression. Each test works in its own random namespace, so tests running
//! at once, or again on the same cluster, never see each other's keys. The test of a cluster that
//! requires a password starts one of its own with the script `REGISTRY_TEST_REDIS_SCRIPT` names
//! (`scripts/redis-cluster`), which `cargo xtask test` sets too.

mod auth;
mod concurrency;
mod damage;
mod failures;
mod figures;
mod formats;

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use registry_core::{FromConfig, Schema, Setup};
use registry_storage_redis::{Config, RedisStorage};

/// The variable naming the cluster.
const NODES_VAR: &str = "REGISTRY_TEST_REDIS_NODES";

/// The seed nodes of the test cluster.
///
/// # Panics
/// When the variable is unset or empty, with the one-line instructions.
pub fn nodes() -> Vec<String> {
    let nodes: Vec<String> = std::env::var(NODES_VAR)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        !nodes.is_empty(),
        "{NODES_VAR} is not set: run these tests with `cargo xtask test`, or start a cluster \
         with `scripts/redis-cluster start DIR` and export {NODES_VAR}=redis://127.0.0.1:7100,..."
    );
    nodes
}

/// The variable naming `scripts/redis-cluster`, for tests that start a cluster of their own.
const SCRIPT_VAR: &str = "REGISTRY_TEST_REDIS_SCRIPT";

/// The path of the cluster script.
///
/// # Panics
/// When the variable is unset or empty, with the one-line instructions.
pub fn script() -> std::path::PathBuf {
    match std::env::var(SCRIPT_VAR) {
        Ok(path) if !path.trim().is_empty() => path.into(),
        _ => panic!(
            "{SCRIPT_VAR} is not set: run these tests with `cargo xtask test`, or export \
             {SCRIPT_VAR}=<absolute path of scripts/redis-cluster>"
        ),
    }
}

/// A namespace no other test (in this run or an earlier one) uses.
pub fn fresh_namespace(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process; the counter separates calls within one.
    let random = RandomState::new().hash_one((std::process::id(), n));
    format!("test-{what}-{random:016x}")
}

/// A config for the test cluster and `namespace`, with short waits so failures show quickly.
pub fn config(namespace: &str) -> Config {
    Config {
        nodes: nodes(),
        namespace: namespace.to_owned(),
        ..Config::default()
    }
}

pub fn setup(shard: u32, shards: u32) -> Setup {
    let dir = std::env::temp_dir();
    Setup {
        schema: Schema::default(),
        data_dir: dir.clone(),
        config_dir: dir,
        shard,
        shards,
        // The tests work in namespaces of their own, created as they go.
        create: Some(registry_core::Meta::new()),
    }
}

/// A direct connection to the test cluster, for what the storage API cannot do: damage data,
/// read a node's INFO.
pub fn raw() -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(nodes())
        .and_then(|c| c.get_connection())
        .expect("connects to the test cluster")
}

pub fn open(config: &Config, shard: u32, shards: u32) -> RedisStorage {
    RedisStorage::from_config(config.clone(), &setup(shard, shards)).expect("opens the shard")
}

#[test]
fn conforms_to_the_storage_contract() {
    let run = fresh_namespace("conformance");
    let nodes = nodes();
    // The suite opens a store again on a data directory to check what survives, so the
    // namespace follows the directory: the same directory finds the same keys, a new one
    // starts empty.
    registry_testkit::storage::check(&|setup| {
        let dir = setup
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().replace(['{', '}', ' '], "_"))
            .unwrap_or_default();
        let config = Config {
            nodes: nodes.clone(),
            namespace: format!("{run}-{dir}"),
            ..Config::default()
        };
        RedisStorage::from_config(config, setup)
            .map(|s| Box::new(s) as Box<dyn registry_core::Storage>)
    });
}
