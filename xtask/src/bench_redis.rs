//! The `redis` section of `cargo xtask bench`: `registry batch` into a loopback Redis Cluster
//! (3 masters and 3 replicas, started by `scripts/redis-cluster` on ports 7300-7305 and stopped
//! by it, by PID, whatever happens), 12 shards, the requests `batch` uses.
//!
//! Per run, a namespace of its own; the figures are the batch's entries/s and peak RSS, and
//! the memory the cluster's nodes report (`INFO memory`, `used_memory`) before and after,
//! per entry, for the masters and for the replicas. Runs follow each other on the same
//! cluster, which fills up: the per-entry figures are differences, not totals.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::report::{Better, Figure, units};
use crate::root;

/// The section's name, for `--filter`.
pub const REDIS: &str = "redis";
/// The first port of the cluster (six nodes, and their bus ports 10000 up).
const BASE_PORT: u16 = 7300;
/// Registry shards: 4 per master, as the example configuration advises.
const SHARDS: u32 = 12;

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisRun {
    pub entries_per_s: f64,
    pub peak_rss_bytes: f64,
    /// Masters' `used_memory` grown, per entry.
    pub master_bytes_per_entry: f64,
    /// Replicas' `used_memory` grown, per entry.
    pub replica_bytes_per_entry: f64,
}

/// The cluster of the section, stopped when dropped.
struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    nodes: Vec<String>,
}

impl Cluster {
    fn start(scratch: &Path) -> Result<Cluster, String> {
        let script = root().join("scripts/redis-cluster");
        let dir = scratch.join("redis-cluster");
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(BASE_PORT.to_string())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let mut cluster = Cluster {
            script,
            dir,
            nodes: Vec::new(),
        };
        if !out.status.success() {
            return Err(format!(
                "scripts/redis-cluster could not start the bench's cluster: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let nodes = std::fs::read_to_string(cluster.dir.join("nodes"))
            .map_err(|e| format!("the bench's cluster wrote no node list: {e}"))?;
        cluster.nodes = nodes.trim().split(',').map(str::to_owned).collect();
        Ok(cluster)
    }

    /// `used_memory` of every master and of every replica, bytes.
    fn memory(&self) -> Result<(f64, f64), String> {
        let (mut masters, mut replicas) = (0.0, 0.0);
        for port in BASE_PORT..BASE_PORT + 6 {
            let info = cli(port, &["info", "memory"])?;
            let used: f64 = field(&info, "used_memory")
                .ok_or_else(|| format!("node {port} reported no used_memory"))?;
            let role = cli(port, &["info", "replication"])?;
            match field::<String>(&role, "role").as_deref() {
                Some("master") => masters += used,
                _ => replicas += used,
            }
        }
        Ok((masters, replicas))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run redis-cli: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `name:value` line of `INFO`.
fn field<T: std::str::FromStr>(info: &str, name: &str) -> Option<T> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the section: `runs` loads of the `count` requests of `input`.
///
/// # Errors
/// When the cluster cannot start, a load fails or registers fewer entries than `count`.
pub fn run(
    registry: &Path,
    scratch: &Path,
    input: &Path,
    count: usize,
    runs: usize,
) -> Result<Vec<RedisRun>, String> {
    let cluster = Cluster::start(scratch)?;
    let mut out = Vec::with_capacity(runs);
    for run in 1..=runs {
        let dir = scratch.join(format!("redis-{run}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let nodes: Vec<String> = cluster.nodes.iter().map(|n| format!("{n:?}")).collect();
        let config = format!(
            "[storage]\nlibrary = \"storage-redis\"\n[storage.config]\nnodes = [{}]\n\
             namespace = \"bench-{run}-{}\"\n",
            nodes.join(", "),
            std::process::id()
        );
        let toml = dir.join("registry.toml");
        std::fs::write(&toml, config)
            .map_err(|e| format!("cannot write {}: {e}", toml.display()))?;
        let (masters_before, replicas_before) = cluster.memory()?;
        let output = Command::new(registry)
            .arg("--config")
            .arg(&toml)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("batch")
            .arg(input)
            .args(["--format", "json"])
            .env("REGISTRY_SHARDS", SHARDS.to_string())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", registry.display()))?;
        let summary: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
            format!(
                "registry batch into the cluster failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
        let created = summary["created"].as_u64().unwrap_or(0);
        if created != count as u64 {
            return Err(format!(
                "registry batch into the cluster created {created} of {count} entries: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // Replicas catch up within moments of the last write; give them a second.
        std::thread::sleep(std::time::Duration::from_secs(1));
        let (masters_after, replicas_after) = cluster.memory()?;
        let n = count as f64;
        out.push(RedisRun {
            entries_per_s: summary["entries_per_s"].as_f64().unwrap_or(0.0),
            peak_rss_bytes: summary["peak_rss_bytes"].as_f64().unwrap_or(0.0),
            master_bytes_per_entry: (masters_after - masters_before) / n,
            replica_bytes_per_entry: (replicas_after - replicas_before) / n,
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(out)
}

/// The section's figures (`redis/*`).
pub fn figures(runs: &[RedisRun], count: usize) -> Vec<Figure> {
    let what = format!(
        "registry batch into Redis Cluster (3 + 3 nodes, {SHARDS} shards, {} entries)",
        crate::markdown::value(units::COUNT, count as f64)
    );
    let series = |get: fn(&RedisRun) -> f64| runs.iter().map(get).collect::<Vec<_>>();
    [
        (
            "redis/entries_per_s",
            "entries/s",
            units::ENTRIES_PER_S,
            Better::Higher,
            series(|r| r.entries_per_s),
        ),
        (
            "redis/peak_rss_bytes",
            "peak RSS",
            units::BYTES,
            Better::Lower,
            series(|r| r.peak_rss_bytes),
        ),
        (
            "redis/master_bytes_per_entry",
            "master memory per entry",
            units::BYTES,
            Better::Lower,
            series(|r| r.master_bytes_per_entry),
        ),
        (
            "redis/replica_bytes_per_entry",
            "replica memory per entry",
            units::BYTES,
            Better::Lower,
            series(|r| r.replica_bytes_per_entry),
        ),
    ]
    .into_iter()
    .filter_map(|(id, label, unit, better, v)| {
        Figure::from_runs(id.into(), format!("{what}: {label}"), unit, better, &v)
    })
    .collect()
}

/// Entries the projection sizes for.
const TARGET_ENTRIES: f64 = 1e9;
/// Memory of one cluster node, bytes.
const NODE_BYTES: f64 = 64e9;
/// The part of a node's memory planned for data: the rest is for fragmentation, copy-on-write
/// during a persistence rewrite, and growth.
const NODE_FILL: f64 = 0.75;
/// Replicas per master.
const REPLICAS: f64 = 1.0;

/// The projection for [`TARGET_ENTRIES`] from the section's median master memory per entry
/// (`sizing/redis/*`): the masters' memory, with the replicas', and the nodes it takes.
pub fn sizing(figures: &[Figure]) -> Vec<Figure> {
    let Some(per_entry) = figures
        .iter()
        .find(|f| f.id == "redis/master_bytes_per_entry")
    else {
        return Vec::new();
    };
    let project = |bytes: f64| {
        let masters_memory = bytes * TARGET_ENTRIES;
        let masters = (masters_memory / (NODE_BYTES * NODE_FILL)).ceil().max(1.0);
        (
            masters_memory,
            masters_memory * (1.0 + REPLICAS),
            masters * (1.0 + REPLICAS),
        )
    };
    let (m, lo, hi) = (
        project(per_entry.median),
        project(per_entry.low),
        project(per_entry.high),
    );
    let figure = |id: &str, label: &str, unit: &'static str, v: (f64, f64, f64)| Figure {
        low: v.1,
        high: v.2,
        ..Figure::single(
            format!("sizing/redis/{id}"),
            format!("1e9 entries on Redis Cluster: {label}"),
            unit,
            Better::Lower,
            v.0,
        )
    };
    vec![
        figure(
            "masters_memory_bytes",
            "masters' memory",
            units::BYTES,
            (m.0, lo.0, hi.0),
        ),
        figure(
            "memory_bytes",
            "memory with one replica each",
            units::BYTES,
            (m.1, lo.1, hi.1),
        ),
        figure(
            "nodes",
            "nodes of 64 GB (masters and replicas)",
            units::COUNT,
            (m.2, lo.2, hi.2),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_by_name() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n";
        assert_eq!(field::<f64>(info, "used_memory"), Some(1_048_576.0));
        assert_eq!(field::<String>(info, "role"), None);
        let role = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
        assert_eq!(field::<String>(role, "role").as_deref(), Some("master"));
    }

    #[test]
    fn the_projection_follows_the_master_memory_per_entry() {
        let per_entry = Figure::from_runs(
            "redis/master_bytes_per_entry".into(),
            "x".into(),
            units::BYTES,
            Better::Lower,
            &[1000.0, 1100.0, 1200.0],
        )
        .expect("three runs");
        let s = sizing(&[per_entry]);
        let memory = s
            .iter()
            .find(|f| f.id == "sizing/redis/memory_bytes")
            .expect("memory");
        // 1,100 B (the median of three runs) x 1e9 x 2.
        assert_eq!(memory.median, 1100.0 * 1e9 * 2.0);
        let nodes = s
            .iter()
            .find(|f| f.id == "sizing/redis/nodes")
            .expect("nodes");
        // 1.1 TB over 48 GB of data per node: 23 masters, 46 nodes.
        assert_eq!(nodes.median, 46.0);
        assert!(sizing(&[]).is_empty());
    }
}
