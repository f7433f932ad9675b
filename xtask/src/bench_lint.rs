//! `cargo xtask bench-lint [--files N] [--runs R]`: how fast `registry lint` walks a large tree,
//! measured against ripgrep searching the same tree for the header pattern in the same run.
//!
//! The tree (N small files, default 100,000, in nested directories, with the extensions and
//! comment syntaxes rules are kept in: about 90 % with a valid header, some with a bad one,
//! some without) is generated deterministically once and kept under `target/bench-lint/N/`.
//! Then `registry` is built in release and the two commands run alternately R times (default
//! 5), after one warm-up run each, so both see the same page cache; the medians and their ratio
//! are printed. The goal is lint within 2x of ripgrep. ripgrep with `-c` reads whole files
//! while lint reads heads only, but lint also parses, validates and sorts: the comparison is
//! the one the feature was specified against, not an exact match of work.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::root;

/// Written last into a complete tree; a tree without it (an interrupted generation, or an
/// older generator) is made again. Hidden, so neither command looks at it.
const MARKER: &str = ".complete";
/// Changes whenever the generator does, so that a cached tree of an older layout is replaced.
const GENERATOR: &str = "bench-lint tree v1";

/// The pattern ripgrep looks for: a line whose first non-word text is followed by `[` and a
/// letter, which both header forms inside any comment syntax match.
const RG_PATTERN: &str = r"^\W*\[[A-Za-z]";

pub fn run(args: &[String]) -> Result<(), String> {
    let mut files = 100_000usize;
    let mut runs = 5usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name} `{v}`: expected a positive number"))
        };
        match arg.as_str() {
            "--files" => files = value("--files")?,
            "--runs" => runs = value("--runs")?,
            other => {
                return Err(format!(
                    "unknown argument `{other}`: usage: cargo xtask bench-lint [--files N] [--runs R]"
                ));
            }
        }
    }
    if Command::new("rg").arg("--version").output().is_err() {
        return Err(
            "ripgrep (`rg`) is not installed: install it with `apt-get install ripgrep` (or `cargo install ripgrep`)"
                .into(),
        );
    }

    let tree = crate::target_dir()
        .join("bench-lint")
        .join(files.to_string());
    ensure_tree(&tree, files)?;

    let cargo = crate::cargo();
    crate::run(
        &cargo,
        &[
            "build",
            "--release",
            "-p",
            "registry-cli",
            "-p",
            "registry-validator-schema-cdylib",
        ],
    )?;
    let registry = crate::target_dir().join("release/registry");
    let config = root().join("registry.toml");
    let tree_arg = tree.to_string_lossy().into_owned();

    let rg = || {
        let mut c = Command::new("rg");
        c.args(["--no-messages", "-c", RG_PATTERN, &tree_arg]);
        c
    };
    let lint = |format: &str| {
        let mut c = Command::new(&registry);
        c.arg("--config")
            .arg(&config)
            .args(["lint", &tree_arg, "--format", format]);
        c
    };

    // One untimed run each: the page cache, the binary and the plugin are then warm for both.
    time(rg(), &[0, 1])?;
    let summary = lint("text")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", registry.display()))?;
    eprintln!(
        "lint on {files} files: {}",
        String::from_utf8_lossy(&summary.stderr).trim()
    );

    let mut rg_times = Vec::with_capacity(runs);
    let mut lint_times = Vec::with_capacity(runs);
    for run in 1..=runs {
        // 0 and 1 are lint's "no errors" and "errors found": the tree has bad headers.
        let r = time(rg(), &[0, 1])?;
        let l = time(lint("json"), &[0, 1])?;
        eprintln!("run {run}/{runs}: rg {:.1} ms, lint {:.1} ms", ms(r), ms(l));
        rg_times.push(r);
        lint_times.push(l);
    }
    let (rg_median, lint_median) = (
        crate::median(&mut rg_times, Duration::cmp),
        crate::median(&mut lint_times, Duration::cmp),
    );
    let ratio = lint_median.as_secs_f64() / rg_median.as_secs_f64();
    println!(
        "bench-lint: {files} files, {runs} runs: rg median {:.1} ms, lint median {:.1} ms, lint/rg {ratio:.2} (goal: at most 2.00)",
        ms(rg_median),
        ms(lint_median)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs a command with its output discarded and returns how long it took.
fn time(mut command: Command, ok_codes: &[i32]) -> Result<Duration, String> {
    let started = Instant::now();
    let output = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let elapsed = started.elapsed();
    match output.status.code() {
        Some(code) if ok_codes.contains(&code) => Ok(elapsed),
        _ => Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// Makes the tree unless a complete one of this generator is there.
fn ensure_tree(tree: &Path, files: usize) -> Result<(), String> {
    let marker = tree.join(MARKER);
    if fs::read_to_string(&marker).is_ok_and(|m| m == GENERATOR) {
        eprintln!("using the tree in {}", tree.display());
        return Ok(());
    }
    eprintln!("generating {files} files in {} ...", tree.display());
    let started = Instant::now();
    if tree.exists() {
        fs::remove_dir_all(tree).map_err(|e| format!("cannot remove {}: {e}", tree.display()))?;
    }
    generate(tree, files)?;
    fs::write(&marker, GENERATOR).map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    eprintln!("generated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A small deterministic generator (xorshift64*), so every run makes the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// An extension, how a comment opens and closes in it, and whether scripts start with a shebang.
const KINDS: [(&str, &str, &str, bool); 12] = [
    ("py", "# ", "", true),
    ("sh", "# ", "", true),
    ("rb", "# ", "", false),
    ("yaml", "# ", "", false),
    ("toml", "# ", "", false),
    ("rs", "// ", "", false),
    ("js", "// ", "", false),
    ("go", "// ", "", false),
    ("sql", "-- ", "", false),
    ("md", "<!-- ", " -->", false),
    ("html", "<!-- ", " -->", false),
    ("c", "/* ", " */", false),
];

const SCOPES: [&str; 7] = ["GOV", "SEC", "OPS", "ALERT", "BASH", "DASHBOARD", "ETL"];
const TYPES: [&str; 4] = ["RULES", "SCRIPT", "CONFIG", "MULTI-ETL"];
const VARIANTS: [&str; 8] = [
    "EXPANDED",
    "COMPACT",
    "LIVE",
    "DEV",
    "TEST",
    "DEPRECATED",
    "SCRIPT",
    "YAML",
];
const STATUSES: [&str; 7] = [
    "LIVE",
    "DEV",
    "TEST",
    "DEPRECATED",
    "REQUIRED",
    "STANDARD",
    "OPTIONAL",
];
const WORDS: [&str; 16] = [
    "block",
    "inbound",
    "traffic",
    "rotate",
    "keys",
    "audit",
    "bucket",
    "policy",
    "restart",
    "workers",
    "queue",
    "latency",
    "region",
    "payments",
    "warehouse",
    "retention",
];

fn prefix(scope: &str, kind: &str) -> String {
    let letters: String = kind
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(3)
        .collect();
    format!("{scope}-{letters}")
}

/// The header of file `i`: valid about 90 % of the time, then bad in one of a few ways, or
/// absent.
fn header(rng: &mut Rng, i: usize) -> Option<String> {
    let scope = rng.pick(&SCOPES);
    let kind = rng.pick(&TYPES);
    let variant = rng.pick(&VARIANTS);
    let status = rng.pick(&STATUSES);
    let id = format!("{}-{:03}", prefix(scope, kind), i + 1);
    let roll = rng.below(100);
    let readable = |scope: &str, id: &str, version: &str, status: &str| {
        format!("[{scope}][{kind}][{variant}][{id}][{version}][{status}]")
    };
    Some(match roll {
        0..=62 => readable(scope, &id, "v2.9", status),
        63..=89 => readable(scope, &id, "v2.9", status)
            .to_lowercase()
            .replace("][", "-"),
        90 => readable("XYZ", &id, "v2.9", status),
        91 => format!("[{scope}][{kind}][{variant}][{id}][v2.9]"),
        92 => readable(scope, &id, "2.9", status),
        93 => readable(scope, &format!("OPS-XXX-{:03}", i + 1), "v2.9", status),
        // A duplicate: the id of an earlier file.
        94 => readable(
            scope,
            &format!("{}-{:03}", prefix(scope, kind), i / 2 + 1),
            "v2.9",
            status,
        ),
        _ => return None,
    })
}

fn generate(tree: &Path, files: usize) -> Result<(), String> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut text = String::with_capacity(8 * 1024);
    let mut made_dirs = std::collections::HashSet::new();
    fs::create_dir_all(tree).map_err(|e| format!("cannot create {}: {e}", tree.display()))?;
    // An ignore file, as real trees have, so both commands match every path against it.
    fs::write(tree.join(".gitignore"), "*.log\nbuild/\n")
        .map_err(|e| format!("cannot write .gitignore: {e}"))?;
    for i in 0..files {
        // 100 files per directory, three levels deep.
        let leaf = i / 100;
        let dir: PathBuf = tree
            .join(format!("a{}", leaf / 100))
            .join(format!("b{}", leaf / 10 % 10))
            .join(format!("c{}", leaf % 10));
        if made_dirs.insert(leaf) {
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let (ext, open, close, shebang) = KINDS[rng.below(KINDS.len())];
        text.clear();
        if shebang && rng.below(2) == 0 {
            text.push_str(if ext == "py" {
                "#!/usr/bin/env python3\n"
            } else {
                "#!/bin/sh\n"
            });
        }
        if let Some(h) = header(&mut rng, i) {
            let _ = writeln!(text, "{open}{h}{close}");
        }
        for _ in 0..10 + rng.below(50) {
            let words: Vec<&str> = (0..3 + rng.below(8)).map(|_| rng.pick(&WORDS)).collect();
            let _ = writeln!(text, "{open}{}{close}", words.join(" "));
        }
        let path = dir.join(format!("rule{i}.{ext}"));
        fs::write(&path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
