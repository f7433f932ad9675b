//! The project's build system: `cargo xtask <command>`.
//!
//! - `test [ARGS...]`: builds every crate (so the plugin libraries exist next to the test
//!   binaries), runs the workspace tests (extra arguments go to `cargo test`), then compiles the
//!   benchmarks without running them, so a change that breaks them fails here.
//! - `demo`: builds in release, registers a set of sample rules through the `registry` command
//!   on the embedded default (redb in `./.registry`), and shows them.
//! - `lint`: formatting, clippy with warnings denied, and docs without warnings.
//! - `prowler`: trains the generator's model on Prowler's security checks (`data/prowler/`) and
//!   reports its cross-validated accuracy.
//! - `bench-lint [--files N] [--runs R]`: times `registry lint` against ripgrep over a generated
//!   tree of N files.
//! - `bench-batch [--count N] [--shards 1,2,4] [--runs R]`: `registry batch` throughput and peak
//!   RSS per shard count, in one table.
//! - `bench [--quick] [--filter NAME] [--compare OLD.json]`: every benchmark (criterion, single
//!   add latency, scale test, batch), into `target/bench-report/` as `report.json`, `report.md`
//!   and SVG charts; `bench --compare OLD.json --against NEW.json` compares two reports.
//!
//! Plain `std` and `serde_json`, plus plotters' SVG backend for the charts (without its font
//! and bitmap features), so that `cargo xtask` itself compiles in seconds.

mod bench;
mod bench_batch;
mod bench_lint;
mod chart;
mod demo;
mod markdown;
mod prowler;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo::run(),
        Some("lint") => lint(),
        Some("prowler") => prowler::run(&args[1..]),
        Some("bench-lint") => bench_lint::run(&args[1..]),
        Some("bench-batch") => bench_batch::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args...] | demo | lint | prowler [--folds K] | bench-lint [--files N] [--runs R] | bench-batch [--count N] [--shards 1,2,4] [--runs R] | bench [--quick] [--filter NAME] [--compare OLD.json [--against NEW.json]]>"
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

fn test(extra: &[String]) -> Result<(), String> {
    let cargo = cargo();
    // Plugin libraries first: the tests load them from the target directory.
    run(&cargo, &["build", "--workspace"])?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    run(&cargo, &args)?;
    run(&cargo, &["bench", "--workspace", "--no-run"])
}

fn lint() -> Result<(), String> {
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--check"])?;
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
