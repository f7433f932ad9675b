//! `registry plugins check`: whether a plugin library will load in this host and behave, before
//! anyone points `registry.toml` at it.
//!
//! It opens the library as the host does (the same version and layout checks), reports what the
//! library says it is and provides, and runs a short conformance smoke test of each stage
//! through the loaded objects (`registry_conformance::library::smoke`, whose suites return the
//! broken rule as an error: no test code, panic hook or `catch_unwind` here). The report goes to
//! stdout; when the library is not usable the reason is one line on stderr and the exit code is
//! 2, with the loader's full layout report behind `--verbose`.
//!
//! Loading a library runs its code, and the library may be anything: so the check runs in a
//! child process (this executable again, with a hidden `--child` flag) that the command waits
//! for at most `--timeout` seconds. A library that hangs (an endless constructor) is killed and
//! reported as hanging, one that crashes (a segfault, an abort) is reported as crashing, and
//! neither takes the command down. Before that, the file itself is checked as every library
//! the host loads is: a regular file (a FIFO would block the loader), owned by the user or
//! root, writable by nobody else, in a directory nobody else can write
//! (`registry_abi::trust::check_safe`). Naming a library on the command line is the user's own
//! choice, so it need not be trusted with `registry trust` first.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use registry_abi::load::{self, LibraryInfo, LoadError, SearchPaths};
use registry_core::StageKind;
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::output::{json, write_err};
use crate::{CliError, Format, FormatArg};

/// The arguments of `registry plugins check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The plugin library: a path (relative to the current directory), or a plugin name such
    /// as `storage-redb`, looked up in the plugin directory
    #[arg(value_name = "PATH")]
    library: String,
    /// Check only this stage [default: every stage the library provides]
    #[arg(long, value_enum)]
    stage: Option<Stage>,
    /// The config table each checked stage is built with, as a JSON object: what
    /// `[<stage>.config]` in registry.toml would hold
    #[arg(long, value_name = "JSON", default_value = "{}")]
    stage_config: String,
    /// Seconds the library has to load and pass its smoke test before it is killed
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Run the check in this process: what the child process does
    #[arg(long, hide = true)]
    child: bool,
    #[command(flatten)]
    format: FormatArg,
}

/// A stage name on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Stage {
    Cache,
    Generator,
    Validator,
    Storage,
    Router,
}

impl From<Stage> for StageKind {
    fn from(s: Stage) -> StageKind {
        match s {
            Stage::Cache => StageKind::Cache,
            Stage::Generator => StageKind::Generator,
            Stage::Validator => StageKind::Validator,
            Stage::Storage => StageKind::Storage,
            Stage::Router => StageKind::Router,
        }
    }
}

/// What `plugins check` found, as `--format json` prints it.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    path: PathBuf,
    /// Whether the library opened as a plugin compatible with this host.
    loadable: bool,
    name: Option<String>,
    version: Option<String>,
    /// The `registry-abi` version of this host.
    abi_version_expected: String,
    /// The stages the library provides.
    stages: Vec<String>,
    /// `true` when the library loaded, `false` when it is a plugin built against an
    /// incompatible interface, `null` when it is not a plugin at all.
    abi_compatible: Option<bool>,
    checks: Vec<Check>,
    usable: bool,
    /// Why the library is not usable, in one line; `null` when it is.
    reason: Option<String>,
}

/// The smoke test of one stage.
#[derive(Debug, Serialize, Deserialize)]
struct Check {
    stage: String,
    ok: bool,
    error: Option<String>,
}

/// `registry plugins check`.
///
/// # Errors
/// Exit code 1 for a `--stage-config` that is not a JSON object; exit code 2 (with the report
/// already printed) when the library is not usable, with the reason and, for `--verbose`, the
/// loader's full report.
pub fn run(args: CheckArgs, settings: &Settings) -> Result<(), CliError> {
    let config: serde_json::Value = serde_json::from_str(&args.stage_config).map_err(|e| {
        CliError::input(format!(
            "--stage-config is not valid JSON: {e}: expected an object such as '{{\"key\": 1}}'"
        ))
    })?;
    if !config.is_object() {
        return Err(CliError::input(format!(
            "--stage-config {}: expected a JSON object (the stage's config table)",
            args.stage_config
        )));
    }
    let path = library_path(&args.library, settings);
    let wanted = args.stage.map(StageKind::from);
    if args.child {
        let (report, detail) = match load::open(&path, wanted.unwrap_or(StageKind::Validator)) {
            Ok((_, info)) => (checked(&path, &info, wanted, &args.stage_config), None),
            Err(e) => unloadable(&path, &e),
        };
        return json(&FromChild { report, detail });
    }
    let (report, detail) = if !path.exists() {
        // Nothing to run: `open` says how to build the plugins, without loading anything.
        match load::open(&path, wanted.unwrap_or(StageKind::Validator)) {
            Err(e) => unloadable(&path, &e),
            Ok(_) => (
                refused(&path, "appeared while being checked".to_owned()),
                None,
            ),
        }
    } else {
        match registry_abi::trust::check_safe(&path, None) {
            Err(refusal) => (refused(&path, refusal.to_string()), None),
            Ok(()) => in_child(&args, &path, wanted)?,
        }
    };
    match args.format.format {
        Format::Json => json(&report)?,
        Format::Text => text(&report).map_err(write_err)?,
    }
    match report.reason {
        None => Ok(()),
        Some(reason) => Err(CliError {
            detail,
            ..CliError::config(format!("{}: {reason}", path.display()))
                .with_kind("plugin")
                .in_file(path.display().to_string())
        }),
    }
}

/// What the child process hands back: the report and the loader's full report, if any.
#[derive(Debug, Serialize, Deserialize)]
struct FromChild {
    report: Report,
    detail: Option<String>,
}

/// Runs the check in a child process, killed after `--timeout` seconds.
fn in_child(
    args: &CheckArgs,
    path: &Path,
    wanted: Option<StageKind>,
) -> Result<(Report, Option<String>), CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::config(format!("cannot locate the registry executable: {e}")))?;
    let mut command = Command::new(exe);
    command
        .args([
            "plugins",
            "check",
            "--child",
            "--format",
            "json",
            "--stage-config",
        ])
        .arg(&args.stage_config)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(stage) = wanted {
        command.args(["--stage", stage.name()]);
    }
    let mut child = command
        .spawn()
        .map_err(|e| CliError::config(format!("cannot start the checking process: {e}")))?;
    // Both pipes are drained while waiting, so a chatty library cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(p) = pipe {
                let _ = p.take(1 << 20).read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // Ends exactly the process this command started.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                return Err(CliError::config(format!(
                    "cannot wait for the checking process: {e}"
                )));
            }
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return Ok((
            refused(
                path,
                format!(
                    "the library did not finish loading and its smoke test within {} s (it \
                     hangs, e.g. in its constructor): the checking process was killed",
                    args.timeout
                ),
            ),
            None,
        ));
    };
    if let Ok(FromChild { report, detail }) = serde_json::from_str::<FromChild>(&out) {
        return Ok((report, detail));
    }
    let how = crashed(status);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    // The child runs with --format json: its own error, if it failed with one, is JSON.
    let own = serde_json::from_str::<serde_json::Value>(last)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .map(|m| format!("error: {m}"))
        });
    let last = own.as_deref().unwrap_or(last);
    let reason = if last.is_empty() {
        format!("the library {how}")
    } else {
        format!("the library {how}: {}", last.trim())
    };
    Ok((refused(path, reason), None))
}

/// How a checking process that reported nothing ended.
fn crashed(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGILL => " (SIGILL)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGKILL => " (SIGKILL)",
                _ => "",
            };
            return format!("crashed the checking process with signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("ended the checking process with exit code {code} and no report"),
        None => "ended the checking process without a report".to_owned(),
    }
}

/// The report on a library that was not loaded, for `reason`.
fn refused(path: &Path, reason: String) -> Report {
    Report {
        path: path.to_owned(),
        loadable: false,
        name: None,
        version: None,
        abi_version_expected: registry_abi::ABI_VERSION.to_owned(),
        stages: Vec::new(),
        abi_compatible: None,
        checks: Vec::new(),
        usable: false,
        reason: Some(reason),
    }
}

/// The library file the argument names: a path or a file name, relative to the current
/// directory where the user typed it, or a plugin's name, meaning its library file in the plugin
/// directory (`storage-redb`: `libstorage_redb.so`). `plugins check` checks libraries, so unlike
/// `library = "…"` in registry.toml a name never means the built-in.
fn library_path(library: &str, settings: &Settings) -> PathBuf {
    let paths = SearchPaths {
        plugin_dir: PathBuf::new(),
        base_dir: PathBuf::new(),
        trust: settings.paths.trust.clone(),
    };
    match load::library(library, &paths) {
        load::Library::File(path) => path,
        load::Library::Builtin(name) => settings
            .paths
            .plugin_dir
            .join(load::library_file_name(&name)),
    }
}

fn unloadable(path: &Path, e: &LoadError) -> (Report, Option<String>) {
    let report = Report {
        abi_compatible: e.needs_rebuild().then_some(false),
        ..refused(path, e.reason())
    };
    (report, e.detail.clone())
}

fn checked(
    path: &Path,
    info: &LibraryInfo,
    wanted: Option<StageKind>,
    config_json: &str,
) -> Report {
    let stages = match wanted {
        Some(stage) => vec![stage],
        None => info.stages.clone(),
    };
    let checks: Vec<Check> = stages
        .iter()
        .map(|&stage| {
            let error = registry_conformance::library::smoke(path, stage, config_json)
                .err()
                .map(|e| without_prefix(&e, stage, path));
            Check {
                stage: stage.name().to_owned(),
                ok: error.is_none(),
                error,
            }
        })
        .collect();
    let reason = match checks.iter().find(|c| !c.ok) {
        Some(Check {
            stage,
            error: Some(error),
            ..
        }) => Some(format!("{stage}: {error}")),
        Some(Check { stage, .. }) => Some(format!("{stage}: the smoke test failed")),
        None if checks.is_empty() => Some("the library provides no stage".to_owned()),
        None => None,
    };
    Report {
        path: path.to_owned(),
        loadable: true,
        name: Some(info.name.clone()),
        version: Some(info.version.clone()),
        abi_version_expected: registry_abi::ABI_VERSION.to_owned(),
        stages: info.stages.iter().map(|s| s.name().to_owned()).collect(),
        abi_compatible: Some(true),
        usable: reason.is_none(),
        checks,
        reason,
    }
}

/// A smoke test's error without the `<stage> plugin <path>: ` the report already shows.
fn without_prefix(error: &str, stage: StageKind, path: &Path) -> String {
    let prefix = format!("{stage} plugin {}: ", path.display());
    error.strip_prefix(&prefix).unwrap_or(error).to_owned()
}

fn text(r: &Report) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "library   {}", r.path.display())?;
    let reason = r.reason.as_deref().unwrap_or_default();
    match (&r.name, &r.version, r.abi_compatible) {
        (Some(name), Some(version), _) => writeln!(out, "plugin    {name} {version}")?,
        (_, _, Some(false)) => writeln!(out, "plugin    not loaded")?,
        _ => writeln!(out, "plugin    not loaded: {reason}")?,
    }
    let expected = &r.abi_version_expected;
    match r.abi_compatible {
        Some(true) => writeln!(out, "abi       compatible with registry-abi {expected}")?,
        Some(false) => writeln!(out, "abi       incompatible: {reason}")?,
        None => writeln!(out, "abi       unknown")?,
    }
    if r.loadable {
        let stages = if r.stages.is_empty() {
            "none".to_owned()
        } else {
            r.stages.join(", ")
        };
        writeln!(out, "stages    {stages}")?;
    }
    for c in &r.checks {
        match &c.error {
            None => writeln!(out, "smoke     {} ok", c.stage)?,
            Some(e) => writeln!(out, "smoke     {} failed: {e}", c.stage)?,
        }
    }
    writeln!(out, "usable    {}", if r.usable { "yes" } else { "no" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_prefix_of_a_smoke_error_is_dropped() {
        let path = Path::new("/p/libx.so");
        for (error, expected) in [
            (
                "validator plugin /p/libx.so: cannot start: no",
                "cannot start: no",
            ),
            (
                "validator contract broken: check_requests must",
                "validator contract broken: check_requests must",
            ),
            ("cache plugin /p/libx.so: x", "cache plugin /p/libx.so: x"),
        ] {
            assert_eq!(without_prefix(error, StageKind::Validator, path), expected);
        }
    }
}
