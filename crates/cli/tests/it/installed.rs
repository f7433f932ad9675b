//! The `registry` binary installed alone, as a user installs it: from a subdirectory of a
//! repository whose root holds a `registry.toml`, it finds that configuration and its registry
//! and runs every command with no other file beside it; a read where there is no registry
//! creates nothing; a configuration the repository carries is refused what it may not do until
//! the user trusts it.
//!
//! The binary is the one `cargo xtask test` installed with `cargo install --path crates/cli`
//! into an empty prefix (`REGISTRY_TEST_INSTALLED_BIN`); run by plain `cargo test`, the test
//! copies the built binary alone into an empty directory instead, which is what the install
//! does with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The installed binary, and the temporary prefix holding it when the test made one.
fn installed() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(bin) = std::env::var_os("REGISTRY_TEST_INSTALLED_BIN") {
        return (PathBuf::from(bin), None);
    }
    let prefix = tempfile::tempdir().expect("temp dir");
    let bin = prefix.path().join("bin");
    fs::create_dir(&bin).expect("bin dir");
    let exe = bin.join("registry");
    // A hard link where it can be: a copy is a file open for writing while other tests fork,
    // which the kernel refuses to execute for as long as a child holds it (ETXTBSY).
    if fs::hard_link(env!("CARGO_BIN_EXE_registry"), &exe).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_registry"), &exe).expect("copies the binary");
    }
    (exe, Some(prefix))
}

/// A user's machine: a home for the user's configuration, and the installed binary.
struct User {
    exe: PathBuf,
    home: tempfile::TempDir,
    _prefix: Option<tempfile::TempDir>,
}

impl User {
    fn new() -> User {
        let (exe, prefix) = installed();
        User {
            exe,
            home: tempfile::tempdir().expect("temp dir"),
            _prefix: prefix,
        }
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(&self.exe);
        c.current_dir(dir).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("REGISTRY_") {
                c.env_remove(k);
            }
        }
        c.env("XDG_CONFIG_HOME", self.home.path())
            .env("REGISTRY_SHARDS", "2");
        // A copied binary may be briefly busy (see `installed`): try again.
        for _ in 0..50 {
            match c.output() {
                Err(e) if e.raw_os_error() == Some(26) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                result => return result.expect("runs the installed binary"),
            }
        }
        panic!("{} stayed busy", self.exe.display())
    }

    fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.run(dir, args);
        assert!(
            out.status.success(),
            "registry {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn json(&self, dir: &Path, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(dir, &args)).expect("json")
    }

    fn fail(&self, dir: &Path, args: &[&str]) -> (i32, String) {
        let out = self.run(dir, args);
        assert!(!out.status.success(), "registry {args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.status.code().expect("code"), stderr)
    }
}

/// Every file under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).expect("under").display().to_string());
        }
    }
    out.sort();
    out
}

/// A repository: `.git` at its root (which is where looking for a configuration stops), the
/// shipped `registry.toml` copied there alone, and a subdirectory of rules.
fn repository() -> (tempfile::TempDir, PathBuf) {
    let repo = tempfile::tempdir().expect("temp dir");
    fs::create_dir(repo.path().join(".git")).expect(".git");
    fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../registry.toml"),
        repo.path().join("registry.toml"),
    )
    .expect("copies the shipped registry.toml");
    let sub = repo.path().join("rules").join("network");
    fs::create_dir_all(&sub).expect("subdirectory");
    (repo, sub)
}

#[test]
fn the_installed_binary_runs_alone_from_a_subdirectory_of_a_repository() {
    let user = User::new();
    let bin_dir = user.exe.parent().expect("bin");
    assert_eq!(tree(bin_dir), ["registry"], "nothing beside the binary");
    let (repo, sub) = repository();

    // The configuration at the repository's root is found, and is where the registry lives.
    let info = user.json(&sub, &["info"]);
    let root = repo.path().canonicalize().expect("real path");
    assert_eq!(
        info["config"].as_str().map(PathBuf::from),
        Some(root.join("registry.toml")),
        "{info}"
    );
    assert_eq!(info["config_source"], "discovered");
    assert_eq!(info["config_trusted"], false);
    assert_eq!(
        info["data_dir"].as_str().map(PathBuf::from),
        Some(root.join(".registry"))
    );
    let plugins = user.json(&sub, &["plugins"]);
    for row in plugins.as_array().expect("rows") {
        assert_eq!(row["builtin"], true, "{row}");
    }

    // Register, read, update, export: every command, from the subdirectory.
    let added = user.json(
        &sub,
        &["add", "--title", "Block inbound SSH", "--scope", "SEC"],
    );
    let id = added["id"].as_str().expect("id").to_owned();
    assert_eq!(added["created"], true);
    let listed = user.json(&sub, &["list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(user.json(&sub, &["get", &id])["hash"], added["hash"]);
    user.ok(&sub, &["update", &id, "--status", "REQUIRED"]);
    assert_eq!(
        user.json(&sub, &["history", &id]).as_array().map(Vec::len),
        Some(2)
    );
    user.ok(&sub, &["predict", "--title", "Rotate the keys"]);
    user.ok(&sub, &["stats"]);
    fs::write(
        sub.join("more.jsonl"),
        "{\"title\": \"Restart the workers\", \"scope\": \"OPS\"}\n",
    )
    .expect("writes");
    user.ok(&sub, &["batch", "more.jsonl"]);
    let exported = user.ok(&sub, &["export"]);
    assert_eq!(exported.lines().count(), 2, "{exported}");

    // Files: stamp one, then lint against the registry.
    fs::write(
        sub.join("firewall.sh"),
        "#!/bin/sh\niptables -A INPUT -p tcp --dport 22 -j DROP\n",
    )
    .expect("writes");
    user.ok(&sub, &["stamp", "firewall.sh"]);
    let stamped = fs::read_to_string(sub.join("firewall.sh")).expect("reads");
    assert!(
        stamped.lines().nth(1).is_some_and(|l| l.starts_with("# [")),
        "{stamped}"
    );
    let lint = user.run(&sub, &["lint", "--registered", "."]);
    let summary = String::from_utf8_lossy(&lint.stderr).into_owned();
    assert!(lint.status.success(), "{summary}");
    assert!(summary.contains(", 1 header found, 0 errors"), "{summary}");

    // The registry is at the root, kept out of version control; nothing appeared in the
    // subdirectory but the files the test wrote.
    let data = repo.path().join(".registry");
    assert_eq!(
        fs::read_to_string(data.join(".gitignore"))
            .expect("gitignore")
            .lines()
            .last(),
        Some("*")
    );
    assert_eq!(tree(&sub), ["firewall.sh", "more.jsonl"]);
}

#[test]
fn a_read_where_there_is_no_registry_creates_nothing() {
    let user = User::new();
    let empty = tempfile::tempdir().expect("temp dir");
    fs::create_dir(empty.path().join(".git")).expect(".git");
    fs::write(empty.path().join("a.sh"), "echo hi\n").expect("writes");
    let before = tree(empty.path());
    for args in [
        &["list"][..],
        &["get", "SEC-RUL-001"],
        &["history", "SEC-RUL-001"],
        &["stats"],
        &["export"],
        &["lint", "--registered", "."],
    ] {
        let (code, stderr) = user.fail(empty.path(), args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("no registry in "), "{args:?}: {stderr}");
    }
    for args in [
        &["lint", "."][..],
        &["predict", "--title", "Block SSH"],
        &["info"],
        &["plugins"],
    ] {
        user.ok(empty.path(), args);
    }
    assert_eq!(tree(empty.path()), before, "a read created files");
}

#[test]
fn a_found_configuration_is_refused_code_and_outside_paths_until_trusted() {
    let user = User::new();
    let (repo, sub) = repository();
    let config = repo.path().join("registry.toml");
    let shipped = fs::read_to_string(&config).expect("reads");
    let library = format!(
        "{}storage_redb{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for (extra, key) in [
        ("plugin_dir = \"/tmp\"\n".to_owned(), "`plugin_dir`"),
        ("data_dir = \"../elsewhere\"\n".to_owned(), "`data_dir = "),
        (String::new(), "`storage.library = "),
    ] {
        let text = if extra.is_empty() {
            shipped.replace(
                "library = \"storage-redb\"",
                &format!("library = \"{library}\""),
            )
        } else {
            // Top-level keys go before the first table.
            format!("{extra}{shipped}").replacen("data_dir = \".registry\"\n", "", 1)
        };
        assert_ne!(text, shipped);
        fs::write(&config, &text).expect("writes");
        let (code, stderr) = user.fail(&sub, &["list"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(key), "{key}: {stderr}");
        assert!(stderr.contains("registry trust"), "{stderr}");
    }
    // A data directory inside the repository is fine, and so is naming a built-in.
    fs::write(
        &config,
        shipped.replace("data_dir = \".registry\"", "data_dir = \"state/registry\""),
    )
    .expect("writes");
    user.ok(&sub, &["add", "--title", "Inside the repository"]);
    assert!(repo.path().join("state/registry/.gitignore").is_file());

    // Others could change it: refused, whatever it says.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).expect("chmod");
        let (code, stderr) = user.fail(&sub, &["list"]);
        assert_eq!(code, 2);
        assert!(stderr.contains("is writable by everyone"), "{stderr}");
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    // Once the user trusts it, it may choose where its data lives.
    fs::write(
        &config,
        shipped.replace("data_dir = \".registry\"", "data_dir = \"../elsewhere\""),
    )
    .expect("writes");
    user.fail(&sub, &["add", "--title", "Outside"]);
    user.ok(&sub, &["trust", &config.display().to_string()]);
    let info = user.json(&sub, &["info"]);
    assert_eq!(info["config_trusted"], true, "{info}");
    user.ok(&sub, &["add", "--title", "Outside"]);
    let outside = repo.path().parent().expect("parent").join("elsewhere");
    assert!(outside.join(".gitignore").is_file());
    fs::remove_dir_all(&outside).expect("cleans up");
}

#[test]
fn a_configuration_above_the_repository_root_is_not_used() {
    let user = User::new();
    let above = tempfile::tempdir().expect("temp dir");
    fs::write(
        above.path().join("registry.toml"),
        "[schema]\nscope = [\"ONLY\"]\n",
    )
    .expect("writes");
    let repo = above.path().join("repo");
    fs::create_dir_all(repo.join(".git")).expect(".git");
    let info = user.json(&repo, &["info"]);
    assert_eq!(info["config"], Value::Null, "{info}");
    assert_eq!(info["config_source"], "defaults");
    // Without the repository boundary it is found.
    let plain = above.path().join("plain");
    fs::create_dir(&plain).expect("dir");
    let info = user.json(&plain, &["info"]);
    assert_eq!(info["config_source"], "discovered", "{info}");
}
