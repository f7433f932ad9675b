//! A lint [`Report`] as SARIF 2.1.0, the format code-scanning services read: one run, the tool
//! `registry` with a rule per code ([`super::codes::CODES`], and any other code a validator
//! plugin reported), one result per diagnostic at its file, line and column.
//!
//! File locations are relative URIs resolved against `%SRCROOT%`, which `originalUriBaseIds`
//! sets to the working directory, so an upload from a checkout places each result on its file
//! in the repository. A path given absolute stays an absolute `file:` URI. Every byte of a
//! path outside RFC 3986's unreserved characters and `/` is percent-encoded (a file name may
//! hold `#`, `?`, `%`, spaces or bytes that are not UTF-8). Columns count UTF-16 code units
//! (`columnKind`), as GitHub and the SARIF viewers do, not the bytes text output counts.

use std::path::Path;

use serde_json::{Value, json};

use super::codes::{CODES, Origin};
use super::{Level, Report, relative};

/// The `uriBaseId` of every location: the working directory lint ran in.
const SRCROOT: &str = "%SRCROOT%";

/// `report` as one SARIF 2.1.0 log. `cwd` is the working directory, the base of the relative
/// paths (left out of the log when unknown).
pub fn sarif(report: &Report, cwd: Option<&Path>) -> Value {
    let mut rules: Vec<Value> = CODES
        .iter()
        .map(|c| {
            json!({
                "id": c.code,
                "name": c.code,
                "shortDescription": { "text": c.summary },
                "fullDescription": { "text": c.summary },
                "help": { "text": c.fix },
                "defaultConfiguration": { "level": level(c.severity) },
                "properties": { "origin": match c.origin {
                    Origin::Lint => "lint",
                    Origin::Validator => "validator",
                } },
            })
        })
        .collect();
    let mut ids: Vec<String> = CODES.iter().map(|c| c.code.to_owned()).collect();
    let mut results = Vec::with_capacity(report.diagnostics.len());
    for d in &report.diagnostics {
        let index = match ids.iter().position(|id| *id == d.code) {
            Some(index) => index,
            None => {
                // A code of a validator plugin of one's own: described by its code alone.
                ids.push(d.code.to_string());
                rules.push(json!({
                    "id": d.code,
                    "shortDescription": { "text": format!("reported by the validator plugin: {}", d.code) },
                    "defaultConfiguration": { "level": level(d.severity) },
                }));
                ids.len() - 1
            }
        };
        let mut location = json!({ "artifactLocation": artifact(&report.paths[d.file]) });
        if let (Some(line), Some(column)) = (d.line, d.column_utf16) {
            location["region"] = json!({ "startLine": line, "startColumn": column });
        }
        results.push(json!({
            "ruleId": d.code,
            "ruleIndex": index,
            "level": level(d.severity),
            "message": { "text": d.message },
            "locations": [{ "physicalLocation": location }],
        }));
    }
    let mut run = json!({
        "tool": { "driver": {
            "name": "registry",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": rules,
        } },
        "columnKind": "utf16CodeUnits",
        "invocations": [{ "executionSuccessful": true }],
        "results": results,
        "properties": { "summary": report.summary() },
    });
    if let Some(dir) = cwd.and_then(directory_uri) {
        run["originalUriBaseIds"] = json!({ SRCROOT: { "uri": dir } });
    }
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}

fn level(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Note => "note",
    }
}

/// Where a file is: a URI relative to [`SRCROOT`], or an absolute `file:` URI.
fn artifact(path: &Path) -> Value {
    let path = relative(path);
    if path.is_absolute() {
        json!({ "uri": format!("file://{}", encoded(path)) })
    } else {
        json!({ "uri": encoded(path), "uriBaseId": SRCROOT })
    }
}

/// The working directory as an absolute `file:` URI ending with `/`, as a base URI must.
fn directory_uri(dir: &Path) -> Option<String> {
    if !dir.is_absolute() {
        return None;
    }
    let mut uri = format!("file://{}", encoded(dir));
    if !uri.ends_with('/') {
        uri.push('/');
    }
    Some(uri)
}

/// A path's bytes as a URI path: unreserved characters and `/` as they are, every other byte
/// percent-encoded.
fn encoded(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uris() {
        for (path, want) in [
            ("./a/b.rs", "a/b.rs"),
            ("a b#c?d%e.sh", "a%20b%23c%3Fd%25e.sh"),
            ("../up/ü.yml", "../up/%C3%BC.yml"),
        ] {
            assert_eq!(artifact(Path::new(path))["uri"], want, "{path}");
            assert_eq!(artifact(Path::new(path))["uriBaseId"], SRCROOT);
        }
        let abs = artifact(Path::new("/abs/x y.sql"));
        assert_eq!(abs["uri"], "file:///abs/x%20y.sql");
        assert!(abs.get("uriBaseId").is_none());
        assert_eq!(
            directory_uri(Path::new("/w/r")).as_deref(),
            Some("file:///w/r/")
        );
        assert_eq!(directory_uri(Path::new("rel")), None);
    }
}
