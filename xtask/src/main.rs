//! The project's build system: `cargo xtask <command>`.
//!
//! - `ci`: what CI runs (`.ci/run`), the README's test command: `tidy`, `deny`, `lint`, then
//!   `test`, the quick checks first, stopping at the first that fails.
//! - `test [ARGS...]`: builds every crate (so the plugin libraries exist next to the test
//!   binaries), starts a local Redis Cluster with `scripts/redis-cluster` (ports 7100-7105, in
//!   `target/redis-cluster-test`; or uses the one `REGISTRY_TEST_REDIS_NODES` names), installs
//!   Chromium and its WebDriver server with `scripts/chromium install` when missing (Debian's
//!   packages, for the dashboard's browser test), runs the workspace tests with
//!   `REGISTRY_TEST_REDIS_NODES`, `REGISTRY_TEST_REDIS_SCRIPT`, `REGISTRY_TEST_CHROMIUM` and
//!   `REGISTRY_TEST_CHROMEDRIVER` set (extra arguments go to `cargo test`), stops the cluster,
//!   runs the plugin template's own tests (outside the workspace), runs each benchmark but the
//!   slow `generator` once as a test (`cargo test --bench NAME`: their built-in checks, nothing
//!   timed), and compiles that one too (test profile), so a change that breaks them fails here.
//!   It refuses to run with `UPDATE_SNAPSHOTS` set, so snapshot tests always compare.
//! - `demo`: builds in release, registers a set of sample rules through the `registry` command
//!   on the embedded default (redb in `./.registry`), and shows them.
//! - `lint`: formatting, clippy with warnings denied, and docs without warnings, for the
//!   workspace and for the plugin template outside it.
//! - `tidy`: the promises of ARCHITECTURE.md no compiler checks (dependency edges, a `//!` line
//!   in every source file, no file over 1,500 lines).
//! - `deny`: `cargo deny check licenses bans sources` (`deny.toml`), installing cargo-deny if
//!   missing.
//! - `prowler`: trains the generator's model on Prowler's security checks (`data/prowler/`) and
//!   reports its cross-validated accuracy.
//! - `bench-lint [--files N] [--runs R]`: times `registry lint` against ripgrep over a generated
//!   tree of N files.
//! - `bench-batch [--count N] [--shards 1,2,4] [--runs R]`: `registry batch` throughput and peak
//!   RSS per shard count, in one table.
//! - `bench [--quick] [--filter NAME] [--compare OLD.json]`: every benchmark (criterion, single
//!   add latency, scale test, batch, start-up, Redis, the server under load, search), into `target/bench-report/` as `report.json`, `report.md`
//!   and SVG charts; `bench --compare OLD.json --against NEW.json` compares two reports.
//!
//! Everything built or written goes to Cargo's target directory, `CARGO_TARGET_DIR` when set.
//!
//! Plain `std` and `serde_json`, plus plotters' SVG backend for the charts (without its font
//! and bitmap features), so that `cargo xtask` itself compiles in seconds.

mod bench;
mod bench_batch;
mod bench_lint;
mod bench_redis;
mod bench_search;
mod bench_serve;
mod bench_startup;
mod chart;
mod demo;
mod deny;
mod fuzz;
mod loadgen;
mod markdown;
mod prowler;
mod report;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(&args[1..]),
        Some("demo") => demo::run(),
        Some("lint") => lint(),
        Some("tidy") => tidy::run(),
        Some("deny") => deny::run(),
        Some("prowler") => prowler::run(&args[1..]),
        Some("bench-lint") => bench_lint::run(&args[1..]),
        Some("bench-batch") => bench_batch::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | test [cargo test args...] | demo | lint | tidy | deny | prowler [--folds K] | bench-lint [--files N] [--runs R] | bench-batch [--count N] [--shards 1,2,4] [--runs R] | bench [--quick] [--filter NAME] [--compare OLD.json [--against NEW.json]] | fuzz [--seconds N] [--merge] [TARGET...]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when not
/// absolute) when set, else `target/` in the workspace root.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The workspace root (xtask lives in its `xtask/` directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the workspace root, failing if it fails.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// The median of a non-empty list under `cmp`: for an even length, the upper of the two middle
/// values, so it is always a value that was measured.
///
/// # Panics
/// If `values` is empty.
pub fn median<T: Copy>(values: &mut [T], cmp: impl FnMut(&T, &T) -> std::cmp::Ordering) -> T {
    values.sort_by(cmp);
    values[values.len() / 2]
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The variable naming the Redis Cluster the tests use (comma-separated `redis://` URLs).
const REDIS_NODES_VAR: &str = "REGISTRY_TEST_REDIS_NODES";

/// The variable giving the tests the cluster script, for the tests that start their own.
const REDIS_SCRIPT_VAR: &str = "REGISTRY_TEST_REDIS_SCRIPT";

/// The variable giving the tests the `registry` binary `cargo install` put into an empty
/// prefix, for the test that runs it alone.
const INSTALLED_VAR: &str = "REGISTRY_TEST_INSTALLED_BIN";

/// The variable giving the tests the `pre-commit` command (installed from PyPI when missing).
const PRE_COMMIT_VAR: &str = "REGISTRY_TEST_PRE_COMMIT";

/// The variables giving the dashboard's browser test Chromium and its WebDriver server, where
/// `scripts/chromium install` puts them (Debian's `chromium` and `chromium-driver`).
const CHROMIUM_VAR: &str = "REGISTRY_TEST_CHROMIUM";
const CHROMEDRIVER_VAR: &str = "REGISTRY_TEST_CHROMEDRIVER";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Installs the `registry` binary with `cargo install` into an empty prefix under the target
/// directory, as a user would, and returns its path. It is the debug build of the test run,
/// from the same target directory, so it costs a copy, not a build.
fn install_alone(cargo: &str) -> Result<PathBuf, String> {
    let prefix = target_dir().join("install-test");
    if prefix.exists() {
        std::fs::remove_dir_all(&prefix)
            .map_err(|e| format!("cannot empty {}: {e}", prefix.display()))?;
    }
    let prefix_arg = prefix.display().to_string();
    let target_arg = target_dir().display().to_string();
    run(
        cargo,
        &[
            "install",
            "--path",
            "crates/cli",
            "--root",
            &prefix_arg,
            "--debug",
            "--locked",
            "--offline",
            "--target-dir",
            &target_arg,
        ],
    )?;
    Ok(prefix.join("bin").join("registry"))
}

/// The first port of the cluster `cargo xtask test` starts (it uses six, and six more for the
/// cluster bus 10000 above).
const REDIS_BASE_PORT: &str = "7100";

/// A Redis Cluster started by `scripts/redis-cluster` for the test run, stopped by the same
/// script when dropped, so that it stops whether the tests pass, fail or the run is cut short
/// by an error.
struct RedisCluster {
    script: PathBuf,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the cluster in `dir` and returns it with its node URLs.
    fn start(script: PathBuf, dir: PathBuf) -> Result<(RedisCluster, String), String> {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "$ {} start {} {REDIS_BASE_PORT}",
            script.display(),
            dir.display()
        );
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(REDIS_BASE_PORT)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        // From here on the script may have started nodes: the guard stops them on every path.
        let cluster = RedisCluster { script, dir };
        if !out.status.success() {
            return Err(format!("the Redis Cluster did not start ({})", out.status));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let nodes = stdout
            .lines()
            .find_map(|l| l.strip_prefix("nodes="))
            .map(str::to_owned)
            .ok_or_else(|| format!("the cluster script printed no `nodes=` line: {stdout}"))?;
        Ok((cluster, nodes))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let status = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "xtask: stopping the Redis Cluster in {} failed ({status:?})",
                self.dir.display()
            );
        }
    }
}

/// Why `cargo xtask test` refuses to run with `UPDATE_SNAPSHOTS` set.
const UPDATE_SNAPSHOTS_SET: &str = "UPDATE_SNAPSHOTS is set: `cargo xtask test` compares \
    snapshots and never rewrites them; unset it (rewrite them with `UPDATE_SNAPSHOTS=1 cargo \
    test -p CRATE`, then review the diff)";

/// `tidy`, `deny`, `lint` and `test`, in that order: a failure of the quick checks shows before
/// the long build and test run.
/// Seconds `cargo xtask ci` fuzzes each target for.
const CI_FUZZ_SECONDS: &str = "10";

fn ci() -> Result<(), String> {
    // A clean clone is built once: incremental state would only take disk (several GB for the
    // test binaries) and time.
    // SAFETY: nothing else runs in this process yet; no thread reads the environment meanwhile.
    unsafe { std::env::set_var("CARGO_INCREMENTAL", "0") };
    type Step = fn() -> Result<(), String>;
    let steps: [(&str, Step); 5] = [
        ("tidy", tidy::run),
        ("deny", deny::run),
        ("lint", lint),
        ("test", || test(&[])),
        // Each target briefly, the repository's corpus (and so every past finding) first.
        ("fuzz", || {
            fuzz::run(&["--seconds".to_owned(), CI_FUZZ_SECONDS.to_owned()])
        }),
    ];
    // Each step's time, and the total, so that the 20-minute budget is watched from the log.
    let started = std::time::Instant::now();
    let mut took = Vec::with_capacity(steps.len());
    for (name, step) in steps {
        eprintln!("== cargo xtask {name}");
        let begun = std::time::Instant::now();
        step().map_err(|e| format!("{name}: {e}"))?;
        let seconds = begun.elapsed().as_secs();
        eprintln!("== cargo xtask {name}: done in {seconds} s");
        took.push(format!("{name} {seconds} s"));
    }
    eprintln!(
        "== ci: passed in {} s ({})",
        started.elapsed().as_secs(),
        took.join(", ")
    );
    Ok(())
}

fn test(extra: &[String]) -> Result<(), String> {
    let cargo = cargo();
    // Snapshot tests rewrite their files instead of comparing when this is set.
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        return Err(UPDATE_SNAPSHOTS_SET.into());
    }
    // Plugin libraries first: the tests load them from the target directory.
    run(&cargo, &["build", "--workspace"])?;
    let installed = install_alone(&cargo)?;
    let pre_commit = deny::pre_commit()?;
    run(
        &root().join("scripts/chromium").display().to_string(),
        &["install"],
    )?;
    let script = root().join("scripts/redis-cluster");
    // A cluster named in the environment is used as it is; otherwise one is started for this
    // run and stopped when `cluster` is dropped, whatever the outcome.
    let (cluster, nodes) = match std::env::var(REDIS_NODES_VAR) {
        Ok(nodes) if !nodes.trim().is_empty() => (None, nodes),
        _ => {
            let (cluster, nodes) =
                RedisCluster::start(script.clone(), target_dir().join("redis-cluster-test"))?;
            (Some(cluster), nodes)
        }
    };
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    eprintln!("$ {REDIS_NODES_VAR}={nodes} {cargo} {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(&args)
        .env(REDIS_NODES_VAR, &nodes)
        .env(REDIS_SCRIPT_VAR, &script)
        .env(INSTALLED_VAR, &installed)
        .env(PRE_COMMIT_VAR, &pre_commit)
        .env(CHROMIUM_VAR, CHROMIUM)
        .env(CHROMEDRIVER_VAR, CHROMEDRIVER)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    drop(cluster);
    if !status.success() {
        return Err(format!("`{cargo} {}` failed ({status})", args.join(" ")));
    }
    test_template(&cargo)?;
    bench_checks(&cargo)?;
    // The benchmarks left out of the checks are still compiled, in the test profile like the
    // others. Not in the bench profile: that is a release build of the whole workspace, 4 min
    // 36 s of a 17 min 24 s `.ci/run` on a fresh clone with 2 cores, to find what the debug
    // build of the same code already finds (`cargo xtask bench` builds it when it runs).
    let mut args = vec!["test", "--package", "registry-benches", "--no-run"];
    for name in SLOW_BENCHES {
        args.extend(["--bench", name]);
    }
    run(&cargo, &args)
}

/// Benchmarks left out of [`bench_checks`]: `generator` trains the model on Prowler's checks
/// seven times, over a minute in a debug build. It is still compiled (`cargo test --no-run`),
/// and what it runs is tested elsewhere (the generator's Prowler test, the CLI's `train`).
const SLOW_BENCHES: &[&str] = &["generator"];

/// Runs each benchmark once, as a test (`cargo test --bench NAME`: criterion's test mode, each
/// benchmark function once, nothing timed), in the debug build of the workspace test run and
/// against the plugin libraries built for it, so the checks the benchmarks make of what they
/// measure (rendering gives the configs the pipeline stored, every add creates or finds its
/// entry, ...) run in CI. The benchmarks are read from `cargo metadata`, so a new one is run
/// without being named here.
fn bench_checks(cargo: &str) -> Result<(), String> {
    let out = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed ({})", out.status));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let benches: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "registry-benches")
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| t["name"].as_str())
        .filter(|name| !SLOW_BENCHES.contains(name))
        .collect();
    if benches.is_empty() {
        return Err("cargo metadata lists no benchmark of registry-benches".into());
    }
    // `--workspace`, as the test run above, so no dependency is built again with other features.
    let mut args = vec!["test", "--workspace"];
    for name in benches {
        args.extend(["--bench", name]);
    }
    run(cargo, &args)
}

/// The plugin template's own tests (its validator's conformance suite, in process and through
/// the library it builds), which live outside the workspace. Like [`lint_template`] it is
/// resolved offline from the workspace's `Cargo.lock`, and it builds into
/// `target/plugin-template`, where the CLI's template test builds a copy of it: the
/// dependencies are compiled once for both.
fn test_template(cargo: &str) -> Result<(), String> {
    let template = root().join("examples/plugin-template");
    std::fs::copy(root().join("Cargo.lock"), template.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy Cargo.lock into {}: {e}", template.display()))?;
    let manifest = template.join("Cargo.toml");
    let manifest = manifest
        .to_str()
        .ok_or("the template's path is not UTF-8")?;
    let args = ["test", "--manifest-path", manifest, "--offline"];
    eprintln!("$ {cargo} {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir().join("plugin-template"))
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo test on the plugin template: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the plugin template's tests failed ({status})"))
    }
}

/// Formatting and clippy for the plugin template, which lives outside the workspace. It is
/// resolved offline from the workspace's `Cargo.lock` (copied next to it; ignored by git), so
/// it is checked against the dependency versions the project tests, and its build goes to
/// `target/plugin-template-lint` so the workspace's target directory is not disturbed.
fn lint_template(cargo: &str) -> Result<(), String> {
    let template = root().join("examples/plugin-template");
    std::fs::copy(root().join("Cargo.lock"), template.join("Cargo.lock"))
        .map_err(|e| format!("cannot copy Cargo.lock into {}: {e}", template.display()))?;
    let manifest = template.join("Cargo.toml");
    let manifest = manifest
        .to_str()
        .ok_or("the template's path is not UTF-8")?;
    run(cargo, &["fmt", "--manifest-path", manifest, "--check"])?;
    let status = Command::new(cargo)
        .args([
            "clippy",
            "--manifest-path",
            manifest,
            "--all-targets",
            "--offline",
        ])
        .args(["--", "-D", "warnings"])
        .env(
            "CARGO_TARGET_DIR",
            target_dir().join("plugin-template-lint"),
        )
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo clippy on the plugin template: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo clippy reported problems in examples/plugin-template".into())
    }
}

fn lint() -> Result<(), String> {
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--check"])?;
    run(
        &cargo,
        &["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"],
    )?;
    // The fuzz workspace builds with --locked: a dependency added to a crate it uses must be
    // in its lock file too, which this says here rather than in the fuzz step at the end.
    let locked = Command::new(&cargo)
        .args(["metadata", "--manifest-path", "fuzz/Cargo.toml", "--locked"])
        .args(["--format-version", "1"])
        .stdout(std::process::Stdio::null())
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !locked.success() {
        return Err(
            "fuzz/Cargo.lock is out of date: run `cargo metadata` in fuzz/ and commit it".into(),
        );
    }
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    lint_template(&cargo)?;
    let status = Command::new(&cargo)
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo doc reported warnings".into())
    }
}
