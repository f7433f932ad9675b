//! `cargo xtask bench-batch [--count N] [--shards 1,2,4] [--runs R]`: how `registry batch`
//! scales with the number of shards, in one table.
//!
//! N distinct requests (default 200,000), one JSON line each as `add` takes them, are generated
//! deterministically once into `target/bench-batch/requests-N.jsonl`. Then, R times (default 3),
//! `registry batch` loads the file into a fresh data directory for every shard count K (the
//! order rotates between rounds, so no K always runs first on a cold page cache), each run with
//! its own `REGISTRY_SHARDS=K` and the shipped `registry.toml`. The table gives, per K, the median
//! entries/s and its range, the speed-up over the smallest K, and the median peak RSS, all as
//! `registry batch --format json` reported them.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;

const VERBS: [&str; 10] = [
    "Rotate", "Audit", "Enforce", "Restrict", "Monitor", "Encrypt", "Disable", "Review", "Require",
    "Block",
];
const OBJECTS: [&str; 10] = [
    "access keys",
    "TLS certificates",
    "storage buckets",
    "IAM roles",
    "security groups",
    "database backups",
    "API tokens",
    "log retention",
    "VPC flow logs",
    "container images",
];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];

pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask bench-batch [--count N] [--shards 1,2,4] [--runs R]";
    let mut count = 200_000usize;
    let mut runs = 3usize;
    let mut shards: Vec<usize> = vec![1, 2, 4];
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<&String, String> {
            it.next()
                .ok_or_else(|| format!("{name} needs a value: {usage}"))
        };
        let positive = |name: &str, v: &str| -> Result<usize, String> {
            v.trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name} `{v}`: expected a positive number"))
        };
        match arg.as_str() {
            "--count" => count = positive("--count", value("--count")?)?,
            "--runs" => runs = positive("--runs", value("--runs")?)?,
            "--shards" => {
                let list = value("--shards")?;
                shards = list
                    .split(',')
                    .map(|k| positive("--shards", k))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument `{other}`: {usage}")),
        }
    }

    let dir = crate::target_dir().join("bench-batch");
    let input = requests(count)?;

    let cargo = crate::cargo();
    crate::run(&cargo, &["build", "--release", "--workspace"])?;
    let registry = crate::target_dir().join("release/registry");

    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); shards.len()];
    for round in 0..runs {
        for step in 0..shards.len() {
            let at = (step + round) % shards.len();
            let k = shards[at];
            let data = dir.join(format!("data-{k}"));
            let run = batch_once(&registry, &input, &data, count, k, 1000)?;
            eprintln!(
                "round {}: {k} shard(s): {:.0} entries/s, peak RSS {:.0} MiB",
                round + 1,
                run.entries_per_s,
                run.peak_rss_bytes / 1_048_576.0
            );
            results[at].push((run.entries_per_s, run.peak_rss_bytes));
        }
    }

    let medians: Vec<f64> = results
        .iter()
        .map(|r| {
            crate::median(
                &mut r.iter().map(|x| x.0).collect::<Vec<_>>(),
                f64::total_cmp,
            )
        })
        .collect();
    let base = medians.first().copied().unwrap_or(1.0);
    let mut table = format!(
        "registry batch, {count} requests, {runs} runs per shard count (medians)\n\n\
         | shards | entries/s | range | speed-up | peak RSS |\n\
         |---|---|---|---|---|\n"
    );
    for ((k, r), m) in shards.iter().zip(&results).zip(&medians) {
        let lo = r.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
        let hi = r.iter().map(|x| x.0).fold(0.0, f64::max);
        let rss = crate::median(
            &mut r.iter().map(|x| x.1).collect::<Vec<_>>(),
            f64::total_cmp,
        ) / 1_048_576.0;
        let _ = writeln!(
            table,
            "| {k} | {m:.0} | {lo:.0}–{hi:.0} | {:.2}× | {rss:.0} MiB |",
            m / base
        );
    }
    println!("{table}");
    Ok(())
}

/// The file of `count` generated requests, `target/bench-batch/requests-N.jsonl`, written the
/// first time it is asked for.
///
/// # Errors
/// When the file cannot be written.
pub fn requests(count: usize) -> Result<PathBuf, String> {
    let dir = crate::target_dir().join("bench-batch");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let input = dir.join(format!("requests-{count}.jsonl"));
    if !input.is_file() {
        write_requests(&input, count)?;
    }
    Ok(input)
}

/// What one `registry batch` run reported.
#[derive(Debug, Clone, Copy)]
pub struct BatchRun {
    pub entries_per_s: f64,
    pub peak_rss_bytes: f64,
}

/// Runs `registry batch` once: the `count` requests of `input` into the new data directory
/// `data` with `shards` shards and `batch_size` requests per call, then removes `data`.
///
/// # Errors
/// When the run fails, prints no summary, or registers fewer entries than `count`.
pub fn batch_once(
    registry: &Path,
    input: &Path,
    data: &Path,
    count: usize,
    shards: usize,
    batch_size: usize,
) -> Result<BatchRun, String> {
    let remove = || {
        if data.exists() {
            fs::remove_dir_all(data).map_err(|e| format!("cannot remove {}: {e}", data.display()))
        } else {
            Ok(())
        }
    };
    remove()?;
    let out = Command::new(registry)
        .arg("--data-dir")
        .arg(data)
        .arg("batch")
        .arg(input)
        .args(["--format", "json", "--batch-size", &batch_size.to_string()])
        .env("REGISTRY_SHARDS", shards.to_string())
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", registry.display()));
    // The data directory goes whatever happened: a failed run leaves nothing behind either.
    remove()?;
    let out = out?;
    let what = format!("registry batch with {shards} shard(s), batch size {batch_size}");
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{what} printed no JSON summary: {e}"))?;
    let number = |key: &str| {
        summary[key]
            .as_f64()
            .ok_or_else(|| format!("the summary of {what} has no number `{key}`: {summary}"))
    };
    let created = number("created")?;
    if created as usize != count {
        return Err(format!("{what} created {created} of {count} entries"));
    }
    Ok(BatchRun {
        entries_per_s: number("entries_per_s")?,
        peak_rss_bytes: number("peak_rss_bytes")?,
    })
}

/// Writes `count` distinct requests: every title names its own service number, and the verb,
/// object and context vary with it, so the generator's model sees realistic variety.
fn write_requests(path: &Path, count: usize) -> Result<(), String> {
    let partial = path.with_extension("partial");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", partial.display());
    let file = fs::File::create(&partial).map_err(fail)?;
    let mut out = std::io::BufWriter::new(file);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        // xorshift64: deterministic, and dependency-free.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pick = |n: usize, shift: u32| (state >> shift) as usize % n;
        writeln!(
            out,
            r#"{{"title": "{} the {} of service {i}", "context": {{"env": "{}", "team": "team-{}"}}}}"#,
            VERBS[pick(VERBS.len(), 0)],
            OBJECTS[pick(OBJECTS.len(), 16)],
            ENVS[pick(ENVS.len(), 32)],
            i % 23
        )
        .map_err(fail)?;
    }
    out.flush().map_err(fail)?;
    drop(out);
    fs::rename(&partial, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
