//! Snapshot tests: output compared with a file committed beside the test, which a person
//! rewrites on purpose and reviews, never by accident.
//!
//! [`compare`] passes only when the file holds exactly the output. It rewrites the file instead
//! when `UPDATE_SNAPSHOTS` is exactly `1`, and refuses any other value; a missing file fails like
//! a different one. So a snapshot test never passes without comparing unless it was asked to
//! rewrite, and `cargo xtask test` refuses to run with the variable set at all.

use std::path::Path;

/// What [`compare`] does under the current environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Compare,
    Rewrite,
}

fn mode(path: &Path) -> Mode {
    match std::env::var_os("UPDATE_SNAPSHOTS") {
        None => Mode::Compare,
        Some(v) if v == "1" => Mode::Rewrite,
        Some(v) => panic!(
            "UPDATE_SNAPSHOTS is {v:?}: set it to 1 to rewrite {} (then review the diff), or \
             unset it to compare",
            path.display()
        ),
    }
}

/// Compares `actual` with the file at `path`, or rewrites the file when `UPDATE_SNAPSHOTS=1`.
/// `rewrite` is the command that rewrites it (`cargo test -p CRATE ...`), for the messages.
///
/// # Panics
/// The file differs from `actual`, cannot be read (a missing one included), or cannot be
/// written when asked to; or `UPDATE_SNAPSHOTS` has another value than `1`.
#[track_caller]
pub fn compare(path: &Path, actual: &str, rewrite: &str) {
    if mode(path) == Mode::Rewrite {
        std::fs::write(path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("rewrote {}: review the difference", path.display());
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (write it with `UPDATE_SNAPSHOTS=1 {rewrite}`, then review it)",
            path.display()
        )
    });
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        panic!(
            "output differs from {} from line {} on (if intended, rerun with \
             `UPDATE_SNAPSHOTS=1 {rewrite}` and review):\n--- expected\n{expected}\n--- actual\n\
             {actual}",
            path.display(),
            first + 1
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_different_snapshot_fails_and_nothing_is_written() {
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            return; // a rewriting run would write the files this test asks about
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.txt");
        let compared = std::panic::catch_unwind(|| compare(&missing, "anything\n", "cargo test"));
        assert!(compared.is_err(), "a missing snapshot passed");
        assert!(!missing.exists(), "a snapshot was written");

        let present = dir.path().join("present.txt");
        std::fs::write(&present, "a\nb\n").expect("write");
        let compared = std::panic::catch_unwind(|| compare(&present, "a\nc\n", "cargo test"));
        let message = compared.expect_err("a different snapshot passed");
        let text = message
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert!(text.contains("from line 2 on"), "{text}");
        assert_eq!(std::fs::read_to_string(&present).expect("read"), "a\nb\n");
        compare(&present, "a\nb\n", "cargo test");
    }
}
