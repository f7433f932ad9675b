//! `cargo xtask bench [--quick] [--filter NAME] [--compare OLD.json]`: every benchmark of the
//! project in one command, into one report with charts; and `cargo xtask bench --compare
//! OLD.json --against NEW.json`, which compares two reports and runs nothing.
//!
//! A run builds the workspace in release (the plugin libraries first, so no stale one is
//! loaded), then measures, each section in turn:
//! - criterion: every benchmark of `registry-benches` (each stage dynamic and static, single
//!   adds, the redb ceiling), into `target/bench-report/criterion` (`CRITERION_HOME`);
//! - `add/latency`: the `latency` bench target times single adds one by one, miss and hit;
//! - `scale`: `registry scale-test`, pipeline throughput, memory and bytes on disk;
//! - `batch/shards` and `batch/batch_size`: `registry batch` with 1, 2 and 4 shards, and with
//!   100, 1,000 and 10,000 requests per call (a configuration in both is run once);
//! - `startup`: a whole `registry get` with the built-in plugins and with their libraries
//!   ([`bench_startup`]);
//! - `redis`: `registry batch` into a loopback Redis Cluster, its rate and the cluster's memory
//!   per entry, and the memory 1,000,000,000 entries would take ([`bench_redis`]);
//! - `serve`: `registry serve` under load over 127.0.0.1 (batch, get, list, register from 1 and
//!   from 64 clients), and the command line doing the same work ([`bench_serve`]);
//! - `search`: `GET /v1/search` over 1,000,000 entries, and the writes while the index follows
//!   ([`bench_search`]; its registry is kept in `target/bench-search` for the next run).
//!
//! Then it writes `report.json` (the figures, for comparing runs), `report.md` and the SVG
//! charts into `target/bench-report/`. `--quick` runs smaller counts, shorter criterion
//! measurements and skips the training benchmarks, to finish in minutes. `--filter NAME` runs
//! only the criterion benchmarks whose id contains NAME and the sections whose name does;
//! `--filter scale,redis` runs those that contain either.
//! Every data directory is made under `target/bench-report/scratch` (on the disk the project
//! lives on, not a memory-backed /tmp, so that durable commits cost what they cost) and
//! removed after its run.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::bench_batch::{batch_once, requests};
use crate::bench_redis::{self, REDIS};
use crate::bench_search::{self, SEARCH, SearchSizes};
use crate::bench_serve::{self, SERVE, ServeSizes};
use crate::bench_startup::{self, STARTUP};
use crate::chart::{self, Point};
use crate::markdown::{self, batch_id, value};
use crate::report::{
    BatchRow, Better, Commit, Figure, Machine, Report, Sizing, SizingInputs, criterion_figures,
    latency_figures, ratio_figures, read_criterion, units,
};
use crate::root;

const USAGE: &str = "usage: cargo xtask bench [--quick] [--filter NAME] [--compare OLD.json] | bench --compare OLD.json --against NEW.json";

/// The package of criterion benchmarks.
const BENCH_PACKAGE: &str = "registry-benches";
/// Its bench target that times single adds (not a criterion benchmark).
const LATENCY_TARGET: &str = "latency";
/// Criterion ids containing this are skipped by `--quick`: training a model takes minutes.
const QUICK_SKIPS: &str = "train";

/// The sections besides criterion, by the names `--filter` matches.
const SCALE: &str = "scale";
const BATCH_SHARDS: &str = "batch/shards";
const BATCH_SIZE: &str = "batch/batch_size";
const LATENCY: &str = "add/latency";

/// Shard counts of `batch/shards`, at [`DEFAULT_BATCH_SIZE`].
const SHARD_COUNTS: [usize; 3] = [1, 2, 4];
/// Batch sizes of `batch/batch_size`, at the default shard count (one per core).
const BATCH_SIZES: [usize; 3] = [100, 1000, 10_000];
/// `registry batch`'s default `--batch-size`.
const DEFAULT_BATCH_SIZE: usize = 1000;

/// How much each section measures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sizes {
    scale_count: usize,
    scale_runs: usize,
    batch_requests: usize,
    batch_runs: usize,
    latency_count: usize,
    /// Runs of `registry get` of each kind in the start-up section.
    startup_runs: usize,
    /// Requests per run of the Redis section, and its runs.
    redis_requests: usize,
    redis_runs: usize,
    /// The server's load phases and the commands beside them.
    serve: ServeSizes,
    /// The search section's registry, queries and write phase.
    search: SearchSizes,
    /// Criterion's arguments (none: its defaults of 3 s warm-up, 5 s and 100 samples).
    criterion_args: &'static [&'static str],
    /// Rough seconds one criterion benchmark takes, warm-up, measurement and analysis.
    criterion_s: f64,
}

/// The full run: the scale test at the issue's million entries, once, since it takes about a
/// minute; batch runs three times each so that their range means something.
const FULL: Sizes = Sizes {
    scale_count: 1_000_000,
    redis_requests: 100_000,
    redis_runs: 2,
    scale_runs: 1,
    batch_requests: 200_000,
    batch_runs: 3,
    latency_count: 5000,
    startup_runs: 200,
    serve: ServeSizes {
        entries: 20_000,
        get_requests: 300_000,
        list_requests: 30_000,
        register_1_requests: 3000,
        register_n_requests: 30_000,
        phase_s: 10,
        cli_get_runs: 200,
        cli_list_runs: 50,
        cli_add_runs: 100,
    },
    search: bench_search::FULL,
    criterion_args: &[],
    criterion_s: 10.0,
};

/// The quick run: under five minutes on 2 cores once the build is done.
const QUICK: Sizes = Sizes {
    scale_count: 100_000,
    redis_requests: 20_000,
    redis_runs: 2,
    scale_runs: 3,
    batch_requests: 50_000,
    batch_runs: 3,
    latency_count: 1000,
    startup_runs: 50,
    serve: ServeSizes {
        entries: 5000,
        get_requests: 60_000,
        list_requests: 6000,
        register_1_requests: 500,
        register_n_requests: 6000,
        phase_s: 3,
        cli_get_runs: 50,
        cli_list_runs: 20,
        cli_add_runs: 30,
    },
    search: bench_search::QUICK,
    criterion_args: &[
        "--warm-up-time",
        "0.5",
        "--measurement-time",
        "1",
        "--sample-size",
        "10",
    ],
    criterion_s: 3.0,
};

/// For the duration estimate only: what the CPU work of the pipeline costs per entry on 2 cores,
/// and what one durable commit costs (an fsync), seconds.
const ROUGH_CPU_S_PER_ENTRY: f64 = 1.0 / 30_000.0;
const ROUGH_COMMIT_S: f64 = 0.005;
/// One whole `registry get`, seconds.
const ROUGH_STARTUP_S: f64 = 0.03;
/// Process start, opening and removing a data directory, per run, seconds.
const ROUGH_RUN_OVERHEAD_S: f64 = 1.5;
/// Criterion benchmarks expected before they can be listed (after the build), and how many of
/// them `--quick` skips; the count is corrected once they are listed.
const EXPECTED_CRITERION_BENCHES: usize = 34;
const EXPECTED_TRAINING_BENCHES: usize = 2;

#[derive(Debug, Default, PartialEq)]
struct Options {
    quick: bool,
    filter: Option<String>,
    compare: Option<PathBuf>,
    against: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value: {USAGE}"))
        };
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--filter" => {
                let f = value("--filter")?;
                if f.is_empty() {
                    return Err("--filter is empty: give part of a benchmark's name".into());
                }
                o.filter = Some(f);
            }
            "--compare" => o.compare = Some(value("--compare")?.into()),
            "--against" => o.against = Some(value("--against")?.into()),
            other => return Err(format!("unknown argument `{other}`: {USAGE}")),
        }
    }
    if o.against.is_some() {
        if o.compare.is_none() {
            return Err(format!("--against needs --compare OLD.json: {USAGE}"));
        }
        if o.quick || o.filter.is_some() {
            return Err(
                "--against compares two reports and runs nothing: --quick and --filter do not apply"
                    .into(),
            );
        }
    }
    Ok(o)
}

/// One configuration of `registry batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BatchConfig {
    shards: usize,
    batch_size: usize,
}

/// What a run will do.
#[derive(Debug, PartialEq)]
struct Plan {
    sizes: Sizes,
    quick: bool,
    filter: Option<String>,
    latency: bool,
    scale: bool,
    startup: bool,
    redis: bool,
    serve: bool,
    search: bool,
    shard_series: Vec<BatchConfig>,
    size_series: Vec<BatchConfig>,
    /// The configurations of both series, each once.
    batch: Vec<BatchConfig>,
}

impl Plan {
    fn new(options: &Options, cores: usize) -> Plan {
        let on = |section: &str| matches(options.filter.as_deref(), section);
        let shard_series: Vec<BatchConfig> = if on(BATCH_SHARDS) {
            SHARD_COUNTS
                .iter()
                .map(|&shards| BatchConfig {
                    shards,
                    batch_size: DEFAULT_BATCH_SIZE,
                })
                .collect()
        } else {
            Vec::new()
        };
        let size_series: Vec<BatchConfig> = if on(BATCH_SIZE) {
            BATCH_SIZES
                .iter()
                .map(|&batch_size| BatchConfig {
                    shards: cores.max(1),
                    batch_size,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut batch: Vec<BatchConfig> =
            shard_series.iter().chain(&size_series).copied().collect();
        batch.sort();
        batch.dedup();
        Plan {
            sizes: if options.quick { QUICK } else { FULL },
            quick: options.quick,
            filter: options.filter.clone(),
            latency: on(LATENCY),
            scale: on(SCALE),
            startup: on(STARTUP),
            redis: on(REDIS),
            serve: on(SERVE),
            search: on(SEARCH),
            shard_series,
            size_series,
            batch,
        }
    }

    /// Whether a criterion benchmark is part of this run.
    fn criterion_selects(&self, id: &str) -> bool {
        matches(self.filter.as_deref(), id) && !(self.quick && id.contains(QUICK_SKIPS))
    }

    /// A rough duration of the measuring, seconds, from the counts and the rates above; the
    /// build is not counted (seconds when it is up to date, minutes from scratch).
    fn estimate_s(&self, criterion_benches: usize) -> f64 {
        let s = &self.sizes;
        let entries_s = |n: usize, batch_size: usize| {
            n as f64 * ROUGH_CPU_S_PER_ENTRY
                + (n as f64 / batch_size as f64).ceil() * ROUGH_COMMIT_S
                + ROUGH_RUN_OVERHEAD_S
        };
        let mut total = criterion_benches as f64 * s.criterion_s;
        if self.startup {
            total += 2.0 * s.startup_runs as f64 * ROUGH_STARTUP_S;
        }
        if self.serve {
            total += bench_serve::estimate_s(
                &s.serve,
                ROUGH_STARTUP_S,
                ROUGH_COMMIT_S,
                ROUGH_CPU_S_PER_ENTRY,
            );
        }
        if self.search {
            total += bench_search::estimate_s(&s.search);
        }
        if self.latency {
            total += s.latency_count as f64 * (ROUGH_COMMIT_S + 0.001) + ROUGH_RUN_OVERHEAD_S;
        }
        if self.scale {
            total += s.scale_runs as f64 * entries_s(s.scale_count, DEFAULT_BATCH_SIZE);
        }
        for c in &self.batch {
            total += s.batch_runs as f64 * entries_s(s.batch_requests, c.batch_size);
        }
        total
    }

    /// What will run, for the user, before it starts.
    fn describe(&self) -> String {
        let s = &self.sizes;
        // With a filter, how many benchmarks it selects is known only once they are listed.
        let expected = self.filter.is_none().then(|| {
            EXPECTED_CRITERION_BENCHES
                - if self.quick {
                    EXPECTED_TRAINING_BENCHES
                } else {
                    0
                }
        });
        let mut lines = vec![format!(
            "cargo xtask bench ({}{}): what will run",
            if self.quick { "quick" } else { "full" },
            self.filter
                .as_deref()
                .map_or(String::new(), |f| format!(", filter `{f}`"))
        )];
        lines.push("  build        release, the plugin libraries first, then the workspace".into());
        let timing = if self.quick {
            "0.5 s warm-up, 1 s, 10 samples each, training benchmarks skipped"
        } else {
            "each benchmark file's own settings, about 1-3 s warm-up and 3-5 s each"
        };
        let which = self
            .filter
            .as_deref()
            .map_or("every benchmark".to_owned(), |f| {
                format!("the benchmarks whose id contains `{f}`")
            });
        lines.push(format!(
            "  criterion    {which} of {BENCH_PACKAGE} ({timing})"
        ));
        if self.latency {
            lines.push(format!(
                "  {LATENCY}  {} single adds one at a time, miss and hit each",
                value(units::COUNT, s.latency_count as f64)
            ));
        }
        if self.startup {
            lines.push(format!(
                "  {STARTUP}      registry get, whole process, {} runs with built-in plugins and {} \
                 with their libraries, alternating",
                s.startup_runs, s.startup_runs
            ));
        }
        if self.scale {
            lines.push(format!(
                "  {SCALE}        registry scale-test, {} entries x {} run(s)",
                value(units::COUNT, s.scale_count as f64),
                s.scale_runs
            ));
        }
        if self.redis {
            lines.push(format!(
                "  {REDIS}        registry batch into a loopback Redis Cluster (3 + 3 nodes, 12 \
                 shards), {} requests x {} runs",
                value(units::COUNT, s.redis_requests as f64),
                s.redis_runs
            ));
        }
        if self.serve {
            let v = &s.serve;
            lines.push(format!(
                "  {SERVE}        registry serve on 127.0.0.1: a batch of {} requests, then get \
                 ({} clients), list ({} clients), register (1 and {} clients), each at most {} \
                 s; then registry batch, {} get, {} list and {} add runs beside it",
                value(units::COUNT, v.entries as f64),
                bench_serve::GET_CLIENTS,
                bench_serve::LIST_CLIENTS,
                bench_serve::REGISTER_CLIENTS,
                v.phase_s,
                v.cli_get_runs,
                v.cli_list_runs,
                v.cli_add_runs
            ));
        }
        if self.search {
            lines.push(bench_search::describe(&s.search));
        }
        if !self.batch.is_empty() {
            let configs: Vec<String> = self
                .batch
                .iter()
                .map(|c| {
                    format!(
                        "{} shard(s)/{}",
                        c.shards,
                        value(units::COUNT, c.batch_size as f64)
                    )
                })
                .collect();
            lines.push(format!(
                "  batch        registry batch, {} requests x {} runs for each of: {}",
                value(units::COUNT, s.batch_requests as f64),
                s.batch_runs,
                configs.join(", ")
            ));
        }
        let criterion = match expected {
            Some(n) => format!("assuming about {n} criterion benchmarks"),
            None => "not counting the criterion benchmarks the filter selects".to_owned(),
        };
        lines.push(format!(
            "estimated duration: about {} after the build (an estimate from typical rates on \
             2 cores, {criterion})",
            value(units::SECONDS, self.estimate_s(expected.unwrap_or(0)))
        ));
        lines.join("\n")
    }
}

/// Whether a name is selected by `--filter`: no filter, or one of its comma-separated parts is
/// in the name.
fn matches(filter: Option<&str>, name: &str) -> bool {
    filter.is_none_or(|f| {
        f.split(',')
            .any(|part| !part.is_empty() && name.contains(part))
    })
}

/// `cargo xtask bench`.
///
/// # Errors
/// One line naming what failed: an argument, a report that cannot be read, a build, a
/// benchmark, or writing the report.
pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    if let (Some(old), Some(new)) = (&options.compare, &options.against) {
        let old = Report::read(old)?;
        let new = Report::read(new)?;
        print!("{}", markdown::comparison(&old, &new));
        return Ok(());
    }
    // Read before anything runs: a bad file fails at once, and OLD.json may be the report this
    // run is about to replace.
    let old = options.compare.as_deref().map(Report::read).transpose()?;

    let start = Instant::now();
    let machine = Machine::this();
    let plan = Plan::new(&options, machine.cores as usize);
    eprintln!("{}", plan.describe());

    let out_dir = crate::target_dir().join("bench-report");
    let criterion_home = out_dir.join("criterion");
    remove(&criterion_home)?;
    for stale in [
        "latency.json",
        "throughput-batch-size.svg",
        "throughput-shards.svg",
        "latency-single-add.svg",
    ] {
        remove(&out_dir.join(stale))?;
    }
    fs::create_dir_all(&criterion_home)
        .map_err(|e| format!("cannot create {}: {e}", criterion_home.display()))?;
    let scratch = Scratch::new(out_dir.join("scratch"))?;

    build()?;
    let metadata = cargo_metadata()?;
    let targets = bench_targets(&metadata, BENCH_PACKAGE);

    let mut notes = vec![crate::report::data_dirs_note(&[
        &scratch.path,
        &crate::target_dir().join("bench-data"),
    ])];
    let benches = criterion(&plan, &targets, &criterion_home, &mut notes)?;
    let latencies = if !plan.latency {
        None
    } else if !targets.iter().any(|t| t == LATENCY_TARGET) {
        notes.push(format!(
            "{LATENCY} did not run: {BENCH_PACKAGE} has no bench target `{LATENCY_TARGET}`"
        ));
        None
    } else {
        Some(latency(&plan, &out_dir)?)
    };
    let registry = crate::target_dir().join("release/registry");
    let scale = if plan.scale {
        scale_test(&plan, &registry, &scratch.path)?
    } else {
        Vec::new()
    };
    let batch = batch(&plan, &registry, &scratch.path)?;
    let redis = if plan.redis {
        let input = requests(plan.sizes.redis_requests)?;
        progress(&format!(
            "{REDIS}: {} requests x {} runs into a loopback Redis Cluster",
            plan.sizes.redis_requests, plan.sizes.redis_runs
        ));
        bench_redis::run(
            &registry,
            &scratch.path,
            &input,
            plan.sizes.redis_requests,
            plan.sizes.redis_runs,
        )?
    } else {
        Vec::new()
    };
    let startup = if plan.startup {
        let s = bench_startup::run(&registry, &scratch.path, plan.sizes.startup_runs)?;
        progress(&format!(
            "{STARTUP}: {} runs of registry get each, built in and dynamic",
            s.builtin.len()
        ));
        Some(s)
    } else {
        None
    };
    let serve = if plan.serve {
        progress(&format!(
            "{SERVE}: registry serve under load, then the command line beside it"
        ));
        Some(bench_serve::run(
            &registry,
            &scratch.path,
            &plan.sizes.serve,
        )?)
    } else {
        None
    };
    let search = if plan.search {
        Some(bench_search::run(&registry, &plan.sizes.search)?)
    } else {
        None
    };
    drop(scratch);

    let mut figures = criterion_figures(&benches);
    figures.extend(ratio_figures(&benches, &figures));
    figures.extend(scale_figures(&scale, plan.sizes.scale_count));
    if let Some(l) = &latencies {
        figures.extend(latency_figures("miss", &l.miss));
        figures.extend(latency_figures("hit", &l.hit));
    }
    if let Some(s) = &startup {
        figures.extend(bench_startup::figures(s));
    } else {
        notes.push(format!("{STARTUP} did not run (filter)"));
    }
    figures.extend(bench_redis::figures(&redis, plan.sizes.redis_requests));
    figures.extend(bench_redis::sizing(&figures));
    if !plan.redis {
        notes.push(format!("{REDIS} did not run (filter)"));
    }
    match &serve {
        Some(s) => figures.extend(bench_serve::figures(s)),
        None => notes.push(format!("{SERVE} did not run (filter)")),
    }
    match &search {
        Some(s) => {
            figures.extend(bench_search::figures(s));
            notes.push(bench_search::note(s));
        }
        None => notes.push(format!("{SEARCH} did not run (filter)")),
    }
    let rows = batch_rows(&plan, &batch);
    figures.extend(batch_figures(&rows));
    let sizing = sizing(&figures, &rows, &scale);
    match &sizing {
        Some(s) => figures.extend(s.figures()),
        None => notes.push(
            "no sizing projection: it needs the scale test (bytes per entry, peak RSS)".into(),
        ),
    }
    if !plan.scale {
        notes.push(format!("{SCALE} did not run (filter)"));
    }
    if plan.batch.is_empty() {
        notes.push("batch did not run (filter)".into());
    }

    let report = Report {
        machine,
        commit: commit(),
        date: crate::report::iso8601_utc(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        quick: plan.quick,
        filter: plan.filter.clone(),
        duration_s: (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        figures,
        batch: rows,
        sizing,
        latency_count: latencies.as_ref().map(|l| l.miss.len() as u64),
        notes,
    };
    let charts = draw(&report, latencies.as_ref(), &out_dir)?;
    let comparison = old.as_ref().map(|o| markdown::comparison(o, &report));
    let json = out_dir.join("report.json");
    write(
        &json,
        &serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| format!("cannot write {}: {e}", json.display()))?,
    )?;
    let md = out_dir.join("report.md");
    write(
        &md,
        &markdown::report(&report, &charts, comparison.as_deref()),
    )?;
    if let Some(c) = comparison {
        print!("{c}");
    }
    println!(
        "report: {} and {} ({} figures, {})",
        md.display(),
        json.display(),
        report.figures.len(),
        value(units::SECONDS, report.duration_s)
    );
    Ok(())
}

fn remove(path: &Path) -> Result<(), String> {
    let result = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The directory the data directories of a run are made in, removed with everything in it when
/// the run ends, whether it succeeded or not.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(path: PathBuf) -> Result<Scratch, String> {
        remove(&path)?;
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Progress, to stderr so that stdout carries only the result.
pub(crate) fn progress(line: &str) {
    eprintln!("bench: {line}");
}

/// A cargo command in the workspace root whose output goes to stderr.
fn cargo(args: &[&str]) -> Command {
    eprintln!("$ cargo {}", args.join(" "));
    let mut c = Command::new(crate::cargo());
    c.args(args)
        .current_dir(root())
        .stdout(Stdio::from(io::stderr()));
    c
}

fn status(mut c: Command, what: &str) -> Result<(), String> {
    let s = c.status().map_err(|e| format!("cannot run {what}: {e}"))?;
    if s.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({s})"))
    }
}

fn cargo_metadata() -> Result<Value, String> {
    let out = Command::new(crate::cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata printed no JSON: {e}"))
}

/// The bench targets of `package`.
fn bench_targets(metadata: &Value, package: &str) -> Vec<String> {
    let mut out: Vec<String> = packages(metadata)
        .filter(|p| p["name"] == package)
        .flat_map(targets)
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn packages(metadata: &Value) -> impl Iterator<Item = &Value> {
    metadata["packages"].as_array().into_iter().flatten()
}

fn targets(package: &Value) -> impl Iterator<Item = &Value> {
    package["targets"].as_array().into_iter().flatten()
}

/// The release build: every library first, the plugin libraries among them, then the rest, so
/// that no plugin is loaded from a stale library. Both builds select the whole workspace, so
/// cargo resolves the same features for both and the second does not rebuild the libraries.
fn build() -> Result<(), String> {
    progress("building in release");
    status(
        cargo(&["build", "--release", "--workspace", "--lib"]),
        "the release build of the libraries",
    )?;
    status(
        cargo(&["build", "--release", "--workspace"]),
        "the release build of the workspace",
    )
}

/// Runs the selected criterion benchmarks and reads their results.
fn criterion(
    plan: &Plan,
    targets: &[String],
    home: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<crate::report::Bench>, String> {
    let criterion_targets: Vec<&str> = targets
        .iter()
        .map(String::as_str)
        .filter(|t| *t != LATENCY_TARGET)
        .collect();
    if criterion_targets.is_empty() {
        notes.push(format!(
            "criterion did not run: {BENCH_PACKAGE} has no bench targets"
        ));
        return Ok(Vec::new());
    }
    let mut base = vec!["bench", "-p", BENCH_PACKAGE];
    for t in &criterion_targets {
        base.extend(["--bench", t]);
    }

    progress("listing the criterion benchmarks");
    let mut list = base.clone();
    list.extend(["--", "--list"]);
    let out = cargo(&list)
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run cargo bench --list: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo bench -- --list failed ({})", out.status));
    }
    let all = listed_ids(&String::from_utf8_lossy(&out.stdout));
    let selected: Vec<&String> = all.iter().filter(|id| plan.criterion_selects(id)).collect();
    if selected.is_empty() {
        notes.push("criterion: no benchmark id matches the filter".into());
        return Ok(Vec::new());
    }
    progress(&format!(
        "criterion: {} of {} benchmarks, about {}",
        selected.len(),
        all.len(),
        value(
            units::SECONDS,
            selected.len() as f64 * plan.sizes.criterion_s
        )
    ));

    let regex = (selected.len() < all.len()).then(|| exact_regex(&selected));
    let mut run = base;
    run.extend(["--", "--noplot"]);
    run.extend(plan.sizes.criterion_args);
    if let Some(r) = &regex {
        run.push(r);
    }
    let mut c = cargo(&run);
    c.env("CRITERION_HOME", home);
    status(c, "cargo bench")?;
    let benches = read_criterion(home)?;
    progress(&format!("criterion: {} results read", benches.len()));
    Ok(benches)
}

/// The benchmark ids of criterion's `--list` output (`id: benchmark` lines).
fn listed_ids(stdout: &str) -> Vec<String> {
    let mut ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A regex (criterion's filter syntax) matching exactly these ids.
fn exact_regex(ids: &[&String]) -> String {
    let escaped: Vec<String> = ids
        .iter()
        .map(|id| {
            id.chars()
                .flat_map(|c| {
                    let meta = "\\.+*?()|[]{}^$#&-~".contains(c);
                    meta.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", escaped.join("|"))
}

/// Raw single-add times, ns.
struct Latencies {
    miss: Vec<u64>,
    hit: Vec<u64>,
}

fn latency(plan: &Plan, out_dir: &Path) -> Result<Latencies, String> {
    progress(&format!(
        "{LATENCY}: {} single adds each, miss and hit",
        plan.sizes.latency_count
    ));
    let mut c = cargo(&["bench", "-p", BENCH_PACKAGE, "--bench", LATENCY_TARGET]);
    c.env("REGISTRY_BENCH_OUT", out_dir).env(
        "REGISTRY_BENCH_LATENCY_COUNT",
        plan.sizes.latency_count.to_string(),
    );
    status(c, "the latency benchmark")?;
    let path = out_dir.join("latency.json");
    let text =
        fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_latencies(&text).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse_latencies(text: &str) -> Result<Latencies, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = |key: &str| -> Result<Vec<u64>, String> {
        v[key]
            .as_array()
            .ok_or_else(|| format!("no list `{key}`"))?
            .iter()
            .map(|n| {
                n.as_u64()
                    .ok_or_else(|| format!("`{key}` holds {n}: expected whole nanoseconds"))
            })
            .collect()
    };
    Ok(Latencies {
        miss: list("miss_ns")?,
        hit: list("hit_ns")?,
    })
}

/// What one `registry scale-test` reported, the fields the report uses.
#[derive(Debug, Clone, PartialEq)]
struct ScaleRun {
    entries_per_s: f64,
    peak_rss_bytes: f64,
    bytes_per_entry: f64,
    shards: f64,
    /// Per stage call: (stage, p50 ns, p99 ns).
    stages: Vec<(String, f64, f64)>,
}

fn parse_scale(text: &str) -> Result<ScaleRun, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("printed no JSON: {e}"))?;
    let number = |key: &str| {
        v[key]
            .as_f64()
            .ok_or_else(|| format!("reported no number `{key}`"))
    };
    let stages = v["latency"]
        .as_object()
        .ok_or("reported no `latency`")?
        .iter()
        .filter_map(|(stage, l)| {
            Some((
                stage.clone(),
                l["p50_us"].as_f64()? * 1e3,
                l["p99_us"].as_f64()? * 1e3,
            ))
        })
        .collect();
    Ok(ScaleRun {
        entries_per_s: number("entries_per_s")?,
        peak_rss_bytes: number("peak_rss_bytes")?,
        bytes_per_entry: number("bytes_per_entry")?,
        shards: number("shards")?,
        stages,
    })
}

fn scale_test(plan: &Plan, registry: &Path, scratch: &Path) -> Result<Vec<ScaleRun>, String> {
    let s = &plan.sizes;
    let mut runs = Vec::new();
    for run in 1..=s.scale_runs {
        let data = scratch.join(format!("scale-{run}"));
        let out = Command::new(registry)
            .args(["scale-test", "--count", &s.scale_count.to_string()])
            .args(["--format", "json", "--data-dir"])
            .arg(&data)
            .current_dir(root())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", registry.display()));
        remove(&data)?;
        let out = out?;
        if !out.status.success() {
            return Err(format!(
                "registry scale-test failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let r = parse_scale(&String::from_utf8_lossy(&out.stdout))
            .map_err(|e| format!("registry scale-test {e}"))?;
        progress(&format!(
            "{SCALE} run {run}/{}: {}, peak RSS {}, {} per entry",
            s.scale_runs,
            value(units::ENTRIES_PER_S, r.entries_per_s),
            value(units::BYTES, r.peak_rss_bytes),
            value(units::BYTES, r.bytes_per_entry)
        ));
        runs.push(r);
    }
    Ok(runs)
}

fn scale_figures(runs: &[ScaleRun], count: usize) -> Vec<Figure> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let what = format!(
        "scale test ({} entries, {} shards)",
        markdown::value(units::COUNT, count as f64),
        first.shards
    );
    let series = |get: fn(&ScaleRun) -> f64| runs.iter().map(get).collect::<Vec<_>>();
    let mut out: Vec<Figure> = [
        (
            "scale/entries_per_s",
            "entries/s",
            units::ENTRIES_PER_S,
            Better::Higher,
            series(|r| r.entries_per_s),
        ),
        (
            "scale/peak_rss_bytes",
            "peak RSS",
            units::BYTES,
            Better::Lower,
            series(|r| r.peak_rss_bytes),
        ),
        (
            "scale/bytes_per_entry",
            "bytes on disk per entry",
            units::BYTES,
            Better::Lower,
            series(|r| r.bytes_per_entry),
        ),
    ]
    .into_iter()
    .filter_map(|(id, label, unit, better, v)| {
        Figure::from_runs(id.into(), format!("{what}: {label}"), unit, better, &v)
    })
    .collect();
    for (stage, _, _) in &first.stages {
        for (name, pick) in [("p50", 1), ("p99", 2)] {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.stages.iter().find(|s| &s.0 == stage))
                .map(|s| if pick == 1 { s.1 } else { s.2 })
                .collect();
            out.extend(Figure::from_runs(
                format!("scale/latency/{stage}/{name}"),
                format!("{what}: {stage} per call, {name}"),
                units::NS,
                Better::Lower,
                &v,
            ));
        }
    }
    out
}

/// Runs every batch configuration `batch_runs` times, rotating the order between rounds so that
/// no configuration always runs first on a cold page cache.
fn batch(
    plan: &Plan,
    registry: &Path,
    scratch: &Path,
) -> Result<BTreeMap<BatchConfig, Vec<(f64, f64)>>, String> {
    let mut results: BTreeMap<BatchConfig, Vec<(f64, f64)>> = BTreeMap::new();
    if plan.batch.is_empty() {
        return Ok(results);
    }
    let s = &plan.sizes;
    let input = requests(s.batch_requests)?;
    let data = scratch.join("batch");
    for round in 0..s.batch_runs {
        for step in 0..plan.batch.len() {
            let c = plan.batch[(step + round) % plan.batch.len()];
            let run = batch_once(
                registry,
                &input,
                &data,
                s.batch_requests,
                c.shards,
                c.batch_size,
            )?;
            progress(&format!(
                "batch round {}/{}: {} shard(s), batch size {}: {}, peak RSS {}",
                round + 1,
                s.batch_runs,
                c.shards,
                c.batch_size,
                value(units::ENTRIES_PER_S, run.entries_per_s),
                value(units::BYTES, run.peak_rss_bytes)
            ));
            results
                .entry(c)
                .or_default()
                .push((run.entries_per_s, run.peak_rss_bytes));
        }
    }
    Ok(results)
}

fn batch_rows(plan: &Plan, results: &BTreeMap<BatchConfig, Vec<(f64, f64)>>) -> Vec<BatchRow> {
    [
        (BATCH_SHARDS, &plan.shard_series),
        (BATCH_SIZE, &plan.size_series),
    ]
    .into_iter()
    .flat_map(|(section, series)| {
        series.iter().filter_map(move |c| {
            let runs = results.get(c)?;
            Some(BatchRow {
                section,
                shards: c.shards,
                batch_size: c.batch_size,
                requests: plan.sizes.batch_requests,
                rates: runs.iter().map(|r| r.0).collect(),
                peak_rss: runs.iter().map(|r| r.1).collect(),
            })
        })
    })
    .collect()
}

fn batch_figures(rows: &[BatchRow]) -> Vec<Figure> {
    let mut out = Vec::new();
    for r in rows {
        let what = format!(
            "batch, {} shard(s), batch size {}",
            r.shards,
            value(units::COUNT, r.batch_size as f64)
        );
        out.extend(Figure::from_runs(
            batch_id(r.section, r.shards, r.batch_size, "entries_per_s"),
            format!("{what}: entries/s"),
            units::ENTRIES_PER_S,
            Better::Higher,
            &r.rates,
        ));
        out.extend(Figure::from_runs(
            batch_id(r.section, r.shards, r.batch_size, "peak_rss_bytes"),
            format!("{what}: peak RSS"),
            units::BYTES,
            Better::Lower,
            &r.peak_rss,
        ));
    }
    out
}

/// The projection from the scale test (bytes per entry, peak RSS at its shard count) and the
/// batch rate (see below; the scale test's rate when batch did not run).
fn sizing(figures: &[Figure], rows: &[BatchRow], scale: &[ScaleRun]) -> Option<Sizing> {
    let find = |id: &str| figures.iter().find(|f| f.id == id);
    let bytes = find("scale/bytes_per_entry")?;
    let rss = find("scale/peak_rss_bytes")?;
    let shards = scale.first()?.shards;
    let rate_of = |r: &BatchRow| {
        find(&batch_id(
            r.section,
            r.shards,
            r.batch_size,
            "entries_per_s",
        ))
    };
    // The configuration `registry batch` runs by default, at the scale test's shard count, so
    // that rate and memory describe the same process; else the fastest one measured.
    let rate = rows
        .iter()
        .filter(|r| r.shards as f64 == shards && r.batch_size == DEFAULT_BATCH_SIZE)
        .find_map(rate_of)
        .or_else(|| {
            rows.iter()
                .filter_map(rate_of)
                .max_by(|a, b| a.median.total_cmp(&b.median))
        })
        .or_else(|| find("scale/entries_per_s"))?;
    let at = |b: f64, m: f64, r: f64| SizingInputs {
        bytes_per_entry: b,
        peak_rss_bytes: m,
        shards_per_process: shards,
        entries_per_s: r,
    };
    Some(Sizing::new(
        at(bytes.median, rss.median, rate.median),
        at(bytes.low, rss.low, rate.high),
        at(bytes.high, rss.high, rate.low),
        vec![
            ("bytes_per_entry", bytes.id.clone()),
            ("peak_rss_bytes", rss.id.clone()),
            ("shards_per_process", "the scale test's shard count".into()),
            ("entries_per_s", rate.id.clone()),
        ],
    ))
}

/// Draws the charts there is data for; returns (file name, title) of each.
fn draw(
    report: &Report,
    latencies: Option<&Latencies>,
    out_dir: &Path,
) -> Result<Vec<(&'static str, &'static str)>, String> {
    let mut charts = Vec::new();
    for (section, file, title, x_desc) in [
        (
            BATCH_SIZE,
            "throughput-batch-size.svg",
            "registry batch: throughput against batch size",
            "requests per call (log scale)",
        ),
        (
            BATCH_SHARDS,
            "throughput-shards.svg",
            "registry batch: throughput against shard count",
            "shards (log scale)",
        ),
    ] {
        let points: Vec<Point> = report
            .batch
            .iter()
            .filter(|r| r.section == section && !r.rates.is_empty())
            .map(|r| Point {
                x: if section == BATCH_SIZE {
                    r.batch_size as f64
                } else {
                    r.shards as f64
                },
                median: crate::median(&mut r.rates.clone(), f64::total_cmp),
                min: r.rates.iter().copied().fold(f64::INFINITY, f64::min),
                max: r.rates.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
            .collect();
        if !points.is_empty() {
            chart::throughput(&out_dir.join(file), title, x_desc, &points)?;
            charts.push((file, title));
        }
    }
    if let Some(l) = latencies {
        let file = "latency-single-add.svg";
        chart::latency(
            &out_dir.join(file),
            &[
                ("miss (new request)", &l.miss),
                ("hit (registered)", &l.hit),
            ],
        )?;
        charts.push((file, "single add latency, cumulative distribution"));
    }
    Ok(charts)
}

/// The commit checked out and whether the work tree has changes, without taking git's locks.
fn commit() -> Commit {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("--no-optional-locks")
            .args(args)
            .current_dir(root())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    Commit {
        id: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        dirty: git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_filter_selects_by_any_of_its_parts() {
        assert!(matches(None, "scale"));
        assert!(matches(Some("scale"), "scale"));
        assert!(matches(Some("scale,redis"), "redis"));
        assert!(!matches(Some("scale,redis"), "batch/shards"));
        assert!(!matches(Some(","), "scale"));
    }

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), Ok(Options::default()));
        assert_eq!(
            parse(&args(&[
                "--quick",
                "--filter",
                "cache",
                "--compare",
                "a.json"
            ])),
            Ok(Options {
                quick: true,
                filter: Some("cache".into()),
                compare: Some("a.json".into()),
                against: None,
            })
        );
        assert!(parse(&args(&["--compare", "a", "--against", "b"])).is_ok());
        for (bad, error) in [
            (
                &["--against", "b"][..],
                "--against needs --compare OLD.json",
            ),
            (
                &["--compare", "a", "--against", "b", "--quick"],
                "--against compares two reports",
            ),
            (&["--filter"], "--filter needs a value"),
            (&["--filter", ""], "--filter is empty"),
            (&["--fast"], "unknown argument `--fast`"),
        ] {
            let err = parse(&args(bad)).expect_err("a bad argument list");
            assert!(err.starts_with(error), "{bad:?}: {err}");
        }
    }

    #[test]
    fn plan_shares_the_configuration_both_batch_series_have() {
        let p = Plan::new(&Options::default(), 2);
        let c = |shards, batch_size| BatchConfig { shards, batch_size };
        assert_eq!(p.shard_series, [c(1, 1000), c(2, 1000), c(4, 1000)]);
        assert_eq!(p.size_series, [c(2, 100), c(2, 1000), c(2, 10_000)]);
        assert_eq!(
            p.batch,
            [c(1, 1000), c(2, 100), c(2, 1000), c(2, 10_000), c(4, 1000)]
        );
        assert!(p.latency && p.scale);
        assert_eq!(p.sizes, FULL);
    }

    #[test]
    fn filter_selects_sections_and_benchmarks() {
        let plan = |f: &str, quick| {
            Plan::new(
                &Options {
                    quick,
                    filter: (!f.is_empty()).then(|| f.to_owned()),
                    ..Options::default()
                },
                2,
            )
        };
        let p = plan("batch", false);
        assert!(!p.scale && !p.latency);
        assert_eq!((p.shard_series.len(), p.size_series.len()), (3, 3));
        assert!(p.criterion_selects("add/batch_1000/dynamic"));
        assert!(!p.criterion_selects("cache/get_hit/dynamic"));

        let p = plan("batch_size", false);
        assert_eq!((p.shard_series.len(), p.size_series.len()), (0, 3));
        assert_eq!(p.batch.len(), 3);

        let p = plan("add", true);
        assert!(p.latency && !p.scale && p.batch.is_empty());
        assert_eq!(p.sizes, QUICK);

        let p = plan("", true);
        assert!(p.criterion_selects("generator/predict/dynamic"));
        assert!(!p.criterion_selects("generator/train_prowler_holdout"));
        assert!(plan("", false).criterion_selects("generator/train_prowler_holdout"));
    }

    #[test]
    fn quick_is_estimated_under_five_minutes() {
        let quick = Plan::new(
            &Options {
                quick: true,
                ..Options::default()
            },
            2,
        );
        let e = quick.estimate_s(EXPECTED_CRITERION_BENCHES);
        assert!(e > 60.0 && e < 300.0, "{e}");
        let full = Plan::new(&Options::default(), 2);
        assert!(full.estimate_s(EXPECTED_CRITERION_BENCHES) > 3.0 * e);
        assert!(
            quick
                .describe()
                .contains("assuming about 32 criterion benchmarks")
        );
        let filtered = Plan::new(
            &Options {
                filter: Some("cache".into()),
                ..Options::default()
            },
            2,
        );
        assert!(
            filtered
                .describe()
                .contains("not counting the criterion benchmarks")
        );
    }

    #[test]
    fn criterion_list_and_regex() {
        let stdout = "Gnuplot not found\ncache/get_hit/dynamic: benchmark\ngenerator/predict: benchmark\ncache/get_hit/dynamic: benchmark\n";
        let ids = listed_ids(stdout);
        assert_eq!(ids, ["cache/get_hit/dynamic", "generator/predict"]);
        let refs: Vec<&String> = ids.iter().collect();
        assert_eq!(
            exact_regex(&refs),
            "^(?:cache/get_hit/dynamic|generator/predict)$"
        );
        let odd = "a.b(c)".to_owned();
        assert_eq!(exact_regex(&[&odd]), r"^(?:a\.b\(c\))$");
    }

    #[test]
    fn metadata_gives_bench_targets() {
        let metadata: Value = serde_json::from_str(
            r#"{"packages": [
                {"name": "registry-cache-moka-cdylib", "targets": [{"name": "cache_moka", "kind": ["cdylib"], "crate_types": ["cdylib"]}]},
                {"name": "registry-core", "targets": [{"name": "registry_core", "kind": ["lib"], "crate_types": ["lib"]}]},
                {"name": "registry-benches", "targets": [
                    {"name": "registry_benches", "kind": ["lib"], "crate_types": ["lib"]},
                    {"name": "latency", "kind": ["bench"], "crate_types": ["bin"]},
                    {"name": "cache", "kind": ["bench"], "crate_types": ["bin"]}
                ]}
            ]}"#,
        )
        .expect("the fixture is JSON");
        assert_eq!(
            bench_targets(&metadata, "registry-benches"),
            ["cache", "latency"]
        );
        assert!(bench_targets(&metadata, "other").is_empty());
    }

    #[test]
    fn scale_summary_is_read() {
        let text = r#"{"processed": 100, "created": 100, "entries_per_s": 22305.0,
            "latency": {"storage.insert": {"calls": 2, "p50_us": 47024, "p99_us": 88130, "total_us": 1}},
            "peak_rss_bytes": 73662464, "shards": 2, "bytes_on_disk": 285220, "bytes_per_entry": 2852.0}"#;
        let r = parse_scale(text).expect("the summary parses");
        assert_eq!(
            r,
            ScaleRun {
                entries_per_s: 22305.0,
                peak_rss_bytes: 73_662_464.0,
                bytes_per_entry: 2852.0,
                shards: 2.0,
                stages: vec![("storage.insert".into(), 47_024_000.0, 88_130_000.0)],
            }
        );
        let err = parse_scale(r#"{"latency": {}}"#).expect_err("no numbers");
        assert_eq!(err, "reported no number `entries_per_s`");

        let f = scale_figures(&[r.clone(), r], 100);
        let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "scale/entries_per_s",
                "scale/peak_rss_bytes",
                "scale/bytes_per_entry",
                "scale/latency/storage.insert/p50",
                "scale/latency/storage.insert/p99"
            ]
        );
    }

    #[test]
    fn latency_file_is_read() {
        let l = parse_latencies(r#"{"count": 2, "miss_ns": [5, 6], "hit_ns": [1, 2]}"#)
            .expect("the file parses");
        assert_eq!((l.miss, l.hit), (vec![5, 6], vec![1, 2]));
        let err = parse_latencies(r#"{"miss_ns": [1.5], "hit_ns": []}"#)
            .err()
            .expect("fractional nanoseconds");
        assert_eq!(err, "`miss_ns` holds 1.5: expected whole nanoseconds");
    }

    #[test]
    fn sizing_takes_the_default_batch_configuration_else_the_fastest() {
        let run = ScaleRun {
            entries_per_s: 20_000.0,
            peak_rss_bytes: 1e8,
            bytes_per_entry: 3000.0,
            shards: 2.0,
            stages: Vec::new(),
        };
        let mut figures = scale_figures(std::slice::from_ref(&run), 100);
        let rows = vec![
            BatchRow {
                section: BATCH_SHARDS,
                shards: 1,
                batch_size: 1000,
                requests: 10,
                rates: vec![10_000.0],
                peak_rss: vec![1e8],
            },
            BatchRow {
                section: BATCH_SHARDS,
                shards: 2,
                batch_size: 1000,
                requests: 10,
                rates: vec![30_000.0],
                peak_rss: vec![1e8],
            },
        ];
        figures.extend(batch_figures(&rows));
        let s = sizing(&figures, &rows, std::slice::from_ref(&run)).expect("the inputs are there");
        assert_eq!(s.inputs.entries_per_s, 30_000.0);
        assert_eq!(s.inputs.shards_per_process, 2.0);
        assert_eq!(
            s.sources[3].1,
            "batch/shards/shards_2/batch_1000/entries_per_s"
        );
        // Without the default configuration, the fastest.
        let other = BatchRow {
            shards: 4,
            rates: vec![40_000.0],
            ..rows[0].clone()
        };
        let mut figures = scale_figures(std::slice::from_ref(&run), 100);
        let rows = vec![rows[0].clone(), other];
        figures.extend(batch_figures(&rows));
        let s = sizing(&figures, &rows, std::slice::from_ref(&run)).expect("the inputs are there");
        assert_eq!(s.inputs.entries_per_s, 40_000.0);
        assert!(sizing(&[], &rows, &[]).is_none());
    }
}
