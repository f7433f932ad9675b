//! `registry batch`, `registry scale-test` and `registry stats`, end to end: per-line failures
//! with their numbers, idempotent re-runs, standard input, the JSON summary, generated loads read
//! back, and the counts `stats` gives.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::Scratch;

/// Good lines, a blank one, bad JSON, an unknown scope, an unknown key and a repeat.
const INPUT: &str = r#"{"title": "Block SSH from the internet", "scope": "SEC", "context": {"env": "prod"}}
{"title": "Restart the queue workers", "scope": "OPS", "type": "SCRIPT"}

{"title": "Rotate the keys",
{"title": "Load the nightly sales", "scope": "NOPE"}
{"title": "Review access every quarter", "colour": "red"}
{"title": "Block SSH from the internet", "scope": "SEC", "context": {"env": "prod"}}
{"title": "Review access every quarter", "scope": "GOV"}
"#;

/// Runs a command that must exit with `code`; returns stdout and stderr.
fn exits(s: &Scratch, args: &[&str], code: i32) -> (String, String) {
    let out = s.run(args);
    assert_eq!(out.status.code(), Some(code), "registry {args:?}: {out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (String::from_utf8(out.stdout).expect("utf-8 stdout"), stderr)
}

fn counts(summary: &Value) -> [u64; 4] {
    ["processed", "created", "duplicates", "failed"].map(|k| summary[k].as_u64().expect(k))
}

fn failure_lines(summary: &Value) -> Vec<u64> {
    summary["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["line"].as_u64().expect("line"))
        .collect()
}

#[test]
fn bad_lines_fail_alone_with_their_numbers_and_reruns_create_nothing() {
    let s = Scratch::new();
    s.write("in.jsonl", INPUT);
    let (stdout, stderr) = exits(&s, &["batch", "in.jsonl"], 1);
    let failures: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("in.jsonl:"))
        .collect();
    assert_eq!(failures.len(), 3, "{stdout}");
    assert!(failures[0].starts_with("in.jsonl:4: "), "{stdout}");
    assert!(
        failures[1].starts_with("in.jsonl:5: scope `NOPE`"),
        "{stdout}"
    );
    assert!(
        failures[2].contains("in.jsonl:6: unknown field `colour`"),
        "{stdout}"
    );
    assert!(stdout.contains("created          3"), "{stdout}");
    assert!(stdout.contains("unchanged        1"), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "error: 3 of 7 records in in.jsonl failed",
        "one line, no progress output off a terminal"
    );
    assert_eq!(
        s.ids(),
        ["GOV-RUL-001", "OPS-SCR-001", "SEC-RUL-001"].map(String::from),
        "every good line is stored, the repeat once"
    );

    let out = s.run(&["batch", "in.jsonl", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let again: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(counts(&again), [7, 0, 4, 3], "{again}");
    assert_eq!(failure_lines(&again), [4, 5, 6]);
    assert_eq!(s.ids().len(), 3);
}

#[test]
fn json_summary_is_consistent_and_stdin_is_read() {
    let s = Scratch::new();
    let good: String = (1..=25)
        .map(|i| format!("{{\"title\": \"Check rule number {i}\", \"scope\": \"OPS\"}}\n"))
        .collect();
    let mut child = s
        .command(&["batch", "-", "--batch-size", "7", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn registry");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(good.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("registry runs");
    assert!(out.status.success(), "{out:?}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    let [processed, created, duplicates, failed] = counts(&summary);
    assert_eq!([processed, created, duplicates, failed], [25, 25, 0, 0]);
    assert_eq!(processed, created + duplicates + failed);
    for key in [
        "elapsed_s",
        "entries_per_s",
        "cache_hit_rate",
        "peak_rss_bytes",
        "failures",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing: {summary}");
    }
    let insert = &summary["latency"]["storage.insert"];
    assert_eq!(
        insert["calls"].as_u64(),
        Some(4),
        "25 requests in batches of 7"
    );
    assert!(insert["p50_us"].as_u64() <= insert["p99_us"].as_u64());

    let mixed = format!("{good}{{\"title\": \"\"}}\n");
    s.write("mixed.jsonl", &mixed);
    let out = s.run(&[
        "batch",
        "mixed.jsonl",
        "--batch-size",
        "10",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(counts(&summary), [26, 0, 25, 1]);
    assert_eq!(failure_lines(&summary), [26]);
}

#[test]
fn a_missing_file_is_one_line() {
    let s = Scratch::new();
    let (code, message) = s.fail(&["batch", "absent.jsonl"]);
    assert_eq!(code, 1);
    assert!(message.starts_with("cannot read absent.jsonl"), "{message}");
}

/// The titles of every entry in `dir`, sorted.
fn titles(s: &Scratch, dir: &str) -> Vec<String> {
    let list = s.json(&["--data-dir", dir, "list"]);
    let mut titles: Vec<String> = list
        .as_array()
        .expect("list is an array")
        .iter()
        .map(|e| e["title"].as_str().expect("title").to_owned())
        .collect();
    titles.sort();
    titles
}

#[test]
fn scale_test_registers_reads_back_and_is_deterministic() {
    let s = Scratch::new();
    let run = |dir: &str| {
        s.json(&[
            "--data-dir",
            dir,
            "scale-test",
            "--count",
            "2000",
            "--batch-size",
            "300",
        ])
    };
    let first = run("a");
    assert_eq!(counts(&first), [2000, 2000, 0, 0], "{first}");
    assert!(first["sample_checked"].as_u64() > Some(0), "{first}");
    assert_eq!(first["sample_failed"].as_u64(), Some(0), "{first}");
    assert!(first["bytes_per_entry"].as_f64() > Some(0.0), "{first}");
    assert!(first["bytes_on_disk"].as_u64() > Some(0), "{first}");

    run("b");
    let a = titles(&s, "a");
    assert_eq!(a.len(), 2000);
    assert_eq!(a, titles(&s, "b"), "the same seed gives the same requests");

    let (code, message) = s.fail(&["--data-dir", "a", "scale-test", "--count", "5"]);
    assert_eq!(code, 1);
    assert!(message.contains("is not empty"), "{message}");

    let stats = s.json(&["--data-dir", "a", "stats"]);
    assert_eq!(stats["entries"].as_u64(), Some(2000));
    for field in ["by_scope", "by_type", "by_variant", "by_status"] {
        let sum: u64 = stats[field]
            .as_object()
            .expect(field)
            .values()
            .map(|n| n.as_u64().expect("count"))
            .sum();
        assert_eq!(sum, 2000, "{field}: {stats}");
    }
}

#[test]
fn scale_test_without_data_dir_leaves_nothing_behind() {
    let s = Scratch::new();
    let summary = s.json(&["scale-test", "--count", "50"]);
    assert_eq!(counts(&summary), [50, 50, 0, 0]);
    assert!(summary.get("data_dir").is_none());
    assert!(
        !s.data_dir().exists(),
        "the configured data directory is untouched"
    );
}

#[test]
fn stats_counts_what_was_added() {
    let s = Scratch::new();
    s.add("Block SSH", &["--scope", "SEC", "--status", "REQUIRED"]);
    s.add("Rotate keys", &["--scope", "SEC"]);
    s.add("Restart workers", &["--scope", "OPS", "--type", "SCRIPT"]);
    let stats = s.json(&["stats"]);
    assert_eq!(stats["entries"].as_u64(), Some(3));
    assert_eq!(stats["shards"].as_u64(), Some(1));
    assert_eq!(stats["by_scope"]["SEC"].as_u64(), Some(2));
    assert_eq!(stats["by_scope"]["OPS"].as_u64(), Some(1));
    assert_eq!(stats["by_type"]["SCRIPT"].as_u64(), Some(1));
    assert_eq!(stats["by_status"]["REQUIRED"].as_u64(), Some(1));
    assert!(stats["bytes_per_entry"].as_f64() > Some(0.0));
    let text = s.ok(&["stats"]);
    assert!(text.starts_with("entries          3\n"), "{text}");
}

/// The lines of a results file that are complete JSON (a kill may cut the last one short).
fn reported(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Crash safety: `registry batch` is killed (SIGKILL) in the middle of a large load. Reopened,
/// the registry holds every entry the batch had reported as stored, intact (export, then import
/// elsewhere, verifies every hash); nothing is partial (every listed entry exports, and each
/// scope's index lists as many entries as carry that scope); and running the batch again adds
/// exactly the rest, finding the stored ones as duplicates (the fingerprint index agrees too).
/// Two shards, so that shard 0 numbers entries stored in shard 1 and records where they are:
/// every id is unique and found by id afterwards.
#[test]
fn a_batch_killed_midway_keeps_everything_it_reported() {
    const N: usize = 20_000;
    const SCOPES: [&str; 4] = ["SEC", "OPS", "GOV", "ETL"];
    let s = Scratch::with_shards(2);
    let mut input = String::new();
    for i in 0..N {
        let scope = SCOPES[i % SCOPES.len()];
        input.push_str(&format!(
            "{{\"title\": \"Crash drill rule {i}\", \"scope\": \"{scope}\", \"context\": {{\"n\": \"{i}\"}}}}\n"
        ));
    }
    s.write("big.jsonl", &input);
    let results = s.path().join("results.jsonl");
    let mut child = s
        .command(&[
            "batch",
            "big.jsonl",
            "--batch-size",
            "250",
            "--results",
            "results.jsonl",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start registry batch");
    let started = std::time::Instant::now();
    while reported(&results).len() < 1000 {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the batch ended before it could be killed: make the input larger"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "the batch reported nothing for 5 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let stored = reported(&results);
    assert!(
        stored.iter().all(|r| r["status"] == "created"),
        "{stored:?}"
    );

    // Every reported entry is there, and every entry there is whole.
    let exported = s.ok(&["export"]);
    let records: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).expect("export record"))
        .collect();
    let ids: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    for r in &stored {
        let id = r["id"].as_str().expect("reported id");
        assert!(ids.contains(id), "{id} was reported stored but is missing");
    }
    assert!(records.len() >= stored.len() && records.len() < N);
    assert_eq!(ids.len(), records.len(), "an id was given twice");
    assert_eq!(s.ids().len(), records.len(), "list and export disagree");
    // Found by id, wherever shard 0 says each is.
    for r in stored.iter().step_by(97) {
        let id = r["id"].as_str().expect("reported id");
        assert_eq!(s.json(&["get", id])["id"], id);
    }
    for scope in SCOPES {
        let listed = s.json(&["list", "--scope", scope]);
        let carried = records.iter().filter(|r| r["scope"] == scope).count();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(carried),
            "{scope} index"
        );
    }
    let copy = Scratch::new();
    copy.write("all.jsonl", &exported);
    let imported = copy.json(&["import", "all.jsonl"]);
    assert_eq!(imported["failed"], 0, "hashes verify: {imported}");
    assert_eq!(imported["imported"].as_u64(), Some(records.len() as u64));

    // Re-running completes the load without a duplicate.
    let again = s.json(&["batch", "big.jsonl"]);
    assert_eq!(
        counts(&again),
        [
            N as u64,
            (N - records.len()) as u64,
            records.len() as u64,
            0
        ]
    );
    assert_eq!(s.ids().len(), N);
    let all: std::collections::HashSet<String> = s.ids().into_iter().collect();
    assert_eq!(all.len(), N, "an id was given twice");
}

/// Shard health: with one of two shard files damaged, the registry still opens, says so once
/// on stderr, serves and registers what belongs to the healthy shard, and fails every request
/// for the damaged one with an error naming it; with both damaged it does not open at all.
#[test]
fn a_damaged_shard_fails_alone() {
    let s = Scratch::with_shards(2);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            s.add(&format!("Health drill rule {i}"), &[])["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    std::fs::write(s.data_dir().join("shard-001.redb"), "not a database").expect("damage");

    // Ids do not name their shard: which entries shard 1 held shows in which reads fail.
    let (healthy, damaged): (Vec<&String>, Vec<&String>) = ids
        .iter()
        .partition(|id| s.run(&["get", id.as_str()]).status.success());
    assert!(
        !healthy.is_empty() && !damaged.is_empty(),
        "the titles spread over both shards: {healthy:?} {damaged:?}"
    );
    let (healthy, damaged) = (healthy[0], damaged[0]);

    let out = s.run(&["get", healthy, "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    // With --format json the warning is a JSON line too.
    let warning: Value = serde_json::from_str(stderr.trim_end()).expect("one JSON line");
    assert!(
        warning["warning"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shard 1 of 2 is unavailable")),
        "{stderr}"
    );

    // `check` names the shard it cannot read and checks the other.
    let (stdout, _) = exits(&s, &["check", "--rate", "0"], 1);
    assert!(
        stdout.contains("shard 1: unreadable: shard 1 could not be read whole")
            && stdout.contains("in 2 shards: 1 problem"),
        "{stdout}"
    );

    let (_, stderr) = exits(&s, &["get", damaged], 2);
    assert!(
        stderr.contains("error: storage: shard 1 is unavailable: cannot open"),
        "{stderr}"
    );

    let mut input = String::new();
    for i in 0..20 {
        input.push_str(&format!("{{\"title\": \"Health drill new rule {i}\"}}\n"));
    }
    s.write("new.jsonl", &input);
    let (stdout, _) = exits(&s, &["batch", "new.jsonl", "--format", "json"], 2);
    let summary: Value = serde_json::from_str(&stdout).expect("json summary");
    let [processed, created, _, failed] = counts(&summary);
    assert_eq!(processed, 20);
    assert!(created > 0 && failed > 0, "{summary}");
    for f in summary["failures"].as_array().expect("failures") {
        let message = f["message"].as_str().expect("message");
        assert!(message.contains("shard 1 is unavailable"), "{message}");
    }

    std::fs::write(s.data_dir().join("shard-000.redb"), "not a database").expect("damage");
    let (_, stderr) = exits(&s, &["list"], 2);
    assert!(
        stderr.contains("cannot start any of the 2 shards"),
        "{stderr}"
    );
}

/// Lines the validator plugin rejects in `check_entries` (their configs lack a key the schema
/// requires of their scope), in one multi-line batch through the real plugin libraries: each
/// fails alone with its line number, and the others in the same batch are stored.
#[test]
fn lines_the_validator_plugin_rejects_fail_alone_in_one_batch() {
    let s = Scratch::new();
    // The default templates render no `runbook` section for any scope.
    s.write(
        "registry.toml",
        "[schema.required]\nOPS = [\"runbook.owner\"]\n",
    );
    s.write(
        "in.jsonl",
        r#"{"title": "Block SSH from the internet", "scope": "SEC"}
{"title": "Restart the queue workers", "scope": "OPS"}
{"title": "Review access every quarter", "scope": "GOV"}
{"title": "Drain the old nodes", "scope": "OPS"}
{"title": "Rotate the keys", "scope": "SEC"}
"#,
    );
    let (stdout, stderr) = exits(&s, &["batch", "in.jsonl", "--format", "json"], 1);
    let error = crate::json_error(&stderr);
    assert_eq!(error["message"], "2 of 5 records in in.jsonl failed");
    assert_eq!(error["file"], "in.jsonl");
    let summary: Value = serde_json::from_str(&stdout).expect("json summary");
    assert_eq!(counts(&summary), [5, 3, 0, 2], "{summary}");
    assert_eq!(failure_lines(&summary), [2, 4], "{summary}");
    for failure in summary["failures"].as_array().expect("failures") {
        let message = failure["message"].as_str().expect("message");
        assert!(message.contains("runbook.owner"), "{message}");
    }
    assert_eq!(
        s.ids(),
        ["GOV-RUL-001", "SEC-RUL-001", "SEC-RUL-002"].map(String::from),
        "the other lines of the batch are stored"
    );
}

#[test]
fn compact_rewrites_and_reclaims_without_changing_an_entry() {
    let s = Scratch::new();
    // Enough for the shard's first dictionary, trained at its 1,000th entry: the entries before
    // it are rewritten with one trained on them all.
    let lines: String = (0..1100)
        .map(|i| {
            format!(
                "{{\"title\": \"Block inbound port {i} on the edge firewall\", \"context\": {{\"env\": \"prod\"}}}}\n"
            )
        })
        .collect();
    s.write("in.jsonl", &lines);
    s.ok(&["batch", "in.jsonl"]);
    let first = s.ids()[0].clone();
    s.ok(&["update", &first, "--status", "LIVE"]);
    let exported = s.ok(&["export"]);
    let done = s.json(&["compact"]);
    let number = |k: &str| done[k].as_u64().unwrap_or_else(|| panic!("{k} in {done}"));
    assert!(number("rewritten") >= 999, "{done}");
    assert_eq!(number("shards"), 1);
    assert!(number("bytes_after") <= number("bytes_before"), "{done}");
    assert!(number("bytes_after") > 0);
    assert_eq!(s.ok(&["export"]), exported, "no entry changed");
    let text = s.ok(&["compact"]);
    assert!(text.starts_with("rewritten        "), "{text}");
    assert!(text.contains("\nreclaimed        "), "{text}");
}
