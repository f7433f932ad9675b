//! The `registry` command-line contract, run against the built binary and plugin libraries
//! (build them first: `cargo xtask test` does).

mod attacks;
mod audit;
mod backup;
mod bad_input;
mod batch;
mod check;
mod commands;
mod conventions;
mod dashboard;
mod installed;
mod learn;
mod lifecycle;
mod lint;
mod live;
mod migrate;
mod panics;
mod plugins_check;
mod precommit;
mod redis_cluster;
mod serve;
mod stamp;
mod template;
mod token;
mod transfer;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A scratch directory to run `registry` in: no `registry.toml` unless a test writes one, data in
/// `./.registry`, and one shard (`REGISTRY_SHARDS=1`) unless made with [`Scratch::with_shards`] or
/// [`Scratch::unpinned`], so that ids come out in sequence whatever the machine's core count.
///
/// The `registry.toml` a test writes there is trusted by the scratch user (as if they had run
/// `registry trust` on it), so that tests may name library files in it; [`Scratch::untrusted`]
/// makes one whose configuration is a repository's like any other.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    /// The user's configuration directory (`XDG_CONFIG_HOME`), outside the scratch directory.
    home: tempfile::TempDir,
    /// The `REGISTRY_SHARDS` every command gets; `None` leaves the count to the configuration
    /// (by default one shard per core).
    shards: Option<u32>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::with_shards(1)
    }

    /// A scratch registry with `shards` shards.
    pub fn with_shards(shards: u32) -> Scratch {
        let s = Scratch::untrusted();
        let file = s.config_home().join("registry").join("trusted");
        std::fs::create_dir_all(file.parent().expect("parent")).expect("config dir");
        let config = s
            .path()
            .canonicalize()
            .expect("real path")
            .join("registry.toml");
        std::fs::write(&file, format!("{}\n", config.display())).expect("trust file");
        Scratch {
            shards: Some(shards),
            ..s
        }
    }

    /// A scratch registry with one shard whose `registry.toml`, once written, is not trusted.
    pub fn untrusted() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
            home: tempfile::tempdir().expect("temp dir"),
            shards: Some(1),
        }
    }

    /// A scratch registry whose shard count comes from its configuration alone.
    pub fn unpinned() -> Scratch {
        Scratch {
            shards: None,
            ..Scratch::with_shards(1)
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join(".registry")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_registry"));
        c.current_dir(self.path()).args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("REGISTRY_") {
                c.env_remove(k);
            }
        }
        if let Some(k) = self.shards {
            c.env("REGISTRY_SHARDS", k.to_string());
        }
        // The user's configuration (trusted plugin paths) is the scratch directory's own.
        c.env("XDG_CONFIG_HOME", self.config_home());
        c
    }

    /// Where commands find the user's configuration: `registry trust` writes there.
    pub fn config_home(&self) -> PathBuf {
        self.home.path().to_owned()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run registry")
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "registry {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs a command that must succeed with `--format json`; returns the parsed output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&args)).expect("json output")
    }

    /// Runs a command that must fail; returns the exit code and stderr, which must be one line
    /// (plus an optional hint) with no panic or backtrace.
    pub fn fail(&self, args: &[&str]) -> (i32, String) {
        let (code, error, _) = self.fail_with_stdout(args);
        (code, error)
    }

    /// As [`Scratch::fail`], returning standard output too (where `batch` and `import` report
    /// each failed line).
    pub fn fail_with_stdout(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "registry {args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
        assert!(stderr.starts_with("error: "), "not a clean error: {stderr}");
        // No Rust panic report or backtrace (a plugin's caught panic is reported as an error).
        assert!(
            !stderr.contains("thread '") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("(run with --verbose")),
            "error is not one line: {stderr}"
        );
        (
            out.status.code().expect("exit code"),
            lines[0].trim_start_matches("error: ").to_owned(),
            String::from_utf8(out.stdout).expect("utf-8 stdout"),
        )
    }

    /// Runs a command with `--format json` that must fail; returns the exit code and the one
    /// error object standard error holds.
    pub fn json_fail(&self, args: &[&str]) -> (i32, Value) {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let out = self.run(&args);
        assert!(!out.status.success(), "registry {args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
        (out.status.code().expect("exit code"), json_error(&stderr))
    }

    /// Adds a rule and returns its JSON.
    pub fn add(&self, title: &str, extra: &[&str]) -> Value {
        let mut args = vec!["add", "--title", title];
        args.extend(extra);
        self.json(&args)
    }

    /// The registered ids in order, retired and merged ones included; none when no registry
    /// was created at all.
    pub fn ids(&self) -> Vec<String> {
        let out = self.run(&["list", "--all", "--format", "json"]);
        if out.status.code() == Some(2)
            && json_error(&String::from_utf8_lossy(&out.stderr))["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no registry in "))
        {
            return Vec::new();
        }
        match self.json(&["list", "--all"]) {
            Value::Array(entries) => entries
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_owned())
                .collect(),
            other => panic!("list is not an array: {other}"),
        }
    }
}

/// The error of a command run with `--format json`: standard error's last line must be one
/// `{"error": {...}}` object (any line before it is another JSON object: a warning, a damaged
/// entry); returns what `error` holds.
pub fn json_error(stderr: &str) -> Value {
    let lines: Vec<&str> = stderr.lines().collect();
    let Some((last, before)) = lines.split_last() else {
        panic!("no error on stderr");
    };
    for line in before {
        let other: Value = serde_json::from_str(line).expect("a JSON line before the error");
        assert!(other.get("error").is_none(), "two errors: {stderr}");
    }
    let report: Value = serde_json::from_str(last).expect("the error as one JSON object");
    let error = report["error"].clone();
    assert!(error.is_object(), "{stderr}");
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{stderr}"
    );
    error
}

/// The directory holding the built `registry` binary and plugin libraries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_registry"))
        .parent()
        .expect("binary directory")
        .to_owned()
}

pub fn lib_path(name: &str) -> PathBuf {
    bin_dir().join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}
