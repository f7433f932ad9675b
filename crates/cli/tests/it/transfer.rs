//! `registry export` and `registry import`, end to end: round trips in both formats and across
//! shard counts, scope filters, bad records, `--atomic`, re-imports, conflicts and requests.

use std::io::Write;
use std::process::Stdio;

use registry_core::{Context, Entry, EntryId, Fields, Header};
use serde_json::Value;

use crate::Scratch;

/// A registry with entries in four scopes, two of them updated (one twice).
fn seeded() -> Scratch {
    let s = Scratch::new();
    s.add(
        "Block SSH from the internet",
        &[
            "--scope",
            "SEC",
            "--status",
            "REQUIRED",
            "--context",
            "env=prod",
        ],
    );
    s.add(
        "Rotate the signing keys",
        &["--scope", "SEC", "--type", "RULES"],
    );
    s.add(
        "Restart the queue workers",
        &["--scope", "OPS", "--type", "SCRIPT"],
    );
    s.add("Review access every quarter", &["--scope", "GOV"]);
    s.add(
        "Load the nightly sales",
        &["--scope", "ETL", "--type", "MULTI-ETL"],
    );
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    s.ok(&[
        "update",
        "SEC-RUL-001",
        "--title",
        "Block SSH and RDP from the internet",
        "--context",
        "owner=secops",
    ]);
    s.ok(&["update", "OPS-SCR-001", "--variant", "COMPACT"]);
    s
}

const IDS: [&str; 5] = [
    "ETL-MUL-001",
    "GOV-RUL-001",
    "OPS-SCR-001",
    "SEC-RUL-001",
    "SEC-RUL-002",
];

/// Imports `file` (a path in `s`) and returns the JSON summary; the import must succeed.
fn import(s: &Scratch, file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["import", file];
    args.extend(extra);
    s.json(&args)
}

/// Runs a command that must fail with exit code 1; returns its stdout and its one-line error.
fn fails(s: &Scratch, args: &[&str]) -> (String, String) {
    let out = s.run(args);
    assert_eq!(out.status.code(), Some(1), "registry {args:?}: {out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (String::from_utf8(out.stdout).expect("utf-8 stdout"), stderr)
}

fn counts(summary: &Value) -> [u64; 4] {
    ["imported", "unchanged", "added", "failed"].map(|k| summary[k].as_u64().expect(k))
}

#[test]
fn export_then_import_elsewhere_gives_the_same_bytes_in_both_formats() {
    let a = seeded();
    for format in ["jsonl", "yaml"] {
        let exported = a.ok(&["export", "--format", format, "--audit"]);
        let file = format!("all.{format}");
        a.ok(&["export", "--format", format, "--audit", "--output", &file]);
        let written = std::fs::read_to_string(a.path().join(&file)).expect("export file");
        assert_eq!(written, exported, "--output writes what stdout gets");

        let b = Scratch::new();
        b.write(&file, &exported);
        let summary = import(&b, &file, &[]);
        assert_eq!(counts(&summary), [5, 0, 0, 0], "{summary}");
        assert_eq!(b.ids(), IDS);
        assert_eq!(
            b.ok(&["export", "--format", format, "--audit"]),
            exported,
            "{format}"
        );
        // Every revision, its times, hashes and authors included, is the same.
        assert_eq!(
            b.json(&["history", "SEC-RUL-001"]),
            a.json(&["history", "SEC-RUL-001"])
        );
    }
}

#[test]
fn records_hold_the_latest_revision_and_the_earlier_ones() {
    let a = seeded();
    let exported = a.ok(&["export"]);
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].starts_with(r#"{"id":"ETL-MUL-001","header":"[ETL][MULTI-ETL]["#),
        "{}",
        lines[0]
    );
    let record: Value = serde_json::from_str(lines[3]).expect("json");
    let keys: Vec<&str> = record
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "config",
            "context",
            "created_at",
            "fingerprint",
            "hash",
            "header",
            "history",
            "id",
            "previous",
            "provenance",
            "revision",
            "scope",
            "status",
            "title",
            "type",
            "updated_at",
            "variant",
            "version"
        ]
    );
    assert_eq!(record["id"], "SEC-RUL-001");
    assert_eq!(record["revision"], 3);
    assert_eq!(record["title"], "Block SSH and RDP from the internet");
    assert_eq!(record["context"]["owner"], "secops");
    let history = record["history"].as_array().expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["revision"], 1);
    assert_eq!(history[0]["status"], "REQUIRED");
    assert_eq!(history[1]["status"], "DEPRECATED");
    assert!(history[0].get("id").is_none() && history[0].get("fingerprint").is_none());
    // The hash chain: revision 1 records none before it, each later one the one before.
    assert!(history[0].get("previous").is_none(), "{record}");
    assert_eq!(history[1]["previous"], history[0]["hash"]);
    assert_eq!(record["previous"], history[1]["hash"]);
    let latest = a.json(&["get", "SEC-RUL-001"]);
    for key in ["hash", "created_at", "updated_at", "config", "header"] {
        assert_eq!(record[key], latest[key], "{key}");
    }
    // YAML: one document per entry, each opening with a marker.
    let yaml = a.ok(&["export", "--format", "yaml"]);
    assert_eq!(yaml.lines().filter(|l| *l == "---").count(), 5);
    assert!(yaml.starts_with("---\nid: ETL-MUL-001\n"), "{yaml}");
}

#[test]
fn scope_filters_keep_id_order_and_unknown_scopes_are_refused() {
    let a = seeded();
    let exported = a.ok(&[
        "export", "--scope", "sec", "--scope", "OPS", "--scope", "SEC",
    ]);
    let ids: Vec<String> = exported
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["id"].as_str().expect("id").to_owned()
        })
        .collect();
    assert_eq!(ids, ["OPS-SCR-001", "SEC-RUL-001", "SEC-RUL-002"]);

    let (code, message) = a.fail(&["export", "--scope", "NOPE", "--output", "x.jsonl"]);
    assert_eq!(code, 1);
    assert!(
        message.starts_with("unknown scope `NOPE`: allowed values are GOV, SEC"),
        "{message}"
    );
    assert!(!a.path().join("x.jsonl").exists());
}

#[test]
fn import_into_two_shards_and_export_the_same() {
    let a = seeded();
    let b = Scratch::with_shards(2);
    for format in ["jsonl", "yaml"] {
        let exported = a.ok(&["export", "--format", format]);
        b.write("all", &exported);
        let summary = import(&b, "all", &[]);
        let want = if format == "jsonl" {
            [5, 0, 0, 0]
        } else {
            [0, 5, 0, 0]
        };
        assert_eq!(counts(&summary), want, "{format}: {summary}");
        assert_eq!(b.ok(&["export", "--format", format]), exported, "{format}");
    }
    for shard in ["shard-000.redb", "shard-001.redb"] {
        assert!(b.data_dir().join(shard).is_file(), "{shard}");
    }
    // SEC-RUL-002 lives in shard 1 and is found there.
    assert_eq!(
        b.json(&["get", "SEC-RUL-002"])["title"],
        "Rotate the signing keys"
    );
    // Registering an imported request again finds it, whichever shard the router picks for its
    // fingerprint in this two-shard layout: no duplicate.
    for (title, extra, id) in [
        (
            "Rotate the signing keys",
            &["--scope", "SEC", "--type", "RULES"][..],
            "SEC-RUL-002",
        ),
        (
            "Review access every quarter",
            &["--scope", "GOV"][..],
            "GOV-RUL-001",
        ),
        (
            "Load the nightly sales",
            &["--scope", "ETL", "--type", "MULTI-ETL"][..],
            "ETL-MUL-001",
        ),
        (
            "Restart the queue workers",
            &["--scope", "OPS", "--type", "SCRIPT"][..],
            "OPS-SCR-001",
        ),
    ] {
        let again = b.add(title, extra);
        assert_eq!(
            (again["id"].as_str(), again["created"].as_bool()),
            (Some(id), Some(false))
        );
    }
    let added = b.add("Encrypt the backups", &["--scope", "SEC"]);
    let id = added["id"].as_str().expect("id");
    assert!(!["SEC-RUL-001", "SEC-RUL-002"].contains(&id), "{id}");
}

/// The record of a consistent entry (its hash matches) that the default schema refuses: an
/// undeclared scope.
fn undeclared_scope_record() -> String {
    let header = Header {
        fields: Fields {
            scope: "NOPE".into(),
            kind: "RULES".into(),
            variant: "LIVE".into(),
            status: "DEV".into(),
        },
        id: EntryId::new("NOPE-RUL", 1),
        version: "v2.9".into(),
    };
    let context = Context::default();
    let config = "rule: x\n";
    let hash = Entry::compute_hash(&header, "Undeclared scope", &context, config);
    // The fingerprint of the request with no field given, as registering it would make.
    let fingerprint = registry_core::derive_fingerprint(
        registry_core::FINGERPRINT_DERIVATION,
        "Undeclared scope",
        &Fields::default(),
        None,
        &context,
    )
    .expect("a known derivation");
    serde_json::json!({
        "id": "NOPE-RUL-001",
        "header": header.readable(),
        "scope": "NOPE", "type": "RULES", "variant": "LIVE", "status": "DEV",
        "version": "v2.9",
        "title": "Undeclared scope",
        "context": {},
        "config": config,
        "hash": hash.to_string(),
        "fingerprint": fingerprint.to_string(),
        "revision": 1,
        "created_at": "2026-01-02T03:04:05.678Z",
        "updated_at": "2026-01-02T03:04:05.678Z",
        "history": []
    })
    .to_string()
}

/// The export of `seeded()` with line 2 (GOV-RUL-001) unparsable, line 3 (OPS-SCR-001) edited
/// without fixing its hash, and a record of an undeclared scope inserted as line 4.
fn bad_file(a: &Scratch) -> String {
    let exported = a.ok(&["export"]);
    let mut lines: Vec<String> = exported.lines().map(str::to_owned).collect();
    lines[1] = lines[1][..40].to_owned();
    lines[2] = lines[2].replace("Restart the queue workers", "Restart the queue workers now");
    lines.insert(3, undeclared_scope_record());
    lines.join("\n") + "\n"
}

#[test]
fn bad_records_are_reported_by_line_and_the_rest_imported() {
    let a = seeded();
    let b = Scratch::new();
    b.write("bad.jsonl", &bad_file(&a));
    let (stdout, stderr) = fails(&b, &["import", "bad.jsonl"]);
    assert_eq!(stderr, "error: 3 of 6 records in bad.jsonl failed\n");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("bad.jsonl:2: not valid JSON: "),
        "{}",
        lines[0]
    );
    // The title is in both revisions, so both fail their hash.
    assert!(
        lines[1].starts_with(
            "bad.jsonl:3: entry OPS-SCR-001: revision 1 does not match its hash: recorded blake3:"
        ) && lines[1].contains(", computed blake3:")
            && lines[1].contains("; entry OPS-SCR-001: revision 2 does not match its hash"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("bad.jsonl:4: NOPE-RUL-001: ") && lines[2].contains("NOPE"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], "created 3, unchanged 0, failed 3");
    assert_eq!(b.ids(), ["ETL-MUL-001", "SEC-RUL-001", "SEC-RUL-002"]);

    // The same as JSON, into a fresh registry.
    let c = Scratch::new();
    c.write("bad.jsonl", &bad_file(&a));
    let out = c.run(&["import", "bad.jsonl", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(counts(&summary), [3, 0, 0, 3]);
    let failures = summary["failures"].as_array().expect("failures");
    let lines: Vec<u64> = failures
        .iter()
        .map(|f| f["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [2, 3, 4]);
    assert!(failures[0].get("id").is_none());
    assert_eq!(failures[1]["id"], "OPS-SCR-001");
    assert_eq!(failures[2]["id"], "NOPE-RUL-001");
}

#[test]
fn a_hash_mismatch_in_yaml_names_the_document_line() {
    let a = seeded();
    let yaml = a.ok(&["export", "--format", "yaml", "--scope", "SEC"]);
    let second = yaml
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "---")
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("two documents");
    let edited = yaml.replace("title: Rotate the signing keys", "title: Rotate the keys");
    assert_ne!(edited, yaml);
    let b = Scratch::new();
    b.write("sec.yaml", &edited);
    let (stdout, _) = fails(&b, &["import", "sec.yaml"]);
    assert!(
        stdout.starts_with(&format!(
            "sec.yaml:{second}: entry SEC-RUL-002: revision 1 does not match its hash"
        )),
        "{stdout}"
    );
    assert_eq!(b.ids(), ["SEC-RUL-001"]);
}

#[test]
fn atomic_imports_nothing_when_one_record_is_bad() {
    let a = seeded();
    let exported = a.ok(&["export"]);
    let b = Scratch::new();
    let tampered = exported.replacen("Review access every quarter", "Review access yearly", 1);
    b.write("one-bad.jsonl", &tampered);
    let (stdout, stderr) = fails(&b, &["import", "one-bad.jsonl", "--atomic"]);
    assert!(
        stdout.starts_with("one-bad.jsonl:2: entry GOV-RUL-001: revision 1 does not match"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("created 0, unchanged 0, failed 1\n"),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        "error: 1 of 5 records in one-bad.jsonl failed: nothing was imported (--atomic)\n"
    );
    assert!(b.ids().is_empty());

    // Requests cannot be checked before they are written: refused in atomic mode.
    b.write("requests.jsonl", "{\"title\": \"Encrypt the backups\"}\n");
    let (stdout, _) = fails(&b, &["import", "requests.jsonl", "--atomic"]);
    assert!(
        stdout.contains("requests.jsonl:1: a plain request cannot be imported with --atomic"),
        "{stdout}"
    );
    assert!(b.ids().is_empty());

    b.write("good.jsonl", &exported);
    let summary = import(&b, "good.jsonl", &["--atomic"]);
    assert_eq!(counts(&summary), [5, 0, 0, 0]);
    assert_eq!(b.ok(&["export"]), exported);
}

#[test]
fn importing_again_changes_nothing() {
    let a = seeded();
    a.ok(&["export", "--output", "all.jsonl"]);
    for extra in [&[][..], &["--atomic"]] {
        let summary = import(&a, "all.jsonl", extra);
        assert_eq!(counts(&summary), [0, 5, 0, 0], "{extra:?}");
    }
    let text = a.ok(&["import", "all.jsonl"]);
    assert_eq!(text, "created 0, unchanged 5, failed 0\n");
}

#[test]
fn a_record_conflicting_with_a_stored_entry_is_reported() {
    let a = seeded();
    a.ok(&["export", "--output", "all.jsonl"]);
    let b = Scratch::new();
    b.add("Something else entirely", &["--scope", "SEC"]);
    std::fs::copy(a.path().join("all.jsonl"), b.path().join("all.jsonl")).expect("copy");
    let (stdout, _) = fails(&b, &["import", "all.jsonl"]);
    assert!(
        stdout.starts_with(
            "all.jsonl:4: conflict: entry SEC-RUL-001 is already stored with other content: \
             stored revision 1 (blake3:"
        ),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("created 4, unchanged 0, failed 1\n"),
        "{stdout}"
    );
    assert_eq!(
        b.json(&["get", "SEC-RUL-001"])["title"],
        "Something else entirely"
    );
    // The same request under another id is a conflict too.
    let c = Scratch::new();
    c.add(
        "Rotate the signing keys",
        &["--scope", "SEC", "--type", "RULES"],
    );
    std::fs::copy(a.path().join("all.jsonl"), c.path().join("all.jsonl")).expect("copy");
    let (stdout, _) = fails(&c, &["import", "all.jsonl"]);
    assert!(
        stdout.contains("all.jsonl:4: conflict: entry SEC-RUL-001 is already stored"),
        "{stdout}"
    );
}

#[test]
fn plain_requests_are_added_and_later_ids_stay_above_imported_ones() {
    let a = seeded();
    let mut file = a.ok(&["export", "--scope", "SEC"]);
    file.push_str("{\"title\": \"Encrypt the backups\", \"scope\": \"sec\", \"context\": {\"env\": \"prod\"}}\n");
    file.push_str(
        "{\"title\": \"Restart the web tier\", \"scope\": \"OPS\", \"type\": \"SCRIPT\"}\n",
    );
    let b = Scratch::new();
    b.write("mixed.jsonl", &file);
    let summary = import(&b, "mixed.jsonl", &[]);
    assert_eq!(counts(&summary), [2, 0, 2, 0], "{summary}");
    assert_eq!(
        b.ids(),
        ["OPS-SCR-001", "SEC-RUL-001", "SEC-RUL-002", "SEC-RUL-003"]
    );
    assert_eq!(
        b.json(&["get", "SEC-RUL-003"])["title"],
        "Encrypt the backups"
    );
    // Again: the entries are stored and the requests registered.
    let summary = import(&b, "mixed.jsonl", &[]);
    assert_eq!(counts(&summary), [0, 4, 0, 0], "{summary}");

    // Sequences are raised past restored numbers, also with no request in the file.
    let c = Scratch::new();
    c.write("sec.jsonl", &a.ok(&["export", "--scope", "SEC"]));
    import(&c, "sec.jsonl", &[]);
    assert_eq!(
        c.add("A new rule", &["--scope", "SEC"])["id"],
        "SEC-RUL-003"
    );
}

#[test]
fn import_reads_standard_input() {
    let a = seeded();
    let exported = a.ok(&["export", "--format", "yaml"]);
    let b = Scratch::new();
    let mut child = b
        .command(&["import", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exported.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(counts(&summary), [5, 0, 0, 0]);
}

#[test]
fn unreadable_inputs_and_outputs_are_one_line_errors() {
    let s = Scratch::new();
    let (code, message) = s.fail(&["import", "missing.jsonl"]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        "cannot read missing.jsonl: no such file or directory"
    );
    s.add("something to export", &[]);
    let (code, message) = s.fail(&["export", "--output", "no/such/dir/out.jsonl"]);
    assert_eq!(code, 1);
    assert!(
        message.starts_with("cannot create no/such/dir/.out.jsonl."),
        "{message}"
    );
    // An empty file imports nothing, successfully.
    s.write("empty.jsonl", "\n\n");
    assert_eq!(
        s.ok(&["import", "empty.jsonl"]),
        "created 0, unchanged 0, failed 0\n"
    );
    // A successful export leaves no temporary file behind.
    s.ok(&["export", "--output", "out.jsonl"]);
    let names: Vec<String> = std::fs::read_dir(s.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("out.jsonl"))
        .collect();
    assert_eq!(names, ["out.jsonl"]);
}

/// An export whose revision 2 was rewritten, its own hash recomputed: the next revision's link
/// no longer holds, and import refuses the entry, naming it.
#[test]
fn import_refuses_a_history_rewritten_with_its_hashes_recomputed() {
    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "REQUIRED"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    let exported = s.ok(&["export"]);
    let mut record: Value = serde_json::from_str(exported.trim()).expect("one record");
    assert_eq!(record["previous"], record["history"][1]["hash"], "{record}");

    let revision = &mut record["history"][1];
    revision["status"] = "DEV".into();
    let header = Header {
        fields: Fields {
            scope: "SEC".into(),
            kind: revision["type"].as_str().expect("type").into(),
            variant: revision["variant"].as_str().expect("variant").into(),
            status: "DEV".into(),
        },
        id: EntryId::new("SEC-RUL", 1),
        version: revision["version"].as_str().expect("version").into(),
    };
    revision["header"] = header.readable().into();
    let context: Context = serde_json::from_value(revision["context"].clone()).expect("context");
    let previous = serde_json::from_value(revision["previous"].clone()).expect("a hash");
    let hash = Entry::compute_hash_after(
        &header,
        revision["title"].as_str().expect("title"),
        &context,
        revision["config"].as_str().expect("config"),
        &registry_core::Lifecycle::Active,
        Some(&previous),
    );
    revision["hash"] = serde_json::to_value(hash).expect("serializes");

    let other = Scratch::new();
    other.write("rewritten.jsonl", &format!("{record}\n"));
    let (out, err) = fails(&other, &["import", "rewritten.jsonl"]);
    assert!(err.contains("1 of 1 record"), "{err}");
    assert!(
        out.contains("SEC-RUL-001") && out.contains("the history was rewritten"),
        "{out}"
    );
    // Unchanged, the same export imports.
    other.write("as-exported.jsonl", &exported);
    let summary = import(&other, "as-exported.jsonl", &[]);
    assert_eq!(counts(&summary), [1, 0, 0, 0], "{summary}");
    assert_eq!(other.ok(&["export"]), exported);
}
