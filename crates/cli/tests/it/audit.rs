//! The audit log: every write records its author with the revision it writes; `registry
//! audit`, `history`, `export --audit` and `import` show and keep it; `registry diff`.

use serde_json::Value;

use crate::Scratch;

/// Runs `registry ARGS --format json` as the operating system user `user`.
fn as_user(s: &Scratch, user: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = s.command(&all).env("USER", user).output().expect("runs");
    assert!(
        out.status.success(),
        "registry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// One record as (action, id, revision before, revision after, actor).
type Line = (String, String, Option<u64>, u64, Option<String>);

/// Each record's [`Line`].
fn summary(records: &Value) -> Vec<Line> {
    records
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["action"].as_str().expect("action").to_owned(),
                r["id"].as_str().expect("id").to_owned(),
                r["revision_before"].as_u64(),
                r["revision_after"].as_u64().expect("after"),
                r["actor"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn every_write_records_its_author_and_audit_reads_them_back() {
    let s = Scratch::new();
    as_user(
        &s,
        "alice",
        &[
            "add",
            "--title",
            "Block SSH from the internet",
            "--scope",
            "SEC",
        ],
    );
    as_user(
        &s,
        "alice",
        &["add", "--title", "Rotate the keys", "--scope", "SEC"],
    );
    as_user(&s, "bob", &["update", "SEC-RUL-001", "--status", "LIVE"]);
    as_user(&s, "bob", &["retire", "SEC-RUL-002"]);
    as_user(&s, "carol", &["revive", "SEC-RUL-002"]);
    as_user(
        &s,
        "carol",
        &["merge", "SEC-RUL-002", "--into", "SEC-RUL-001"],
    );
    as_user(
        &s,
        "root",
        &[
            "purge",
            "SEC-RUL-001",
            "--revision",
            "1",
            "--field",
            "title",
            "--reason",
            "a name that must go",
        ],
    );

    let all = as_user(&s, "anyone", &["audit"]);
    let mut got = summary(&all);
    got.sort_by(|a, b| (&a.1, a.3, &a.0).cmp(&(&b.1, b.3, &b.0)));
    let who = |n: &str| Some(n.to_owned());
    assert_eq!(
        got,
        [
            (
                "created".into(),
                "SEC-RUL-001".into(),
                None,
                1,
                who("alice")
            ),
            ("purged".into(), "SEC-RUL-001".into(), Some(1), 1, None),
            (
                "updated".into(),
                "SEC-RUL-001".into(),
                Some(1),
                2,
                who("bob")
            ),
            (
                "created".into(),
                "SEC-RUL-002".into(),
                None,
                1,
                who("alice")
            ),
            (
                "retired".into(),
                "SEC-RUL-002".into(),
                Some(1),
                2,
                who("bob")
            ),
            (
                "revived".into(),
                "SEC-RUL-002".into(),
                Some(2),
                3,
                who("carol")
            ),
            (
                "merged".into(),
                "SEC-RUL-002".into(),
                Some(3),
                4,
                who("carol")
            ),
        ]
    );
    let records = all.as_array().expect("records");
    let times: Vec<&str> = records
        .iter()
        .map(|r| r["at"].as_str().expect("at"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    assert_eq!(times, sorted, "oldest first");
    assert!(
        records
            .iter()
            .filter(|r| r["action"] != "purged")
            .all(|r| r["origin"].as_str().is_some_and(|o| o.starts_with("cli@"))),
        "{all}"
    );

    let bob = summary(&as_user(&s, "x", &["audit", "--actor", "bob"]));
    assert_eq!(bob.len(), 2);
    let one = summary(&as_user(&s, "x", &["audit", "--id", "SEC-RUL-002"]));
    assert_eq!(one.len(), 4);
    let future = as_user(&s, "x", &["audit", "--since", "2999-01-01"]);
    assert_eq!(future.as_array().map(Vec::len), Some(0));
    let recent = as_user(&s, "x", &["audit", "--since", "1h"]);
    assert_eq!(recent.as_array().map(Vec::len), Some(7));
    let (code, message) = s.fail(&["audit", "--since", "last week"]);
    assert_eq!(code, 1, "{message}");
    assert!(message.contains("--since"), "{message}");

    // History shows each revision's author.
    let history = as_user(&s, "x", &["history", "SEC-RUL-002"]);
    let authors: Vec<&str> = history
        .as_array()
        .expect("revisions")
        .iter()
        .map(|r| r["author"]["name"].as_str().expect("author"))
        .collect();
    assert_eq!(authors, ["alice", "bob", "carol", "carol"]);
    let text = s.ok(&["history", "SEC-RUL-002"]);
    assert!(text.lines().all(|l| l.contains(" by ")), "{text}");

    // The author is no content: a plain export leaves it out, `--audit` keeps it, and an
    // import of that keeps it too.
    let plain = s.ok(&["export"]);
    assert!(!plain.contains("\"author\""), "{plain}");
    let audited = s.ok(&["export", "--audit"]);
    assert_eq!(audited.matches("\"author\"").count(), 6, "{audited}");
    let copy = Scratch::new();
    copy.write("audited.jsonl", &audited);
    copy.ok(&["import", "audited.jsonl"]);
    assert_eq!(copy.ok(&["export", "--audit"]), audited);
    assert_eq!(copy.ok(&["export"]), plain);
    s.ok(&["check"]);
}

#[test]
fn diff_shows_the_fields_and_the_config_that_changed() {
    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    s.ok(&[
        "update",
        "SEC-RUL-001",
        "--title",
        "Block SSH from anywhere",
        "--context",
        "owner=netsec",
    ]);
    let diff = s.json(&["diff", "SEC-RUL-001"]);
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (1.into(), 2.into())
    );
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["title", "context.owner"]);
    let text = s.ok(&["diff", "SEC-RUL-001", "--from", "1", "--to", "2"]);
    assert!(text.contains("title: Block SSH from the internet -> Block SSH from anywhere"));
    assert!(text.contains("context.owner: (none) -> netsec"), "{text}");
    assert!(text.contains("+  title: Block SSH from anywhere"), "{text}");
    let (code, message) = s.fail(&["diff", "SEC-RUL-001", "--to", "7"]);
    assert_eq!(code, 1, "{message}");
    assert!(message.contains("has no revision 7"), "{message}");
}
