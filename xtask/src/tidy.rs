//! `cargo xtask tidy`: checks the promises of ARCHITECTURE.md that no compiler checks.
//!
//! - Dependency edges (from `cargo metadata`): `registry-core` depends on no `abi_stable` (and
//!   names it in no line of code); only `registry-abi` depends on it directly, the two
//!   fixtures that stand for other builds of it aside; the `registry` binary's crate depends on
//!   no test crate (`registry-testkit`) for its normal build, and `registry-conformance` (the
//!   suites the binary runs) depends on neither that nor `tempfile`.
//! - Every Rust source file tracked by git opens with a `//!` line saying what it is for (test
//!   fixtures under `tests/fixtures/` are data, not code).
//! - No Rust source file is longer than [`MAX_LINES`] lines.
//!
//! Every problem is reported, one line each, and the command fails if there is any.

use std::path::Path;
use std::process::Command;

use crate::root;

/// The longest a Rust source file may be.
pub const MAX_LINES: usize = 1500;

/// The crates that may depend on `abi_stable` directly: the ABI crate, and the fixtures that
/// stand for plugins built against another version or layout of it.
const MAY_NAME_ABI_STABLE: [&str; 3] = [
    "registry-abi",
    "registry-fixture-abi-version",
    "registry-fixture-abi-layout",
];

/// The crates the `registry` binary's crate may not depend on for its normal build.
const TEST_CRATES: [&str; 1] = ["registry-testkit"];

/// What the conformance suites may not depend on for their normal build: they ship in the
/// binary (`registry plugins check`), which links no test code.
const NOT_FOR_CONFORMANCE: [&str; 2] = ["registry-testkit", "tempfile"];

pub fn run() -> Result<(), String> {
    let mut problems = Vec::new();
    dependency_edges(&mut problems)?;
    files(&mut problems)?;
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    Err(format!("{} problem(s)", problems.len()))
}

fn dependency_edges(problems: &mut Vec<String>) -> Result<(), String> {
    let out = Command::new(crate::cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
    check_edges(&metadata, problems);
    let core_src = root().join("crates/core/src");
    for file in rust_files(&core_src)? {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        // Code, not prose: the crate's documentation says why it does not use abi_stable.
        let code = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .any(|l| l.contains("abi_stable"));
        if code {
            problems.push(format!(
                "{} names abi_stable: registry-core knows nothing of the plugin boundary",
                relative(&file)
            ));
        }
    }
    Ok(())
}

/// The dependency rules on `cargo metadata`'s packages.
fn check_edges(metadata: &serde_json::Value, problems: &mut Vec<String>) {
    let packages = metadata["packages"].as_array().into_iter().flatten();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let normal = dep["kind"].is_null();
            if dep_name == "abi_stable" && !MAY_NAME_ABI_STABLE.contains(&name) {
                problems.push(format!(
                    "{name} depends on abi_stable: only registry-abi names it"
                ));
            }
            if name == "registry-cli" && normal && TEST_CRATES.contains(&dep_name) {
                problems.push(format!(
                    "registry-cli depends on the test crate {dep_name}: test code does not ship \
                     in the binary"
                ));
            }
            if name == "registry-conformance" && normal && NOT_FOR_CONFORMANCE.contains(&dep_name) {
                problems.push(format!(
                    "registry-conformance depends on {dep_name}: the suites ship in the binary, \
                     which links no test code"
                ));
            }
        }
    }
}

fn files(problems: &mut Vec<String>) -> Result<(), String> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--", "*.rs"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run git ls-files: {e}"))?;
    if !out.status.success() {
        return Err("git ls-files failed".into());
    }
    for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name.contains("/tests/fixtures/") {
            continue;
        }
        let path = root().join(&name);
        // A file git knows but the working tree deleted is not this check's business.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        problems.extend(check_file(&name, &text));
    }
    Ok(())
}

/// The problems of one source file.
fn check_file(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!(
            "{name} does not open with a `//!` line saying what it is for"
        ));
    }
    let lines = text.lines().count();
    if lines > MAX_LINES {
        problems.push(format!(
            "{name} has {lines} lines: split it below {MAX_LINES}"
        ));
    }
    problems
}

fn rust_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(out)
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_need_a_doc_line_and_a_bounded_length() {
        assert!(check_file("a.rs", "//! What it is.\nfn main() {}\n").is_empty());
        assert!(check_file("a.rs", "\n\n//! After blank lines.\n").is_empty());
        let missing = check_file("a.rs", "// a comment\nfn main() {}\n");
        assert_eq!(missing.len(), 1);
        assert!(missing[0].contains("`//!`"), "{missing:?}");
        let long = format!("//! Long.\n{}", "x\n".repeat(MAX_LINES));
        let problems = check_file("b.rs", &long);
        assert_eq!(problems, ["b.rs has 1501 lines: split it below 1500"]);
    }

    #[test]
    fn edges_name_the_offending_crate() {
        let metadata = serde_json::json!({"packages": [
            {"name": "registry-core", "dependencies": [{"name": "abi_stable", "kind": null}]},
            {"name": "registry-abi", "dependencies": [{"name": "abi_stable", "kind": null}]},
            {"name": "registry-cli", "dependencies": [
                {"name": "registry-testkit", "kind": null},
                {"name": "registry-testkit", "kind": "dev"}
            ]},
            {"name": "registry-conformance", "dependencies": [
                {"name": "registry-core", "kind": null},
                {"name": "tempfile", "kind": null},
                {"name": "registry-testkit", "kind": "dev"}
            ]}
        ]});
        let mut problems = Vec::new();
        check_edges(&metadata, &mut problems);
        assert_eq!(
            problems,
            [
                "registry-core depends on abi_stable: only registry-abi names it",
                "registry-cli depends on the test crate registry-testkit: test code does not \
                 ship in the binary",
                "registry-conformance depends on tempfile: the suites ship in the binary, which \
                 links no test code"
            ]
        );
    }
}
