//! A panic in any method of any stage, through the built `registry` and the fixture library
//! `fixture-panicky` (the project's own plugins, each wrapped to panic on demand): the command
//! that makes the call fails with exit code 2 and one clean error line naming the method, never
//! a crash or a backtrace, and the registry is left as it was, so the next command works. A
//! failing cache is bypassed instead: the command succeeds with the same results. In a `batch`,
//! a panic on one line's batch fails that line alone.
//!
//! Also a cache that answers every lookup with the wrong entry, which must change no result.

use std::sync::OnceLock;

use serde_json::Value;

use crate::{Scratch, lib_path};

/// The file each panic of the fixture is logged to, in the scratch directory.
const PANIC_LOG: &str = "panics.log";

/// A `registry.toml` in which `fixture-panicky` serves `stage`, panicking in the methods of
/// `panic_in` (each panic logged to [`PANIC_LOG`]), with `extra` lines added to its config
/// table.
fn panicky(s: &Scratch, stage: &str, panic_in: &[&str], extra: &str) {
    let list: Vec<String> = panic_in.iter().map(|m| format!("{m:?}")).collect();
    s.write(
        "registry.toml",
        &format!(
            "[{stage}]\nlibrary = {:?}\n[{stage}.config]\npanic_in = [{}]\n\
             panic_log = {PANIC_LOG:?}\n{extra}",
            lib_path("fixture-panicky").display().to_string(),
            list.join(", ")
        ),
    );
}

/// What a command that calls a panicking method must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Fail with exit code 2 and one line naming the method.
    Fails,
    /// Report each record the call was for as failed, naming the method, and exit with code 1,
    /// as `import` does for a storage failure (unlike `batch`, which exits with 2 for one).
    RecordsFail,
    /// Succeed as if nothing happened (a failing cache is bypassed).
    Bypassed,
}

/// One stage method and a command that calls it.
struct Case {
    method: &'static str,
    /// Commands that build the registry the command runs on, run with no panic.
    setup: &'static [&'static [&'static str]],
    command: &'static [&'static str],
    outcome: Outcome,
}

const ADD_ONE: &[&str] = &[
    "add",
    "--title",
    "Block SSH from the internet",
    "--scope",
    "SEC",
];
const ADD_NEW: &[&str] = &["add", "--title", "Rotate the keys", "--scope", "OPS"];
const ADD_SOME: &[&[&str]] = &[
    ADD_ONE,
    &["add", "--title", "Restart the workers", "--scope", "OPS"],
    &["add", "--title", "Review access", "--scope", "GOV"],
];

/// The files the commands read: a file with a header for `lint`, an export of entries the
/// registries of the tests do not hold for `import`, and requests for `batch`.
fn inputs(s: &Scratch) {
    static EXPORT: OnceLock<String> = OnceLock::new();
    let export = EXPORT.get_or_init(|| {
        let other = Scratch::new();
        other.ok(&["add", "--title", "An imported rule", "--scope", "GOV"]);
        other.ok(&["add", "--title", "An imported script", "--type", "SCRIPT"]);
        other.ok(&["export"])
    });
    s.write("export.jsonl", export);
    s.write(
        "rule.sh",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\necho\n",
    );
    s.write(
        "requests.jsonl",
        "{\"title\": \"A batched rule\"}\n{\"title\": \"Another batched rule\"}\n",
    );
}

/// The panics logged since the last call, one `stage.method` each; the log is emptied.
fn logged_panics(s: &Scratch) -> Vec<String> {
    let path = s.path().join(PANIC_LOG);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    text.lines().map(str::to_owned).collect()
}

/// Runs each case on a fresh registry of `shards` shards: the setup with the stage served by
/// the fixture, panicking nowhere; the command with `case.method` panicking; then the command
/// again with no panic, which must succeed, with the registry as the setup left it.
fn check(stage: &str, shards: u32, cases: &[Case]) {
    for case in cases {
        let name = format!("{stage}.{}", case.method);
        let s = Scratch::with_shards(shards);
        inputs(&s);
        panicky(&s, stage, &[], "");
        for args in case.setup {
            s.ok(args);
        }
        let before = s.ids();
        panicky(&s, stage, &[&name], "");
        let panicked = format!("fixture panics in {name}");
        match case.outcome {
            Outcome::Fails => {
                let (code, message) = s.fail(case.command);
                assert_eq!(code, 2, "{name}: {message}");
                assert!(
                    message.contains(&panicked),
                    "{name}: the error names another failure: {message}"
                );
            }
            Outcome::RecordsFail => {
                let (code, message, stdout) = s.fail_with_stdout(case.command);
                assert_eq!(code, 1, "{name}: {message}");
                let records = stdout.lines().filter(|l| l.contains(&panicked)).count();
                assert!(records > 0, "{name}: no record names the panic: {stdout}");
                assert!(
                    message.starts_with(&format!("{records} of {records} record")),
                    "{name}: {message}"
                );
            }
            Outcome::Bypassed => {
                s.ok(case.command);
            }
        }
        let logged = logged_panics(&s);
        assert!(
            !logged.is_empty() && logged.iter().all(|m| *m == name),
            "{name}: the command did not panic there, or panicked elsewhere: {logged:?}"
        );
        panicky(&s, stage, &[], "");
        if case.outcome != Outcome::Bypassed {
            assert_eq!(
                s.ids(),
                before,
                "{name}: the failed command changed the registry"
            );
        }
        s.ok(case.command);
    }
}

#[test]
fn a_panic_in_any_generator_method_fails_the_command_alone() {
    check(
        "generator",
        1,
        &[
            Case {
                method: "new",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "predict",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "render",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "render",
                setup: &[ADD_ONE],
                command: &["update", "SEC-RUL-001", "--status", "DEPRECATED"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "train",
                setup: ADD_SOME,
                command: &["train"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "predict",
                setup: &[],
                command: &["predict", "--title", "Rotate the keys"],
                outcome: Outcome::Fails,
            },
        ],
    );
}

#[test]
fn a_panic_in_any_validator_method_fails_the_command_alone() {
    check(
        "validator",
        1,
        &[
            Case {
                method: "new",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "check_requests",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "check_entries",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "check_entries",
                setup: &[ADD_ONE],
                command: &["update", "SEC-RUL-001", "--status", "DEPRECATED"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "check_headers",
                setup: &[],
                command: &["lint", "rule.sh"],
                outcome: Outcome::Fails,
            },
        ],
    );
}

#[test]
fn a_panic_in_any_storage_method_fails_the_command_alone() {
    check(
        "storage",
        1,
        &[
            Case {
                method: "new",
                setup: &[ADD_ONE],
                command: &["list"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "meta",
                setup: &[ADD_ONE],
                command: &["get", "SEC-RUL-001"],
                outcome: Outcome::Fails,
            },
            Case {
                // Creating a registry marks it ready last: a creation that fails there is
                // completed by the next registering command.
                method: "set_meta",
                setup: &[],
                command: ADD_ONE,
                outcome: Outcome::Fails,
            },
            Case {
                method: "find",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "allocate",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "insert",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "get",
                setup: &[ADD_ONE],
                command: &["get", "SEC-RUL-001"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "update",
                setup: &[ADD_ONE],
                command: &["update", "SEC-RUL-001", "--status", "DEPRECATED"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "history",
                setup: &[ADD_ONE],
                command: &["history", "SEC-RUL-001"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "list",
                setup: &[ADD_ONE],
                command: &["list"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "restore",
                setup: &[ADD_ONE],
                command: &["import", "export.jsonl"],
                outcome: Outcome::RecordsFail,
            },
        ],
    );
}

#[test]
fn a_panic_in_any_router_method_fails_the_command_alone() {
    // One shard needs no routing: the router is called with two.
    check(
        "router",
        2,
        &[
            Case {
                method: "new",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
            Case {
                method: "route",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Fails,
            },
        ],
    );
}

#[test]
fn a_panic_in_the_cache_is_bypassed_or_fails_its_start() {
    check(
        "cache",
        1,
        &[
            Case {
                method: "new",
                setup: &[ADD_ONE],
                command: &["get", "SEC-RUL-001"],
                outcome: Outcome::Fails,
            },
            Case {
                method: "get",
                setup: &[ADD_ONE],
                command: &["get", "SEC-RUL-001"],
                outcome: Outcome::Bypassed,
            },
            Case {
                method: "put",
                setup: &[ADD_ONE],
                command: ADD_NEW,
                outcome: Outcome::Bypassed,
            },
            Case {
                method: "remove",
                setup: &[],
                command: &["import", "export.jsonl"],
                outcome: Outcome::Bypassed,
            },
            Case {
                method: "stats",
                setup: &[],
                command: &["batch", "requests.jsonl"],
                outcome: Outcome::Bypassed,
            },
        ],
    );
}

/// Five requests; the third has `boom` in its title.
const BOOM_BATCH: &str = r#"{"title": "Block SSH from the internet", "scope": "SEC"}
{"title": "Restart the workers", "scope": "OPS"}
{"title": "Open the boom barrier at night", "scope": "OPS"}
{"title": "Review access every quarter", "scope": "GOV"}
{"title": "Rotate the keys", "scope": "SEC"}
"#;

fn counts(summary: &Value) -> [u64; 4] {
    ["processed", "created", "duplicates", "failed"].map(|k| summary[k].as_u64().expect(k))
}

/// Runs `batch in.jsonl --batch-size 1 --format json`; returns the summary and the error's
/// message (empty on success), which must be one JSON line.
fn batch(s: &Scratch) -> (Value, String) {
    let out = s.run(&["batch", "in.jsonl", "--batch-size", "1", "--format", "json"]);
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(
        !stderr.contains("thread '") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    match out.status.code() {
        Some(0) => {
            assert_eq!(stderr, "", "{summary}");
            (summary, String::new())
        }
        _ => {
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            let error = crate::json_error(&stderr);
            (
                summary,
                error["message"].as_str().expect("message").to_owned(),
            )
        }
    }
}

#[test]
fn a_panic_on_one_line_of_a_batch_fails_that_line_alone() {
    for (stage, method) in [
        ("generator", "predict"),
        ("validator", "check_requests"),
        ("generator", "render"),
        ("validator", "check_entries"),
        ("storage", "insert"),
    ] {
        let name = format!("{stage}.{method}");
        let s = Scratch::new();
        s.write("in.jsonl", BOOM_BATCH);
        panicky(&s, stage, &[&name], "panic_on_title = \"boom\"\n");
        let (summary, error) = batch(&s);
        assert_eq!(
            logged_panics(&s),
            std::slice::from_ref(&name),
            "one batch panicked"
        );
        // A line that failed for a plugin's error is a severe failure (exit 2), unlike an
        // invalid line (exit 1).
        assert_eq!(
            error,
            "1 of 5 records in in.jsonl failed, some for a storage or plugin error: \
             registering the file again completes it",
            "{name}"
        );
        assert_eq!(counts(&summary), [5, 4, 0, 1], "{name}: {summary}");
        let failures = summary["failures"].as_array().expect("failures");
        assert_eq!(failures.len(), 1, "{name}: {summary}");
        assert_eq!(failures[0]["line"], 3, "{name}: {summary}");
        let message = failures[0]["message"].as_str().expect("message");
        assert!(
            message.contains(&format!("fixture panics in {name} on a title with `boom`")),
            "{name}: {message}"
        );
        assert_eq!(s.ids().len(), 4, "{name}: every other line is registered");

        // Without the panic, a rerun registers the line and finds the others.
        panicky(&s, stage, &[], "");
        let (again, _) = batch(&s);
        assert_eq!(counts(&again), [5, 1, 4, 0], "{name}: {again}");
        assert_eq!(s.ids().len(), 5, "{name}");
    }
}

#[test]
fn a_cache_answering_with_wrong_entries_changes_no_result() {
    let s = Scratch::new();
    panicky(&s, "cache", &[], "wrong_entries = true\n");
    let title = "Block SSH from the internet";
    let first = s.add(title, &["--scope", "SEC"]);
    assert_eq!(first["id"], "SEC-RUL-001", "{first}");
    assert_eq!(first["created"], true, "{first}");
    let again = s.add(title, &["--scope", "SEC"]);
    assert_eq!(again["created"], false, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["hash"], first["hash"]);

    let got = s.json(&["get", "SEC-RUL-001"]);
    assert_eq!(
        (&got["title"], &got["hash"]),
        (&first["title"], &first["hash"])
    );

    s.write(
        "in.jsonl",
        &format!(
            "{{\"title\": \"{title}\", \"scope\": \"SEC\"}}\n\
             {{\"title\": \"Restart the workers\", \"scope\": \"OPS\"}}\n\
             {{\"title\": \"Restart the workers\", \"scope\": \"OPS\"}}\n"
        ),
    );
    let (summary, _) = batch(&s);
    assert_eq!(counts(&summary), [3, 1, 2, 0], "{summary}");

    let updated = s.json(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    assert_eq!(updated["revision"], 2);
    let got = s.json(&["get", "SEC-RUL-001"]);
    assert_eq!(
        (&got["revision"], &got["status"]),
        (&2.into(), &"DEPRECATED".into())
    );
    // The two OPS lines are batches of their own, in flight at once: either may allocate its
    // number first, so the one stored is OPS-RUL-001 or -002, but there is exactly one, and it
    // is the entry registered, not the decoy.
    let ids = s.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], "SEC-RUL-001", "{ids:?}");
    assert!(ids[0].starts_with("OPS-RUL-"), "{ids:?}");
    let ops = s.json(&["get", &ids[0]]);
    assert_eq!(ops["title"], "Restart the workers", "{ops}");
}
