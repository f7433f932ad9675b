//! Operator mistakes and hostile input, end to end: each test is one line (or a few) of the table
//! of attacks and outcomes in `docs/ATTACKS.md`, and the last test checks that the table and
//! the tests name each other, so neither can drift.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redb::ReadableTable as _;
use serde_json::Value;

use crate::{Scratch, bin_dir, lib_path};

/// Runs a command that must end within `secs` seconds; a command still running then is killed
/// (by its PID, which this test started) and the test fails.
fn bounded(mut command: Command, secs: u64) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts registry");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("waits").is_some() {
            return child.wait_with_output().expect("collects output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the command did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `command` with the resource limit `resource` set to `bytes` in the child (and `SIGXFSZ`
/// ignored, so that a write past a file size limit fails instead of killing it).
fn limited(mut command: Command, resource: libc::__rlimit_resource_t, bytes: u64) -> Command {
    // SAFETY: between fork and exec only async-signal-safe calls are made.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Runs `registry args` with the fixture told to record, in `marker`, being loaded.
fn marked(s: &Scratch, args: &[&str], marker: &Path, trust: Option<&Path>) -> Output {
    let mut command = s.command(args);
    command.env("REGISTRY_FIXTURE_LOADED", marker);
    if let Some(t) = trust {
        command.env("REGISTRY_TRUST", t);
    }
    command.output().expect("runs registry")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file in the data directory, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A registry of two shards holding a few entries.
fn two_shards() -> Scratch {
    let s = Scratch::with_shards(2);
    for title in [
        "Block SSH from the internet",
        "Rotate the signing keys",
        "Restart the queue workers",
        "Review access every quarter",
    ] {
        s.add(title, &[]);
    }
    s
}

#[test]
fn a_truncated_or_deleted_shard_refuses_the_registry() {
    for how in ["truncated", "deleted"] {
        let s = two_shards();
        let ids = s.ids();
        let shard = s.data_dir().join("shard-001.redb");
        match how {
            "truncated" => drop(std::fs::File::create(&shard).expect("truncates")),
            _ => std::fs::remove_file(&shard).expect("deletes"),
        }
        for args in [
            &["stats"][..],
            &["export"],
            &["get", &ids[0]],
            &["add", "--title", "A new rule"],
            &["batch", "-"],
        ] {
            let (code, msg) = s.fail(args);
            assert_eq!(code, 2, "{how} {args:?}: {msg}");
            assert!(
                msg.contains("shard-001.redb") && msg.contains("restore"),
                "{how} {args:?}: {msg}"
            );
        }
        // Never recreated: the file stays as the mistake left it.
        match how {
            "truncated" => assert_eq!(std::fs::metadata(&shard).expect("there").len(), 0),
            _ => assert!(!shard.exists()),
        }
    }
}

#[test]
fn a_full_disk_during_creation_leaves_nothing_half_made() {
    let s = Scratch::new();
    // Files may grow to 16 KiB only: the store's first write past it fails, as on a full disk.
    let command = limited(
        s.command(&["add", "--title", "The first rule"]),
        libc::RLIMIT_FSIZE,
        16 * 1024,
    );
    let out = bounded(command, 60);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let left: Vec<String> = files(&s.data_dir())
        .into_iter()
        .filter(|n| n.contains("shard-"))
        .collect();
    assert!(left.is_empty(), "no shard file, whole or partial: {left:?}");
    // Without the limit the same command creates the registry.
    s.add("The first rule", &[]);
    assert_eq!(s.ids().len(), 1);
}

#[test]
fn an_output_that_is_the_input_is_refused() {
    let s = Scratch::new();
    let input = "{\"title\": \"Block SSH\"}\n{\"title\": \"Rotate keys\"}\n";
    s.write("in.jsonl", input);
    std::os::unix::fs::symlink(s.path().join("in.jsonl"), s.path().join("link.jsonl"))
        .expect("symlink");
    std::fs::hard_link(s.path().join("in.jsonl"), s.path().join("hard.jsonl")).expect("link");
    for results in ["in.jsonl", "link.jsonl", "hard.jsonl"] {
        let (code, msg) = s.fail(&["batch", "in.jsonl", "--results", results]);
        assert_eq!(code, 1, "{results}: {msg}");
        assert!(msg.contains("it is the input"), "{msg}");
    }
    // Standard input redirected from the file counts too.
    let out = s
        .command(&["batch", "-", "--results", "in.jsonl"])
        .stdin(std::fs::File::open(s.path().join("in.jsonl")).expect("opens"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input is read from it"));
    assert_eq!(
        std::fs::read_to_string(s.path().join("in.jsonl")).expect("reads"),
        input,
        "the input is intact"
    );
    assert!(!s.data_dir().exists(), "nothing was created either");
}

/// A JSON export of one entry, to be edited.
fn exported_one(title: &str) -> (Scratch, Value) {
    let s = Scratch::new();
    s.add(title, &["--scope", "SEC"]);
    let line = s.ok(&["export"]);
    let record: Value = serde_json::from_str(line.trim()).expect("one record");
    (s, record)
}

#[test]
fn an_import_carrying_another_requests_fingerprint_is_refused() {
    let (a, mut forged) = exported_one("Rotate the signing keys");
    let victim = Scratch::new();
    let real = victim.add("Block SSH from the internet", &[]);
    // The record claims the fingerprint of the victim's request ...
    forged["fingerprint"] = real["fingerprint"].clone();
    // ... or of no request at all.
    let (_, mut zero) = exported_one("Restart the queue workers");
    zero["fingerprint"] = Value::from("0".repeat(32));
    let b = Scratch::new();
    b.write("forged.jsonl", &format!("{forged}\n{zero}\n"));
    let out = b.run(&["import", "forged.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("forged.jsonl:1: entry SEC-RUL-001: its fingerprint")
            && text.contains("forged.jsonl:2: entry SEC-RUL-001: its fingerprint 0000"),
        "{text}"
    );
    // Registering the victim's request there creates its own entry, as it should.
    let added = b.add("Block SSH from the internet", &[]);
    assert_eq!(added["created"], true, "{added}");
    drop(a);
}

#[test]
fn an_import_with_times_out_of_order_is_refused() {
    let (_, mut record) = exported_one("Rotate the signing keys");
    record["updated_at"] = Value::from("2001-01-01T00:00:00.000Z");
    let b = Scratch::new();
    b.write("times.jsonl", &format!("{record}\n"));
    let out = b.run(&["import", "times.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("before it was created"), "{text}");
    assert!(b.ids().is_empty());
}

#[test]
fn an_export_made_before_provenance_still_imports() {
    let (_, mut record) = exported_one("Rotate the signing keys");
    let provenance = record
        .as_object_mut()
        .expect("object")
        .remove("provenance")
        .expect("exports carry provenance");
    assert_eq!(provenance["scope"], "given", "{provenance}");
    let b = Scratch::new();
    b.write("old.jsonl", &format!("{record}\n"));
    b.ok(&["import", "old.jsonl"]);
    // The fingerprint says which fields were given: what it was registered with comes back.
    let again: Value = serde_json::from_str(b.ok(&["export"]).trim()).expect("record");
    assert_eq!(again["provenance"]["scope"], "given", "{again}");
    assert_eq!(again["provenance"]["type"], "unrecorded", "{again}");
    assert_eq!(again["fingerprint"], record["fingerprint"]);
}

#[test]
fn reading_a_registry_that_does_not_exist_creates_nothing() {
    let s = Scratch::new();
    let typo = s.path().join("tpyo");
    let typo_arg = typo.display().to_string();
    for args in [
        &["export", "--data-dir", &typo_arg][..],
        &["get", "SEC-RUL-001", "--data-dir", &typo_arg],
        &["stats", "--data-dir", &typo_arg],
        &["list", "--data-dir", &typo_arg],
        &["history", "SEC-RUL-001", "--data-dir", &typo_arg],
        &[
            "update",
            "SEC-RUL-001",
            "--status",
            "LIVE",
            "--data-dir",
            &typo_arg,
        ],
    ] {
        let (code, msg) = s.fail(args);
        assert_eq!(code, 2, "{args:?}: {msg}");
        assert!(
            msg.starts_with(&format!(
                "no registry in {typo_arg} (data directory from --data-dir)"
            )),
            "{args:?}: {msg}"
        );
    }
    s.write(
        "a.rule",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\n",
    );
    let (code, msg) = s.fail(&["lint", "a.rule", "--registered", "--data-dir", &typo_arg]);
    assert_eq!(code, 2, "{msg}");
    // Where the directory came from is named: the file, or the environment.
    s.write("registry.toml", "data_dir = \"elsewhere\"\n");
    let (_, msg) = s.fail(&["stats"]);
    assert!(msg.contains("data_dir in "), "{msg}");
    assert!(!typo.exists() && !s.path().join("elsewhere").exists());
    assert!(!s.data_dir().exists());
}

#[test]
fn registry_metadata_lives_in_storage_not_beside_it() {
    // Entries exported from a one-shard registry sit, in a two-shard one, in the shard their id
    // names, which is not always the one their fingerprint routes to.
    let a = Scratch::new();
    let titles: Vec<String> = (0..40).map(|i| format!("Rule number {i}")).collect();
    let requests: String = titles
        .iter()
        .map(|t| format!("{{\"title\": \"{t}\"}}\n"))
        .collect();
    a.write("in.jsonl", &requests);
    a.ok(&["batch", "in.jsonl"]);
    a.ok(&["export", "--output", "all.jsonl"]);
    let b = Scratch::with_shards(2);
    std::fs::copy(a.path().join("all.jsonl"), b.path().join("all.jsonl")).expect("copies");
    std::fs::copy(a.path().join("in.jsonl"), b.path().join("in.jsonl")).expect("copies");
    b.ok(&["import", "all.jsonl"]);
    // Nothing beside the shards to lose: only the shards hold the registry (the `.gitignore`
    // keeps the directory out of version control and says nothing about the registry).
    assert_eq!(
        files(&b.data_dir()),
        [".gitignore", "shard-000.redb", "shard-001.redb"],
        "the data directory holds the shards only"
    );
    let summary = b.json(&["batch", "in.jsonl"]);
    assert_eq!(summary["created"], 0, "{summary}");
    assert_eq!(summary["duplicates"], 40, "{summary}");
}

/// A copy of the fault fixture in a directory of the scratch's, as a repository would carry it.
fn planted(s: &Scratch) -> PathBuf {
    let dir = s.path().join("plugins");
    std::fs::create_dir(&dir).expect("mkdir");
    let lib = dir.join("libx.so");
    std::fs::copy(lib_path("fixture-faulty"), &lib).expect("copies the fixture");
    lib
}

#[test]
fn a_configuration_cannot_make_the_registry_run_a_library() {
    let s = Scratch::new();
    let lib = planted(&s);
    let marker = s.path().join("loaded.txt");
    s.write(
        "registry.toml",
        "[validator]\nlibrary = \"./plugins/libx.so\"\n",
    );
    s.write(
        "a.rule",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\n",
    );
    for args in [
        &["lint", "a.rule"][..],
        &["plugins"],
        &["add", "--title", "Block SSH"],
    ] {
        let out = marked(&s, args, &marker, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("registry trust"), "{}", stderr(&out));
        assert!(!marker.exists(), "{args:?} ran the library's code");
    }
    // A plugin directory named by the configuration is no way around it.
    s.write(
        "registry.toml",
        "plugin_dir = \"plugins\"\n[validator]\nlibrary = \"libx.so\"\n",
    );
    let out = marked(&s, &["lint", "a.rule"], &marker, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("registry trust"), "{}", stderr(&out));
    assert!(!marker.exists());
    // Nor is a bare name, which names only built-in plugins, never a file.
    s.write(
        "registry.toml",
        "plugin_dir = \"plugins\"\n[validator]\nlibrary = \"x\"\n",
    );
    let out = marked(&s, &["lint", "a.rule"], &marker, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no plugin named `x` is built in"),
        "{}",
        stderr(&out)
    );
    assert!(!marker.exists());
    s.write(
        "registry.toml",
        "plugin_dir = \"plugins\"\n[validator]\nlibrary = \"libx.so\"\n",
    );
    // Once the user trusts it (never the repository), it runs: the check above could fail.
    s.ok(&["trust", &lib.display().to_string()]);
    let out = marked(&s, &["lint", "a.rule"], &marker, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists(), "the trusted library ran");
    // CI trusts through the environment instead.
    std::fs::remove_file(&marker).expect("removes");
    s.ok(&["trust", "--remove", &lib.display().to_string()]);
    let out = marked(
        &s,
        &["lint", "a.rule"],
        &marker,
        Some(&s.path().join("plugins")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(marker.exists());
}

#[test]
fn commands_load_only_the_stages_they_need() {
    let s = Scratch::new();
    planted(&s);
    let marker = s.path().join("loaded.txt");
    // Storage and generator named as a planted library: lint needs neither, so it works.
    s.write(
        "registry.toml",
        "[storage]\nlibrary = \"./plugins/libx.so\"\n[generator]\nlibrary = \"./plugins/libx.so\"\n",
    );
    s.write(
        "a.rule",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\n",
    );
    let out = marked(&s, &["lint", "a.rule"], &marker, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!marker.exists());
    assert!(!s.data_dir().exists(), "lint opens no registry");
}

#[test]
fn a_writable_or_foreign_library_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let lib = planted(&s);
    s.write(
        "registry.toml",
        "[validator]\nlibrary = \"./plugins/libx.so\"\n",
    );
    s.ok(&["trust", &lib.display().to_string()]);
    s.write(
        "a.rule",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\n",
    );
    for (path, mode, want) in [
        (&lib, 0o757, "library"),
        (&lib, 0o775, "writable by its group"),
        (&s.path().join("plugins"), 0o777, "directory"),
    ] {
        let before = std::fs::metadata(path).expect("there").permissions();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let (code, msg) = s.fail(&["lint", "a.rule"]);
        assert_eq!(code, 2, "{msg}");
        assert!(msg.contains("not loaded") && msg.contains(want), "{msg}");
        std::fs::set_permissions(path, before).expect("chmod back");
    }
    s.ok(&["lint", "a.rule"]);
}

#[test]
fn a_fifo_named_as_a_library_blocks_nothing() {
    let s = Scratch::new();
    let fifo = s.path().join("libfifo.so");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("no nul");
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    s.write("registry.toml", "[validator]\nlibrary = \"./libfifo.so\"\n");
    s.write(
        "a.rule",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]\n",
    );
    for args in [
        &["lint", "a.rule"][..],
        &["plugins"],
        &["plugins", "check", "./libfifo.so"],
    ] {
        let out = bounded(s.command(args), 30);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("not a regular file"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn plugins_check_survives_a_library_that_hangs_or_crashes() {
    let s = Scratch::new();
    let lib = lib_path("fixture-faulty").display().to_string();
    let out = bounded(
        s.command(&[
            "plugins",
            "check",
            &lib,
            "--stage-config",
            r#"{"hang_init": true}"#,
            "--timeout",
            "2",
            "--format",
            "json",
        ]),
        30,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("within 2 s") && r.contains("killed")),
        "{report}"
    );
    let out = bounded(
        s.command(&[
            "plugins",
            "check",
            &lib,
            "--stage-config",
            r#"{"abort_init": true}"#,
            "--format",
            "json",
        ]),
        30,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert!(
        report["reason"]
            .as_str()
            .is_some_and(|r| r.contains("crashed") && r.contains("SIGABRT")),
        "{report}"
    );
}

/// Changes `from` into `to` (the same length) inside the stored bytes of the entry `number` of
/// prefix `prefix` in one shard file, as a bit flip or an edit on disk would.
fn tamper(shard: &Path, prefix: &str, number: u64, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    // Storage format 2 keeps each id prefix's latest revisions in a table of their own.
    let name = format!("entries/{prefix}");
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new(&name);
    let db = redb::Database::open(shard).expect("opens the shard");
    let txn = db.begin_write().expect("writes");
    {
        let mut t = txn.open_table(table).expect("entries table");
        let mut bytes = t
            .get(number)
            .expect("reads")
            .expect("the entry is there")
            .value()
            .to_vec();
        let at = bytes
            .windows(from.len())
            .position(|w| w == from.as_bytes())
            .expect("the text is in the entry");
        bytes[at..at + from.len()].copy_from_slice(to.as_bytes());
        t.insert(number, bytes.as_slice()).expect("writes");
    }
    txn.commit().expect("commits");
}

#[test]
fn a_changed_entry_is_named_on_read_and_the_others_served() {
    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    s.add("Rotate the signing keys", &["--scope", "SEC"]);
    tamper(
        &s.data_dir().join("shard-000.redb"),
        "SEC-RUL",
        1,
        "Block SSH",
        "Allow SSH",
    );
    for args in [&["get", "SEC-RUL-001"][..], &["history", "SEC-RUL-001"]] {
        let (code, msg) = s.fail(args);
        assert_eq!(code, 2, "{msg}");
        assert!(msg.contains("entry SEC-RUL-001 is damaged"), "{msg}");
    }
    s.ok(&["get", "SEC-RUL-002"]);
    for args in [&["export"][..], &["list"], &["stats"]] {
        let out = s.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("entry SEC-RUL-001 is damaged"), "{err}");
        let served = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            args[0] == "stats" || served.contains("SEC-RUL-002"),
            "{args:?} serves the others: {served}"
        );
        assert!(!served.contains("Allow SSH"), "{served}");
    }
}

#[test]
fn a_damaged_model_is_named_and_never_blocks_reads() {
    let s = Scratch::new();
    s.add("Block SSH from the internet", &["--scope", "SEC"]);
    let model = s.data_dir().join("model");
    std::fs::create_dir_all(&model).expect("mkdir");
    std::fs::write(model.join("generator.bin"), b"not a model").expect("writes");
    let (code, msg) = s.fail(&["predict", "--title", "Rotate keys"]);
    assert_eq!(code, 2, "{msg}");
    assert!(
        msg.contains("generator.bin") && msg.contains("registry train"),
        "{msg}"
    );
    s.ok(&["get", "SEC-RUL-001"]);
    s.ok(&["export"]);
}

#[test]
fn an_oversized_line_is_refused_without_being_held() {
    let s = Scratch::new();
    // 1 GiB without a line break, as a sparse file: holding it needs more memory than the
    // command may have.
    let big = s.path().join("big.jsonl");
    let f = std::fs::File::create(&big).expect("creates");
    f.set_len(1 << 30).expect("sparse");
    drop(f);
    let mut small = std::fs::OpenOptions::new()
        .append(true)
        .open(&big)
        .expect("opens");
    small
        .write_all(b"\n{\"title\": \"A fine rule\"}\n")
        .expect("appends");
    for args in [&["batch", "big.jsonl"][..], &["import", "big.jsonl"]] {
        // 768 MiB of address space: enough for the command's threads and caches, not for the
        // line held in memory.
        let out = bounded(limited(s.command(args), libc::RLIMIT_AS, 768 << 20), 120);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("big.jsonl:1: line is 1073741824 bytes long: the limit is 1048576"),
            "{args:?}: {text}"
        );
    }
    assert_eq!(s.ids().len(), 1, "the line after it was registered");
}

#[test]
fn deep_yaml_is_refused_quickly() {
    let s = Scratch::new();
    let deep = format!(
        "---\ntitle: {}{}\n",
        "{a: ".repeat(100_000),
        "}".repeat(100_000)
    );
    s.write("deep.yaml", &deep);
    let out = bounded(s.command(&["import", "deep.yaml"]), 60);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("nests 65 levels deep: at most 64"), "{text}");
}

#[test]
fn sizes_have_upper_bounds() {
    let s = Scratch::new();
    s.write("in.jsonl", "{\"title\": \"x\"}\n");
    let out = s.run(&["batch", "in.jsonl", "--batch-size", "4000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--batch-size"), "{}", stderr(&out));
    let u = Scratch::unpinned();
    u.write("registry.toml", "shards = 100000\n");
    let (code, msg) = u.fail(&["add", "--title", "x"]);
    assert_eq!(code, 2);
    assert!(
        msg.contains("shards = 100000: a registry has 1 to 1024 shards"),
        "{msg}"
    );
    assert!(!u.data_dir().exists());
}

#[test]
fn an_atomic_import_is_checked_whole_before_anything_is_written() {
    // More records than one batch, the last of which names an id an earlier batch gave.
    let a = Scratch::new();
    let requests: String = (0..1500)
        .map(|i| format!("{{\"title\": \"Rule {i}\"}}\n"))
        .collect();
    a.write("in.jsonl", &requests);
    a.ok(&["batch", "in.jsonl"]);
    let exported = a.ok(&["export"]);
    // The first record again: valid on its own, so only the whole file shows it twice.
    let twice = exported.lines().next().expect("a record").to_owned();
    let b = Scratch::new();
    let mut child = b
        .command(&["import", "-", "--atomic"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{exported}{twice}\n").as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("waits");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("<stdin>:1501: conflict: entry GOV-RUL-001 is given twice: first at line 1"),
        "{text}"
    );
    assert!(b.ids().is_empty(), "nothing was imported");
    // The same input without the bad record imports whole, from standard input.
    let mut child = b
        .command(&["import", "-", "--atomic"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exported.as_bytes())
        .expect("writes");
    assert!(child.wait().expect("waits").success());
    assert_eq!(b.ids().len(), 1500);
}

#[test]
fn a_mistyped_variable_gets_a_warning_naming_the_setting() {
    let s = Scratch::new();
    let out = s
        .command(&["add", "--title", "x"])
        .env("REGISTRY_DATADIR", s.path().join("elsewhere"))
        .env("REGISTRY_MIRROR", "someone else's")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("REGISTRY_DATADIR is not a registry setting")
            && err.contains("did you mean REGISTRY_DATA_DIR?"),
        "{err}"
    );
    assert!(!err.contains("REGISTRY_MIRROR"), "{err}");
}

#[test]
fn a_schema_that_drops_a_value_in_use_is_refused() {
    let s = Scratch::new();
    s.add("A dashboard of sales", &["--scope", "DASHBOARD"]);
    s.write(
        "registry.toml",
        "[schema]\nscope = [\"GOV\", \"SEC\", \"OPS\", \"ALERT\", \"BASH\", \"ETL\"]\n\
         [schema.defaults]\nscope = \"GOV\"\n",
    );
    for args in [&["list"][..], &["add", "--title", "y"]] {
        let (code, msg) = s.fail(args);
        assert_eq!(code, 2, "{msg}");
        assert!(
            msg.contains("scope `DASHBOARD` (used by DASHBOARD-"),
            "{msg}"
        );
    }
    // Adding a value is fine.
    s.write(
        "registry.toml",
        "[schema]\nscope = [\"GOV\", \"SEC\", \"OPS\", \"ALERT\", \"BASH\", \"DASHBOARD\", \
         \"ETL\", \"NET\"]\n[schema.defaults]\nscope = \"GOV\"\n",
    );
    s.add("A network rule", &["--scope", "NET"]);
    assert_eq!(s.ids().len(), 2);
}

#[test]
fn titles_that_hide_or_fake_their_text_are_refused() {
    let s = Scratch::new();
    let composed = s.add("Caf\u{e9} rules", &[]);
    let decomposed = s.add("Cafe\u{301} rules", &[]);
    assert_eq!(
        decomposed["created"], false,
        "registered once: {decomposed}"
    );
    assert_eq!(decomposed["id"], composed["id"]);
    for (title, want) in [
        (
            "Allow \u{202E}hss\u{202C} from anywhere",
            "bidirectional control character U+202E",
        ),
        ("\u{200B}\u{200B}", "no visible characters"),
    ] {
        let (code, msg) = s.fail(&["add", "--title", title]);
        assert_eq!(code, 1, "{msg}");
        assert!(msg.contains(want), "{msg}");
    }
}

#[test]
fn small_input_mistakes_have_clear_messages() {
    let s = Scratch::new();
    // A context naming a key twice.
    s.write(
        "dup.jsonl",
        "{\"title\": \"x\", \"context\": {\"env\": \"prod\", \"env\": \"dev\"}}\n",
    );
    let out = s.run(&["batch", "dup.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("context key `env` is given twice"),
        "{out:?}"
    );
    // A byte order mark before the first line.
    s.write(
        "bom.jsonl",
        "\u{feff}{\"title\": \"With a byte order mark\"}\n",
    );
    let summary = s.json(&["batch", "bom.jsonl"]);
    assert_eq!(summary["created"], 1, "{summary}");
    // A configuration path that is a directory, an empty data directory.
    std::fs::create_dir(s.path().join("conf.d")).expect("mkdir");
    let (code, msg) = s.fail(&["stats", "--config", "conf.d"]);
    assert_eq!(code, 2);
    assert!(msg.contains("conf.d is a directory"), "{msg}");
    s.write("empty.toml", "data_dir = \"\"\n");
    let (code, msg) = s.fail(&["stats", "--config", "empty.toml"]);
    assert_eq!(code, 2);
    assert!(msg.contains("data_dir is empty"), "{msg}");
}

/// The table of attacks in `docs/ATTACKS.md` names, for each line, the test that proves it, as
/// `path::function`; every such test must exist, and every test of this module must be named
/// there.
#[test]
fn the_table_of_attacks_names_existing_tests() {
    let root = bin_dir()
        .ancestors()
        .find(|d| d.join("docs/ATTACKS.md").is_file())
        .map(Path::to_owned)
        .or_else(|| {
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
                .filter(|d| d.join("docs/ATTACKS.md").is_file())
        })
        .expect("the repository holds docs/ATTACKS.md");
    let table = std::fs::read_to_string(root.join("docs/ATTACKS.md")).expect("reads the table");
    let mut named = Vec::new();
    for cell in table.split('`') {
        if let Some((path, function)) = cell.split_once("::")
            && path.ends_with(".rs")
            && !function.contains(' ')
        {
            let source = std::fs::read_to_string(root.join(path))
                .unwrap_or_else(|e| panic!("docs/ATTACKS.md names {path}: {e}"));
            assert!(
                source.contains(&format!("fn {function}(")),
                "docs/ATTACKS.md names {path}::{function}, which does not exist"
            );
            named.push(format!("{path}::{function}"));
        }
    }
    let own = include_str!("attacks.rs");
    for line in own.lines() {
        if let Some(rest) = line.trim().strip_prefix("fn ")
            && let Some((name, _)) = rest.split_once('(')
            && own.contains(&format!("#[test]\nfn {name}("))
            && name != "the_table_of_attacks_names_existing_tests"
        {
            let full = format!("crates/cli/tests/it/attacks.rs::{name}");
            assert!(
                named.contains(&full),
                "{full} proves an attack but docs/ATTACKS.md does not list it"
            );
        }
    }
}
