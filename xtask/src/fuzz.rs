//! `cargo xtask fuzz [--seconds N] [--merge] [TARGET...]`: builds the fuzz targets of `fuzz/`
//! with libFuzzer's coverage instrumentation and runs each for a bounded time, replaying the
//! corpus kept in the repository (`fuzz/corpus/TARGET`) first.
//!
//! **Why libFuzzer through `libfuzzer-sys`, built here, rather than `cargo fuzz` or
//! `cargo afl`.** `cargo fuzz` is a front end to the same `libfuzzer-sys` crate: what it adds is
//! the instrumentation flags (passed below, all stable `-C` options) and, by default,
//! AddressSanitizer, which needs a nightly compiler (`-Zsanitizer`). These machines have one
//! stable toolchain and nothing else can be fetched, and the code fuzzed is safe Rust, where a
//! sanitizer finds little that a panic, an overflow check (on in the fuzz profile) or libFuzzer's
//! own limits (time, memory) does not. So the build needs no extra tool at all: the C++ of
//! libFuzzer comes with the crate and builds with the machine's compiler. `cargo afl` needs its
//! own binary installed and AFL++ built from source (minutes, per machine, before the first
//! run), for the same kind of coverage guidance.
//!
//! Each target writes what it finds new into `target/fuzz/corpus/TARGET`; `--merge` adds the
//! inputs that cover something the repository's corpus does not to `fuzz/corpus/TARGET`. A
//! crash leaves its input in `target/fuzz/artifacts/TARGET/` and fails the command, printing
//! how to replay it; once fixed, the input goes into `fuzz/corpus/TARGET`, so every later run
//! (CI's included) replays it first: that is its regression test, beside the unit test the fix
//! brings.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, root, target_dir};

/// Every target, in the order they run.
const TARGETS: &[&str] = &[
    "header",
    "codec",
    "yaml_scan",
    "yaml_write",
    "config",
    "import",
];

/// What cargo-fuzz passes to instrument for libFuzzer (no sanitizer).
const RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing";

/// Seconds per target by default.
const DEFAULT_SECONDS: u64 = 60;

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut merge = false;
    let mut targets: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--seconds takes a whole number of seconds, at least 1")?;
            }
            "--merge" => merge = true,
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(t) => targets.push(t),
                None => {
                    return Err(format!(
                        "no fuzz target `{name}`: the targets are {}",
                        TARGETS.join(", ")
                    ));
                }
            },
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let bin = build()?;
    let work = target_dir().join("fuzz");
    for target in targets {
        fuzz(&bin, &work, target, seconds, merge)?;
    }
    Ok(())
}

/// Builds every target; returns the directory holding them.
fn build() -> Result<PathBuf, String> {
    let host = host()?;
    let dir = target_dir().join("fuzz");
    let manifest = root().join("fuzz/Cargo.toml");
    eprintln!("$ cargo build --release --bins --locked --target {host} (fuzz/, instrumented)");
    let status = Command::new(cargo())
        .args([
            "build",
            "--release",
            "--bins",
            "--locked",
            "--target",
            &host,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        // The host target is named so that these flags reach the targets' code only, not build
        // scripts and proc macros (which could not link the instrumentation's runtime).
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", &dir)
        .env_remove("CARGO_INCREMENTAL")
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the fuzz targets failed ({status})"));
    }
    Ok(dir.join(host).join("release"))
}

/// The compiler's host triple.
fn host() -> Result<String, String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

fn fuzz(bin: &Path, work: &Path, target: &str, seconds: u64, merge: bool) -> Result<(), String> {
    let program = bin.join(target);
    let found = work.join("corpus").join(target);
    let kept = root().join("fuzz/corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    let log = work.join("logs").join(format!("{target}.log"));
    for dir in [&found, &kept, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(log.parent().unwrap_or(work))
        .map_err(|e| format!("cannot make the log directory: {e}"))?;
    let mut artifact_prefix = artifacts.clone().into_os_string();
    artifact_prefix.push("/");
    std::fs::write(&log, "").map_err(|e| format!("cannot write {}: {e}", log.display()))?;
    eprintln!("fuzzing {target} for {seconds} s (log: {})", log.display());
    let status = Command::new(&program)
        .arg(&found)
        .arg(&kept)
        .arg(format!("-max_total_time={seconds}"))
        .args([
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            "-print_final_stats=1",
        ])
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&artifact_prefix);
            a
        })
        .stdout(file(&log)?)
        .stderr(file(&log)?)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        return Err(format!(
            "fuzz target {target} failed ({status}); the input is in {} (replay: {} FILE); \
             once fixed, add it to fuzz/corpus/{target}",
            artifacts.display(),
            program.display()
        ));
    }
    let stat = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .map_or("?", str::trim)
            .to_owned()
    };
    eprintln!(
        "  {target}: {} runs, {} new inputs, {} corpus files kept in the repository, \
         peak {} MB",
        stat("number_of_executed_units"),
        stat("new_units_added"),
        count(&kept),
        stat("peak_rss_mb"),
    );
    if merge {
        let status = Command::new(&program)
            .arg("-merge=1")
            .arg(&kept)
            .arg(&found)
            .stdout(file(&log)?)
            .stderr(file(&log)?)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !status.success() {
            return Err(format!("merging the corpus of {target} failed ({status})"));
        }
        eprintln!("  {target}: {} corpus files after merging", count(&kept));
    }
    Ok(())
}

fn file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.filter_map(Result::ok).count())
}
