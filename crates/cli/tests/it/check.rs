//! `registry check`: a healthy registry passes; each kind of damage to a shard file is found and
//! named with its entry.

use std::path::Path;

use serde_json::Value;

use crate::Scratch;

/// A registry of two shards with `n` entries over four scopes, some updated, one retired.
fn registry(n: usize) -> Scratch {
    let s = Scratch::with_shards(2);
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"title\": \"Check drill rule {i}\", \"scope\": \"{}\"}}\n",
            ["SEC", "OPS", "GOV", "ETL"][i % 4]
        ));
    }
    s.write("in.jsonl", &input);
    s.ok(&["batch", "in.jsonl"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    s.ok(&["retire", "OPS-RUL-002"]);
    s
}

fn check(s: &Scratch) -> (i32, Value) {
    let out = s.run(&["check", "--rate", "0", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    (out.status.code().unwrap_or(-1), report)
}

/// The findings of a report as (code, id).
fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap_or_default().to_owned(),
                f["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Opens a shard file with redb directly, as something outside the registry would.
fn with_shard(s: &Scratch, shard: u32, f: impl FnOnce(&redb::WriteTransaction)) {
    with_shard_in(&s.data_dir(), shard, f);
}

fn with_shard_in(dir: &Path, shard: u32, f: impl FnOnce(&redb::WriteTransaction)) {
    let db =
        redb::Database::open(dir.join(format!("shard-{shard:03}.redb"))).expect("opens the shard");
    let txn = db.begin_write().expect("writes");
    f(&txn);
    txn.commit().expect("commits");
}

/// The shard holding an entry, found by which file's table holds its number.
fn shard_of(s: &Scratch, prefix: &str, number: u64) -> u32 {
    shard_in(&s.data_dir(), prefix, number)
}

fn shard_in(dir: &Path, prefix: &str, number: u64) -> u32 {
    for shard in 0..2 {
        let db = redb::Database::open(dir.join(format!("shard-{shard:03}.redb"))).expect("opens");
        let txn = redb::ReadableDatabase::begin_read(&db).expect("reads");
        let name = format!("entries/{prefix}");
        let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(&name);
        if let Ok(t) = txn.open_table(def)
            && redb::ReadableTable::get(&t, number)
                .expect("reads")
                .is_some()
        {
            return shard;
        }
    }
    panic!("{prefix}-{number} is in no shard");
}

/// Changes "Check" to "Chick" in the stored title of an entry, in whichever shard holds it,
/// without touching its hash.
fn change_title(s: &Scratch, prefix: &str, number: u64) {
    change_title_in(&s.data_dir(), prefix, number);
}

/// As [`change_title`], in the two-shard data directory `dir` (a registry's, or a backup's).
pub fn change_title_in(dir: &Path, prefix: &str, number: u64) {
    let shard = shard_in(dir, prefix, number);
    with_shard_in(dir, shard, |txn| {
        let name = format!("entries/{prefix}");
        let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(&name);
        let mut t = txn.open_table(def).expect("table");
        let mut bytes = redb::ReadableTable::get(&t, number)
            .expect("reads")
            .expect("there")
            .value()
            .to_vec();
        let at = bytes
            .windows(5)
            .position(|w| w == b"Check")
            .expect("the title is stored as text");
        bytes[at..at + 5].copy_from_slice(b"Chick");
        t.insert(number, bytes.as_slice()).expect("writes");
    });
}

#[test]
fn a_healthy_registry_passes_and_the_report_counts_everything() {
    let s = registry(400);
    let (code, report) = check(&s);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["entries"], 400);
    assert_eq!(
        report["revisions"], 402,
        "two entries have a second revision"
    );
    assert_eq!(report["shards"], 2);
    assert!(findings(&report).is_empty(), "{report}");
    let text = s.ok(&["check", "--rate", "0"]);
    assert!(
        text.contains("checked 400 entries (402 revisions) in 2 shards: no problem found"),
        "{text}"
    );
}

#[test]
fn each_kind_of_damage_is_named_with_its_entry() {
    let s = registry(400);
    // A changed title: the hash no longer matches.
    change_title(&s, "GOV-RUL", 3);
    // A field index that lost every LIVE bit of ETL in shard 0.
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<(u8, &str, &str, u64), &[u8]> =
            redb::TableDefinition::new("field_bits");
        let mut t = txn.open_table(def).expect("table");
        t.remove((2, "LIVE", "ETL-RUL", 0)).expect("removes");
    });
    // Shard 0 forgets where shard 1's SEC entries are.
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<(&str, u64), &[u8]> =
            redb::TableDefinition::new("locations");
        let mut t = txn.open_table(def).expect("table");
        t.remove(("SEC-RUL", 0)).expect("removes");
    });
    // An entry copied into the other shard: one id held twice.
    let from = shard_of(&s, "OPS-RUL", 5);
    let bytes = {
        let db = redb::Database::open(s.data_dir().join(format!("shard-{from:03}.redb")))
            .expect("opens");
        let txn = redb::ReadableDatabase::begin_read(&db).expect("reads");
        let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("entries/OPS-RUL");
        let t = txn.open_table(def).expect("table");
        redb::ReadableTable::get(&t, 5)
            .expect("reads")
            .expect("there")
            .value()
            .to_vec()
    };
    with_shard(&s, 1 - from, |txn| {
        let def: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("entries/OPS-RUL");
        let mut t = txn.open_table(def).expect("table");
        t.insert(5, bytes.as_slice()).expect("writes");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 1, "{report}");
    let found = findings(&report);
    assert!(
        found.contains(&("damaged".into(), "GOV-RUL-003".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("duplicate-id".into(), "OPS-RUL-005".into())),
        "{found:?}"
    );
    let etl_live = found
        .iter()
        .filter(|(code, id)| code == "field-index" && id.starts_with("ETL-RUL-"))
        .count();
    assert!(etl_live > 0, "{found:?}");
    let sec_in_one = (1..=100u64)
        .find(|&n| shard_of(&s, "SEC-RUL", n) == 1)
        .expect("one");
    assert!(
        found.contains(&("location".into(), format!("SEC-RUL-{sec_in_one:03}"))),
        "{found:?}"
    );
    let (stdout, stderr) = {
        let out = s.run(&["check", "--rate", "0"]);
        assert_eq!(out.status.code(), Some(1));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(
        stdout.contains("damaged: entry GOV-RUL-003 is damaged"),
        "{stdout}"
    );
    assert!(stderr.contains("the check found"), "{stderr}");
}

#[test]
fn repair_rebuilds_indexes_and_locations_and_leaves_damaged_entries_to_the_operator() {
    let s = registry(400);
    let before = s.ok(&["export"]);
    // Lost: a block of the field index, shard 0's record of where shard 1's SEC entries are,
    // and every pending fingerprint of shard 1 (registering them again would duplicate them).
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<(u8, &str, &str, u64), &[u8]> =
            redb::TableDefinition::new("field_bits");
        let mut t = txn.open_table(def).expect("table");
        t.remove((2, "LIVE", "ETL-RUL", 0)).expect("removes");
        let def: redb::TableDefinition<(&str, u64), &[u8]> =
            redb::TableDefinition::new("locations");
        let mut t = txn.open_table(def).expect("table");
        t.remove(("SEC-RUL", 0)).expect("removes");
    });
    with_shard(&s, 1, |txn| {
        let def: redb::TableDefinition<u64, ([u8; 16], &str, u64)> =
            redb::TableDefinition::new("pending_fingerprints");
        txn.delete_table(def)
            .expect("drops the pending fingerprints");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 1);
    let codes: std::collections::BTreeSet<String> =
        findings(&report).into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        ["field-index", "fingerprint-index", "location"],
        "{report}"
    );

    let out = s.run(&["check", "--rate", "0", "--repair", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let repaired: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(repaired["repaired"]["reindexed"], 400, "{repaired}");
    assert!(
        repaired["repaired"]["placed"].as_u64() > Some(0),
        "{repaired}"
    );
    assert_eq!(
        repaired["after"]["findings"],
        serde_json::json!([]),
        "{repaired}"
    );
    // Nothing else changed, and registering the same requests again finds every one.
    assert_eq!(s.ok(&["export"]), before);
    let again = s.json(&["batch", "in.jsonl"]);
    assert_eq!(
        (again["created"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(400))
    );
    let (code, report) = check(&s);
    assert_eq!(code, 0, "{report}");

    // A damaged entry is reported, not repaired.
    change_title(&s, "GOV-RUL", 3);
    let out = s.run(&["check", "--rate", "0", "--repair", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let left: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        findings(&left["after"]),
        [("damaged".to_owned(), "GOV-RUL-003".to_owned())],
        "{left}"
    );
}

#[test]
fn a_sequence_below_a_stored_number_is_found_and_repaired() {
    let s = registry(40);
    // Shard 0 numbers every id: set its SEC-RUL sequence back, as a restored older file would.
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("sequences");
        let mut t = txn.open_table(def).expect("table");
        t.insert("SEC-RUL", 3).expect("writes");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        findings(&report),
        [("sequence".to_owned(), "SEC-RUL-010".to_owned())],
        "{report}"
    );
    let message = report["findings"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("the sequence of SEC-RUL is at 3 but SEC-RUL-010 is stored"),
        "{message}"
    );
    let repaired = s.json(&["check", "--rate", "0", "--repair"]);
    assert!(findings(&repaired["after"]).is_empty(), "{repaired}");
    let next = s.add("After the repair", &["--scope", "SEC"]);
    assert_eq!(next["id"], "SEC-RUL-011", "{next}");
}

/// Revision 2 of an entry of three revisions rewritten in its shard, status changed and its hash
/// recomputed so that it verifies alone: the chain breaks at revision 3, which `check`, `history`
/// and `export` report.
#[test]
fn a_rewritten_revision_breaks_the_hash_chain() {
    use registry_codec::Dictionaries;
    use registry_codec::entry::{Writing, decode, encoded};

    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "REQUIRED"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    let history = s.json(&["history", "SEC-RUL-001"]);
    assert_eq!(
        history[2]["previous"], history[1]["hash"],
        "each revision records the one before: {history}"
    );
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<(&str, u64, u32), &[u8]> =
            redb::TableDefinition::new("revisions");
        let mut t = txn.open_table(def).expect("table");
        let bytes = redb::ReadableTable::get(&t, ("SEC-RUL", 1, 2))
            .expect("reads")
            .expect("revision 2 is there")
            .value()
            .to_vec();
        let mut e = decode(&bytes, &Dictionaries::default()).expect("decodes");
        e.header.fields.status = "DEV".into();
        e.hash = e.content_hash();
        assert!(e.verify(), "the rewritten revision verifies alone");
        let bytes = encoded(&e, Writing::Compressed(None));
        t.insert(("SEC-RUL", 1, 2), bytes.as_slice())
            .expect("writes");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 1, "{report}");
    assert_eq!(
        findings(&report),
        [("damaged".to_owned(), "SEC-RUL-001".to_owned())],
        "{report}"
    );
    let message = report["findings"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("revision 3 follows a revision with hash")
            && message.contains("the history was rewritten"),
        "{message}"
    );
    let (code, err) = s.fail(&["history", "SEC-RUL-001"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the history was rewritten"), "{err}");
}

/// The whole history rewritten consistently, every later hash recomputed and re-linked: the
/// registry agrees with itself, so only an export taken before tells, which `--against` reads.
#[test]
fn a_history_rewritten_whole_is_found_against_an_earlier_export() {
    use registry_codec::Dictionaries;
    use registry_codec::entry::{Writing, decode, encoded};

    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    s.add("Rotate the keys", &["--scope", "SEC"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "REQUIRED"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    s.write("before.jsonl", &s.ok(&["export"]));
    let clean = s.json(&["check", "--rate", "0", "--against", "before.jsonl"]);
    assert_eq!(
        clean["against"]["differences"],
        serde_json::json!([]),
        "{clean}"
    );
    assert_eq!(clean["against"]["revisions"], 4, "{clean}");

    with_shard(&s, 0, |txn| {
        let dictionaries = Dictionaries::default();
        let revisions: redb::TableDefinition<(&str, u64, u32), &[u8]> =
            redb::TableDefinition::new("revisions");
        let mut revisions = txn.open_table(revisions).expect("table");
        let bytes = redb::ReadableTable::get(&revisions, ("SEC-RUL", 1, 2))
            .expect("reads")
            .expect("there")
            .value()
            .to_vec();
        let mut second = decode(&bytes, &dictionaries).expect("decodes");
        second.header.fields.status = "DEV".into();
        second.hash = second.content_hash();
        let bytes = encoded(&second, Writing::Compressed(None));
        revisions
            .insert(("SEC-RUL", 1, 2), bytes.as_slice())
            .expect("writes");
        let latest: redb::TableDefinition<u64, &[u8]> =
            redb::TableDefinition::new("entries/SEC-RUL");
        let mut latest = txn.open_table(latest).expect("table");
        let bytes = redb::ReadableTable::get(&latest, 1)
            .expect("reads")
            .expect("there")
            .value()
            .to_vec();
        let mut third = decode(&bytes, &dictionaries).expect("decodes");
        third.previous = Some(second.hash);
        third.hash = third.content_hash();
        let bytes = encoded(&third, Writing::Compressed(None));
        latest.insert(1, bytes.as_slice()).expect("writes");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 0, "the registry agrees with itself: {report}");

    let out = s.run(&[
        "check",
        "--rate",
        "0",
        "--against",
        "before.jsonl",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let differences: Vec<(String, String)> = report["against"]["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_owned(),
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(differences.len(), 2, "{report}");
    assert!(
        differences.iter().all(|(code, message)| code == "rewritten"
            && message.starts_with("entry SEC-RUL-001: revision ")
            && message.ends_with("it was rewritten since the export")),
        "{differences:?}"
    );
    let text = s.fail(&["check", "--rate", "0", "--against", "before.jsonl"]);
    assert_eq!(text.0, 1);
    // A missing export is said before anything is read.
    let (code, err) = s.fail(&["check", "--against", "nope.jsonl"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nope.jsonl"), "{err}");
}

#[test]
fn sequences_emptied_whole_are_each_found() {
    let s = registry(40);
    with_shard(&s, 0, |txn| {
        let def: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("sequences");
        let mut t = txn.open_table(def).expect("table");
        t.retain(|_, _| false).expect("empties");
    });
    let (code, report) = check(&s);
    assert_eq!(code, 1, "{report}");
    let mut found = findings(&report);
    found.sort();
    assert_eq!(
        found,
        ["ETL-RUL-010", "GOV-RUL-010", "OPS-RUL-010", "SEC-RUL-010"]
            .map(|id| ("sequence".to_owned(), id.to_owned())),
        "{report}"
    );
}
