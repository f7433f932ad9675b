//! The plugin libraries the user allows outside the registry's own plugin directory (see
//! `registry_abi::trust` for the policy).
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

use serde::Serialize;

use crate::error::{Error, io_reason};

/// The environment variable of paths trusted for this run (`:`-separated).
pub const TRUST_VARIABLE: &str = "REGISTRY_TRUST";

/// One trusted path and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trusted {
    pub path: PathBuf,
    /// `file` (the user's trust file) or `environment` (`REGISTRY_TRUST`).
    pub source: &'static str,
}

/// What [`add`] or [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The path, as recorded (resolved when it exists).
    pub path: PathBuf,
    /// The user's trust file.
    pub file: PathBuf,
    /// Whether the file changed (false: it was already trusted, or was not).
    pub changed: bool,
}

/// The user's trust file, if a home or configuration directory is known.
pub fn trust_file() -> Option<PathBuf> {
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

/// Every trusted path, the user's file first; a warning for a file that is ignored.
pub fn list(warnings: &mut Vec<String>) -> Vec<Trusted> {
    let mut all = read_file(warnings);
    all.extend(from_environment().into_iter().map(|path| Trusted {
        path,
        source: "environment",
    }));
    all
}

/// Every trusted path, for [`registry_abi::trust::Trust`].
pub fn trusted_paths(warnings: &mut Vec<String>) -> Vec<PathBuf> {
    list(warnings).into_iter().map(|t| t.path).collect()
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
fn read_file(warnings: &mut Vec<String>) -> Vec<Trusted> {
    let Some(file) = trust_file() else {
        return Vec::new();
    };
    let Ok(text) = fs::read_to_string(&file) else {
        return Vec::new();
    };
    if let Err(why) = registry_abi::trust::check_owned(&file) {
        warnings.push(format!(
            "ignoring the trusted plugin paths in {}: {why}",
            file.display()
        ));
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

fn file_or_error() -> Result<PathBuf, Error> {
    trust_file().ok_or_else(|| {
        Error::config(format!(
            "cannot tell where the user's configuration lives (neither XDG_CONFIG_HOME nor HOME \
             is set): set {TRUST_VARIABLE} instead"
        ))
    })
}

/// Records `path` (resolved) in the user's trust file.
///
/// # Errors
/// A path that does not exist (exit 1), or a file that cannot be written.
pub fn add(path: &Path, warnings: &mut Vec<String>) -> Result<Change, Error> {
    let file = file_or_error()?;
    let real = path.canonicalize().map_err(|e| {
        Error::input(format!(
            "cannot trust {}: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    let mut lines: Vec<PathBuf> = read_file(warnings).into_iter().map(|t| t.path).collect();
    let changed = !lines.contains(&real);
    if changed {
        lines.push(real.clone());
        write_file(&file, &lines)?;
    }
    Ok(Change {
        path: real,
        file,
        changed,
    })
}

/// Removes `path` (as given, or resolved) from the user's trust file.
///
/// # Errors
/// A file that cannot be written.
pub fn remove(path: &Path, warnings: &mut Vec<String>) -> Result<Change, Error> {
    let file = file_or_error()?;
    let target = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut lines: Vec<PathBuf> = read_file(warnings).into_iter().map(|t| t.path).collect();
    let before = lines.len();
    lines.retain(|l| *l != target && l != path);
    let changed = lines.len() != before;
    if changed {
        write_file(&file, &lines)?;
    }
    Ok(Change {
        path: target,
        file,
        changed,
    })
}

fn write_file(file: &Path, lines: &[PathBuf]) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        Error::config(format!(
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
