//! The `startup` section of `cargo xtask bench`: how long a whole `registry get` of a stored id
//! takes, process start to exit, with the plugins built into the binary and with the same
//! plugins loaded from their libraries (a configuration naming their files).
//!
//! One registry is made first (one `add`, by the built-in plugins); then the two kinds of run
//! alternate, so that the machine's drift weighs on both alike, and each run's wall time is
//! taken from spawning the process to its exit. The report gives p50 and p90 of each and their
//! ratio (`ratio/startup/get/dynamic_over_builtin`): what loading five libraries through the
//! plugin interface adds to a short command.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::report::{Better, Figure, percentile, percentile_figures, percentile_interval, units};

/// The section's name, as `--filter` matches it.
pub const STARTUP: &str = "startup";

/// The default plugins, as `registry.toml` names the built-ins.
const PLUGINS: [(&str, &str); 5] = [
    ("cache", "cache-quick"),
    ("generator", "generator-default"),
    ("validator", "validator-schema"),
    ("storage", "storage-redb"),
    ("router", "router-hash"),
];

/// Wall times of `registry get`, nanoseconds, per kind.
#[derive(Debug, Default)]
pub struct Startup {
    pub builtin: Vec<u64>,
    pub dynamic: Vec<u64>,
}

/// Runs the section: `runs` of each kind, alternating, in a registry made under `scratch`.
///
/// # Errors
/// A command that fails, or a `get` that does not find the entry.
pub fn run(registry: &Path, scratch: &Path, runs: usize) -> Result<Startup, String> {
    let dir = scratch.join("startup");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Built-ins: no configuration at all (an empty file stops the search for one).
    let builtin = dir.join("builtin.toml");
    std::fs::write(&builtin, "").map_err(|e| format!("cannot write: {e}"))?;
    let dynamic = dir.join("dynamic.toml");
    let files: String = PLUGINS
        .iter()
        .map(|(stage, name)| {
            format!(
                "[{stage}]\nlibrary = \"{}{}{}\"\n",
                std::env::consts::DLL_PREFIX,
                name.replace('-', "_"),
                std::env::consts::DLL_SUFFIX
            )
        })
        .collect();
    std::fs::write(&dynamic, files).map_err(|e| format!("cannot write: {e}"))?;
    let data = dir.join("data");
    let command = |config: &Path, args: &[&str]| {
        let mut c = Command::new(registry);
        c.arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null());
        c
    };
    let out = command(
        &builtin,
        &["add", "--title", "Start-up probe", "--format", "json"],
    )
    .output()
    .map_err(|e| format!("cannot run {}: {e}", registry.display()))?;
    if !out.status.success() {
        return Err(format!(
            "registry add failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let added: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("registry add printed no JSON: {e}"))?;
    let id = added["id"]
        .as_str()
        .ok_or("registry add printed no id")?
        .to_owned();
    let mut times = Startup::default();
    for _ in 0..runs {
        for (config, into) in [
            (&builtin, &mut times.builtin),
            (&dynamic, &mut times.dynamic),
        ] {
            let mut c = command(config, &["get", &id]);
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            let start = Instant::now();
            let out = c
                .output()
                .map_err(|e| format!("cannot run {}: {e}", registry.display()))?;
            let took = start.elapsed();
            if !out.status.success() {
                return Err(format!(
                    "registry get {id} (--config {}) failed: {}",
                    config.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            into.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(times)
}

/// The section's figures: p50 and p90 of each kind, and the ratio of the medians.
pub fn figures(s: &Startup) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut medians = Vec::new();
    for (kind, ns) in [("builtin", &s.builtin), ("dynamic", &s.dynamic)] {
        if ns.is_empty() {
            return Vec::new();
        }
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        out.extend(percentile_figures(
            &format!("{STARTUP}/get/{kind}"),
            &format!("registry get, whole process, {kind} plugins"),
            &sorted,
            &[("p50", 0.50), ("p90", 0.90)],
        ));
        medians.push((
            percentile(&sorted, 0.5) as f64,
            percentile_interval(&sorted, 0.5),
        ));
    }
    let [(b, (b_low, b_high)), (d, (d_low, d_high))] = [medians[0], medians[1]];
    out.push(Figure {
        id: format!("ratio/{STARTUP}/get/dynamic_over_builtin"),
        label: "registry get, whole process: dynamic / built in".into(),
        unit: units::RATIO,
        better: Better::Lower,
        median: d / b,
        low: d_low as f64 / b_high.max(1) as f64,
        high: d_high as f64 / b_low.max(1) as f64,
        spread: None,
        runs: Some(s.builtin.len() as u64),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_give_percentiles_and_the_ratio_of_medians() {
        let s = Startup {
            builtin: (1..=10).map(|i| i * 1_000_000).collect(),
            dynamic: (1..=10).map(|i| i * 2_000_000).collect(),
        };
        let f = figures(&s);
        let get = |id: &str| f.iter().find(|x| x.id == id).expect(id).median;
        assert_eq!(get("startup/get/builtin/p50"), 5e6);
        assert_eq!(get("startup/get/dynamic/p90"), 18e6);
        assert_eq!(get("ratio/startup/get/dynamic_over_builtin"), 2.0);
        assert!(figures(&Startup::default()).is_empty());
    }
}
