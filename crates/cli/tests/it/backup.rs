//! `registry backup` and `registry restore`: a checked copy comes back whole, ids issued after
//! it are never handed out again, and a failure leaves everything as it was.

use std::path::Path;

use crate::Scratch;
use crate::check::change_title_in;

/// A registry of two shards with `n` entries over two scopes, one updated.
fn registry(n: usize) -> Scratch {
    let s = Scratch::with_shards(2);
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"title\": \"Check drill rule {i}\", \"scope\": \"{}\"}}\n",
            ["SEC", "OPS"][i % 2]
        ));
    }
    s.write("in.jsonl", &input);
    s.ok(&["batch", "in.jsonl"]);
    s.ok(&["update", "SEC-RUL-001", "--status", "DEPRECATED"]);
    s
}

fn export(s: &Scratch) -> String {
    s.ok(&["export"])
}

/// The names in `dir` that start with `start`.
fn names_starting(dir: &Path, start: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("reads")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(start))
        .collect()
}

#[test]
fn a_restored_backup_reads_as_taken_and_never_hands_out_a_later_id_again() {
    let s = registry(40);
    let before = export(&s);
    let backup = s.json(&["backup", "b1"]);
    assert_eq!(backup["entries"], 40, "{backup}");
    assert_eq!(backup["revisions"], 41, "{backup}");
    assert_eq!(backup["shards"], 2, "{backup}");
    let marks = backup["high_water"].as_array().expect("marks");
    assert!(
        marks
            .iter()
            .any(|m| m["prefix"] == "SEC-RUL" && m["last"] == 20),
        "{backup}"
    );
    assert!(s.path().join("b1/backup.json").is_file());

    // After the backup: two new SEC rules (021, 022) and a change.
    let later = s.add("Registered after the backup", &["--scope", "SEC"]);
    assert_eq!(later["id"], "SEC-RUL-021", "{later}");
    s.add("Registered after the backup too", &["--scope", "SEC"]);
    s.ok(&["update", "OPS-RUL-002", "--status", "DEPRECATED"]);

    let restored = s.json(&["restore", "b1"]);
    assert_eq!(restored["entries"], 40, "{restored}");
    assert_eq!(restored["high_water_kept"], true, "{restored}");
    assert_eq!(
        restored["raised"],
        serde_json::json!([{"prefix": "SEC-RUL", "backup": 20, "last": 22}]),
        "{restored}"
    );
    assert_eq!(
        export(&s),
        before,
        "the registry reads as it did when backed up"
    );
    s.ok(&["check", "--rate", "0"]);

    // The replaced registry is kept, whole, beside the data directory.
    let kept = restored["replaced_kept_in"].as_str().expect("kept");
    let kept_registry = s.ok(&["--data-dir", kept, "get", "SEC-RUL-022"]);
    assert!(kept_registry.contains("SEC-RUL-022"), "{kept_registry}");

    // The next SEC rule comes after every number issued before the restore.
    let next = s.add("Registered after the restore", &["--scope", "SEC"]);
    assert_eq!(next["id"], "SEC-RUL-023", "{next}");
    let ops = s.add(
        "An OPS rule after the restore",
        &["--scope", "OPS", "--type", "RULES"],
    );
    assert_eq!(ops["id"], "OPS-RUL-021", "OPS was not raised: {ops}");
    // The backup itself was not written to: it restores again.
    s.ok(&["restore", "b1"]);
}

#[test]
fn a_backup_refuses_a_directory_that_is_not_empty_and_leaves_nothing_behind() {
    let s = registry(4);
    std::fs::create_dir(s.path().join("full")).expect("dir");
    s.write("full/notes.txt", "mine");
    let (code, err) = s.fail(&["backup", "full"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("full is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(s.path().join("full/notes.txt")).expect("kept"),
        "mine"
    );
    // An empty directory is fine.
    std::fs::create_dir(s.path().join("empty")).expect("dir");
    s.ok(&["backup", "empty"]);
    assert!(
        names_starting(s.path(), ".")
            .iter()
            .all(|n| !n.ends_with(".partial"))
    );
}

#[test]
fn a_backup_of_a_damaged_registry_fails_and_leaves_no_directory() {
    let s = registry(8);
    change_title_in(&s.data_dir(), "OPS-RUL", 2);
    let (code, err) = s.fail(&["backup", "b1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the copy failed its check"), "{err}");
    assert!(err.contains("OPS-RUL-002"), "{err}");
    assert!(!s.path().join("b1").exists());
    assert!(names_starting(s.path(), ".b1").is_empty());
}

#[test]
fn a_damaged_backup_is_refused_and_the_registry_is_left_as_it_was() {
    let s = registry(8);
    s.ok(&["backup", "b1"]);
    change_title_in(&s.path().join("b1"), "SEC-RUL", 3);
    s.add("Registered after the backup", &["--scope", "SEC"]);
    let before = export(&s);
    let (code, err) = s.fail(&["restore", "b1"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the copy failed its check"), "{err}");
    assert!(err.contains("SEC-RUL-003"), "{err}");
    assert_eq!(export(&s), before);
    assert_eq!(
        names_starting(s.path(), ".registry"),
        vec![".registry".to_owned()],
        "nothing left beside the data directory"
    );
}

#[test]
fn without_a_registry_to_take_marks_from_restore_refuses_unless_told() {
    let s = registry(6);
    s.ok(&["backup", "b1"]);
    s.add("Registered after the backup", &["--scope", "SEC"]);
    std::fs::rename(s.data_dir(), s.path().join("lost")).expect("moves");
    let (code, err) = s.fail(&["restore", "b1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--without-high-water"), "{err}");
    assert!(err.contains("no registry in"), "{err}");
    assert!(!s.data_dir().exists(), "nothing restored");

    let text = s.ok(&["restore", "b1", "--without-high-water"]);
    assert!(text.contains("may be handed out again"), "{text}");
    assert!(
        s.data_dir().join(".gitignore").is_file(),
        "kept out of version control"
    );
    s.ok(&["check", "--rate", "0"]);
    // As said: the number issued after the backup comes again.
    let again = s.add("Another after the restore", &["--scope", "SEC"]);
    assert_eq!(again["id"], "SEC-RUL-004", "{again}");
}

#[test]
fn restore_refuses_a_directory_that_is_not_a_backup() {
    let s = registry(2);
    std::fs::create_dir(s.path().join("nope")).expect("dir");
    let (code, err) = s.fail(&["restore", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("nope is not a backup made by `registry backup`"),
        "{err}"
    );
    s.write("nope/backup.json", "{\"format\": 9}");
    let (code, err) = s.fail(&["restore", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("backup.json is not readable"), "{err}");
}
