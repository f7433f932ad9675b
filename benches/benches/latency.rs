//! The latency distribution of single adds through the loaded plugins, one shard: every `add`
//! is timed on its own, so the report can show percentiles (p50, p99) and not only a mean.
//!
//! - `miss`: one new request each time, a durable insert;
//! - `hit`: the same registered request each time, answered from the cache.
//!
//! Criterion keeps no per-iteration times, hence a benchmark of its own. It writes
//! `$REGISTRY_BENCH_OUT/latency.json` (standard output when the variable is unset):
//! `{"count": N, "miss_ns": [...], "hit_ns": [...]}`, each add's time in nanoseconds in the
//! order measured. `REGISTRY_BENCH_LATENCY_COUNT` sets N (default 5000).
//!
//! Like criterion's benchmarks it obeys the command line cargo passes on: a filter that is not
//! part of `add/latency` skips it (so `cargo bench -- cache` does not run it), and without
//! `--bench` (`cargo test --benches`) it only checks that one add of each kind works. Run
//! `cargo build --release --workspace` first.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use registry_benches::args::{self, Mode};
use registry_benches::{DURABLE, Linkage, request};
use registry_core::{Pipeline, Request, Schema};

/// The name a filter is matched against.
const NAME: &str = "add/latency";

/// Adds of each kind when `REGISTRY_BENCH_LATENCY_COUNT` is unset.
const DEFAULT_COUNT: usize = 5000;

/// Untimed adds of each kind before the timed ones, so that the first timed adds do not pay
/// for cold caches and a fresh file.
const WARM_UP: u64 = 100;

/// The number of adds of each kind: `REGISTRY_BENCH_LATENCY_COUNT`, or the default.
fn count() -> Result<usize, String> {
    match std::env::var("REGISTRY_BENCH_LATENCY_COUNT") {
        Err(_) => Ok(DEFAULT_COUNT),
        Ok(v) => v.trim().parse().map_err(|_| {
            format!(
                "REGISTRY_BENCH_LATENCY_COUNT `{v}` is not a count: use a whole number such as 5000"
            )
        }),
    }
}

/// The time of each add of `requests`, in nanoseconds, in order; every add must create an
/// entry (`created`) or find one (`!created`).
fn timed(pipeline: &Pipeline, requests: Vec<Request>, created: bool) -> Vec<u64> {
    requests
        .into_iter()
        .map(|r| {
            let start = Instant::now();
            let added = pipeline.add_one(r);
            let elapsed = start.elapsed();
            let added = added.expect("every benchmark request is added");
            assert_eq!(
                added.created, created,
                "the request is as new as the run means"
            );
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
        .collect()
}

/// Times `count` misses and `count` hits, after untimed warm-up adds of each.
fn measure(count: usize, warm_up: u64) -> (Vec<u64>, Vec<u64>) {
    let (pipeline, _dir) =
        registry_benches::pipeline(Linkage::Dynamic, Schema::default(), &[DURABLE], 1);
    let known = request(0);
    timed(&pipeline, vec![known.clone()], true);
    timed(&pipeline, (1..=warm_up).map(request).collect(), true);
    let first = warm_up + 1;
    let misses = (first..first + count as u64).map(request).collect();
    let miss_ns = timed(&pipeline, misses, true);
    timed(&pipeline, vec![known.clone(); warm_up as usize], false);
    let hit_ns = timed(&pipeline, vec![known; count], false);
    (miss_ns, hit_ns)
}

/// The report: `{"count": N, "miss_ns": [...], "hit_ns": [...]}`.
fn report(count: usize, miss_ns: &[u64], hit_ns: &[u64]) -> String {
    serde_json::json!({ "count": count, "miss_ns": miss_ns, "hit_ns": hit_ns }).to_string()
}

/// Writes the report into `$REGISTRY_BENCH_OUT/latency.json`, or prints it when the variable is
/// unset.
fn write(report: &str) -> Result<(), String> {
    let Some(dir) = std::env::var_os("REGISTRY_BENCH_OUT") else {
        println!("{report}");
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create REGISTRY_BENCH_OUT `{}`: {e}", dir.display()))?;
    let path = dir.join("latency.json");
    std::fs::write(&path, report).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    eprintln!("{NAME}: wrote {}", path.display());
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match args::mode(NAME, &argv) {
        Mode::Skip => Ok(()),
        Mode::List => {
            println!("{NAME}: benchmark");
            Ok(())
        }
        Mode::Test => {
            measure(1, 0);
            println!("Testing {NAME}\nSuccess");
            Ok(())
        }
        Mode::Bench => count().and_then(|count| {
            eprintln!("{NAME}: timing {count} misses and {count} hits, one add at a time");
            let (miss_ns, hit_ns) = measure(count, WARM_UP);
            for (kind, ns) in [("miss", &miss_ns), ("hit", &hit_ns)] {
                let mut sorted = ns.clone();
                sorted.sort_unstable();
                if let Some(&median) = sorted.get(sorted.len() / 2) {
                    eprintln!("{NAME}: {kind} median {:.1} µs", median as f64 / 1e3);
                }
            }
            write(&report(count, &miss_ns, &hit_ns))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
