//! `registry trust`: the plugin libraries the user allows outside the registry's own plugin
//! directory (see `registry_abi::trust` for the policy).
//!
//! Trusted paths live in the user's configuration directory, `$XDG_CONFIG_HOME/registry/trusted`
//! (or `~/.config/registry/trusted`), one absolute path per line, and in the `REGISTRY_TRUST`
//! environment variable (paths separated by `:`), for CI. Never in a repository: a
//! `registry.toml` can name a library, but only the user can let it run. The file is written
//! whole through a temporary file and a rename, and it is ignored, with a warning, when someone
//! other than the user could have written it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use crate::registry::io_reason;
use crate::{CliError, Format, FormatArg};

/// The environment variable of paths trusted for this run (`:`-separated).
pub const TRUST_VARIABLE: &str = "REGISTRY_TRUST";

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// A plugin library, or a directory whose libraries (at any depth) may load
    #[arg(value_name = "PATH", required_unless_present = "list")]
    path: Option<PathBuf>,
    /// Stop trusting PATH
    #[arg(long, requires = "path")]
    remove: bool,
    /// Show the trusted paths and where each comes from
    #[arg(long, conflicts_with_all = ["path", "remove"])]
    list: bool,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Serialize)]
struct Trusted {
    path: PathBuf,
    /// `file` (the user's trust file) or `environment` (REGISTRY_TRUST).
    source: &'static str,
}

/// The user's trust file, if a home or configuration directory is known.
fn trust_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("registry").join("trusted"))
}

/// Every trusted path: the user's file, then `REGISTRY_TRUST`.
pub fn trusted_paths() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = read_file().into_iter().map(|t| t.path).collect();
    all.extend(from_environment());
    all
}

fn from_environment() -> Vec<PathBuf> {
    std::env::var_os(TRUST_VARIABLE)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The paths in the user's trust file; nothing (with a warning) when the file could have been
/// written by someone else.
fn read_file() -> Vec<Trusted> {
    let Some(file) = trust_file() else {
        return Vec::new();
    };
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(_) => return Vec::new(),
    };
    if let Err(why) = registry_abi::trust::check_owned(&file) {
        eprintln!(
            "warning: ignoring the trusted plugin paths in {}: {why}",
            file.display()
        );
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Trusted {
            path: PathBuf::from(l),
            source: "file",
        })
        .collect()
}

/// `registry trust PATH | --remove PATH | --list`.
pub fn run(args: TrustArgs) -> Result<(), CliError> {
    let format = args.format.format;
    if args.list {
        let mut all = read_file();
        all.extend(from_environment().into_iter().map(|path| Trusted {
            path,
            source: "environment",
        }));
        return match format {
            Format::Json => crate::output::json(&all),
            Format::Text => {
                let mut out = std::io::stdout().lock();
                for t in &all {
                    let _ = writeln!(out, "{}\t{}", t.path.display(), t.source);
                }
                Ok(())
            }
        };
    }
    let Some(path) = args.path else {
        return Err(CliError::input("give a PATH to trust, or --list"));
    };
    let file = trust_file().ok_or_else(|| {
        CliError::config(format!(
            "cannot tell where the user's configuration lives (neither XDG_CONFIG_HOME nor HOME \
             is set): set {TRUST_VARIABLE} instead"
        ))
    })?;
    let mut lines: Vec<PathBuf> = read_file().into_iter().map(|t| t.path).collect();
    let (changed, path) = if args.remove {
        let target = path.canonicalize().unwrap_or_else(|_| path.clone());
        let before = lines.len();
        lines.retain(|l| *l != target && *l != path);
        (lines.len() != before, target)
    } else {
        let real = path.canonicalize().map_err(|e| {
            CliError::input(format!(
                "cannot trust {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        let new = !lines.contains(&real);
        if new {
            lines.push(real.clone());
        }
        (new, real)
    };
    if changed {
        write_file(&file, &lines)?;
    }
    let action = match (args.remove, changed) {
        (false, true) => "trusted",
        (false, false) => "already trusted",
        (true, true) => "no longer trusted",
        (true, false) => "was not trusted",
    };
    match format {
        Format::Json => crate::output::json(&serde_json::json!({
            "path": path,
            "action": action.replace(' ', "-"),
            "file": file,
        })),
        Format::Text => {
            println!("{}: {action} (in {})", path.display(), file.display());
            Ok(())
        }
    }
}

fn write_file(file: &Path, lines: &[PathBuf]) -> Result<(), CliError> {
    let fail = |e: std::io::Error| {
        CliError::config(format!(
            "cannot write {}: {}",
            file.display(),
            io_reason(&e)
        ))
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(fail)?;
    let mut text = String::from(
        "# Plugin libraries (or directories of them) `registry` may load; see `registry trust`.\n",
    );
    for l in lines {
        text.push_str(&l.to_string_lossy());
        text.push('\n');
    }
    let tmp = dir.join(format!(".trusted.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(fail)
}
