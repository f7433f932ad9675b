//! `registry` on a Redis Cluster through the `storage-redis` plugin, as several hosts would run
//! it: two processes registering overlapping loads at once, two updating one entry at once, one
//! importing what another then registers again, the example cluster configuration, and a master
//! killed in the middle of a batch.
//!
//! Each process has its own scratch directory (its own host, as far as `registry` knows) and
//! shares the cluster and a namespace of its own with the other "hosts" of the same test. The
//! cluster is the one `REGISTRY_TEST_REDIS_NODES` names (comma-separated `redis://` URLs;
//! `cargo xtask test` starts one): these tests fail, never skip, without it. The failover test
//! kills a master, so it starts a cluster of its own with the script `REGISTRY_TEST_REDIS_SCRIPT`
//! names (`scripts/redis-cluster`) and stops it by that script whatever happens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Scratch;

/// Registry shards: 4 per master of the 3-master cluster, as the example configuration advises.
const SHARDS: u32 = 12;

const SCOPES: [&str; 4] = ["SEC", "OPS", "GOV", "ETL"];

/// The first port of the failover test's own cluster (six nodes, and their bus ports 10000 up).
const FAILOVER_BASE_PORT: u16 = 7200;

/// A variable these tests cannot run without; fails naming it and how to set it.
fn required_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{var} is not set: run `cargo xtask test`, which starts a Redis Cluster and sets it, or \
             start one with `scripts/redis-cluster start DIR` and export \
             REGISTRY_TEST_REDIS_NODES=<its nodes= line> and \
             REGISTRY_TEST_REDIS_SCRIPT=<absolute path of scripts/redis-cluster>"
        ),
    }
}

/// The shared cluster's node URLs.
fn cluster_nodes() -> Vec<String> {
    required_env("REGISTRY_TEST_REDIS_NODES")
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A namespace no other test or earlier run uses, so that runs against a long-lived cluster
/// start empty.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("it-{test}-{}-{nanos}", std::process::id())
}

/// One host: a scratch directory whose `registry.toml` stores in the cluster.
fn host(nodes: &[String], namespace: &str, wait_replicas: u32) -> Scratch {
    let s = Scratch::with_shards(SHARDS);
    let nodes: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    s.write(
        "registry.toml",
        &format!(
            "[storage]\nlibrary = \"storage-redis\"\n[storage.config]\nnodes = [{}]\n\
             namespace = \"{namespace}\"\nwait_replicas = {wait_replicas}\n",
            nodes.join(", ")
        ),
    );
    s
}

/// JSONL requests `range`, each distinct, spread over the scopes.
fn requests(range: std::ops::Range<usize>, what: &str) -> String {
    range
        .map(|i| {
            format!(
                "{{\"title\": \"{what} rule {i}\", \"scope\": \"{}\", \"context\": {{\"n\": \"{i}\"}}}}\n",
                SCOPES[i % SCOPES.len()]
            )
        })
        .collect()
}

/// The lines of a `--results` file, by input line number.
fn results(path: &Path) -> BTreeMap<u64, Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("results line is JSON");
            (v["line"].as_u64().expect("line number"), v)
        })
        .collect()
}

/// How many lines of a `--results` file there are so far (complete ones only).
fn results_so_far(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| l.ends_with('}')).count())
        .unwrap_or(0)
}

fn id_of(outcome: &Value) -> &str {
    outcome["id"].as_str().expect("stored line has an id")
}

/// Exports `host`'s registry and imports it into a fresh local one, which verifies every
/// revision's hash; returns the exported ids.
fn export_verified(host: &Scratch) -> HashSet<String> {
    let exported = host.ok(&["export"]);
    let copy = Scratch::new();
    copy.write("all.jsonl", &exported);
    let imported = copy.json(&["import", "all.jsonl"]);
    assert_eq!(imported["failed"], 0, "hashes verify: {imported}");
    exported
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("export record");
            r["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

#[test]
fn two_hosts_batching_overlapping_loads_at_once_store_each_request_once() {
    const PER_HOST: usize = 3000;
    const OVERLAP: usize = 1500;
    let nodes = cluster_nodes();
    let ns = namespace("overlap");
    let hosts = [host(&nodes, &ns, 0), host(&nodes, &ns, 0)];
    let first = [0, PER_HOST - OVERLAP];
    for (h, start) in hosts.iter().zip(first) {
        h.write("in.jsonl", &requests(start..start + PER_HOST, "Shared"));
    }
    let started = Instant::now();
    let children: Vec<_> = hosts
        .iter()
        .map(|h| {
            h.command(&[
                "batch",
                "in.jsonl",
                "--batch-size",
                "100",
                "--results",
                "results.jsonl",
                "--format",
                "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start registry batch")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait for registry batch");
        assert!(out.status.success(), "{out:?}");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "two hosts registered {} lines ({} distinct) in {:.2} s: {:.0} lines/s together",
        2 * PER_HOST,
        2 * PER_HOST - OVERLAP,
        elapsed.as_secs_f64(),
        (2 * PER_HOST) as f64 / elapsed.as_secs_f64()
    );

    // Request i -> (status, id) as each host saw it.
    let mut seen: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (h, start) in hosts.iter().zip(first) {
        let outcomes = results(&h.path().join("results.jsonl"));
        assert_eq!(outcomes.len(), PER_HOST, "one result per line");
        for (line, o) in outcomes {
            let status = o["status"].as_str().expect("status").to_owned();
            assert!(status == "created" || status == "duplicate", "{o}");
            let request = start + usize::try_from(line).expect("line number") - 1;
            seen.entry(request)
                .or_default()
                .push((status, id_of(&o).to_owned()));
        }
    }
    let distinct = 2 * PER_HOST - OVERLAP;
    assert_eq!(seen.len(), distinct);
    let mut ids = HashSet::new();
    for (request, outcomes) in &seen {
        let created = outcomes.iter().filter(|(s, _)| s == "created").count();
        assert_eq!(created, 1, "request {request} created once: {outcomes:?}");
        assert!(
            outcomes.iter().all(|(_, id)| *id == outcomes[0].1),
            "both hosts got one id for request {request}: {outcomes:?}"
        );
        assert!(
            ids.insert(outcomes[0].1.clone()),
            "id {} given to two requests",
            outcomes[0].1
        );
    }

    // Either host sees the same registry, holding each request once.
    let listed: HashSet<String> = hosts[1].ids().into_iter().collect();
    assert_eq!(listed, ids, "list shows exactly the registered ids");
    let stats = hosts[0].json(&["stats"]);
    assert_eq!(stats["entries"].as_u64(), Some(distinct as u64), "{stats}");
    for scope in SCOPES {
        assert_eq!(
            stats["by_scope"][scope].as_u64(),
            Some((distinct / SCOPES.len()) as u64),
            "{scope}: {stats}"
        );
    }
    for request in [0, OVERLAP, PER_HOST - 1, distinct - 1] {
        let id = &seen[&request][0].1;
        let e = hosts[request % 2].json(&["get", id]);
        assert_eq!(e["title"], format!("Shared rule {request}"), "{e}");
        assert_eq!(e["revision"], 1);
    }
}

/// One host imports entries exported from a registry with another shard count; another host,
/// which never saw the import, then registers the same requests: each is found, none is
/// registered twice. The imported entries keep their ids, so most sit in a shard other than
/// the one the router picks for their fingerprints (with 12 shards, each does with chance
/// 11/12); the importing host records that in the shards' own metadata, in the cluster, which
/// is how the other host knows to look there too. Nothing about it is left in either host's
/// directory.
#[test]
fn an_import_on_one_host_is_found_by_registrations_on_another() {
    const N: usize = 400;
    let nodes = cluster_nodes();
    let ns = namespace("import");
    let lines = requests(0..N, "Imported");

    // The source: a local registry of 3 shards, not the cluster's 12.
    let source = Scratch::with_shards(3);
    source.write("in.jsonl", &lines);
    let loaded = source.json(&["batch", "in.jsonl", "--results", "ids.jsonl"]);
    assert_eq!(loaded["created"].as_u64(), Some(N as u64), "{loaded}");
    let source_ids = results(&source.path().join("ids.jsonl"));
    let exported = source.ok(&["export"]);

    let [importer, registrar] = [host(&nodes, &ns, 0), host(&nodes, &ns, 0)];
    importer.write("all.jsonl", &exported);
    let imported = importer.json(&["import", "all.jsonl"]);
    assert_eq!(imported["imported"].as_u64(), Some(N as u64), "{imported}");
    assert_eq!(imported["failed"].as_u64(), Some(0), "{imported}");

    registrar.write("in.jsonl", &lines);
    let again = registrar.json(&["batch", "in.jsonl", "--results", "ids.jsonl"]);
    assert_eq!(again["created"].as_u64(), Some(0), "nothing new: {again}");
    assert_eq!(again["duplicates"].as_u64(), Some(N as u64), "{again}");
    let found = results(&registrar.path().join("ids.jsonl"));
    assert_eq!(found.len(), N);
    for (line, outcome) in &found {
        assert_eq!(outcome["status"], "duplicate", "line {line}: {outcome}");
        assert_eq!(
            id_of(outcome),
            id_of(&source_ids[line]),
            "line {line} resolves to the id the source registry gave it"
        );
    }

    // The cluster holds each entry once, exactly as the source did.
    assert_eq!(registrar.ok(&["export"]), exported);
    // A Redis registry is not copied into a directory: the refusal says what backs it up.
    let (code, err) = registrar.fail(&["backup", "copy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("registry export"), "{err}");
    assert!(!registrar.path().join("copy").exists());
    for h in [&importer, &registrar] {
        let side_file = h.data_dir().join("fingerprints-anywhere");
        assert!(!side_file.exists(), "{} exists", side_file.display());
    }
}

/// What one `registry update` did: the revision it wrote, or that it lost a race.
enum Edit {
    Wrote { revision: u64, title: String },
    Conflict,
}

#[test]
fn two_hosts_updating_one_entry_at_once_lose_no_update() {
    const EDITS: usize = 12;
    let nodes = cluster_nodes();
    let ns = namespace("update");
    let hosts = [host(&nodes, &ns, 0), host(&nodes, &ns, 0)];
    let added = hosts[0].add("Contended rule", &["--scope", "OPS"]);
    let id = added["id"].as_str().expect("id").to_owned();

    let edits: Vec<Edit> = std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(n, h)| {
                let id = id.clone();
                scope.spawn(move || {
                    (0..EDITS)
                        .map(|j| {
                            let title = format!("Contended rule, edit {j} by host {n}");
                            let out =
                                h.run(&["update", &id, "--title", &title, "--format", "json"]);
                            if out.status.success() {
                                let e: Value =
                                    serde_json::from_slice(&out.stdout).expect("updated entry");
                                assert_eq!(e["title"], title.as_str());
                                Edit::Wrote {
                                    revision: e["revision"].as_u64().expect("revision"),
                                    title,
                                }
                            } else {
                                let stderr = String::from_utf8_lossy(&out.stderr);
                                assert!(
                                    stderr.contains("was changed by someone else meanwhile"),
                                    "an update failed for another reason than a conflict: {stderr}"
                                );
                                Edit::Conflict
                            }
                        })
                        .collect::<Vec<Edit>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("update worker"))
            .collect()
    });

    let history = hosts[1].json(&["history", &id]);
    let history = history.as_array().expect("history is a list");
    let wrote: Vec<(u64, &str)> = edits
        .iter()
        .filter_map(|e| match e {
            Edit::Wrote { revision, title } => Some((*revision, title.as_str())),
            Edit::Conflict => None,
        })
        .collect();
    let conflicts = edits.len() - wrote.len();
    eprintln!(
        "{} concurrent updates: {} written, {conflicts} refused as conflicts",
        edits.len(),
        wrote.len()
    );
    assert!(!wrote.is_empty(), "no update got through");
    assert_eq!(
        history.len(),
        wrote.len() + 1,
        "every update reported written is a revision, and nothing else is"
    );
    for (i, rev) in history.iter().enumerate() {
        assert_eq!(
            rev["revision"].as_u64(),
            Some(i as u64 + 1),
            "revisions in order"
        );
    }
    for (revision, title) in wrote {
        let index = usize::try_from(revision).expect("revision") - 1;
        assert_eq!(
            history[index]["title"], title,
            "revision {revision} is the update that reported it"
        );
    }
}

#[test]
fn the_example_cluster_configuration_loads_and_stores() {
    let nodes = cluster_nodes();
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/redis-cluster/registry.toml")
        .canonicalize()
        .expect("examples/redis-cluster/registry.toml exists");
    let s = Scratch::with_shards(SHARDS);
    let nodes_toml: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    let ns = namespace("example");
    let run = |args: &[&str]| -> Output {
        let data_dir = s.data_dir();
        let mut all = vec![
            "--config",
            example.to_str().expect("utf-8 path"),
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
        ];
        all.extend(args);
        s.command(&all)
            // The example names the cluster of `cargo xtask test`; this test's may be another.
            .env(
                "REGISTRY_STORAGE__CONFIG__NODES",
                format!("[{}]", nodes_toml.join(",")),
            )
            .env("REGISTRY_STORAGE__CONFIG__NAMESPACE", &ns)
            .output()
            .expect("run registry")
    };
    let out = run(&["add", "--title", "Rotate the keys", "--scope", "SEC"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["list", "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("list json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["title"], "Rotate the keys");
}

/// A cluster of the test's own, stopped by the script when dropped.
struct OwnCluster {
    script: PathBuf,
    dir: tempfile::TempDir,
    base: u16,
}

impl OwnCluster {
    fn start(base: u16) -> OwnCluster {
        let script = PathBuf::from(required_env("REGISTRY_TEST_REDIS_SCRIPT"));
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new(&script)
            .arg("start")
            .arg(dir.path())
            .arg(base.to_string())
            .output()
            .expect("run the cluster script");
        // Made before checking, so that nodes started by a failed start are stopped too.
        let cluster = OwnCluster { script, dir, base };
        assert!(
            out.status.success(),
            "the cluster on ports {base}.. did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn nodes(&self) -> Vec<String> {
        (self.base..self.base + 6)
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn script(&self, args: &[&str]) -> String {
        let out = Command::new(&self.script)
            .arg(args[0])
            .arg(self.dir.path())
            .args(&args[1..])
            .output()
            .expect("run the cluster script");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pid(&self, port: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(port.to_string()).join("redis.pid"))
            .expect("pidfile")
            .trim()
            .to_owned()
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// `redis-cli -p PORT ARGS...`, its standard output trimmed.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The slot ranges a master serves, from its own line of `cluster nodes`.
fn slots_of(port: u16) -> Vec<(u32, u32)> {
    let nodes = redis_cli(port, &["cluster", "nodes"]);
    let mine = nodes
        .lines()
        .find(|l| l.contains("myself"))
        .expect("cluster nodes names the node itself");
    mine.split_whitespace()
        .skip(8)
        .filter(|r| !r.starts_with('['))
        .map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().expect("slot"), b.parse().expect("slot")),
            None => {
                let s = r.parse().expect("slot");
                (s, s)
            }
        })
        .collect()
}

#[test]
fn a_master_killed_during_a_batch_loses_nothing_acknowledged() {
    const N: usize = 20_000;
    let cluster = OwnCluster::start(FAILOVER_BASE_PORT);
    let ports: Vec<u16> = (FAILOVER_BASE_PORT..FAILOVER_BASE_PORT + 6).collect();
    let victim = *ports
        .iter()
        .find(|&&p| redis_cli(p, &["role"]).lines().next() == Some("master"))
        .expect("a master");
    // A master's `role` lists its replicas as ip, port, offset.
    let replica: u16 = redis_cli(victim, &["role"])
        .lines()
        .nth(3)
        .and_then(|p| p.parse().ok())
        .expect("the master has a replica");
    let slots = slots_of(victim);
    let probe = (0..1000)
        .map(|i| format!("failover-probe-{i}"))
        .find(|k| {
            let slot: u32 = redis_cli(victim, &["cluster", "keyslot", k])
                .parse()
                .expect("slot");
            slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
        .expect("a key in the victim's slots");

    let h = host(&cluster.nodes(), "failover", 1);
    h.write("big.jsonl", &requests(0..N, "Failover"));
    let results_path = h.path().join("results.jsonl");
    let started = Instant::now();
    let child = h
        .command(&[
            "batch",
            "big.jsonl",
            "--batch-size",
            "250",
            "--results",
            "results.jsonl",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start registry batch");
    let mut child = child;
    while results_so_far(&results_path) < 2000 {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the batch ended before the master could be killed: make the input larger"
        );
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the batch reported nothing for 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before_kill = results_so_far(&results_path);
    let killed = Command::new("kill")
        .args(["-KILL", &cluster.pid(victim)])
        .status()
        .expect("run kill");
    let killed_at = Instant::now();
    assert!(killed.success(), "kill the master on port {victim}");
    assert!(
        child.try_wait().expect("poll").is_none(),
        "the batch ended before the master was killed: make the input larger"
    );

    // Failover time: until the replica accepts a write to the killed master's slots.
    loop {
        if redis_cli(replica, &["set", &probe, "written after failover"]) == "OK" {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "replica {replica} did not take over within a minute"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let failover = killed_at.elapsed();
    eprintln!(
        "failover: master {victim} killed after {before_kill} of {N} lines were reported; \
         replica {replica} served writes to its slots {:.2} s later",
        failover.as_secs_f64()
    );
    // The crashed node is brought back, as an operator would: it rejoins as the replica of the
    // new master, so that writes with wait_replicas = 1 can be acknowledged again.
    cluster.script(&["restart", &victim.to_string()]);

    let out = child.wait_with_output().expect("wait for the batch");
    let elapsed = started.elapsed();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let outcomes = results(&results_path);
    assert_eq!(outcomes.len(), N, "one result per line");
    let failed: Vec<u64> = outcomes
        .iter()
        .filter(|(_, o)| o["status"] == "failed")
        .map(|(line, _)| *line)
        .collect();
    eprintln!(
        "failover batch: {N} lines in {:.2} s ({:.0} lines/s), {} failed, exit {:?}",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        failed.len(),
        out.status.code()
    );
    assert_eq!(summary["failed"].as_u64(), Some(failed.len() as u64));
    if failed.is_empty() {
        assert!(out.status.success(), "{out:?}");
    } else {
        // Storage failures make the exit status 2 (1 is for bad lines); either way the summary
        // names exactly the lines that failed.
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "exit status {:?}",
            out.status.code()
        );
        let reported: Vec<u64> = summary["failures"]
            .as_array()
            .expect("failures")
            .iter()
            .map(|f| f["line"].as_u64().expect("line"))
            .collect();
        assert_eq!(
            reported,
            failed.iter().copied().take(1000).collect::<Vec<u64>>(),
            "the summary lists the failed lines"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{} of {N} records", failed.len())),
            "{stderr}"
        );
    }

    // Every acknowledged line is there, intact, and the replica has taken over.
    let exported = export_verified(&h);
    for (line, o) in &outcomes {
        if o["status"] != "failed" {
            assert!(
                exported.contains(id_of(o)),
                "line {line} was acknowledged as {} but is missing",
                id_of(o)
            );
        }
    }
    for (line, o) in outcomes
        .iter()
        .filter(|(_, o)| o["status"] != "failed")
        .step_by(997)
    {
        let e = h.json(&["get", id_of(o)]);
        assert_eq!(e["title"], format!("Failover rule {}", line - 1), "{e}");
    }
    let roles = redis_cli(replica, &["cluster", "nodes"]);
    let role_of = |port: u16| {
        roles
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port}@")))
            .map(|l| l.split_whitespace().nth(2).unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert!(role_of(replica).contains("master"), "{roles}");
    assert!(!role_of(victim).contains("master"), "{roles}");

    // Running the batch again completes it without storing anything twice.
    let again = h.json(&["batch", "big.jsonl", "--results", "again.jsonl"]);
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(
        again["duplicates"].as_u64(),
        Some(exported.len() as u64),
        "{again}"
    );
    assert_eq!(
        again["created"].as_u64(),
        Some((N - exported.len()) as u64),
        "{again}"
    );
    for (line, o) in results(&h.path().join("again.jsonl")) {
        if let Some(first) = outcomes.get(&line).filter(|f| f["status"] != "failed") {
            assert_eq!(id_of(&o), id_of(first), "line {line} kept its id");
        }
    }
    let stats = h.json(&["stats"]);
    assert_eq!(stats["entries"].as_u64(), Some(N as u64), "{stats}");
    drop(cluster);
}

/// A namespace records the schema it was written with: a host whose `registry.toml` no longer
/// declares a value stored entries use is refused, naming it; one that adds values is fine, and
/// a host with a fresh local directory reads the registry the others wrote, creating nothing.
#[test]
fn a_namespace_refuses_a_schema_that_drops_values_in_use() {
    let nodes = cluster_nodes();
    let ns = namespace("schema");
    let a = host(&nodes, &ns, 0);
    let added = a.add("A dashboard of sales", &["--scope", "DASHBOARD"]);
    let b = host(&nodes, &ns, 0);
    let toml = std::fs::read_to_string(a.path().join("registry.toml")).expect("reads");
    b.write(
        "registry.toml",
        &format!(
            "{toml}[schema]\nscope = [\"GOV\", \"SEC\", \"OPS\", \"ALERT\", \"BASH\", \"ETL\"]\n\
             [schema.defaults]\nscope = \"GOV\"\n"
        ),
    );
    for args in [&["list"][..], &["add", "--title", "Another rule"]] {
        let (code, msg) = b.fail(args);
        assert_eq!(code, 2, "{msg}");
        assert!(
            msg.contains(&format!(
                "scope `DASHBOARD` (used by {})",
                added["id"].as_str().expect("id")
            )),
            "{msg}"
        );
    }
    b.write(
        "registry.toml",
        &format!(
            "{toml}[schema]\nscope = [\"GOV\", \"SEC\", \"OPS\", \"ALERT\", \"BASH\", \
             \"DASHBOARD\", \"ETL\", \"NET\"]\n[schema.defaults]\nscope = \"GOV\"\n"
        ),
    );
    let net = b.add("A network rule", &["--scope", "NET"]);
    assert_eq!(b.ids().len(), 2, "one registry holds both");
    // Now the first host's schema lacks a value stored entries use: it is refused in turn.
    let (code, msg) = a.fail(&["list"]);
    assert_eq!(code, 2, "{msg}");
    assert!(
        msg.contains(&format!(
            "scope `NET` (used by {})",
            net["id"].as_str().expect("id")
        )),
        "{msg}"
    );
    assert!(
        !b.data_dir().exists() && !a.data_dir().exists(),
        "nothing local"
    );
}

/// A namespace written as the release before storage format 2 wrote it (each shard under the
/// tag `{namespace/s}`, entries in entry format 2, ids interleaved) is migrated in place by
/// `registry migrate`: the export reads the same before and after, the old keys are gone, and
/// new entries are numbered densely after the highest id.
#[test]
fn a_namespace_of_the_previous_format_migrates_and_reads_the_same() {
    let nodes = cluster_nodes();
    let port: u16 = nodes[0]
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the first node URL");
    let ns = namespace("migrate");
    // What an earlier release's creation left: the shard count under the old tags, no format.
    for shard in 0..SHARDS {
        let meta = format!("{{{ns}/{shard}}}:meta");
        let set = redis_cli(port, &["-c", "hset", &meta, "shards", &SHARDS.to_string()]);
        assert_eq!(set, "1", "{meta}: {set}");
    }
    let h = host(&nodes, &ns, 0);
    h.write("load.jsonl", &requests(0..600, "migrated"));
    let loaded = h.json(&["batch", "load.jsonl"]);
    assert_eq!(loaded["created"], 600, "{loaded}");
    h.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    // The numbers are interleaved: shard s hands out the numbers n with (n - 1) % 12 == s.
    let old_entry = redis_cli(port, &["-c", "exists", &format!("{{{ns}/0}}:e:SEC-RUL a1")]);
    assert_eq!(old_entry, "1", "written under the old tag");
    let before = h.ok(&["export"]);

    let done = h.json(&["migrate"]);
    assert_eq!(done["migrated"], true, "{done}");
    assert_eq!(done["entries"], 600, "{done}");
    assert_eq!(
        h.ok(&["export"]),
        before,
        "the same entries, revisions and ids"
    );
    for shard in 0..SHARDS {
        let left = redis_cli(port, &["-c", "exists", &format!("{{{ns}/{shard}}}:meta")]);
        assert_eq!(left, "0", "shard {shard}'s old keys are deleted");
    }
    assert_eq!(h.json(&["get", "SEC-RUL-001"])["status"], "DEPRECATED");
    let checked = h.ok(&["check", "--rate", "0"]);
    assert!(
        checked.contains("600 entries (601 revisions) in 12 shards: no problem found"),
        "{checked}"
    );
    let highest = before
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_owned();
            id.strip_prefix("GOV-RUL-")?.parse::<u64>().ok()
        })
        .max()
        .expect("GOV entries");
    let added = h.json(&[
        "add",
        "--title",
        "A rule after the migration",
        "--scope",
        "GOV",
    ]);
    assert_eq!(
        added["id"],
        format!("GOV-RUL-{:03}", highest + 1),
        "{added}"
    );
    // Once is enough.
    assert_eq!(h.json(&["migrate"])["migrated"], false);
}
