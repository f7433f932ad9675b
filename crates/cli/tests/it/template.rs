//! The plugin template used as an author uses it: copied out of the workspace, changed, built
//! there with cargo, named in `registry.toml`, and seen to take effect through `registry add`.
//!
//! The copy is built with `--offline` (the workspace's dependencies are already in cargo's cache,
//! and the workspace's `Cargo.lock` goes with the copy so the versions are the same) into a
//! target directory kept under the workspace's, `target/plugin-template`: the first run compiles
//! the dependencies (about two minutes on two cores), later runs only the template (seconds).
//! A target directory inside the temporary copy would pay the two minutes on every run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{Scratch, bin_dir};

/// The word the test adds to the template's source, in its default `forbidden_words`.
const WORD: &str = "quokka";

/// The checkout this test belongs to (`crates/cli` is two levels down).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cli is two levels below the workspace root")
        .to_owned()
}

/// Copies a directory tree, leaving out build output and the lock file, as `cp -r` of a fresh
/// checkout of the template would.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the template directory") {
        let entry = entry.expect("read a template directory entry");
        let name = entry.file_name();
        if name == "target" || name == "Cargo.lock" {
            continue;
        }
        let path = entry.path();
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy a template file");
        }
    }
}

/// Replaces `from` by `to` in a file, which must hold it exactly `count` times: a template that
/// changed shape fails here, naming the text, rather than building unchanged.
fn edit(path: &Path, from: &str, to: &str, count: usize) {
    let text = std::fs::read_to_string(path).expect("read a template file");
    assert_eq!(
        text.matches(from).count(),
        count,
        "{} should hold `{from}` {count} times",
        path.display()
    );
    std::fs::write(path, text.replace(from, to)).expect("write a template file");
}

/// Builds the crate at `dir` with the cargo running this test, into `target_dir`, and returns
/// the plugin library it made.
fn cargo_build(dir: &Path, target_dir: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args(["build", "--offline"])
        .env("CARGO_TARGET_DIR", target_dir);
    // What cargo sets for the test run describes this package, not the one being built.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || key == "CARGO_PRIMARY_PACKAGE"
            || key == "CARGO_TARGET_TMPDIR"
        {
            command.env_remove(&*key);
        }
    }
    let started = Instant::now();
    let out = command.output().expect("run cargo");
    assert!(
        out.status.success(),
        "cargo build of the template copy failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "template copy built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    target_dir.join("debug").join(format!(
        "{}plugin_template{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

#[test]
fn changed_template_built_outside_the_workspace_takes_effect() {
    let root = workspace_root();
    let outside = tempfile::tempdir().expect("temp dir");
    assert!(
        !outside.path().starts_with(&root),
        "the temporary directory must be outside the workspace"
    );
    let copy = outside.path().join("my-validator");
    copy_tree(&root.join("examples/plugin-template"), &copy);
    std::fs::copy(root.join("Cargo.lock"), copy.join("Cargo.lock")).expect("copy Cargo.lock");
    let crates = root.join("crates");
    edit(
        &copy.join("Cargo.toml"),
        "path = \"../../crates/",
        &format!("path = \"{}/", crates.display()),
        3,
    );
    edit(
        &copy.join("src/lib.rs"),
        "forbidden_words: Vec::new(),",
        &format!("forbidden_words: vec![\"{WORD}\".to_owned()],"),
        1,
    );

    let target_dir = bin_dir()
        .parent()
        .expect("the binary's directory is in the target directory")
        .join("plugin-template");
    let built = cargo_build(&copy, &target_dir);
    // Another run of this test may build into the same target directory: use a copy of our own.
    let library = outside
        .path()
        .join(built.file_name().expect("library file name"));
    std::fs::copy(&built, &library).expect("copy the built library");

    let s = Scratch::new();
    // What an author runs before deploying: the library loads in this host and conforms.
    let library_arg = library.display().to_string();
    let report = s.json(&["plugins", "check", &library_arg]);
    assert_eq!(report["usable"], true, "{report}");
    assert_eq!(report["name"], "plugin-template", "{report}");

    s.write(
        "registry.toml",
        &format!(
            "[validator]\nlibrary = {:?}\n\n[validator.config]\nmax_title_words = 6\n",
            library.display().to_string()
        ),
    );
    // A library outside the registry's own directory runs only once the user trusts it.
    let (code, message) = s.fail(&["plugins"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("registry trust"), "{message}");
    let (code, message) = s.fail(&["add", "--title", "Feed the wombat"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("not loaded"), "{message}");
    s.ok(&["trust", &library_arg]);
    let plugins = s.ok(&["plugins"]);
    assert!(plugins.contains("plugin-template"), "{plugins}");

    // The word added to the source is refused, whatever its case, naming the word.
    let (code, message) = s.fail(&["add", "--title", "Feed the Quokka daily"]);
    assert_eq!(code, 1, "{message}");
    assert!(
        message.contains("contains the forbidden word `Quokka`"),
        "{message}"
    );
    // The config table reaches the plugin.
    let (code, message) = s.fail(&["add", "--title", "one two three four five six seven"]);
    assert_eq!(code, 1, "{message}");
    assert!(
        message.contains("title has 7 words: the limit is 6 (max_title_words)"),
        "{message}"
    );
    assert!(s.ids().is_empty(), "a refused title stored nothing");

    let added = s.add("Feed the wombat daily", &[]);
    let id = added["id"].as_str().expect("the added entry has an id");
    assert_eq!(s.ids(), [id]);
}
