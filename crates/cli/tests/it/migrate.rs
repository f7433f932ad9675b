//! `registry migrate`: a data directory written by the release before storage format 2 (kept
//! in `tests/fixtures/format-1`, see its README) converted in place, read back the same, and
//! numbered densely from then on.

use std::path::Path;

use registry_core::{FromConfig, Meta, Schema, Setup, Storage};
use registry_storage_redb::{Config, RedbStorage};
use serde_json::Value;

use crate::Scratch;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/format-1");

/// A scratch registry of two shards holding a copy of the fixture.
fn format_1_registry() -> Scratch {
    let s = Scratch::with_shards(2);
    std::fs::create_dir_all(s.data_dir()).expect("data dir");
    for shard in ["shard-000.redb", "shard-001.redb"] {
        std::fs::copy(Path::new(FIXTURE).join(shard), s.data_dir().join(shard)).expect("copy");
    }
    s
}

fn export_before() -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("export-before.jsonl")).expect("fixture")
}

/// The highest number of each prefix in an export.
fn highest(export: &str, prefix: &str) -> u64 {
    export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| {
            let id = r["id"].as_str()?.to_owned();
            let (p, n) = id.rsplit_once('-')?;
            (p == prefix).then(|| n.parse::<u64>().ok())?
        })
        .max()
        .expect("the prefix has entries")
}

#[test]
fn a_registry_of_the_previous_release_migrates_in_place_and_reads_the_same() {
    let s = format_1_registry();
    let before = export_before();
    assert_eq!(
        s.ok(&["export"]),
        before,
        "this build reads format 1 as it was written"
    );
    let checked = s.ok(&["check", "--rate", "0"]);
    assert!(
        checked.contains("60 entries (66 revisions) in 2 shards: no problem found"),
        "{checked}"
    );

    let done = s.json(&["migrate"]);
    assert_eq!(done["migrated"], true, "{done}");
    assert_eq!(done["entries"], 60, "{done}");
    for shard in done["shards"].as_array().expect("shards") {
        assert_eq!(
            (shard["from"].as_u64(), shard["to"].as_u64()),
            (Some(1), Some(2))
        );
        assert!(shard["rewritten"].as_u64() > Some(0), "{shard}");
    }

    // Ids, revisions, hashes and times: the same export, byte for byte, and every id found.
    let after = s.ok(&["export"]);
    assert_eq!(after, before);
    for line in after.lines() {
        let record: Value = serde_json::from_str(line).expect("record");
        let id = record["id"].as_str().expect("id");
        assert_eq!(s.json(&["get", id])["hash"], record["hash"], "{id}");
    }
    assert_eq!(
        s.json(&["get", "SEC-RUL-005"])["merged_into"],
        "SEC-RUL-006",
        "lifecycle kept"
    );

    let checked = s.ok(&["check", "--rate", "0"]);
    assert!(checked.contains("no problem found"), "{checked}");

    // Once is enough.
    let again = s.json(&["migrate"]);
    assert_eq!(again["migrated"], false, "{again}");
    assert_eq!(s.ok(&["export"]), before);

    // New entries are numbered densely after the highest id of their prefix, in input order.
    let next = highest(&before, "SEC-RUL") + 1;
    let mut input = String::new();
    for i in 0..5 {
        input.push_str(&format!(
            "{{\"title\": \"Rule added after the migration {i}\", \"scope\": \"SEC\"}}\n"
        ));
    }
    s.write("new.jsonl", &input);
    s.ok(&["batch", "new.jsonl", "--results", "results.jsonl"]);
    let results = std::fs::read_to_string(s.path().join("results.jsonl")).expect("results");
    let ids: Vec<String> = results
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("result");
            r["id"].as_str().expect("id").to_owned()
        })
        .collect();
    let want: Vec<String> = (next..next + 5)
        .map(|n| format!("SEC-RUL-{n:03}"))
        .collect();
    assert_eq!(ids, want);
}

#[test]
fn an_interrupted_migration_reads_refuses_writes_and_is_finished_by_a_rerun() {
    let s = format_1_registry();
    let before = export_before();
    // A kill between the shards leaves shard 1 migrated and shard 0 not: each shard is
    // converted in one transaction, shard 0 last.
    {
        let setup = Setup {
            schema: Schema::default(),
            data_dir: s.data_dir(),
            config_dir: s.path().to_path_buf(),
            shard: 1,
            shards: 2,
            create: None,
        };
        let one = RedbStorage::from_config(Config::default(), &setup).expect("opens shard 1");
        assert!(one.migrate(&[], &[]).expect("migrates shard 1") > 0);
        let mut meta = Meta::new();
        one.meta(&mut meta).expect("meta");
        assert_eq!(meta.get("format").map(String::as_str), Some("2"));
    }

    // Everything reads, by listing and by id.
    assert_eq!(s.ok(&["export"]), before);
    for line in before.lines() {
        let record: Value = serde_json::from_str(line).expect("record");
        let id = record["id"].as_str().expect("id");
        assert_eq!(s.json(&["get", id])["hash"], record["hash"], "{id}");
    }
    // Writing waits for the migration to finish, and says how.
    let (code, error) = s.json_fail(&["add", "--title", "A rule added halfway"]);
    assert_eq!(code, 2, "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains("a migration of the storage format was interrupted")
            && message.contains("shard 0 is of format 1, shard 1 is of format 2")
            && message.contains("run `registry migrate`"),
        "{message}"
    );

    let done = s.json(&["migrate"]);
    assert_eq!(done["migrated"], true, "{done}");
    let shards = done["shards"].as_array().expect("shards");
    assert_eq!(shards[0]["from"], 1);
    assert_eq!(shards[1]["from"], 2);
    assert_eq!(shards[1]["rewritten"], 0);
    assert_eq!(s.ok(&["export"]), before);
    let added = s.json(&["add", "--title", "A rule added after"]);
    assert_eq!(added["created"], true, "{added}");
}

/// Crash safety of the migration itself: a format 1 registry of 8,000 entries (the fixture,
/// grown by this build, which writes format 1 as that release did) is migrated by processes
/// killed (SIGKILL) at several moments. After every kill the registry reads back exactly as
/// before; a last run finishes the migration, and it still reads the same.
#[test]
fn a_migration_killed_at_any_moment_leaves_a_readable_registry_and_a_rerun_finishes() {
    const N: usize = 8_000;
    let s = format_1_registry();
    let mut input = String::new();
    for i in 0..N {
        input.push_str(&format!(
            "{{\"title\": \"Migration drill rule {i}\", \"scope\": \"{}\"}}\n",
            ["SEC", "OPS", "GOV", "ETL"][i % 4]
        ));
    }
    s.write("big.jsonl", &input);
    s.ok(&["batch", "big.jsonl", "--batch-size", "2000"]);
    let before = s.ok(&["export"]);
    assert_eq!(before.lines().count(), N + 60);

    // How long a whole migration takes here, on a copy, to spread the kills over it.
    let timing = Scratch::with_shards(2);
    copy_dir(&s.data_dir(), &timing.data_dir());
    let started = std::time::Instant::now();
    timing.ok(&["migrate"]);
    let whole = started.elapsed();

    let mut killed = 0;
    for tenth in [1u32, 3, 5, 7, 9] {
        let mut child = s
            .command(&["migrate"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start registry migrate");
        std::thread::sleep(whole * tenth / 10);
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("SIGKILL");
            killed += 1;
        }
        child.wait().expect("reap");
        assert_eq!(
            s.ok(&["export"]),
            before,
            "after a kill at {tenth}/10 of a run"
        );
    }
    assert!(
        killed > 0,
        "no run was killed: the migration took {whole:?}"
    );
    let done = s.json(&["migrate"]);
    assert_eq!(done["entries"], N + 60, "{done}");
    assert_eq!(s.ok(&["export"]), before);
    for shard in done["shards"].as_array().expect("shards") {
        assert_eq!(shard["to"], 2, "{done}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("target dir");
    for entry in std::fs::read_dir(from).expect("source dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

/// `registry migrate --rename`: a status renamed in every entry (retired ones too) as a new
/// revision each, history and ids kept, after which the schema can drop the old value; the
/// scope and type, which ids are made of, cannot be renamed.
#[test]
fn a_status_is_renamed_in_every_entry_and_can_then_leave_the_schema() {
    let s = Scratch::new();
    let schema = |statuses: &str| {
        format!("[schema]\nstatus = [{statuses}]\n[schema.defaults]\nstatus = \"LIVE\"\n")
    };
    s.write(
        "registry.toml",
        &schema("\"LIVE\", \"DEV\", \"REQUIRED\", \"MANDATORY\""),
    );
    for title in [
        "Block SSH from the internet",
        "Rotate the keys",
        "Audit the admins",
    ] {
        s.add(title, &["--scope", "SEC", "--status", "REQUIRED"]);
    }
    s.add("Review the budget", &["--scope", "GOV", "--status", "LIVE"]);
    s.ok(&["retire", "SEC-RUL-003"]);

    let done = s.json(&["migrate", "--rename", "status", "required=MANDATORY"]);
    assert_eq!(done["entries"], 3, "{done}");
    assert_eq!(
        (done["from"].as_str(), done["to"].as_str()),
        (Some("REQUIRED"), Some("MANDATORY"))
    );
    let one = s.json(&["get", "SEC-RUL-001"]);
    assert_eq!(
        (one["status"].as_str(), one["revision"].as_u64()),
        (Some("MANDATORY"), Some(2))
    );
    let history = s.json(&["history", "SEC-RUL-001"]);
    assert_eq!(
        history[0]["status"], "REQUIRED",
        "the old revision is kept: {history}"
    );
    let retired = s.json(&["get", "SEC-RUL-003"]);
    assert_eq!(
        (retired["status"].as_str(), retired["lifecycle"].as_str()),
        (Some("MANDATORY"), Some("retired")),
        "{retired}"
    );
    assert_eq!(
        s.json(&["get", "GOV-RUL-001"])["revision"],
        1,
        "other values untouched"
    );
    // Nothing holds REQUIRED any more: the schema may drop it, and everything still checks.
    s.write("registry.toml", &schema("\"LIVE\", \"DEV\", \"MANDATORY\""));
    let checked = s.ok(&["check", "--rate", "0"]);
    assert!(
        checked.contains("4 entries (8 revisions)") && checked.contains("no problem found"),
        "{checked}"
    );
    let again = s.json(&["migrate", "--rename", "status", "REQUIRED=MANDATORY"]);
    assert_eq!(again["entries"], 0);

    // What cannot be done is said on one line, exit 1.
    for (args, want) in [
        (
            &["migrate", "--rename", "status", "LIVE=NOPE"][..],
            "status `NOPE` is not declared",
        ),
        (
            &["migrate", "--rename", "scope", "SEC=GOV"][..],
            "scope `SEC` cannot be renamed to `GOV` as the schema stands",
        ),
        (&["migrate", "--rename", "colour", "A=B"][..], "not a field"),
        (
            &["migrate", "--rename", "status", "LIVE"][..],
            "expected OLD=NEW",
        ),
    ] {
        let (code, message) = s.fail(args);
        assert_eq!(code, 1, "{args:?}: {message}");
        assert!(message.contains(want), "{args:?}: {message}");
    }
}

/// A type renamed to a name with the same id prefix keeps every id; one that would change ids
/// is refused, naming the prefixes.
#[test]
fn a_type_is_renamed_when_its_ids_stay_the_same() {
    let s = Scratch::new();
    let schema = |types: &str| format!("[schema]\ntype = [{types}]\n");
    s.write(
        "registry.toml",
        &schema("\"RULES\", \"RULESET\", \"POLICY\", \"SCRIPT\""),
    );
    s.add(
        "Block SSH from the internet",
        &["--scope", "SEC", "--type", "RULES"],
    );
    s.add("Rotate the keys", &["--scope", "SEC", "--type", "RULES"]);
    s.add("Deploy the agent", &["--scope", "OPS", "--type", "SCRIPT"]);

    let (code, message) = s.fail(&["migrate", "--rename", "type", "RULES=POLICY"]);
    assert_eq!(code, 1, "{message}");
    assert!(
        message.contains("`…-RUL-…` ids would become `…-POL-…`"),
        "{message}"
    );
    assert_eq!(
        s.json(&["get", "SEC-RUL-001"])["revision"],
        1,
        "nothing written"
    );

    let done = s.json(&["migrate", "--rename", "type", "RULES=RULESET"]);
    assert_eq!(done["entries"], 2, "{done}");
    let one = s.json(&["get", "SEC-RUL-001"]);
    assert_eq!(
        (one["type"].as_str(), one["revision"].as_u64()),
        (Some("RULESET"), Some(2)),
        "{one}"
    );
    // RULES can now leave the schema; the ids still follow from scope and type.
    s.write(
        "registry.toml",
        &schema("\"RULESET\", \"POLICY\", \"SCRIPT\""),
    );
    let checked = s.ok(&["check", "--rate", "0"]);
    assert!(checked.contains("no problem found"), "{checked}");
    let listed = s.ok(&["list", "--type", "RULESET"]);
    assert!(
        listed.contains("SEC-RUL-001") && listed.contains("SEC-RUL-002"),
        "{listed}"
    );
}

/// A scope renamed: the schema gives the new scope the old one's id scope, every entry of the
/// old scope gets a revision with the new one and keeps its id, new entries number on, and the
/// old scope can then leave the schema; headers in both forms still read.
#[test]
fn a_scope_is_renamed_keeping_its_ids() {
    let s = Scratch::new();
    let schema = |scopes: &str, id_scope: &str| {
        format!("[schema]\nscope = [{scopes}]\n[schema.id_scope]\n{id_scope}\n")
    };
    s.write("registry.toml", &schema("\"SEC\", \"OPS\"", ""));
    for title in ["Block SSH from the internet", "Rotate the keys"] {
        s.add(title, &["--scope", "SEC", "--type", "RULES"]);
    }
    s.add("Deploy the agent", &["--scope", "OPS", "--type", "RULES"]);

    s.write(
        "registry.toml",
        &schema("\"SEC\", \"SECURITY\", \"OPS\"", ""),
    );
    let (code, message) = s.fail(&["migrate", "--rename", "scope", "SEC=SECURITY"]);
    assert_eq!(code, 1, "{message}");
    assert!(
        message.contains("[schema.id_scope] SECURITY = \"SEC\""),
        "the refusal says how: {message}"
    );

    s.write(
        "registry.toml",
        &schema("\"SEC\", \"SECURITY\", \"OPS\"", "SECURITY = \"SEC\""),
    );
    let done = s.json(&["migrate", "--rename", "scope", "SEC=SECURITY"]);
    assert_eq!(done["entries"], 2, "{done}");
    let one = s.json(&["get", "SEC-RUL-001"]);
    assert_eq!(
        (one["scope"].as_str(), one["revision"].as_u64()),
        (Some("SECURITY"), Some(2)),
        "{one}"
    );
    assert_eq!(
        one["header"], "[SECURITY][RULES][LIVE][SEC-RUL-001][v2.9][DEV]",
        "{one}"
    );
    let next = s.add(
        "Audit the admins",
        &["--scope", "SECURITY", "--type", "RULES"],
    );
    assert_eq!(next["id"], "SEC-RUL-003", "numbering goes on: {next}");

    // SEC can leave the schema now; everything checks, and both header forms read back.
    s.write(
        "registry.toml",
        &schema("\"SECURITY\", \"OPS\"", "SECURITY = \"SEC\""),
    );
    let checked = s.ok(&["check", "--rate", "0"]);
    assert!(checked.contains("no problem found"), "{checked}");
    for header in [
        "[SECURITY][RULES][LIVE][SEC-RUL-001][v2.9][DEV]",
        "[security-rules-live-sec-rul-001-v2.9-dev]",
    ] {
        s.write("rule.sh", &format!("# {header}\necho hi\n"));
        let linted = s.run(&["lint", "rule.sh", "--registered", "--format", "json"]);
        let text = String::from_utf8_lossy(&linted.stdout);
        assert!(linted.status.success(), "{header}: {text}");
        let report: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(report["summary"]["headers"], 1, "{header}: {text}");
    }
}
