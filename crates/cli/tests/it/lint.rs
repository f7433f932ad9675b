//! `registry lint`, end to end.
//!
//! Most cases are files of the fixture tree `tests/fixtures/lint/`, one file per kind of
//! problem (and valid headers in every comment syntax), linted with the tree as the working
//! directory and PATH `.`, so that the reported paths are stable. Its full text and JSON
//! outputs are compared with `tests/fixtures/lint.expected.txt` and `lint.expected.json`; after
//! a deliberate change of the output, regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test -p registry-cli --test it lint` and review the diff.
//!
//! What cannot be committed reliably (symbolic link loops, unreadable files, large files, a
//! registry with entries) is made by the tests in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::Scratch;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn tree() -> PathBuf {
    fixtures().join("lint")
}

/// Runs `registry lint` with `dir` as the working directory.
fn lint_in(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["lint"];
    all.extend(args);
    Scratch::new()
        .command(&all)
        .current_dir(dir)
        .output()
        .expect("run registry")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// The diagnostics of a JSON run, checked to be well-formed, as is the summary beside them.
fn diagnostics(out: &Output) -> Vec<Value> {
    let value: Value = serde_json::from_slice(&out.stdout).expect("lint prints valid JSON");
    let Some(Value::Array(items)) = value.get("findings").cloned() else {
        panic!("no findings array: {value}");
    };
    let summary = &value["summary"];
    for (key, severity) in [
        ("errors", "error"),
        ("warnings", "warning"),
        ("notes", "note"),
    ] {
        let counted = items.iter().filter(|d| d["severity"] == severity).count() as u64;
        assert_eq!(summary[key].as_u64(), Some(counted), "{key}: {summary}");
    }
    for key in ["scanned", "headers", "skipped"] {
        assert!(summary[key].is_u64(), "{key}: {summary}");
    }
    for d in &items {
        let mut keys: Vec<&str> = d
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["code", "column", "file", "line", "message", "severity"],
            "{d}"
        );
        assert!(d["file"].is_string() && d["code"].is_string() && d["message"].is_string());
        assert!(
            ["error", "warning", "note"].contains(&d["severity"].as_str().expect("severity")),
            "{d}"
        );
        // Every code reported is documented, with the severity it is reported with.
        let code = d["code"].as_str().expect("code");
        let documented = registry_host::lint::codes::explain(code)
            .unwrap_or_else(|| panic!("{code} is not in lint::codes::CODES"));
        assert_eq!(d["severity"], documented.severity.name(), "{d}");
        // A file-level diagnostic has neither line nor column; any other has both.
        assert_eq!(d["line"].is_null(), d["column"].is_null(), "{d}");
        if !d["line"].is_null() {
            assert!(d["line"].as_u64().expect("line") >= 1);
            assert!(d["column"].as_u64().expect("column") >= 1);
        }
    }
    items
}

/// (file, line, code) of each diagnostic.
fn found(items: &[Value]) -> Vec<(String, Option<u64>, String)> {
    items
        .iter()
        .map(|d| {
            (
                d["file"].as_str().expect("file").to_owned(),
                d["line"].as_u64(),
                d["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

/// Compares `actual` with a committed expected file in the fixtures (see
/// `registry_testkit::snapshot`).
fn snapshot(name: &str, actual: &str) {
    registry_testkit::snapshot::compare(
        &fixtures().join(name),
        actual,
        "cargo test -p registry-cli --test it lint",
    );
}

#[test]
fn fixture_tree_is_complete() {
    // `ignored.rule` is named by the tree's .gitignore on purpose, so git skips it unless it
    // is added with `git add -f`; without it the ignore test would pass vacuously.
    assert!(
        tree().join("ignored.rule").is_file(),
        "tests/fixtures/lint/ignored.rule is missing: commit it with `git add -f`"
    );
    assert!(
        fs::read(tree().join("other/binary.bin"))
            .expect("binary fixture")
            .contains(&0)
    );
    assert!(
        std::str::from_utf8(&fs::read(tree().join("other/latin1.txt")).expect("fixture")).is_err()
    );
}

#[test]
fn text_output_matches_the_snapshot() {
    let out = lint_in(&tree(), &["."]);
    assert_eq!(code(&out), 1, "errors fail the run: {}", stderr(&out));
    snapshot("lint.expected.txt", &stdout(&out));
    assert_eq!(
        stderr(&out),
        "28 files scanned, 26 headers found, 15 errors, 8 warnings, 1 note, 2 files skipped\n"
    );
    // Linting does not open storage: no data directory appears.
    assert!(!tree().join(".registry").exists());
}

#[test]
fn json_output_matches_the_snapshot_and_the_text() {
    let out = lint_in(&tree(), &[".", "--format", "json"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stderr(&out), "", "no summary in JSON mode");
    snapshot("lint.expected.json", &stdout(&out));

    let items = diagnostics(&out);
    let text = stdout(&lint_in(&tree(), &["."]));
    let lines: Vec<String> = items
        .iter()
        .map(|d| {
            let at = match (d["line"].as_u64(), d["column"].as_u64()) {
                (Some(l), Some(c)) => format!("{}:{l}:{c}", d["file"].as_str().unwrap_or("")),
                _ => d["file"].as_str().unwrap_or("").to_owned(),
            };
            format!(
                "{at}: {} {} {}",
                d["severity"].as_str().unwrap_or(""),
                d["code"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), lines);
}

#[test]
fn every_problem_in_the_fixtures_is_reported_where_it_is() {
    let items = diagnostics(&lint_in(&tree(), &[".", "--format", "json"]));
    let all = found(&items);
    let severity_of = |file: &str, code: &str| -> Vec<&str> {
        items
            .iter()
            .filter(|d| d["file"] == file && d["code"] == code)
            .map(|d| d["severity"].as_str().unwrap_or(""))
            .collect()
    };
    for (file, line, code, severity) in [
        (
            "malformed/five-fields.md",
            Some(1),
            "malformed-header",
            "error",
        ),
        (
            "malformed/empty-field.txt",
            Some(1),
            "malformed-header",
            "error",
        ),
        (
            "malformed/no-status.rb",
            Some(1),
            "malformed-header",
            "error",
        ),
        (
            "malformed/few-fields.py",
            Some(1),
            "malformed-header",
            "error",
        ),
        ("schema/unknown-scope.py", Some(1), "unknown-scope", "error"),
        (
            "schema/unknown-type-status.js",
            Some(1),
            "unknown-type",
            "error",
        ),
        (
            "schema/unknown-type-status.js",
            Some(1),
            "unknown-status",
            "error",
        ),
        (
            "schema/unknown-variant.sql",
            Some(1),
            "unknown-variant",
            "error",
        ),
        ("schema/bad-version.toml", Some(1), "bad-version", "error"),
        (
            "schema/prefix-mismatch.sql",
            Some(1),
            "id-prefix-mismatch",
            "error",
        ),
        ("schema/bad-id.c", Some(1), "bad-id", "error"),
        (
            "schema/id-not-canonical.py",
            Some(1),
            "id-not-canonical",
            "warning",
        ),
        (
            "schema/lowercase-readable.md",
            Some(1),
            "not-canonical",
            "warning",
        ),
        (
            "schema/lowercase-readable.md",
            Some(1),
            "id-not-canonical",
            "warning",
        ),
        (
            "schema/mixed-case-grepable.sh",
            Some(1),
            "not-canonical",
            "warning",
        ),
        ("duplicates/first.rb", Some(1), "duplicate-id", "error"),
        ("duplicates/second.sh", Some(1), "duplicate-id", "error"),
        ("duplicates/third.txt", Some(2), "duplicate-id", "error"),
        ("other/bom-crlf.cs", Some(1), "unknown-status", "error"),
        ("other/latin1.txt", None, "not-utf8", "note"),
    ] {
        let want = (file.to_owned(), line, code.to_owned());
        assert!(all.contains(&want), "{want:?} not reported; got {all:#?}");
        assert!(
            severity_of(file, code).iter().all(|s| *s == severity),
            "{file} {code}: expected {severity}"
        );
    }
    // Valid headers in every comment syntax and form, a header after a shebang, both forms of
    // one id in one file, files without a header, a binary file, a header beyond line 20, a
    // grepable text without a version (not a header), and an ignored file: nothing.
    for quiet in [
        "valid/",
        "other/no-header.txt",
        "other/binary.bin",
        "other/header-on-line-25.txt",
        "malformed/no-version.toml",
        "ignored.rule",
    ] {
        assert!(
            !all.iter().any(|(f, ..)| f.starts_with(quiet)),
            "{quiet} reported: {all:#?}"
        );
    }
    // The duplicate messages name the other places.
    let first = items
        .iter()
        .find(|d| d["file"] == "duplicates/first.rb" && d["code"] == "duplicate-id")
        .expect("duplicate reported");
    let message = first["message"].as_str().expect("message");
    assert!(
        message.contains("GOV-RUL-042")
            && message.contains("duplicates/second.sh:1")
            && message.contains("duplicates/third.txt:2"),
        "{message}"
    );
}

#[test]
fn columns_point_at_the_offending_part() {
    let items = diagnostics(&lint_in(&tree(), &[".", "--format", "json"]));
    for (file, code, part) in [
        ("schema/unknown-type-status.js", "unknown-type", "RULEZ"),
        ("schema/unknown-type-status.js", "unknown-status", "NOPE"),
        ("schema/unknown-variant.sql", "unknown-variant", "nope"),
        ("schema/bad-version.toml", "bad-version", "2.9]"),
        (
            "schema/prefix-mismatch.sql",
            "id-prefix-mismatch",
            "OPS-RUL-013",
        ),
        ("duplicates/second.sh", "duplicate-id", "gov-rul-42"),
        ("malformed/five-fields.md", "malformed-header", "[SEC]"),
        // After a byte-order mark, which is not counted.
        ("other/bom-crlf.cs", "unknown-status", "bogus"),
    ] {
        let d = items
            .iter()
            .find(|d| d["file"] == file && d["code"] == code)
            .unwrap_or_else(|| panic!("{file} {code} not reported"));
        let text = fs::read(tree().join(file)).expect("fixture");
        let text = String::from_utf8_lossy(text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text))
            .into_owned();
        let line = d["line"].as_u64().expect("line") as usize;
        let column = d["column"].as_u64().expect("column") as usize;
        let line_text = text.lines().nth(line - 1).expect("line exists");
        assert_eq!(
            line_text.find(part).map(|at| at + 1),
            Some(column),
            "{file} {code}: column {column} in {line_text:?}"
        );
    }
}

#[test]
fn lines_option_sets_how_far_headers_are_looked_for() {
    let default = lint_in(&tree(), &["other/header-on-line-25.txt"]);
    assert_eq!(code(&default), 0);
    assert!(
        stderr(&default).contains("0 headers found"),
        "{}",
        stderr(&default)
    );

    let further = lint_in(&tree(), &["other/header-on-line-25.txt", "--lines", "25"]);
    assert_eq!(code(&further), 0);
    assert!(
        stderr(&further).contains("1 header found"),
        "{}",
        stderr(&further)
    );

    let out = lint_in(&tree(), &[".", "--lines", "0"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("--lines"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_file_named_on_the_command_line_is_linted_even_if_ignored() {
    let out = lint_in(&tree(), &["ignored.rule", "--format", "json"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        found(&diagnostics(&out)),
        [(
            "ignored.rule".to_owned(),
            Some(1),
            "malformed-header".to_owned()
        )]
    );
}

#[test]
fn exit_code_is_1_for_errors_and_0_for_warnings_and_notes() {
    let s = Scratch::new();
    s.write("ok.py", "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n");
    s.write(
        "warn.md",
        "<!-- [sec][rules][live][sec-rul-2][v2.9][live] -->\n",
    );
    fs::write(
        s.path().join("note.txt"),
        b"# [SEC][RULES][LIVE][SEC-RUL-003][v2.9][LIVE]\n\xff\n",
    )
    .expect("write");
    let out = s.run(&["lint", "."]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warn.md:1:7: warning not-canonical"),
        "{text}"
    );
    assert!(
        text.contains("note.txt: note not-utf8 line 2 is not valid UTF-8"),
        "{text}"
    );

    s.write("bad.sql", "-- [SEC][RULES][LIVE][SEC-RUL-004][v2.9]\n");
    let out = s.run(&["lint", "."]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("bad.sql:1:4: error malformed-header"));

    // Nothing to report: no findings, exit 0.
    let empty = Scratch::new();
    let out = empty.run(&["lint", ".", "--format", "json"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (
            0,
            "{\"summary\":{\"scanned\":0,\"headers\":0,\"errors\":0,\"warnings\":0,\"notes\":0,\"skipped\":0},\"findings\":[]}\n"
        )
    );
}

#[test]
fn a_path_that_does_not_exist_is_an_error_before_anything_is_linted() {
    let s = Scratch::new();
    s.write("bad.sql", "-- [SEC][RULES][LIVE][SEC-RUL-004][v2.9]\n");
    let out = s.run(&["lint", "bad.sql", "missing/dir"]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "", "nothing is linted");
    let (code, message) = s.fail(&["lint", "bad.sql", "missing/dir"]);
    assert_eq!(code, 1);
    assert_eq!(message, "missing/dir: no such file or directory");
}

#[test]
fn plugin_problems_exit_with_2() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        "[validator]\nlibrary = \"no-such-plugin\"\n",
    );
    s.write("a.py", "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n");
    let (code, message) = s.fail(&["lint", "."]);
    assert_eq!(code, 2);
    assert!(
        message.contains("validator stage: no plugin named `no-such-plugin` is built in"),
        "{message}"
    );
}

#[test]
fn max_file_size_takes_units_and_rejects_nonsense() {
    let s = Scratch::new();
    s.write(
        "a.py",
        &format!(
            "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n{}",
            "x".repeat(2000)
        ),
    );
    let out = s.run(&["lint", ".", "--max-file-size", "1K", "--format", "json"]);
    assert_eq!(code(&out), 0);
    let items = diagnostics(&out);
    assert_eq!(
        found(&items),
        [("a.py".to_owned(), None, "too-large".to_owned())]
    );
    assert_eq!(items[0]["severity"], "note");
    let out = s.run(&["lint", ".", "--max-file-size", "2K"]);
    assert_eq!((code(&out), stdout(&out).as_str()), (0, ""));
    let out = s.run(&["lint", ".", "--max-file-size", "10X"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("`10X` is not a size"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn links_loops_and_unreadable_files_are_reported_never_fatal() {
    use std::os::unix::fs::symlink;

    let s = Scratch::new();
    fs::create_dir_all(s.path().join("d/sub")).expect("mkdir");
    s.write(
        "d/sub/a.py",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n",
    );
    symlink("..", s.path().join("d/sub/up")).expect("symlink");
    symlink("self", s.path().join("d/self")).expect("symlink");
    symlink("missing", s.path().join("d/dangling")).expect("symlink");
    symlink("sub/a.py", s.path().join("d/link.py")).expect("symlink");

    // Not followed by default: the links are not looked at.
    let out = s.run(&["lint", "d", "--format", "json"]);
    assert_eq!(code(&out), 0);
    assert_eq!(found(&diagnostics(&out)), []);

    // Followed: loops are notes, a dangling link is unreadable; the file linked twice is the
    // same id in two files.
    let out = s.run(&["lint", "-L", "d", "--format", "json"]);
    let mut all = found(&diagnostics(&out));
    all.sort();
    assert_eq!(
        all,
        [
            ("d/dangling".to_owned(), None, "unreadable".to_owned()),
            ("d/link.py".to_owned(), Some(1), "duplicate-id".to_owned()),
            ("d/self".to_owned(), None, "symlink-loop".to_owned()),
            ("d/sub/a.py".to_owned(), Some(1), "duplicate-id".to_owned()),
            ("d/sub/up".to_owned(), None, "symlink-loop".to_owned()),
        ]
    );
    assert_eq!(code(&out), 1);
}

#[test]
fn registered_compares_headers_with_the_registry() {
    let s = Scratch::new();
    let added = s.add(
        "Block SSH from the internet",
        &["--scope", "SEC", "--status", "REQUIRED"],
    );
    assert_eq!(added["id"], "SEC-RUL-001");
    fs::create_dir(s.path().join("rules")).expect("mkdir");
    s.write(
        "rules/same.py",
        "# [sec-rules-live-sec-rul-001-v2.9-required]\n",
    );
    s.write(
        "rules/changed.py",
        "# [SEC][RULES][LIVE][SEC-RUL-1][v3.0][LIVE]\n",
    );
    s.write(
        "rules/unknown.py",
        "# [SEC][RULES][LIVE][SEC-RUL-077][v2.9][LIVE]\n",
    );

    // Without --registered only the schema is checked.
    let out = s.run(&["lint", "rules/same.py", "rules/unknown.py"]);
    assert_eq!((code(&out), stdout(&out).as_str()), (0, ""));

    let out = s.run(&["lint", "rules", "--registered", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let items = diagnostics(&out);
    let codes: Vec<(String, String)> = items
        .iter()
        .map(|d| {
            (
                d["file"].as_str().unwrap_or("").to_owned(),
                d["code"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for want in [
        ("rules/changed.py", "header-mismatch"),
        ("rules/unknown.py", "unregistered-id"),
    ] {
        assert!(
            codes.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {codes:?}"
        );
    }
    assert!(
        !codes
            .iter()
            .any(|(f, c)| f == "rules/same.py" && c != "duplicate-id"),
        "the matching header is fine: {codes:?}"
    );
    let mismatch = items
        .iter()
        .find(|d| d["code"] == "header-mismatch")
        .expect("mismatch");
    let message = mismatch["message"].as_str().expect("message");
    assert_eq!(
        message,
        "header differs from registered SEC-RUL-001 (revision 1): version `v3.0` here, `v2.9` registered; status `LIVE` here, `REQUIRED` registered"
    );
    // The column points at the first part that differs, the version.
    assert_eq!(mismatch["column"], 33);
}

#[test]
fn without_registered_no_data_directory_is_created() {
    let s = Scratch::new();
    s.write("a.py", "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n");
    let out = s.run(&["lint", "."]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!s.data_dir().exists());
}

/// Runs `registry lint` in `s` with at most `bytes` of address space (`RLIMIT_AS`), set in the
/// child before it starts: a run that reads a huge file into memory cannot succeed.
#[cfg(target_os = "linux")]
fn lint_limited(s: &Scratch, bytes: u64, args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut all = vec!["lint"];
    all.extend(args);
    let mut command = s.command(&all);
    // SAFETY: between fork and exec the hook only calls `setrlimit`, which is
    // async-signal-safe, on values it owns.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.output().expect("run registry")
}

/// Creates `name` in `s` holding `head`, then `extra` at `offset`, and makes it `size` bytes
/// long: the rest is a hole, so a file of many GiB costs no disk.
#[cfg(target_os = "linux")]
fn sparse(s: &Scratch, name: &str, head: &[u8], extra: (u64, &[u8]), size: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = fs::File::create(s.path().join(name)).expect("create");
    file.write_all(head).expect("write head");
    file.seek(SeekFrom::Start(extra.0)).expect("seek");
    file.write_all(extra.1).expect("write");
    file.set_len(size).expect("set length");
}

#[cfg(target_os = "linux")]
#[test]
fn a_huge_file_is_read_no_further_than_its_head() {
    const GIB: u64 = 1 << 30;
    let s = Scratch::new();
    // A header on line 1, then a line longer than anything lint reads, then (far beyond the
    // head) bytes that are not UTF-8 and another header: none of it may be read.
    let mut head = b"# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n".to_vec();
    head.extend(std::iter::repeat_n(b'x', 40_000));
    sparse(
        &s,
        "long-line.txt",
        &head,
        (
            8 * GIB,
            b"\n\xff\xfe\n# [SEC][RULES][LIVE][SEC-RUL-002][v2.9]\n",
        ),
        16 * GIB,
    );
    // Text for 20 KiB, then a hole: NUL bytes, but after the binary probe.
    sparse(
        &s,
        "text-then-hole.txt",
        &[b'y'; 20_000],
        (0, b"z"),
        16 * GIB,
    );
    // Binary from its first byte.
    sparse(&s, "hole.bin", b"", (0, b""), 16 * GIB);

    let args = [
        ".",
        "--max-file-size",
        "64G",
        "--lines",
        "1000000",
        "-j",
        "2",
        "--format",
        "json",
    ];
    let out = lint_limited(&s, 512 << 20, &args);
    assert!(
        out.status.success(),
        "lint needs more than 512 MiB for sparse files: {:?} {}",
        out.status,
        stderr(&out)
    );
    assert_eq!(found(&diagnostics(&out)), []);

    let out = lint_limited(&s, 512 << 20, &[".", "--max-file-size", "64G", "-j", "2"]);
    assert!(out.status.success(), "{:?} {}", out.status, stderr(&out));
    assert_eq!(
        stderr(&out),
        "2 files scanned, 1 header found, 0 errors, 0 warnings, 0 notes, 1 file skipped\n"
    );
}

/// The file names a tree may hold that would break a line of text output: a newline, a
/// carriage return, an escape sequence, a Unicode line separator, a right-to-left override,
/// the text of an escape (a backslash and `n`), and a byte that is not UTF-8; with the way
/// text output shows each.
#[cfg(unix)]
fn odd_names() -> Vec<(std::ffi::OsString, &'static str)> {
    use std::os::unix::ffi::OsStringExt;
    [
        (&b"a\nb.py: error forged"[..], "a\\nb.py: error forged"),
        (b"c\rd.py", "c\\rd.py"),
        (b"e\x1b[2Jf.py", "e\\x1b[2Jf.py"),
        ("g\u{2028}h.py".as_bytes(), "g\\u{2028}h.py"),
        ("i\u{202e}yp.j".as_bytes(), "i\\u{202e}yp.j"),
        (b"k\\n.py", "k\\\\n.py"),
        (b"caf\xe9.py", "caf\\xe9.py"),
    ]
    .into_iter()
    .map(|(name, shown)| (std::ffi::OsString::from_vec(name.to_vec()), shown))
    .collect()
}

#[cfg(unix)]
#[test]
fn file_names_cannot_forge_lines_of_text_output() {
    let s = Scratch::new();
    let names = odd_names();
    for (name, _) in &names {
        fs::write(
            s.path().join(name),
            "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9]\n",
        )
        .expect("write");
    }
    // A duplicate id: the message on the plain file quotes the odd one's name.
    fs::write(
        s.path().join("dup\nx.py"),
        "# [SEC][RULES][LIVE][SEC-RUL-009][v2.9][LIVE]\n",
    )
    .expect("write");
    s.write("dup.py", "# [SEC][RULES][LIVE][SEC-RUL-009][v2.9][LIVE]\n");

    let out = s.run(&["lint", "."]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(
        !text.chars().any(|c| (c.is_control() && c != '\n')
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}')),
        "control characters reach the terminal: {text:?}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), names.len() + 2, "one line per problem: {text}");
    for (_, shown) in &names {
        let want = format!("{shown}:1:3: error malformed-header ");
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "no line starts with {want:?}: {text}"
        );
    }
    assert!(
        lines.iter().any(|l| l.starts_with("dup.py:1:")
            && l.contains(" error duplicate-id id SEC-RUL-009 is also in dup\\nx.py:1: ")),
        "{text}"
    );

    // JSON keeps the real names (bytes that are not UTF-8 as U+FFFD).
    let out = s.run(&["lint", ".", "--format", "json"]);
    let files: Vec<String> = found(&diagnostics(&out))
        .into_iter()
        .map(|(file, ..)| file)
        .collect();
    for (name, _) in &names {
        let real = name.to_string_lossy();
        assert!(
            files.iter().any(|f| *f == real),
            "{real:?} not in {files:?}"
        );
    }
    assert!(files.iter().any(|f| f == "dup\nx.py"), "{files:?}");

    // A PATH that does not exist is named escaped in the one-line error.
    let (code, message) = s.fail(&["lint", "missing\nerror: forged"]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        "missing\\nerror: forged: no such file or directory"
    );
}

/// The SARIF 2.1.0 schema (draft-04), checking the formats it names (`uri`, `uri-reference`)
/// too. See `tests/fixtures/schemas/README.md` for its origin.
fn sarif_schema() -> jsonschema::Validator {
    let text = fs::read(fixtures().join("schemas/sarif-schema-2.1.0.json")).expect("schema");
    let schema: Value = serde_json::from_slice(&text).expect("schema is JSON");
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the SARIF schema compiles")
}

/// Validates `log` against the SARIF schema, naming every violation.
fn assert_valid_sarif(log: &Value) {
    let schema = sarif_schema();
    let errors: Vec<String> = schema
        .iter_errors(log)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "invalid SARIF: {errors:#?}");
}

#[test]
fn sarif_output_is_valid_and_places_every_finding() {
    let out = lint_in(&tree(), &[".", "--format", "sarif"]);
    assert_eq!(code(&out), 1, "errors fail the run: {}", stderr(&out));
    let log: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_valid_sarif(&log);
    // The schema check can fail: a level SARIF does not know is refused.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert!(!sarif_schema().is_valid(&broken));

    assert_eq!(log["version"], "2.1.0");
    let runs = log["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "registry");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
    let rules = driver["rules"].as_array().expect("rules");
    let ids: Vec<&str> = rules
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    let codes: Vec<&str> = registry_host::lint::codes::CODES
        .iter()
        .map(|c| c.code)
        .collect();
    assert_eq!(ids, codes, "one rule per lint code");
    for (rule, c) in rules.iter().zip(registry_host::lint::codes::CODES) {
        assert_eq!(rule["defaultConfiguration"]["level"], c.severity.name());
        assert_eq!(rule["shortDescription"]["text"], c.summary);
        assert_eq!(rule["help"]["text"], c.fix);
    }
    let root = format!("file://{}/", tree().display());
    assert_eq!(run["originalUriBaseIds"]["%SRCROOT%"]["uri"], root.as_str());

    // The same findings as JSON, in the same order, at the same places.
    let json = diagnostics(&lint_in(&tree(), &[".", "--format", "json"]));
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), json.len());
    for (r, d) in results.iter().zip(&json) {
        assert_eq!(r["ruleId"], d["code"], "{r}");
        let index = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], d["code"]);
        assert_eq!(r["level"], d["severity"]);
        assert_eq!(r["message"]["text"], d["message"]);
        let at = &r["locations"][0]["physicalLocation"];
        assert_eq!(
            at["artifactLocation"]["uri"], d["file"],
            "plain names as they are"
        );
        assert_eq!(at["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(at["region"]["startLine"], d["line"]);
        assert_eq!(at["region"]["startColumn"], d["column"]);
        if d["line"].is_null() {
            assert!(at.get("region").is_none(), "file-level: no region: {r}");
        }
    }
    assert_eq!(
        run["properties"]["summary"]["errors"].as_u64(),
        Some(json.iter().filter(|d| d["severity"] == "error").count() as u64)
    );
    // Standard output is the document; the summary is on standard error.
    assert!(
        stderr(&out).ends_with("2 files skipped\n"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn sarif_and_junit_carry_odd_names_safely() {
    let s = Scratch::new();
    let names = odd_names();
    for (name, _) in &names {
        fs::write(
            s.path().join(name),
            "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9]\n",
        )
        .expect("write");
    }
    s.write(
        "a <b> & \"c\" 'd'.py",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9]\n",
    );
    s.write(
        "# 100%?.py",
        "# [SEC][RULES][LIVE][SEC-RUL-002][v2.9][LIVE]\n",
    );

    let out = s.run(&["lint", ".", "--format", "sarif"]);
    assert_eq!(code(&out), 1);
    let log: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_valid_sarif(&log);
    let uris: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .expect("uri")
        })
        .collect();
    for want in [
        "a%0Ab.py%3A%20error%20forged",
        "caf%E9.py",
        "e%1B%5B2Jf.py",
        "a%20%3Cb%3E%20%26%20%22c%22%20%27d%27.py",
    ] {
        assert!(uris.contains(&want), "{want} not in {uris:?}");
    }
    assert!(!uris.iter().any(|u| u.contains('#')), "{uris:?}");

    let out = s.run(&["lint", ".", "--format", "junit"]);
    assert_eq!(code(&out), 1);
    let xml = stdout(&out);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit output is well-formed XML");
    let cases: Vec<roxmltree::Node<'_, '_>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let case_names: Vec<&str> = cases
        .iter()
        .map(|c| c.attribute("name").expect("name"))
        .collect();
    for (_, shown) in &names {
        assert!(case_names.contains(shown), "{shown} not in {case_names:?}");
    }
    assert!(
        case_names.contains(&"a <b> & \"c\" 'd'.py"),
        "{case_names:?}"
    );
    assert!(case_names.contains(&"# 100%?.py"), "{case_names:?}");
    // Parsed back, no text holds a control character: the names are shown escaped.
    for node in doc.descendants() {
        let texts = node
            .text()
            .into_iter()
            .chain(node.attributes().map(|a| a.value()));
        for text in texts {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
        }
    }
}

#[test]
fn junit_output_has_a_case_per_file_and_a_failure_per_error() {
    let out = lint_in(&tree(), &[".", "--format", "junit"]);
    assert_eq!(code(&out), 1, "errors fail the run: {}", stderr(&out));
    let xml = stdout(&out);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit output is well-formed XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.attribute("name"), Some("registry lint"));

    let json = diagnostics(&lint_in(&tree(), &[".", "--format", "json"]));
    let errors: Vec<&Value> = json.iter().filter(|d| d["severity"] == "error").collect();
    let failures: Vec<_> = suite
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), errors.len());
    assert_eq!(
        suite.attribute("failures"),
        Some(errors.len().to_string().as_str())
    );
    for (f, d) in failures.iter().zip(&errors) {
        assert_eq!(f.attribute("type"), d["code"].as_str());
        assert_eq!(f.attribute("message"), d["message"].as_str());
        let place = match (d["line"].as_u64(), d["column"].as_u64()) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: ", d["file"].as_str().expect("file")),
            _ => format!("{}: ", d["file"].as_str().expect("file")),
        };
        let text = f.text().expect("failure text");
        assert!(
            text.starts_with(&place),
            "{text} does not start with {place}"
        );
        // The failure sits in the test case of its file.
        assert_eq!(
            f.parent().and_then(|c| c.attribute("name")),
            d["file"].as_str()
        );
    }
    // Warnings and notes are in their file's output, not failures nor skipped tests.
    let outputs: String = suite
        .descendants()
        .filter(|n| n.has_tag_name("system-out"))
        .filter_map(|n| n.text())
        .collect();
    let others = json.iter().filter(|d| d["severity"] != "error").count();
    assert_eq!(outputs.lines().count(), others, "{outputs}");
    assert!(!xml.contains("<skipped"), "{xml}");
    let cases = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(suite.attribute("tests"), Some(cases.to_string().as_str()));
    let files: std::collections::BTreeSet<&str> =
        json.iter().filter_map(|d| d["file"].as_str()).collect();
    assert!(
        cases >= files.len(),
        "a case per file with a finding or a header"
    );
}

/// `docs/LINT.md`'s table as made from `lint::codes::CODES`.
fn codes_table() -> String {
    let mut table = String::from(
        "| code | severity | reported by | what it means | how to fix it |\n| --- | --- | --- | --- | --- |\n",
    );
    for c in registry_host::lint::codes::CODES {
        let origin = match c.origin {
            registry_host::lint::codes::Origin::Lint => "lint",
            registry_host::lint::codes::Origin::Validator => "validator",
        };
        assert!(
            !c.summary.contains('|') && !c.fix.contains('|'),
            "{}",
            c.code
        );
        table.push_str(&format!(
            "| `{}` | {} | {origin} | {} | {} |\n",
            c.code,
            c.severity.name(),
            c.summary,
            c.fix
        ));
    }
    table
}

#[test]
fn every_code_is_documented_and_explained() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/LINT.md");
    let doc = fs::read_to_string(&path).expect("docs/LINT.md");
    let (start, end) = ("<!-- codes -->\n", "<!-- end codes -->");
    let (Some(from), Some(to)) = (doc.find(start), doc.find(end)) else {
        panic!("docs/LINT.md has no {start:?} ... {end:?} section");
    };
    let made = format!("{}{start}{}{}", &doc[..from], codes_table(), &doc[to..]);
    registry_testkit::snapshot::compare(&path, &made, "cargo test -p registry-cli --test it lint");

    let s = Scratch::new();
    for c in registry_host::lint::codes::CODES {
        let text = s.ok(&["lint", "--explain", c.code]);
        assert!(
            text.starts_with(&format!("{} ({}, reported by ", c.code, c.severity.name())),
            "{text}"
        );
        assert!(
            text.contains(c.summary) && text.contains(&format!("fix: {}", c.fix)),
            "{text}"
        );
        let json: Value =
            serde_json::from_str(&s.ok(&["lint", "--explain", c.code, "--format", "json"]))
                .expect("JSON");
        assert_eq!(json["code"], c.code);
        assert_eq!(json["severity"], c.severity.name());
        assert_eq!(json["summary"], c.summary);
        assert_eq!(json["fix"], c.fix);
    }
    let (code, message) = s.fail(&["lint", "--explain", "no-such\ncode"]);
    assert_eq!(code, 1);
    assert_eq!(
        message,
        "unknown lint code `no-such\\ncode`: docs/LINT.md lists every code"
    );
}

/// (file, code) of each finding of a JSON run in `s` with `args`.
fn codes_found(s: &Scratch, args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["lint", ".", "--format", "json"];
    all.extend(args);
    found(&diagnostics(&s.run(&all)))
        .into_iter()
        .map(|(file, _, code)| (file, code))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect()
}

#[test]
fn select_ignore_and_ignore_comments_choose_what_is_reported() {
    let s = Scratch::new();
    // A bad version (error) and a lower-case id (warning) in one header.
    s.write("a.py", "# [SEC][RULES][LIVE][sec-rul-1][2.9][LIVE]\n");
    s.write("b.sh", "# [SEC][RULES][LIVE][SEC-RUL-002][v2.9]\n");
    let all = pairs(&[
        ("a.py", "id-not-canonical"),
        ("a.py", "bad-version"),
        ("b.sh", "malformed-header"),
    ]);
    let mut sorted = codes_found(&s, &[]);
    sorted.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(sorted, want);

    assert_eq!(
        codes_found(&s, &["--select", "bad-version,malformed-header"]),
        pairs(&[("a.py", "bad-version"), ("b.sh", "malformed-header")])
    );
    assert_eq!(
        codes_found(
            &s,
            &[
                "--ignore",
                "malformed-header",
                "--ignore",
                "id-not-canonical"
            ]
        ),
        pairs(&[("a.py", "bad-version")])
    );
    // What is left out does not fail the run.
    let out = s.run(&["lint", ".", "--select", "id-not-canonical"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // A code that does not exist: one line naming it, exit 1, nothing linted.
    for option in ["--select", "--ignore"] {
        let (code, message) = s.fail(&["lint", ".", option, "bad-version,bad-vresion"]);
        assert_eq!(code, 1);
        assert_eq!(
            message,
            format!("{option}: unknown lint code `bad-vresion`: docs/LINT.md lists every code")
        );
    }

    // A file's own ignore comment, in its first lines, for that file only.
    s.write(
        "a.py",
        "# [SEC][RULES][LIVE][sec-rul-1][2.9][LIVE]\n# registry: ignore[bad-version]\n",
    );
    s.write(
        "b.sh",
        "# [SEC][RULES][LIVE][SEC-RUL-002][v2.9]\n# registry: ignore\n",
    );
    s.write(
        "c.sql",
        "-- registry: ignore[id-not-canonical\n-- [SEC][RULES][LIVE][sec-rul-3][2.9][LIVE]\n",
    );
    assert_eq!(
        codes_found(&s, &[]),
        pairs(&[
            ("a.py", "id-not-canonical"),
            ("c.sql", "id-not-canonical"),
            ("c.sql", "bad-version"),
        ]),
        "a list without its `]` ignores nothing"
    );
    // Beyond --lines, the comment is not read.
    assert_eq!(
        codes_found(&s, &["--lines", "1"]),
        pairs(&[
            ("a.py", "id-not-canonical"),
            ("a.py", "bad-version"),
            ("b.sh", "malformed-header")
        ])
    );
}

#[test]
fn require_header_makes_a_file_without_one_an_error() {
    let s = Scratch::new();
    s.write("ok.py", "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n");
    s.write("bare.py", "print('no header')\n");
    s.write(
        "late.sh",
        &format!(
            "{}# [SEC][RULES][LIVE][SEC-RUL-002][v2.9][LIVE]\n",
            "#\n".repeat(5)
        ),
    );
    s.write(
        "waived.md",
        "<!-- registry: ignore[missing-header] -->\n# Notes\n",
    );
    fs::write(s.path().join("blob.bin"), b"\0\x01").expect("write");

    let out = s.run(&["lint", "."]);
    assert_eq!(code(&out), 0, "not required by default: {}", stdout(&out));

    let out = s.run(&["lint", ".", "--require-header"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "bare.py: error missing-header no header in the first 20 lines, and one is required\n"
    );
    assert_eq!(
        codes_found(&s, &["--require-header", "--lines", "3"]),
        pairs(&[("bare.py", "missing-header"), ("late.sh", "missing-header")])
    );
    // Binary files are not rules: skipped as ever. SARIF and JUnit report it like any error.
    let out = s.run(&["lint", ".", "--require-header", "--format", "sarif"]);
    let log: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_valid_sarif(&log);
    assert_eq!(log["runs"][0]["results"][0]["ruleId"], "missing-header");
    let out = s.run(&["lint", ".", "--require-header", "--format", "junit"]);
    assert!(
        stdout(&out).contains("<failure message=\"no header in the first 20 lines, and one is required\" type=\"missing-header\">bare.py: error missing-header "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn lint_require_in_the_configuration_names_the_files_that_need_a_header() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        "[lint]\nrequire = [\"rules/**/*.yml\", \"*.rego\"]\n",
    );
    for dir in ["rules/deep", "sub"] {
        fs::create_dir_all(s.path().join(dir)).expect("mkdir");
    }
    s.write("rules/a.yml", "title: no header\n");
    s.write(
        "rules/deep/b.yml",
        "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n",
    );
    s.write("rules/notes.md", "no header, not required\n");
    s.write("top.rego", "package x\n");
    s.write("sub/other.rego", "package y\n");
    assert_eq!(
        codes_found(&s, &[]),
        pairs(&[
            ("rules/a.yml", "missing-header"),
            ("top.rego", "missing-header")
        ])
    );
    // The globs are relative to the configuration's directory, wherever lint runs.
    let out = s
        .command(&["lint", ".", "--format", "json"])
        .current_dir(s.path().join("rules"))
        .output()
        .expect("run registry");
    assert_eq!(
        found(&diagnostics(&out)),
        [("a.yml".to_owned(), None, "missing-header".to_owned())]
    );
    // --require-header asks it of every file searched, registry.toml included.
    assert_eq!(codes_found(&s, &["--require-header"]).len(), 5);

    s.write("registry.toml", "[lint]\nrequire = [\"rules/[a.yml\"]\n");
    let (code, message) = s.fail(&["lint", "."]);
    assert_eq!(code, 2);
    assert!(
        message.contains("lint.require: `rules/[a.yml` is not a glob"),
        "{message}"
    );
}

#[test]
fn sarif_columns_count_utf16_code_units() {
    let s = Scratch::new();
    // Before the header: 10 bytes, 7 UTF-16 code units (the emoji is a surrogate pair).
    s.write(
        "u.py",
        "# é 😀 [XYZ][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n",
    );
    let text = s.run(&["lint", "u.py"]);
    assert!(
        stdout(&text).starts_with("u.py:1:12: error unknown-scope"),
        "{}",
        stdout(&text)
    );
    let out = s.run(&["lint", "u.py", "--format", "sarif"]);
    let log: Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_valid_sarif(&log);
    assert_eq!(log["runs"][0]["columnKind"], "utf16CodeUnits");
    let region = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(1), Some(9))
    );
}
