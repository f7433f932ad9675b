//! `registry stamp`, end to end.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::Scratch;

/// Runs `stamp --format json` with `args`; returns the exit code and the report, one object
/// per file.
fn stamp(s: &Scratch, args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["stamp"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let out = s.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stamp {args:?}: no JSON report ({e}): {stderr}"));
    let Value::Array(files) = report else {
        panic!("report is not an array: {report}")
    };
    (out.status.code().expect("exit code"), files)
}

/// Runs `stamp` that must succeed for every file.
fn stamp_ok(s: &Scratch, args: &[&str]) -> Vec<Value> {
    let (code, files) = stamp(s, args);
    assert_eq!(code, 0, "{files:?}");
    files
}

fn text(s: &Scratch, name: &str) -> String {
    fs::read_to_string(s.path().join(name)).expect("read stamped file")
}

/// Line `n` (1-based) of a file, without its line ending.
fn line(s: &Scratch, name: &str, n: usize) -> String {
    text(s, name)
        .split('\n')
        .nth(n - 1)
        .unwrap_or_else(|| panic!("{name} has no line {n}"))
        .trim_end_matches('\r')
        .to_owned()
}

/// The six fields of the readable header on a comment line written with `open` and `close`:
/// the line is exactly `open [..][..][..][..][..][..] close`.
fn header_fields(line: &str, open: &str, close: &str) -> Vec<String> {
    let inner = line
        .strip_prefix(&format!("{open} ["))
        .and_then(|l| l.strip_suffix(&format!("]{close}")))
        .unwrap_or_else(|| panic!("not a `{open} [..]{close}` header line: {line:?}"));
    let fields: Vec<String> = inner.split("][").map(str::to_owned).collect();
    assert_eq!(fields.len(), 6, "{line}");
    fields
}

/// The id from the header fields, checked against the report.
fn id_of(report: &Value, fields: &[String]) -> String {
    assert_eq!(report["id"], fields[3].as_str(), "{report}");
    fields[3].clone()
}

#[test]
fn a_script_with_a_shebang_gets_its_header_on_line_two() {
    let s = Scratch::new();
    s.write("block_ssh.py", "#!/usr/bin/env python3\nprint('x')\n");
    let files = stamp_ok(&s, &["block_ssh.py"]);
    assert_eq!(files[0]["status"], "stamped");
    assert_eq!(files[0]["line"], 2);
    assert_eq!(line(&s, "block_ssh.py", 1), "#!/usr/bin/env python3");
    let fields = header_fields(&line(&s, "block_ssh.py", 2), "#", "");
    assert_eq!(line(&s, "block_ssh.py", 3), "print('x')");
    let id = id_of(&files[0], &fields);
    let entry = s.json(&["get", &id]);
    assert_eq!(entry["title"], "block ssh");
    assert_eq!(entry["context"]["file"], "block_ssh.py");
}

#[test]
fn markdown_takes_its_title_from_the_first_heading() {
    let s = Scratch::new();
    s.write(
        "guide.md",
        "Intro text\n\n```\n# not this\n```\n## Rotate the keys ##\n\nbody\n",
    );
    let files = stamp_ok(&s, &["guide.md"]);
    assert_eq!(files[0]["title"], "Rotate the keys");
    let fields = header_fields(&line(&s, "guide.md", 1), "<!--", " -->");
    assert_eq!(line(&s, "guide.md", 2), "Intro text");
    let id = id_of(&files[0], &fields);
    assert_eq!(s.json(&["get", &id])["title"], "Rotate the keys");
}

#[test]
fn each_type_gets_its_comment_syntax() {
    let s = Scratch::new();
    s.write("q.sql", "select 1;\n");
    s.write("lib.rs", "#![no_std]\npub fn f() {}\n");
    s.write("style.css", "a { color: red }\n");
    s.write("Dockerfile", "# syntax=docker/dockerfile:1\nFROM scratch\n");
    s.write(
        "icon.svg",
        "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
    );
    let files = stamp_ok(
        &s,
        &["q.sql", "lib.rs", "style.css", "Dockerfile", "icon.svg"],
    );
    for (report, (name, n, open, close)) in files.iter().zip([
        ("q.sql", 1, "--", ""),
        ("lib.rs", 1, "//", ""),
        ("style.css", 1, "/*", " */"),
        ("Dockerfile", 2, "#", ""),
        ("icon.svg", 2, "<!--", " -->"),
    ]) {
        assert_eq!(report["file"], name);
        assert_eq!(report["line"], n, "{name}");
        let fields = header_fields(&line(&s, name, n), open, close);
        id_of(report, &fields);
    }
    assert_eq!(line(&s, "lib.rs", 2), "#![no_std]");
    assert_eq!(line(&s, "Dockerfile", 1), "# syntax=docker/dockerfile:1");
    assert_eq!(line(&s, "icon.svg", 1), "<?xml version=\"1.0\"?>");
}

#[test]
fn crlf_files_get_a_crlf_header_line() {
    let s = Scratch::new();
    s.write("q.sql", "select 1;\r\nselect 2;\r\n");
    stamp_ok(&s, &["q.sql"]);
    let written = text(&s, "q.sql");
    let (first, rest) = written.split_once("\r\n").expect("a CRLF line");
    header_fields(first, "--", "");
    assert_eq!(rest, "select 1;\r\nselect 2;\r\n");
    assert!(!first.contains('\n'));
}

#[test]
fn a_missing_last_line_ending_and_a_byte_order_mark_are_handled() {
    let s = Scratch::new();
    s.write("only.sh", "#!/bin/sh");
    s.write("bom.md", "\u{feff}# Title\n");
    s.write("empty.py", "");
    stamp_ok(&s, &["only.sh", "bom.md", "empty.py"]);
    let only = text(&s, "only.sh");
    let rest = only
        .strip_prefix("#!/bin/sh\n")
        .expect("shebang kept first");
    header_fields(rest.strip_suffix('\n').expect("line ending"), "#", "");
    let bom = text(&s, "bom.md");
    let rest = bom
        .strip_prefix('\u{feff}')
        .expect("byte order mark kept first");
    let (first, rest) = rest.split_once('\n').expect("two lines");
    header_fields(first, "<!--", " -->");
    assert_eq!(rest, "# Title\n");
    let empty = text(&s, "empty.py");
    header_fields(empty.strip_suffix('\n').expect("line ending"), "#", "");
}

#[cfg(unix)]
#[test]
fn read_only_and_hard_linked_files_are_refused_unless_stamped_already() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let stamped = s.write("done.sh", "echo\n");
    stamp_ok(&s, &["done.sh"]);
    let fresh = s.write("fresh.sh", "echo\n");
    for p in [&stamped, &fresh] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o444)).expect("chmod");
    }
    s.write("linked.sh", "echo\n");
    fs::hard_link(s.path().join("linked.sh"), s.path().join("other.sh")).expect("link");
    let (code, files) = stamp(&s, &["done.sh", "fresh.sh", "linked.sh"]);
    assert_eq!(code, 1);
    assert_eq!(files[0]["status"], "unchanged");
    assert_eq!(files[1]["message"], "the file is read-only");
    let message = files[2]["message"].as_str().expect("message");
    assert!(
        message.starts_with("the file has 2 hard links"),
        "{message}"
    );
    assert_eq!(text(&s, "fresh.sh"), "echo\n");
    assert_eq!(text(&s, "other.sh"), "echo\n");
}

#[test]
fn given_fields_form_and_version_are_used() {
    let s = Scratch::new();
    s.write("a.yaml", "a: 1\n");
    s.write("b.yaml", "b: 1\n");
    stamp_ok(
        &s,
        &[
            "a.yaml",
            "--scope",
            "ops",
            "--type",
            "SCRIPT",
            "--status",
            "live",
            "--version",
            "v3.1",
        ],
    );
    let fields = header_fields(&line(&s, "a.yaml", 1), "#", "");
    assert_eq!(fields[0], "OPS");
    assert_eq!(fields[1], "SCRIPT");
    assert!(fields[3].starts_with("OPS-SCR-"), "{fields:?}");
    assert_eq!(fields[4], "v3.1");
    assert_eq!(fields[5], "LIVE");

    let files = stamp_ok(&s, &["b.yaml", "--scope", "SEC", "--form", "grepable"]);
    let header = files[0]["header"].as_str().expect("header");
    assert!(header.starts_with("[sec-rules-"), "{header}");
    assert_eq!(line(&s, "b.yaml", 1), format!("# {header}"));
}

#[cfg(unix)]
#[test]
fn permissions_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    let p = s.write("deploy.sh", "#!/bin/sh\necho deploy\n");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    stamp_ok(&s, &["deploy.sh"]);
    let mode = fs::metadata(&p).expect("metadata").permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert!(line(&s, "deploy.sh", 2).starts_with("# ["));
    // Nothing left beside it.
    let mut names: Vec<String> = fs::read_dir(s.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".registry", "deploy.sh"]);
}

#[test]
fn a_second_run_changes_nothing() {
    let s = Scratch::new();
    let names = ["a.py", "b.md", "c.sql", "d.rs"];
    for name in names {
        s.write(name, "x\n");
    }
    let first = stamp_ok(&s, &names);
    let before: Vec<Vec<u8>> = names
        .iter()
        .map(|n| fs::read(s.path().join(n)).expect("read"))
        .collect();
    let second = stamp_ok(&s, &names);
    for ((a, b), name) in first.iter().zip(&second).zip(names) {
        assert_eq!(a["status"], "stamped", "{name}");
        assert_eq!(b["status"], "unchanged", "{name}");
        assert_eq!(a["header"], b["header"], "{name}");
        assert_eq!(a["line"], b["line"], "{name}");
    }
    let after: Vec<Vec<u8>> = names
        .iter()
        .map(|n| fs::read(s.path().join(n)).expect("read"))
        .collect();
    assert_eq!(before, after);
    assert_eq!(s.ids().len(), names.len());
}

#[test]
fn a_file_without_comment_syntax_is_refused_and_the_others_stamped() {
    let s = Scratch::new();
    s.write("a.py", "x = 1\n");
    s.write("data.json", "{}\n");
    s.write("b.sql", "select 1;\n");
    let (code, files) = stamp(&s, &["a.py", "data.json", "b.sql"]);
    assert_eq!(code, 1);
    assert_eq!(files[0]["status"], "stamped");
    assert_eq!(files[1]["status"], "error");
    assert_eq!(files[2]["status"], "stamped");
    let message = files[1]["message"].as_str().expect("message");
    assert!(
        message.starts_with("no comment syntax known for .json files"),
        "{message}"
    );
    assert_eq!(text(&s, "data.json"), "{}\n");

    // Text output: one line per file, the failure on stderr.
    s.write("c.json", "[]\n");
    let (code, err) = s.fail(&["stamp", "c.json"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("cannot stamp c.json: no comment syntax known for .json files"),
        "{err}"
    );
}

#[test]
fn comment_gives_a_prefix_for_unknown_types_only() {
    let s = Scratch::new();
    s.write("notes.weird", "text\n");
    s.write("a.sql", "select 1;\n");
    stamp_ok(&s, &["notes.weird", "a.sql", "--comment", ";;"]);
    header_fields(&line(&s, "notes.weird", 1), ";;", "");
    header_fields(&line(&s, "a.sql", 1), "--", "");
    let (code, err) = s.fail(&["stamp", "a.sql", "--comment", "a b"]);
    assert_eq!(code, 1);
    assert!(err.contains("--comment `a b`"), "{err}");
}

#[test]
fn a_malformed_header_is_refused_and_left_alone() {
    let s = Scratch::new();
    let original = "#!/bin/sh\n# [SEC][RULES][LIVE][SEC-RUL-001][v2.9]\necho\n";
    s.write("bad.sh", original);
    s.write(
        "unknown.sh",
        "# [NOPE][RULES][LIVE][NOPE-RUL-001][v2.9][LIVE]\n",
    );
    let (code, files) = stamp(&s, &["bad.sh", "unknown.sh"]);
    assert_eq!(code, 1);
    assert_eq!(files[0]["status"], "error");
    assert_eq!(files[0]["line"], 2);
    let message = files[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("line 2: malformed header `[SEC][RULES][LIVE][SEC-RUL-001][v2.9]`"),
        "{message}"
    );
    assert!(
        files[1]["message"]
            .as_str()
            .expect("message")
            .contains("unknown scope `NOPE`"),
        "{}",
        files[1]
    );
    assert_eq!(text(&s, "bad.sh"), original);
    // Nothing registered: the registry was not even opened.
    assert!(!s.data_dir().exists());
}

#[test]
fn a_lost_write_is_found_again_by_fingerprint() {
    let s = Scratch::new();
    let original = "select 1;\n";
    s.write("q.sql", original);
    let first = stamp_ok(&s, &["q.sql"]);
    assert_eq!(first[0]["created"], true);
    // As if the write had never happened: registered, but the file has no header.
    s.write("q.sql", original);
    let second = stamp_ok(&s, &["q.sql"]);
    assert_eq!(second[0]["status"], "stamped");
    assert_eq!(second[0]["created"], false);
    assert_eq!(first[0]["id"], second[0]["id"]);
    assert_eq!(s.ids().len(), 1);
}

#[test]
fn same_names_in_different_folders_are_different_entries() {
    let s = Scratch::new();
    let repo = s.path().join("repo");
    for dir in ["repo/.git", "repo/net", "repo/db"] {
        fs::create_dir_all(s.path().join(dir)).expect("mkdir");
    }
    s.write("repo/net/README.md", "# Rules\n");
    s.write("repo/db/README.md", "# Rules\n");
    let files = stamp_ok(&s, &["repo/net/README.md", "repo/db/README.md"]);
    assert_ne!(files[0]["id"], files[1]["id"]);
    let id = files[1]["id"].as_str().expect("id");
    assert_eq!(s.json(&["get", id])["context"]["file"], "db/README.md");
    assert!(repo.join("db/README.md").exists());

    // A given file= wins.
    s.write("repo/x.sql", "select 1;\n");
    let files = stamp_ok(&s, &["repo/x.sql", "--context", "file=elsewhere.sql"]);
    let id = files[0]["id"].as_str().expect("id");
    assert_eq!(s.json(&["get", id])["context"]["file"], "elsewhere.sql");
}

#[cfg(unix)]
#[test]
fn a_link_stays_a_link_and_its_target_is_stamped() {
    let s = Scratch::new();
    let target = s.write("real.sh", "echo\n");
    let link = s.path().join("link.sh");
    std::os::unix::fs::symlink("real.sh", &link).expect("symlink");
    let files = stamp_ok(&s, &["link.sh", "real.sh"]);
    // Named twice (through the link and directly): stamped and reported once.
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["file"], "link.sh");
    assert!(
        fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    header_fields(&line(&s, "real.sh", 1), "#", "");
    assert_eq!(
        fs::read_link(&link).expect("read link"),
        Path::new("real.sh")
    );
    assert!(target.is_file());
}

#[test]
fn unreadable_inputs_are_per_file_errors() {
    let s = Scratch::new();
    s.write("ok.py", "x\n");
    fs::write(s.path().join("blob.sh"), b"ab\0cd").expect("write");
    fs::write(s.path().join("latin.sh"), b"caf\xe9\n").expect("write");
    fs::create_dir(s.path().join("dir.py")).expect("mkdir");
    // A directory is walked (this one is empty: it adds no file).
    let (code, files) = stamp(
        &s,
        &["missing.py", "blob.sh", "latin.sh", "dir.py", "ok.py"],
    );
    assert_eq!(files.len(), 4, "{files:?}");
    assert_eq!(code, 1);
    let messages: Vec<&str> = files
        .iter()
        .map(|f| f["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(messages[0], "no such file");
    assert!(
        messages[1].starts_with("a binary file (NUL byte at offset 2)"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].starts_with("not valid UTF-8 (at byte 3)"),
        "{}",
        messages[2]
    );
    assert_eq!(files[3]["status"], "stamped");
    assert_eq!(fs::read(s.path().join("blob.sh")).expect("read"), b"ab\0cd");
    assert_eq!(
        fs::read(s.path().join("latin.sh")).expect("read"),
        b"caf\xe9\n"
    );

    let out = s.run(&["stamp", "missing.py", "blob.sh"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(stderr, "error: 2 of 2 files could not be stamped\n");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.starts_with("error missing.py: no such file\n"),
        "{stdout}"
    );
}

#[test]
fn dry_run_registers_and_writes_nothing() {
    let s = Scratch::new();
    s.write("a.py", "x\n");
    let files = stamp_ok(&s, &["a.py", "--dry-run", "--scope", "SEC"]);
    assert_eq!(files[0]["status"], "would-stamp");
    assert_eq!(
        files[0]["header"],
        "[SEC][RULES][LIVE][SEC-RUL-?][v2.9][DEV]"
    );
    assert_eq!(text(&s, "a.py"), "x\n");
    assert!(s.ids().is_empty());
}

#[test]
fn bad_arguments_touch_nothing() {
    let s = Scratch::new();
    s.write("a.py", "x\n");
    for (args, expected) in [
        (
            vec!["stamp", "a.py", "--scope", "NOPE"],
            "unknown scope `NOPE`",
        ),
        (vec!["stamp", "a.py", "--version", "2.9"], "version `2.9`"),
        (
            vec!["stamp", "a.py", "--context", "novalue"],
            "malformed context",
        ),
    ] {
        let (code, err) = s.fail(&args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    assert_eq!(text(&s, "a.py"), "x\n");
    assert!(!s.data_dir().exists());
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn a_link_leading_out_of_its_directory_is_refused_and_its_target_left_alone() {
    use std::os::unix::fs::symlink;
    let s = Scratch::new();
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = outside.path().join("x.conf");
    let original = b"PermitRootLogin no\n";
    fs::write(&secret, original).expect("write");
    let secret_real = fs::canonicalize(&secret).expect("canonical");
    fs::create_dir_all(s.path().join("repo/sub")).expect("mkdir");
    fs::write(s.path().join("repo/sibling.conf"), original).expect("write");
    // Absolute, relative out of the directory, and relative to a sibling of the directory.
    symlink(&secret, s.path().join("repo/link.conf")).expect("symlink");
    symlink("../../repo/sibling.conf", s.path().join("repo/sub/up.conf")).expect("symlink");

    // The exact attack: `stamp link.conf` in the directory holding the link.
    let out = s
        .command(&["stamp", "link.conf"])
        .current_dir(s.path().join("repo"))
        .output()
        .expect("run registry");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    let repo_real = fs::canonicalize(s.path().join("repo")).expect("canonical");
    assert_eq!(
        stderr,
        format!(
            "error: cannot stamp link.conf: a symbolic link to {}, outside its directory {}: stamp writes only inside the directory a file is named in (name the target to stamp it)\n",
            secret_real.display(),
            repo_real.display()
        )
    );
    assert_eq!(fs::read(&secret).expect("read"), original);

    let (code, files) = stamp(&s, &["repo/link.conf", "repo/sub/up.conf"]);
    assert_eq!(code, 1);
    for (report, target) in files
        .iter()
        .zip([secret_real.clone(), repo_real.join("sibling.conf")])
    {
        assert_eq!(report["status"], "error", "{report}");
        let message = report["message"].as_str().expect("message");
        assert!(
            message.starts_with(&format!("a symbolic link to {}, outside", target.display())),
            "{message}"
        );
    }
    // Byte for byte as they were; the links are links; nothing left beside them; the registry
    // not even opened.
    assert_eq!(fs::read(&secret).expect("read"), original);
    assert_eq!(
        fs::read(s.path().join("repo/sibling.conf")).expect("read"),
        original
    );
    for link in ["repo/link.conf", "repo/sub/up.conf"] {
        let meta = fs::symlink_metadata(s.path().join(link)).expect("link");
        assert!(meta.file_type().is_symlink(), "{link}");
    }
    assert_eq!(names_in(outside.path()), ["x.conf"]);
    assert_eq!(
        names_in(&s.path().join("repo")),
        ["link.conf", "sibling.conf", "sub"]
    );
    assert!(!s.data_dir().exists(), "the registry was opened");

    // Named itself, the target is the user's choice: stamped.
    let files = stamp_ok(&s, &["repo/sibling.conf"]);
    assert_eq!(files[0]["status"], "stamped");
}

#[cfg(unix)]
#[test]
fn a_link_to_a_file_below_its_directory_is_stamped_through() {
    use std::os::unix::fs::symlink;
    let s = Scratch::new();
    fs::create_dir_all(s.path().join("rules/impl")).expect("mkdir");
    s.write("rules/impl/check.sh", "echo\n");
    symlink("impl/check.sh", s.path().join("rules/check.sh")).expect("symlink");
    // A link in a directory that is itself reached through a link the user named.
    symlink("rules", s.path().join("alias")).expect("symlink");
    let files = stamp_ok(&s, &["alias/check.sh"]);
    assert_eq!(files[0]["status"], "stamped");
    header_fields(&line(&s, "rules/impl/check.sh", 1), "#", "");
    assert_eq!(
        fs::read_link(s.path().join("rules/check.sh")).expect("still a link"),
        Path::new("impl/check.sh")
    );
    assert_eq!(names_in(&s.path().join("rules/impl")), ["check.sh"]);
}

#[cfg(unix)]
#[test]
fn file_names_cannot_forge_lines_of_text_output() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new();
    // Markdown, so the title comes from the heading and not from the odd name.
    let names: [(&[u8], &str); 6] = [
        (b"a\nstamped b.md", "a\\nstamped b.md"),
        (b"c\rd.md", "c\\rd.md"),
        (b"e\x1b[2Jf.md", "e\\x1b[2Jf.md"),
        ("g\u{2028}h.md".as_bytes(), "g\\u{2028}h.md"),
        ("i\u{202e}dm.j.md".as_bytes(), "i\\u{202e}dm.j.md"),
        (b"caf\xe9.md", "caf\\xe9.md"),
    ];
    let mut args: Vec<&std::ffi::OsStr> = vec![std::ffi::OsStr::new("stamp")];
    for (i, (name, _)) in names.iter().enumerate() {
        let name = std::ffi::OsStr::from_bytes(name);
        fs::write(s.path().join(name), format!("# Title {i}\n")).expect("write");
        args.push(name);
    }
    // The file's path cannot be context: it holds control characters.
    args.extend(["--context", "file=odd"].map(std::ffi::OsStr::new));
    let out = s.command(&[]).args(&args).output().expect("run registry");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        !text.chars().any(|c| (c.is_control() && c != '\n')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}')),
        "control characters reach the terminal: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len(), "{text}");
    for (line, (_, shown)) in lines.iter().zip(&names) {
        assert!(line.starts_with(&format!("stamped {shown} [")), "{line:?}");
    }

    // JSON has the real names.
    let mut again = args.clone();
    again.extend(["--format", "json"].map(std::ffi::OsStr::new));
    let out = s.command(&[]).args(&again).output().expect("run registry");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    for (file, (name, _)) in report.as_array().expect("array").iter().zip(&names) {
        assert_eq!(file["status"], "unchanged");
        assert_eq!(
            file["file"],
            String::from_utf8_lossy(name).as_ref(),
            "{file}"
        );
    }

    // The one-line error on stderr escapes the name and the reason.
    fs::write(s.path().join("x\nerror: y.py"), "x\n").expect("write");
    let (code, message) = s.fail(&["stamp", "x\nerror: y.py"]);
    assert_eq!(code, 1);
    assert!(
        message.starts_with("cannot stamp x\\nerror: y.py: "),
        "{message}"
    );
}

#[test]
fn refresh_rewrites_headers_an_update_made_stale() {
    let s = Scratch::new();
    s.write("deploy.sh", "#!/bin/sh\necho deploy\n");
    s.write("query.sql", "SELECT 1;\n");
    let stamped = stamp_ok(&s, &["deploy.sh", "query.sql", "--form", "readable"]);
    let id = stamped[0]["id"].as_str().expect("id").to_owned();
    // The other file in the grepable form, which a refresh keeps.
    let other = stamped[1]["id"].as_str().expect("id").to_owned();
    s.ok(&["update", &id, "--status", "REQUIRED"]);
    s.ok(&["update", &other, "--status", "REQUIRED"]);
    let sql = text(&s, "query.sql");
    let grepable = sql.replacen(
        line(&s, "query.sql", 1).trim_start_matches("-- "),
        &s.json(&["get", &other])["grepable"]
            .as_str()
            .expect("grepable")
            .replace("required", "dev"),
        1,
    );
    s.write("query.sql", &grepable);
    let (code, lint) = lint_registered(&s);
    assert_eq!(code, 1, "stale headers fail lint --registered: {lint}");

    // A dry run shows a diff of each change and writes nothing.
    let before = (text(&s, "deploy.sh"), text(&s, "query.sql"));
    let dry = stamp_ok(&s, &["deploy.sh", "query.sql", "--refresh", "--dry-run"]);
    assert_eq!(dry[0]["status"], "would-refresh", "{dry:?}");
    let diff = dry[0]["diff"].as_str().expect("diff");
    assert!(
        diff.starts_with("--- a/deploy.sh\n+++ b/deploy.sh\n@@ "),
        "{diff}"
    );
    assert!(
        diff.contains("\n-# [") && diff.contains("[REQUIRED]\n"),
        "{diff}"
    );
    assert_eq!((text(&s, "deploy.sh"), text(&s, "query.sql")), before);

    let done = stamp_ok(&s, &["deploy.sh", "query.sql", "--refresh"]);
    assert_eq!(done[0]["status"], "refreshed", "{done:?}");
    assert_eq!(done[1]["status"], "refreshed", "{done:?}");
    assert!(
        done[0]["was"]
            .as_str()
            .is_some_and(|w| w.ends_with("[DEV]"))
    );
    assert_eq!(line(&s, "deploy.sh", 1), "#!/bin/sh");
    assert!(line(&s, "deploy.sh", 2).ends_with("[REQUIRED]"));
    assert!(
        line(&s, "query.sql", 1).ends_with("-required]"),
        "grepable kept"
    );
    assert_eq!(lint_registered(&s).0, 0);
    // Nothing left to refresh.
    let again = stamp_ok(&s, &["deploy.sh", "query.sql", "--refresh"]);
    assert!(
        again.iter().all(|r| r["status"] == "unchanged"),
        "{again:?}"
    );
}

/// `lint --registered .`: exit code and stdout.
fn lint_registered(s: &Scratch) -> (i32, String) {
    let out = s.run(&["lint", "--registered", "."]);
    (
        out.status.code().expect("code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn link_writes_an_entrys_header_into_a_file() {
    let s = Scratch::new();
    let entry = s.add("Block inbound SSH", &["--scope", "SEC"]);
    let id = entry["id"].as_str().expect("id");
    s.write("new.py", "print(1)\n");
    // A dry run writes nothing.
    let out = s.json(&["link", "new.py", id, "--dry-run"]);
    assert_eq!(out[0]["status"], "would-link", "{out}");
    assert_eq!(text(&s, "new.py"), "print(1)\n");
    let out = s.json(&["link", "new.py", id]);
    assert_eq!(out[0]["status"], "linked", "{out}");
    assert_eq!(
        text(&s, "new.py"),
        format!(
            "# {}\nprint(1)\n",
            entry["header"].as_str().expect("header")
        )
    );
    // A file carrying another entry's header is pointed at this one.
    let other = s.add("Restart the workers", &["--scope", "OPS"]);
    s.write(
        "old.sh",
        &format!("# {}\necho\n", other["header"].as_str().expect("header")),
    );
    let out = s.json(&["link", "old.sh", id]);
    assert_eq!(out[0]["status"], "refreshed", "{out}");
    assert_eq!(out[0]["was"], other["header"]);
    assert!(
        text(&s, "old.sh").starts_with(&format!("# {}\n", entry["header"].as_str().expect("h")))
    );
    // An id that is not registered, or is not an id: one line, exit 1, nothing written.
    let (code, msg) = s.fail(&["link", "new.py", "SEC-RUL-999"]);
    assert_eq!(code, 1);
    assert_eq!(msg, "no entry with id SEC-RUL-999");
    let (code, _) = s.fail(&["link", "new.py", "not an id"]);
    assert_eq!(code, 1);
}

#[test]
fn a_directory_is_walked_as_lint_walks_it() {
    let s = Scratch::new();
    fs::create_dir_all(s.path().join("rules/sub")).expect("dirs");
    s.write("rules/a.sh", "echo a\n");
    s.write("rules/sub/b.py", "print(2)\n");
    s.write("rules/sub/c.sql", "SELECT 3;\n");
    s.write("rules/sub/data.json", "{}\n");
    s.write("rules/sub/logo.bin", "\0\0\0");
    s.write("rules/.gitignore", "ignored.sh\n");
    s.write("rules/ignored.sh", "echo no\n");
    let files = stamp_ok(&s, &["rules", "--exclude", "*.sql"]);
    let seen: Vec<(&str, &str)> = files
        .iter()
        .map(|r| {
            (
                r["file"].as_str().expect("file"),
                r["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("rules/a.sh", "stamped"),
            ("rules/sub/b.py", "stamped"),
            ("rules/sub/data.json", "skipped"),
            ("rules/sub/logo.bin", "skipped"),
        ]
    );
    assert_eq!(
        text(&s, "rules/ignored.sh"),
        "echo no\n",
        ".gitignore honoured"
    );
    assert_eq!(
        text(&s, "rules/sub/c.sql"),
        "SELECT 3;\n",
        "--exclude honoured"
    );
    let only = stamp_ok(&s, &["rules", "--include", "sub/*.sql"]);
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0]["status"], "stamped");
    // Named on its own, a file stamp cannot write into is an error, as before.
    let (code, files) = stamp(&s, &["rules/sub/data.json"]);
    assert_eq!(code, 1);
    assert_eq!(files[0]["status"], "error");
    let (code, msg) = s.fail(&["stamp", "rules", "--include", "a[b"]);
    assert_eq!(code, 1);
    assert!(msg.starts_with("--include `a[b`: not a glob"), "{msg}");
}

/// A Sigma-style rule, made by the test.
fn sigma_rule(title: &str, id: &str, status: &str, product: &str) -> String {
    format!(
        "title: {title}\nid: {id}\nstatus: {status}\ndescription: Detects {title}\n\
         logsource:\n  product: {product}\n  service: auth\ndetection:\n  selection:\n    \
         event: x\n  condition: selection\nlevel: high\ntags:\n  - attack.t1110\n  - \
         attack.credential_access\n"
    )
}

#[test]
fn a_tree_with_sigma_rules_is_stamped_refreshed_and_lints_clean() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/sigma/registry.toml"
        ))
        .expect("the Sigma example"),
    );
    fs::create_dir_all(s.path().join("rules/linux")).expect("dirs");
    fs::create_dir_all(s.path().join("scripts")).expect("dirs");
    s.write(
        "rules/linux/ssh_brute.yml",
        &sigma_rule("SSH Brute Force", "0a1b-1", "experimental", "linux"),
    );
    s.write(
        "rules/linux/sudo_abuse.yml",
        &sigma_rule("Sudo Abuse", "0a1b-2", "stable", "linux"),
    );
    s.write(
        "rules/win_logon.yml",
        &sigma_rule("Suspicious Logon", "0a1b-3", "test", "windows"),
    );
    s.write("scripts/rotate.sh", "#!/bin/sh\necho rotate\n");
    s.write("scripts/report.sql", "SELECT 1;\n");
    s.write("README.md", "# Detection rules\n");

    let files = stamp_ok(&s, &["."]);
    let by_file = |name: &str| {
        files
            .iter()
            .find(|r| r["file"] == format!("./{name}") || r["file"] == name)
            .unwrap_or_else(|| panic!("{name} in {files:?}"))
            .clone()
    };
    let ssh = by_file("rules/linux/ssh_brute.yml");
    assert_eq!(ssh["status"], "stamped", "{ssh}");
    assert_eq!(
        ssh["title"], "SSH Brute Force",
        "titled from the rule, not its name"
    );
    let id = ssh["id"].as_str().expect("id").to_owned();
    let entry = s.json(&["get", &id]);
    assert_eq!(entry["status"], "DEV", "Sigma's experimental, translated");
    assert_eq!(entry["context"]["level"], "high");
    assert_eq!(entry["context"]["product"], "linux");
    assert_eq!(entry["context"]["id"], "0a1b-1");
    assert_eq!(
        entry["context"]["tags"],
        "attack.t1110,attack.credential_access"
    );
    assert!(
        text(&s, "rules/linux/ssh_brute.yml").starts_with("# ["),
        "a YAML comment"
    );
    let sudo = s.json(&[
        "get",
        by_file("rules/linux/sudo_abuse.yml")["id"]
            .as_str()
            .expect("id"),
    ]);
    assert_eq!(sudo["status"], "LIVE");
    assert_eq!(by_file("scripts/rotate.sh")["status"], "stamped");

    // Two entries change; refreshing the tree writes their new headers back.
    s.ok(&["update", &id, "--status", "REQUIRED"]);
    let other = by_file("scripts/report.sql")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.ok(&["update", &other, "--status", "DEPRECATED"]);
    assert_eq!(lint_registered(&s).0, 1, "stale headers");
    let refreshed = stamp_ok(&s, &[".", "--refresh"]);
    let changed: Vec<&Value> = refreshed
        .iter()
        .filter(|r| r["status"] == "refreshed")
        .collect();
    assert_eq!(changed.len(), 2, "{refreshed:?}");
    let (code, out) = lint_registered(&s);
    assert_eq!(code, 0, "{out}");
    // Every file of the tree carries a header, each the registered one.
    let strict = s.run(&[
        "lint",
        "--require-header",
        "--registered",
        "rules",
        "scripts",
        "README.md",
    ]);
    assert!(
        strict.status.success(),
        "{}{}",
        String::from_utf8_lossy(&strict.stdout),
        String::from_utf8_lossy(&strict.stderr)
    );
    // Which --require-header can fail: a new file without one.
    s.write("scripts/new.sh", "echo new\n");
    let missing = s.run(&["lint", "--require-header", "scripts"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stdout).contains("missing-header"));
    fs::remove_file(s.path().join("scripts/new.sh")).expect("remove");

    // A rule moved and retitled keeps its entry: its id links it, nothing is registered.
    let before = s.ids().len();
    let moved = sigma_rule(
        "SSH Brute Force (renamed)",
        "0a1b-1",
        "experimental",
        "linux",
    );
    fs::remove_file(s.path().join("rules/linux/ssh_brute.yml")).expect("remove");
    s.write("rules/ssh_renamed.yml", &moved);
    let again = stamp_ok(&s, &["rules"]);
    let renamed = again
        .iter()
        .find(|r| r["file"] == "rules/ssh_renamed.yml")
        .expect("the moved rule");
    assert_eq!(renamed["status"], "linked", "{renamed}");
    assert_eq!(renamed["id"], id.as_str());
    assert_eq!(s.ids().len(), before, "no entry registered twice");
}

#[test]
fn comment_syntax_for_more_types_comes_from_the_configuration() {
    let s = Scratch::new();
    s.write("policy.rego", "package authz\n");
    let (code, files) = stamp(&s, &["policy.rego"]);
    assert_eq!(code, 1, "unknown without configuration: {files:?}");
    s.write("registry.toml", "[stamp.comments]\n\".rego\" = \"#\"\n");
    stamp_ok(&s, &["policy.rego"]);
    assert!(line(&s, "policy.rego", 1).starts_with("# ["));
    s.write("registry.toml", "[stamp.comments]\n\"rego\" = \"#\"\n");
    let (code, msg) = s.fail(&["stamp", "policy.rego"]);
    assert_eq!(code, 2);
    assert!(
        msg.ends_with(
            "stamp.comments: `rego` is not a file extension: write it with its dot, e.g. \".rego\""
        ),
        "{msg}"
    );
}

#[test]
fn lint_fix_rewrites_stale_headers_then_checks() {
    let s = Scratch::new();
    s.write("deploy.sh", "#!/bin/sh\necho deploy\n");
    s.write("notes.txt", "no header here\n");
    let id = stamp_ok(&s, &["deploy.sh"])[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.ok(&["update", &id, "--status", "REQUIRED"]);
    assert_eq!(lint_registered(&s).0, 1);
    let out = s.run(&["lint", "--fix", "--registered", "."]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("fixed ./deploy.sh [") && stderr.contains("[REQUIRED] (was ["),
        "{stderr}"
    );
    assert!(line(&s, "deploy.sh", 2).ends_with("[REQUIRED]"));
    assert_eq!(
        text(&s, "notes.txt"),
        "no header here\n",
        "nothing registered or stamped"
    );
    assert_eq!(s.ids().len(), 1);
}
