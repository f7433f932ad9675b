//! Retiring, merging and reviving entries, end to end: revisions kept in history, listings,
//! files re-pointed by `stamp --refresh`, lint codes, and export and import.

use std::fs;

use serde_json::Value;

use crate::Scratch;

/// Stamps one file and returns the id it was registered as.
fn stamped(s: &Scratch, name: &str, text: &str) -> String {
    s.write(name, text);
    let report = s.json(&["stamp", name]);
    report[0]["id"].as_str().expect("stamped id").to_owned()
}

fn header_line(s: &Scratch, name: &str) -> String {
    fs::read_to_string(s.path().join(name))
        .expect("read")
        .lines()
        .find(|l| l.starts_with("# ["))
        .expect("a header line")
        .to_owned()
}

fn lint_registered(s: &Scratch) -> (i32, String) {
    let out = s.run(&["lint", "--registered", "."]);
    (
        out.status.code().expect("code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_merged_duplicate_is_re_pointed_and_a_retired_entry_is_flagged() {
    // The rule was registered once already (as an import of another registry would), then
    // its file was stamped as a new entry: a duplicate.
    let s = Scratch::new();
    let keep = s.add("Block SSH", &["--scope", "SEC"])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let duplicate = stamped(&s, "block_ssh.sh", "echo block\n");
    let old = stamped(&s, "rotate.sh", "echo rotate\n");
    assert_eq!(lint_registered(&s).0, 0);

    // The duplicate is merged: a revision in its history, left out of `list`.
    let merged = s.json(&["merge", &duplicate, "--into", &keep]);
    assert_eq!(merged["lifecycle"], "merged", "{merged}");
    assert_eq!(merged["merged_into"], keep.as_str());
    assert_eq!(merged["revision"], 2);
    assert_eq!(merged["changed"], true);
    let history = s.json(&["history", &duplicate]);
    let states: Vec<&Value> = history
        .as_array()
        .expect("revisions")
        .iter()
        .map(|r| &r["lifecycle"])
        .collect();
    assert_eq!(states, ["active", "merged"]);

    // Its file fails `lint --registered` until refreshed, which writes the kept entry's header.
    let (code, out) = lint_registered(&s);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("merged-entry"), "{out}");
    assert!(out.contains(&format!("is merged into {keep}")), "{out}");
    let dry = s.json(&["stamp", "--refresh", "--dry-run", "block_ssh.sh"]);
    assert_eq!(dry[0]["status"], "would-refresh", "{dry}");
    assert!(header_line(&s, "block_ssh.sh").contains(&duplicate));
    let refreshed = s.json(&["stamp", "--refresh", "."]);
    let file = refreshed
        .as_array()
        .expect("files")
        .iter()
        .find(|r| r["file"] == "./block_ssh.sh")
        .expect("the file");
    assert_eq!(file["status"], "refreshed", "{file}");
    let kept = s.json(&["get", &keep]);
    assert_eq!(
        header_line(&s, "block_ssh.sh"),
        format!("# {}", kept["header"].as_str().expect("header"))
    );
    let (code, out) = lint_registered(&s);
    assert_eq!(code, 0, "{out}");

    // A retired entry is a warning, not a failure, and its content is frozen.
    let retired = s.ok(&["retire", &old]);
    assert!(
        retired.starts_with(&format!("retired   {old} at revision 2\n")),
        "{retired}"
    );
    let (code, out) = lint_registered(&s);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("retired-entry"), "{out}");
    let (code, message) = s.fail(&["update", &old, "--status", "LIVE"]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        format!("entry {old} is retired: revive it before changing it")
    );
    let (code, message) = s.fail(&["merge", &duplicate, "--into", &old]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        format!("cannot merge into entry {old}: it is retired")
    );
    let (code, message) = s.fail(&["merge", &keep, "--into", "SEC-RUL-7"]);
    assert_eq!(code, 1, "{message}");
    let (code, message) = s.fail(&["merge", &keep, "--into", "not-an-id"]);
    assert_eq!(code, 1, "{message}");

    // Listings: only active entries unless asked; every id stays taken.
    let listed: Vec<String> = s
        .json(&["list"])
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(listed, std::slice::from_ref(&keep));
    assert_eq!(s.ids().len(), 3);
    let all = s.ok(&["list", "--all"]);
    assert!(all.contains(&format!("(merged into {keep})")), "{all}");
    assert!(all.contains("(retired)"), "{all}");

    // Retiring again writes nothing; reviving writes a revision with the first one's content,
    // chained to the retired one.
    let again = s.json(&["retire", &old]);
    assert_eq!(
        (again["changed"].clone(), again["revision"].clone()),
        (false.into(), 2.into())
    );
    let history = s.json(&["history", &old]);
    let revived = s.json(&["revive", &old]);
    assert_eq!(revived["lifecycle"], "active");
    assert_eq!(revived["revision"], 3);
    for key in ["title", "config", "status", "context"] {
        assert_eq!(revived[key], history[0][key], "{key}");
    }
    assert_eq!(revived["previous"], history[1]["hash"]);
    s.ok(&["retire", &old]);

    let stats = s.json(&["stats"]);
    assert_eq!(
        stats["by_lifecycle"],
        serde_json::json!({"active": 1, "merged": 1, "retired": 1}),
        "{stats}"
    );

    // Export carries every state; an import elsewhere holds the same entries and histories.
    let exported = s.ok(&["export"]);
    let b = Scratch::new();
    b.write("all.jsonl", &exported);
    let summary = b.json(&["import", "all.jsonl"]);
    assert_eq!(summary["imported"], 3, "{summary}");
    assert_eq!(b.ok(&["export"]), exported);
    for id in [&keep, &duplicate, &old] {
        assert_eq!(b.json(&["history", id]), s.json(&["history", id]), "{id}");
    }
    // A tampered state fails the hash check on import.
    let b = Scratch::new();
    b.write(
        "forged.jsonl",
        &exported.replace(
            &format!("\"lifecycle\":\"merged\",\"merged_into\":\"{keep}\""),
            &format!("\"lifecycle\":\"merged\",\"merged_into\":\"{old}\""),
        ),
    );
    let out = b.run(&["import", "forged.jsonl"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
