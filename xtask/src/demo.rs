//! `cargo xtask demo`: the main job on the embedded default.
//!
//! Builds the workspace in release, then registers sample rules with `target/release/registry
//! add` (one process each, as a user or script would), lists them, updates one and shows its
//! history. Then it stamps a few rule files in `target/demo-rules/` with their headers and lints
//! that folder, where one legacy file carries a broken header. Running it again registers and
//! stamps nothing new: registration is idempotent and stamped files are left unchanged.

use std::process::Command;
use std::time::Instant;

use crate::root;

/// Sample requests: a title and the header fields the requester already knows.
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "Block inbound SSH from the internet on production security groups",
        &["--context", "env=prod"],
    ),
    (
        "Rotate IAM access keys older than 90 days",
        &["--scope", "SEC", "--status", "REQUIRED"],
    ),
    ("Security audit of S3 bucket policies", &[]),
    (
        "Nightly ops cleanup of stale build artifacts",
        &["--variant", "DEV"],
    ),
    (
        "Restart ops workers when the queue backs up",
        &["--context", "owner=platform"],
    ),
    (
        "Revenue dashboard for the trading desk",
        &["--status", "LIVE"],
    ),
    (
        "Latency dashboard per region",
        &["--context", "region=eu-west-1"],
    ),
    (
        "ETL pipeline loading payments into the warehouse",
        &["--context", "env=prod"],
    ),
    (
        "Alert when disk usage exceeds 90 percent",
        &["--scope", "ALERT", "--type", "RULES"],
    ),
    (
        "Bash script to rotate application logs",
        &["--scope", "BASH", "--type", "SCRIPT", "--variant", "SCRIPT"],
    ),
    (
        "Data retention policy for customer records",
        &["--status", "STANDARD"],
    ),
    (
        "Access review of privileged accounts every quarter",
        &["--scope", "GOV", "--status", "REQUIRED"],
    ),
];

pub fn run() -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    crate::run(&cargo, &["build", "--release", "--workspace"])?;
    let registry = crate::target_dir().join("release/registry");
    let exe = registry.to_string_lossy().into_owned();

    println!(
        "\nRegistering {} sample rules (data in ./.registry, settings in ./registry.toml):",
        SAMPLES.len()
    );
    let mut slowest = 0.0f64;
    let mut total = 0.0f64;
    for (title, args) in SAMPLES {
        let started = Instant::now();
        let output = Command::new(&exe)
            .current_dir(root())
            .args(["add", "--title", title])
            .args(*args)
            .output()
            .map_err(|e| format!("cannot run {exe}: {e}"))?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        slowest = slowest.max(ms);
        total += ms;
        if !output.status.success() {
            return Err(format!(
                "registry add failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        let header = lines.next().unwrap_or("");
        println!("  {first:<27} {header}");
    }
    println!(
        "  ({} `registry add` processes, {:.1} ms each on average, slowest {:.1} ms, including the durable write)",
        SAMPLES.len(),
        total / SAMPLES.len() as f64,
        slowest
    );

    println!("\n$ registry list");
    show(&exe, &["list"])?;
    println!("\n$ registry list --scope SEC");
    show(&exe, &["list", "--scope", "SEC"])?;
    let first = first_id(&exe)?;
    println!("\n$ registry get {first}");
    show(&exe, &["get", &first])?;
    println!("\n$ registry update {first} --status DEPRECATED --context reviewed=yes");
    show(
        &exe,
        &[
            "update",
            &first,
            "--status",
            "DEPRECATED",
            "--context",
            "reviewed=yes",
        ],
    )?;
    println!("\n$ registry history {first}");
    show(&exe, &["history", &first])?;
    println!("\n$ registry plugins");
    show(&exe, &["plugins"])?;
    rule_files(&exe)?;
    println!("\nTry it: {exe} add --title \"…\" [--scope S] [--format json]");
    Ok(())
}

/// Rule files as a team keeps them: three without a header yet, one with a broken one.
const RULE_FILES: &[(&str, &str)] = &[
    (
        "rotate_app_logs.sh",
        "#!/bin/sh\nfind /var/log/app -name '*.log' -mtime +7 -delete\n",
    ),
    (
        "deny_public_s3_acls.tf",
        "resource \"aws_s3_account_public_access_block\" \"all\" {\n  block_public_acls = true\n}\n",
    ),
    (
        "firewall-review.md",
        "# Quarterly security review of firewall rules\n\nCompare the rules with the inventory.\n",
    ),
    (
        "legacy_cleanup.sql",
        "-- [SEC][RULEZ][LIVE][SEC-RUL-999][2.9][LIVE]\nDELETE FROM sessions WHERE expired;\n",
    ),
];

/// Stamps the rule files that lack a header, then lints the folder against the registry.
fn rule_files(exe: &str) -> Result<(), String> {
    let dir = crate::target_dir().join("demo-rules");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, text) in RULE_FILES {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    // Shown and passed relative to the workspace root when the target directory is below it.
    let shown = dir
        .strip_prefix(root())
        .unwrap_or(&dir)
        .display()
        .to_string();
    let stamped: Vec<String> = RULE_FILES[..3]
        .iter()
        .map(|(name, _)| format!("{shown}/{name}"))
        .collect();
    println!("\n$ registry stamp {}", stamped.join(" "));
    let mut args = vec!["stamp"];
    args.extend(stamped.iter().map(String::as_str));
    show(exe, &args)?;
    println!("\n$ head -2 {shown}/rotate_app_logs.sh");
    let script = std::fs::read_to_string(dir.join("rotate_app_logs.sh"))
        .map_err(|e| format!("cannot read the stamped script: {e}"))?;
    for line in script.lines().take(2) {
        println!("{line}");
    }
    println!("\n$ registry lint {shown} --registered");
    let status = Command::new(exe)
        .current_dir(root())
        .args(["lint", &shown, "--registered"])
        .status()
        .map_err(|e| format!("cannot run {exe}: {e}"))?;
    // The legacy file's header is wrong on purpose: lint must say so and exit 1.
    if status.code() != Some(1) {
        return Err(format!(
            "registry lint should have found the errors of legacy_cleanup.sql, but exited with {status}"
        ));
    }
    println!("(exit code 1: what a CI job would fail on)");
    Ok(())
}

fn show(exe: &str, args: &[&str]) -> Result<(), String> {
    let status = Command::new(exe)
        .current_dir(root())
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {exe}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("registry {} failed", args.join(" ")))
    }
}

fn first_id(exe: &str) -> Result<String, String> {
    let out = Command::new(exe)
        .current_dir(root())
        .args(["list", "--limit", "1"])
        .output()
        .map_err(|e| format!("cannot run {exe}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `[SCOPE][TYPE][VARIANT][ID]...`: the fourth bracketed field.
    text.split(['[', ']'])
        .filter(|s| !s.is_empty())
        .nth(3)
        .map(str::to_owned)
        .ok_or_else(|| "registry list returned nothing".to_owned())
}
