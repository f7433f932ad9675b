//! What every command shares: `registry help`, output into a closed pipe, `--quiet`, errors as
//! JSON, and the allowed values in the help.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::Scratch;

/// A registry holding `n` entries, registered in one batch.
fn filled(n: usize) -> Scratch {
    let s = Scratch::new();
    let lines: String = (1..=n)
        .map(|i| format!("{{\"title\": \"Check rule number {i}\", \"scope\": \"OPS\"}}\n"))
        .collect();
    s.write("in.jsonl", &lines);
    s.ok(&["batch", "in.jsonl"]);
    s
}

#[test]
fn help_is_a_subcommand_too() {
    let s = Scratch::new();
    let help = s.ok(&["help", "add"]);
    assert!(help.contains("Usage: registry add"), "{help}");
    assert_eq!(help, s.ok(&["add", "--help"]));
    let nested = s.ok(&["help", "plugins", "check"]);
    assert!(nested.contains("Usage: registry plugins check"), "{nested}");
    let out = s.run(&["help", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: unrecognized subcommand 'nosuch'"),
        "{stderr}"
    );
}

/// Reads the first line of a command's output, then closes the pipe while the command still
/// has far more to write than the pipe holds: it must end quietly with exit code 0.
fn closed_early(s: &Scratch, args: &[&str]) {
    let mut child = s
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn registry");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read a line");
    assert!(!first.is_empty(), "registry {args:?} wrote nothing");
    // The reader is dropped here: the pipe is closed.
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "registry {args:?} said something on stderr"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "registry {args:?}: {:?}",
        out.status
    );
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_success() {
    // 3,000 entries: each command writes well over the 64 KiB a pipe holds.
    let s = filled(3000);
    closed_early(&s, &["list"]);
    closed_early(&s, &["list", "--format", "json"]);
    closed_early(&s, &["export"]);
    closed_early(&s, &["export", "--format", "yaml"]);
}

#[test]
fn quiet_leaves_errors_and_results_only() {
    let s = Scratch::new();
    s.add("Rotate the keys", &["--scope", "SEC"]);
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();
    // A mistyped setting variable is a warning on stderr, but not with --quiet.
    let listed = s
        .command(&["list"])
        .env("REGISTRY_DATADIR", "x")
        .output()
        .expect("run");
    assert!(stderr(&listed).starts_with("warning: environment variable REGISTRY_DATADIR"));
    for flag in ["--quiet", "-q"] {
        let quiet = s
            .command(&["list", flag])
            .env("REGISTRY_DATADIR", "x")
            .output()
            .expect("run");
        assert!(quiet.status.success());
        assert_eq!(stderr(&quiet), "", "{flag}");
        assert_eq!(
            quiet.stdout, listed.stdout,
            "the results are written all the same"
        );
    }
    // Global: before the command too.
    let quiet = s
        .command(&["-q", "list"])
        .env("REGISTRY_DATADIR", "x")
        .output()
        .expect("run");
    assert_eq!(stderr(&quiet), "");

    // lint's summary is on stderr; its diagnostics are the results.
    s.write(
        "rule.yaml",
        "# [SEC][NOPE][LIVE][SEC-RUL-001][v1.0][REQUIRED]\n",
    );
    let linted = s.run(&["lint", "rule.yaml"]);
    assert!(
        stderr(&linted).contains("1 file scanned"),
        "{}",
        stderr(&linted)
    );
    let quiet = s.run(&["lint", "rule.yaml", "--quiet"]);
    assert_eq!(
        quiet.status.code(),
        Some(1),
        "an error found is still the exit code"
    );
    assert_eq!(stderr(&quiet), "");
    assert_eq!(quiet.stdout, linted.stdout);
    assert!(!quiet.stdout.is_empty());

    // Errors are still shown.
    let (code, message) = s.fail(&["get", "SEC-RUL-999", "-q"]);
    assert_eq!(code, 1);
    assert_eq!(message, "no entry with id SEC-RUL-999");
}

#[test]
fn errors_with_format_json_are_one_json_object() {
    let s = Scratch::new();
    // No registry yet: exit code 2 in both forms.
    let (code, text) = s.fail(&["list"]);
    let (json_code, error) = s.json_fail(&["list"]);
    assert_eq!((code, json_code), (2, 2));
    assert_eq!(error["message"], text.as_str());
    assert_eq!(error["code"], "config");

    s.add("Rotate the keys", &["--scope", "SEC"]);
    // Not found: the same exit code as in text, the message the same words.
    let (code, text) = s.fail(&["get", "SEC-RUL-999"]);
    let (json_code, error) = s.json_fail(&["get", "SEC-RUL-999"]);
    assert_eq!((code, json_code), (1, 1));
    assert_eq!(error["message"], text.as_str());
    assert_eq!(error["code"], "not-found");
    assert_eq!(error["field"], "id");

    // A value outside the schema names the field.
    let (code, error) = s.json_fail(&["list", "--scope", "NOPE"]);
    assert_eq!(code, 1);
    assert_eq!(error["code"], "unknown-scope");
    assert_eq!(error["field"], "scope");
    assert!(
        error["message"]
            .as_str()
            .expect("message")
            .contains("allowed values are")
    );

    // A bad request names its field.
    let (_, error) = s.json_fail(&["add", "--title", "  ", "--scope", "SEC"]);
    assert_eq!(
        (&error["code"], &error["field"]),
        (&"invalid".into(), &"title".into())
    );

    // A line of an input file names the file and the line.
    s.write(
        "train.jsonl",
        "{\"title\": \"Rotate\", \"scope\": \"SEC\"}\n{\"title\": 1}\n",
    );
    let (code, error) = s.json_fail(&["train", "--from", "train.jsonl"]);
    assert_eq!(code, 1);
    assert_eq!(error["file"], "train.jsonl");
    assert_eq!(error["line"], 2);

    // A file that cannot be read names it.
    let (_, error) = s.json_fail(&["import", "absent.jsonl"]);
    assert_eq!(error["file"], "absent.jsonl");
    assert!(error.get("line").is_none());

    // A usage error is JSON too when --format json was given.
    let out = s.run(&["list", "--limit", "many", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let error = crate::json_error(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(error["code"], "usage");
    assert_eq!(error["field"], "--limit <LIMIT>");
}

#[test]
fn warnings_with_format_json_are_json_lines_too() {
    let s = Scratch::new();
    s.add("Rotate the keys", &["--scope", "SEC"]);
    let out = s
        .command(&["get", "SEC-RUL-002", "--format", "json"])
        .env("REGISTRY_DATADIR", "x")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first: serde_json::Value =
        serde_json::from_str(stderr.lines().next().expect("a line")).expect("JSON warning");
    assert!(
        first["warning"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("REGISTRY_DATADIR")),
        "{stderr}"
    );
    assert_eq!(crate::json_error(&stderr)["code"], "not-found");
}

#[test]
fn the_help_lists_the_values_of_the_schema_in_use() {
    let s = Scratch::new();
    let builtin = s.ok(&["add", "--help"]);
    assert!(
        builtin.contains("[possible values: GOV, SEC, OPS"),
        "{builtin}"
    );

    s.write(
        "registry.toml",
        "[schema]\nscope = [\"NET\", \"APP\"]\n[schema.defaults]\nscope = \"APP\"\n",
    );
    for args in [
        &["add", "--help"][..],
        &["help", "list"],
        &["stamp", "--help"],
    ] {
        let help = s.ok(args);
        assert!(
            help.contains("[possible values: NET, APP]"),
            "{args:?}: {help}"
        );
        assert!(!help.contains("GOV"), "{args:?}: {help}");
    }
    assert!(s.ok(&["add", "--help"]).contains("else APP"));
    // --config names another file: its schema is the one shown.
    s.write("other.toml", "[schema]\nscope = [\"WEB\"]\n");
    let other = s.ok(&["list", "--help", "--config", "other.toml"]);
    assert!(other.contains("[possible values: WEB]"), "{other}");
    let other = s.ok(&["--config", "other.toml", "help", "list"]);
    assert!(other.contains("[possible values: WEB]"), "{other}");

    // The registry, not clap, refuses a value outside the schema: one line, its own words.
    let (code, message) = s.fail(&["list", "--scope", "GOV"]);
    assert_eq!(code, 1);
    assert_eq!(message, "unknown scope `GOV`: allowed values are NET, APP");
    // Case does not matter to the registry.
    s.add("Open port audit", &["--scope", "net"]);

    // A configuration that cannot be read still gives the help (with the built-in values),
    // and the command itself reports the error.
    s.write("registry.toml", "[schema\n");
    let help = s.ok(&["list", "--help"]);
    assert!(help.contains("[possible values: GOV, SEC"), "{help}");
    let (code, _) = s.fail(&["list"]);
    assert_eq!(code, 2);
}

#[test]
fn completion_scripts_are_made_for_each_shell_and_bash_parses_its_own() {
    let s = Scratch::new();
    s.write("registry.toml", "[schema]\nscope = [\"NET\", \"APP\"]\n");
    let bash = s.ok(&["completions", "bash"]);
    assert!(
        bash.contains("complete ") && bash.contains("registry"),
        "{bash}"
    );
    assert!(bash.contains("NET APP"), "the schema's values are offered");
    let script = s.write("registry.bash", &bash);
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash");
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    for shell in ["zsh", "fish", "powershell"] {
        let script = s.ok(&["completions", shell]);
        assert!(script.contains("registry"), "{shell}: {script}");
        assert!(
            script.contains("scale-test"),
            "{shell}: every command is completed"
        );
    }
    let out = s.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn man_pages_are_written_one_per_command_and_are_roff() {
    let s = Scratch::new();
    let top = s.ok(&["man"]);
    check_roff("registry.1", &top);
    assert!(
        top.contains("registry\\-add(1)"),
        "the page names the others"
    );

    let listed = s.ok(&["man", "share/man/man1"]);
    let dir = s.path().join("share/man/man1");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("man dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in [
        "registry.1",
        "registry-add.1",
        "registry-list.1",
        "registry-plugins-check.1",
        "registry-scale-test.1",
        "registry-man.1",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
    assert_eq!(listed.lines().count(), names.len(), "{listed}");
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    for name in &names {
        check_roff(
            name,
            &std::fs::read_to_string(dir.join(name)).expect("page"),
        );
    }
    let list = std::fs::read_to_string(dir.join("registry-list.1")).expect("page");
    assert!(list.contains("SEC"), "the schema's values are in the page");

    // groff, where it is installed, reads every page without a warning.
    let groff = std::process::Command::new("groff").arg("-v").output();
    if groff.is_ok_and(|o| o.status.success()) {
        for name in &names {
            let out = std::process::Command::new("groff")
                .args(["-man", "-ww", "-z"])
                .arg(dir.join(name))
                .output()
                .expect("run groff");
            assert!(out.status.success(), "{name}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{name}");
        }
    }

    // A directory that cannot be made is one line naming it.
    s.write("file", "");
    let (code, message) = s.fail(&["man", "file/man1"]);
    assert_eq!(code, 1);
    assert!(
        message.starts_with("cannot create file/man1: "),
        "{message}"
    );
}

/// A man page's shape: a title line, then NAME and SYNOPSIS sections, every request line known.
fn check_roff(name: &str, page: &str) {
    let th = page.lines().position(|l| l.starts_with(".TH "));
    let section = |s: &str| page.lines().position(|l| l == format!(".SH {s}"));
    assert!(th.is_some(), "{name}: no .TH");
    assert!(
        th < section("NAME") && section("NAME") < section("SYNOPSIS"),
        "{name}"
    );
    let known = [
        ".TH", ".SH", ".TP", ".PP", ".RS", ".RE", ".IP", ".br", ".ie", ".el", ".B", ".I", ".\\\"",
    ];
    for line in page.lines().filter(|l| l.starts_with('.')) {
        let request = line.split_whitespace().next().unwrap_or(line);
        assert!(
            known.contains(&request),
            "{name}: unexpected request {line}"
        );
    }
    assert!(page.is_ascii(), "{name}: not ASCII");
}

/// One word for each outcome across commands: `created` for a new entry, `unchanged` when what
/// was asked is already stored (nothing written), records counted in `records`; `-` is standard
/// input (and `export --output -` standard output).
#[test]
fn every_command_says_created_and_unchanged_alike() {
    let s = Scratch::new();
    let first = s.ok(&["add", "--title", "Rotate the keys", "--scope", "SEC"]);
    assert!(first.starts_with("created   SEC-RUL-001\n"), "{first}");
    let again = s.ok(&["add", "--title", "Rotate the keys", "--scope", "SEC"]);
    assert!(again.starts_with("unchanged SEC-RUL-001\n"), "{again}");

    s.write(
        "in.jsonl",
        "{\"title\": \"Rotate the keys\", \"scope\": \"SEC\"}\n{\"title\": \"Drain the nodes\", \"scope\": \"OPS\"}\n",
    );
    let batch = s.ok(&["batch", "in.jsonl"]);
    assert!(batch.contains("created          1\n"), "{batch}");
    assert!(batch.contains("unchanged        1\n"), "{batch}");

    let other = Scratch::new();
    other.write(
        "requests.jsonl",
        "{\"title\": \"Rotate the keys\", \"scope\": \"SEC\"}\n{\"title\": \"Block SSH\", \"scope\": \"SEC\"}\n",
    );
    assert_eq!(
        other.ok(&["import", "requests.jsonl"]),
        "created 2 (2 from requests), unchanged 0, failed 0\n"
    );
    assert_eq!(
        other.ok(&["import", "requests.jsonl"]),
        "created 0, unchanged 2, failed 0\n"
    );
    other.write("bad.jsonl", "{\"title\": \"\"}\n");
    let (code, message, _) = other.fail_with_stdout(&["import", "bad.jsonl"]);
    assert_eq!(code, 1);
    assert_eq!(message, "1 of 1 record in bad.jsonl failed");

    // `-` is standard output for export, and refused for batch's results (stdout holds the
    // summary).
    assert_eq!(s.ok(&["export", "--output", "-"]), s.ok(&["export"]));
    assert!(!s.path().join("-").exists());
    let (code, message) = s.fail(&["batch", "in.jsonl", "--results", "-"]);
    assert_eq!(code, 1);
    assert!(message.starts_with("--results -: "), "{message}");
}
