//! The hooks of `.pre-commit-hooks.yaml`, run by the real `pre-commit` (from PyPI; `cargo xtask
//! test` installs it and names it in `REGISTRY_TEST_PRE_COMMIT`) against a temporary git
//! repository, with the built `registry` on the PATH as a user's installed one would be.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Scratch;

fn pre_commit() -> PathBuf {
    PathBuf::from(
        std::env::var_os("REGISTRY_TEST_PRE_COMMIT").unwrap_or_else(|| {
            panic!(
                "REGISTRY_TEST_PRE_COMMIT is not set: run the tests with `cargo xtask test`, which \
             installs pre-commit and sets it"
            )
        }),
    )
}

/// The repository holding `.pre-commit-hooks.yaml` (and this crate).
fn this_repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pre-commit try-repo` of this repository's hook `id` on every file of `s`'s repository.
fn try_hook(s: &Scratch, id: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_registry"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    Command::new(pre_commit())
        .args([
            "try-repo",
            &this_repository().display().to_string(),
            id,
            "--all-files",
        ])
        .current_dir(s.path())
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", s.path().join(".pre-commit-home"))
        .env("XDG_CONFIG_HOME", s.config_home())
        .env("REGISTRY_SHARDS", "1")
        .output()
        .expect("runs pre-commit")
}

#[test]
fn pre_commit_runs_the_stamp_and_lint_hooks() {
    let s = Scratch::new();
    git(s.path(), &["init", "-q", "."]);
    s.write(".gitignore", ".registry/\n.pre-commit-home/\n");
    s.write("deploy.sh", "#!/bin/sh\necho deploy\n");
    s.write("check.py", "print('check')\n");
    git(s.path(), &["add", "."]);

    // Stamping changes the files, so the hook fails once (as formatters do), then passes.
    let first = try_hook(&s, "registry-stamp");
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(!first.status.success(), "{said}");
    assert!(
        said.contains("registry stamp") && said.contains("files were modified"),
        "{said}"
    );
    let stamped = std::fs::read_to_string(s.path().join("deploy.sh")).expect("reads");
    assert!(
        stamped.lines().nth(1).is_some_and(|l| l.starts_with("# [")),
        "{stamped}"
    );
    git(s.path(), &["add", "."]);
    let second = try_hook(&s, "registry-stamp");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );

    let lint = try_hook(&s, "registry-lint");
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    // A broken header fails the lint hook.
    s.write(
        "deploy.sh",
        "#!/bin/sh\n# [SEC][RULEZ][LIVE][SEC-RUL-999][v2.9][LIVE]\necho\n",
    );
    git(s.path(), &["add", "."]);
    let broken = try_hook(&s, "registry-lint");
    let said = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success(), "{said}");
    assert!(said.contains("unknown-type"), "{said}");
}
