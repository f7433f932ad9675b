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
