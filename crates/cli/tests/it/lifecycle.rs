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
    let exported = s.ok(&["export", "--audit"]);
    let b = Scratch::new();
    b.write("all.jsonl", &exported);
    let summary = b.json(&["import", "all.jsonl"]);
    assert_eq!(summary["imported"], 3, "{summary}");
    assert_eq!(b.ok(&["export", "--audit"]), exported);
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

/// `registry purge`: a secret removed from one revision, the removal recorded and the chain kept,
/// so the history still verifies, exports and imports; other revisions holding it are named.
#[test]
fn a_purged_secret_leaves_the_history_verifiable_and_the_purge_visible() {
    let s = Scratch::new();
    s.add(
        "Block SSH with token hunter2",
        &[
            "--scope",
            "SEC",
            "--context",
            "api_key=sk-live-123",
            "--context",
            "env=prod",
        ],
    );
    s.ok(&["update", "SEC-RUL-001", "--status", "REQUIRED"]);
    s.write("before.jsonl", &s.ok(&["export"]));

    let purged = s.json(&[
        "purge",
        "SEC-RUL-001",
        "--revision",
        "1",
        "--field",
        "context.api_key",
        "--reason",
        "an API key pasted by mistake",
    ]);
    assert_eq!(purged["also_in"], serde_json::json!([2]), "{purged}");
    s.ok(&[
        "purge",
        "SEC-RUL-001",
        "--revision",
        "2",
        "--field",
        "context.api_key",
        "--reason",
        "the same key",
    ]);
    let titled = s.json(&[
        "purge",
        "SEC-RUL-001",
        "--revision",
        "2",
        "--field",
        "title",
        "--reason",
        "a token",
    ]);
    assert_eq!(titled["also_in"], serde_json::json!([1]), "{titled}");
    s.ok(&[
        "purge",
        "SEC-RUL-001",
        "--revision",
        "1",
        "--field",
        "title",
        "--reason",
        "a token",
    ]);
    let history = s.json(&["history", "SEC-RUL-001"]);
    assert_eq!(history[0]["context"]["api_key"], "(purged)", "{history}");
    assert_eq!(history[0]["context"]["env"], "prod", "only the field named");
    assert_eq!(history[0]["purge"]["fields"], "context.api_key, title");
    assert_eq!(
        history[0]["purge"]["reason"],
        "an API key pasted by mistake; a token"
    );
    assert_eq!(history[1]["title"], "(purged)");
    assert_eq!(history[1]["purge"]["fields"], "context.api_key, title");
    assert_eq!(history[1]["purge"]["reason"], "the same key; a token");
    assert_eq!(
        history[1]["previous"], history[0]["purge"]["original"],
        "the next revision still links to the hash revision 1 had"
    );

    // A revision built on the purged latest links to the hash it had, and is not purged.
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    let history = s.json(&["history", "SEC-RUL-001"]);
    assert_eq!(history[2]["previous"], history[1]["purge"]["original"]);
    assert!(history[2].get("purge").is_none(), "{history}");
    assert_eq!(history[2]["title"], "(purged)");

    let exported = s.ok(&["export"]);
    assert!(
        !exported.contains("sk-live-123") && !exported.contains("hunter2"),
        "{exported}"
    );
    assert!(s.ok(&["check", "--rate", "0"]).contains("no problem found"));
    let against = s.json(&["check", "--rate", "0", "--against", "before.jsonl"]);
    assert_eq!(
        against["against"]["differences"],
        serde_json::json!([]),
        "a purge is not a rewrite: {against}"
    );
    // The purged history imports elsewhere and exports the same.
    let other = Scratch::new();
    other.write("purged.jsonl", &exported);
    other.ok(&["import", "purged.jsonl"]);
    assert_eq!(other.ok(&["export"]), exported);

    for (args, want) in [
        (
            &["--field", "context.nope"][..],
            "has no context key `nope`",
        ),
        (&["--field", "config"][..], "give `title` or `context.KEY`"),
        (
            &["--field", "title", "--revision", "9"][..],
            "has no revision 9",
        ),
        (&["--field", "title"][..], "already purged"),
    ] {
        let mut command = vec!["purge", "SEC-RUL-001", "--reason", "why"];
        if !args.contains(&"--revision") {
            command.extend(["--revision", "2"]);
        }
        command.extend(args);
        let (code, message) = s.fail(&command);
        assert_eq!(code, 1, "{command:?}: {message}");
        assert!(message.contains(want), "{command:?}: {message}");
    }
    let (code, message) = s.fail(&[
        "purge",
        "SEC-RUL-001",
        "--revision",
        "1",
        "--field",
        "title",
        "--reason",
        " ",
    ]);
    assert_eq!(code, 1, "{message}");
    assert!(message.contains("a purge needs a reason"), "{message}");
}
