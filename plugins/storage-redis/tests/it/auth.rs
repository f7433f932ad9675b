//! A cluster that requires a password: credentials are never shown, and a refused password or
//! permission fails at once, with code `Config`, without retrying.
//!
//! The test starts a cluster of its own with `scripts/redis-cluster start DIR 7300 --requirepass`
//! (the script `REGISTRY_TEST_REDIS_SCRIPT` names) and stops it by the same script whatever
//! happens. Whether a call was retried is read from the server: every refused `AUTH` and every
//! refused command is an entry of the node's `ACL LOG`, whose `count` grows with each repeat.
//! Times are asserted only loosely, far below what the retries would take.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use registry_core::{ErrorCode, FromConfig, Inserted, Storage};
use registry_storage_redis::{Config, RedisStorage};
use registry_testkit::sample::{entry, fields};

use crate::{fresh_namespace, script, setup};

/// The first port of the test's own cluster (six nodes, and their bus ports 10000 up).
const BASE_PORT: u16 = 7300;

/// The password the cluster requires.
const PASSWORD: &str = "gr33n-Tea.42";

/// A wrong password as a node URL gives it, percent-encoded, and as the server receives it.
const WRONG_ENCODED: &str = "Wr0ng%40Pass%2Fword";
const WRONG_DECODED: &str = "Wr0ng@Pass/word";

/// A user allowed everything but scripts, and its password.
const NOSCRIPT_USER: &str = "noscript";
const NOSCRIPT_PASSWORD: &str = "Bl4ck-Coffee";

/// Well under the 8 s that the retries of [`config_for`] would take, and far over one try.
const LOOSE_BOUND: Duration = Duration::from_secs(4);

/// The variable that makes `wrong_password_child` run: the node URL to open.
const CHILD_VAR: &str = "REGISTRY_TEST_REDIS_AUTH_CHILD";

/// The test's own cluster, stopped by the script (and its directory removed) when dropped.
struct OwnCluster {
    script: PathBuf,
    dir: PathBuf,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let script = script();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(fresh_namespace("auth-cluster"));
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .arg(BASE_PORT.to_string())
            .args(["--requirepass", PASSWORD])
            .output()
            .expect("run the cluster script");
        // Made before checking, so that nodes started by a failed start are stopped too.
        let cluster = OwnCluster { script, dir };
        assert!(
            out.status.success(),
            "the cluster on ports {BASE_PORT}.. did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let stopped = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .output();
        if matches!(&stopped, Ok(out) if out.status.success()) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ports() -> std::ops::Range<u16> {
    BASE_PORT..BASE_PORT + 6
}

/// A connection to one node as its default user.
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://:{PASSWORD}@127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .expect("connects to a node of the test's cluster")
}

/// Empties every node's ACL log.
fn reset_acl_logs() {
    for port in ports() {
        let () = redis::cmd("ACL")
            .arg("LOG")
            .arg("RESET")
            .query(&mut node(port))
            .expect("ACL LOG RESET");
    }
}

/// How many refusals with `reason` (`auth` or `command`) the nodes logged since the reset.
fn refusals(reason: &str) -> i64 {
    let mut total = 0;
    for port in ports() {
        let log: Vec<Vec<redis::Value>> = redis::cmd("ACL")
            .arg("LOG")
            .query(&mut node(port))
            .expect("ACL LOG");
        for fields in log {
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| {
                        redis::from_redis_value_ref::<String>(&kv[0])
                            .ok()
                            .as_deref()
                            == Some(name)
                    })
                    .map(|kv| kv[1].clone())
            };
            let this = field("reason").and_then(|v| redis::from_redis_value::<String>(v).ok());
            if this.as_deref() == Some(reason) {
                total += field("count")
                    .and_then(|v| redis::from_redis_value::<i64>(v).ok())
                    .unwrap_or(1);
            }
        }
    }
    total
}

/// A config for one seed node URL that would try 8 more times, one second apart, a failure
/// taken for transient: a retry would show in the ACL log and in the time taken.
fn config_for(url: &str) -> Config {
    Config {
        nodes: vec![url.to_owned()],
        namespace: fresh_namespace("auth"),
        retries: 8,
        retry_wait_min_ms: 1000,
        retry_wait_max_ms: 1000,
        ..Config::default()
    }
}

/// Opens shard 0 of 12 with one seed node URL; returns the error and how long it took.
fn refused(url: &str) -> (registry_core::StageError, Duration) {
    let started = Instant::now();
    let err = RedisStorage::from_config(config_for(url), &setup(0, 12))
        .expect_err("the cluster refuses these credentials");
    (err, started.elapsed())
}

fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "`{secret}` is shown in: {text}");
    }
}

/// Everything a cluster that requires a password shows or refuses, on one cluster (starting
/// one takes seconds), in sequence (the ACL log counts refusals per node, not per test).
#[test]
fn credentials_are_never_shown_and_refusals_fail_at_once() {
    let _cluster = OwnCluster::start();
    let secrets = [PASSWORD, WRONG_ENCODED, WRONG_DECODED, NOSCRIPT_PASSWORD];

    // The right password works, and the storage's Debug does not show it.
    let good = format!("redis://:{PASSWORD}@127.0.0.1:{BASE_PORT}");
    let config = config_for(&good);
    let storage = RedisStorage::from_config(config.clone(), &setup(0, 1)).expect("opens");
    let e = entry(
        fields("SEC", "RULES", "LIVE", "REQUIRED"),
        1,
        "rotate the keys",
    );
    let mut out = Vec::new();
    storage
        .insert(std::slice::from_ref(&e), &mut out)
        .expect("inserts with the right password");
    assert_eq!(out, [Inserted::Created]);
    assert_hidden(&format!("{storage:?} {config:?}"), &secrets);
    assert!(
        format!("{storage:?}").contains(&format!("redis://***@127.0.0.1:{BASE_PORT}")),
        "{storage:?}"
    );

    // A wrong password, percent-encoded in the URL: one AUTH, refused, and no other try.
    reset_acl_logs();
    let (err, took) = refused(&format!(
        "redis://registry:{WRONG_ENCODED}@127.0.0.1:{BASE_PORT}"
    ));
    assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
    assert_eq!(
        err.message,
        format!(
            "cannot authenticate to redis://registry:***@127.0.0.1:{BASE_PORT}: wrong password \
             or user (authentication failed)"
        )
    );
    assert_hidden(&format!("{err:?}"), &secrets);
    assert_eq!(refusals("auth"), 1, "the refused password was tried again");
    // Retrying would have taken 8 s (8 waits of 1 s): the bound is loose, the log is exact.
    assert!(took < LOOSE_BOUND, "{took:?}");

    // The same password without a user, and several seed nodes: still one line, one try each.
    reset_acl_logs();
    let nodes: Vec<String> = ports()
        .map(|p| format!("redis://:{WRONG_ENCODED}@127.0.0.1:{p}"))
        .collect();
    let started = Instant::now();
    let err = RedisStorage::from_config(
        Config {
            nodes,
            ..config_for("unused")
        },
        &setup(0, 12),
    )
    .expect_err("wrong password");
    assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
    assert!(
        err.message.starts_with(&format!(
            "cannot authenticate to redis://***@127.0.0.1:{BASE_PORT}: wrong password"
        )),
        "{}",
        err.message
    );
    assert_eq!(err.message.matches("cannot authenticate").count(), 1);
    assert_hidden(&format!("{err:?}"), &secrets);
    assert_eq!(refusals("auth"), 6, "each seed node was asked once");
    assert!(started.elapsed() < LOOSE_BOUND);

    // No password at all.
    let (err, took) = refused(&format!("redis://127.0.0.1:{BASE_PORT}"));
    assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
    assert!(
        err.message.starts_with(&format!(
            "cannot authenticate to redis://127.0.0.1:{BASE_PORT}: the cluster requires a \
             password"
        )),
        "{}",
        err.message
    );
    assert!(err.message.contains("(NOAUTH)"), "{}", err.message);
    assert!(!err.message.contains("attempts"), "{}", err.message);
    assert!(took < LOOSE_BOUND, "{took:?}");

    // A user the cluster lets in but not run scripts: refused once, at the first script.
    for port in ports() {
        let () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(NOSCRIPT_USER)
            .arg("on")
            .arg(format!(">{NOSCRIPT_PASSWORD}"))
            .arg("~*")
            .arg("+@all")
            .arg("-@scripting")
            .query(&mut node(port))
            .expect("ACL SETUSER");
    }
    reset_acl_logs();
    let (err, took) = refused(&format!(
        "redis://{NOSCRIPT_USER}:{NOSCRIPT_PASSWORD}@127.0.0.1:{BASE_PORT}"
    ));
    assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
    assert!(
        err.message.starts_with("cannot open shard 0 (`{test-auth-"),
        "{}",
        err.message
    );
    assert!(
        err.message.ends_with(&format!(
            "`): the cluster denies user `{NOSCRIPT_USER}` a permission: this user has no \
             permissions to run the 'evalsha' command (NOPERM)"
        )),
        "{}",
        err.message
    );
    assert_hidden(&format!("{err:?}"), &secrets);
    assert_eq!(refusals("command"), 1, "the refused script was tried again");
    assert!(took < LOOSE_BOUND, "{took:?}");

    // What a process prints of a refused password: the error, its Debug, the config's Debug.
    let exe = std::env::current_exe().expect("the test binary's path");
    let child = Command::new(exe)
        .args(["auth::wrong_password_child", "--exact", "--ignored"])
        .args(["--nocapture", "--test-threads", "1"])
        .env(
            CHILD_VAR,
            format!("redis://registry:{WRONG_ENCODED}@127.0.0.1:{BASE_PORT}"),
        )
        .output()
        .expect("runs the child");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot authenticate to"), "{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert_hidden(&stderr, &secrets);
    assert_hidden(&stdout, &secrets);
}

/// Run by the test above in a child process, to see what reaches its standard error.
#[test]
#[ignore = "run by credentials_are_never_shown_and_refusals_fail_at_once"]
fn wrong_password_child() {
    let url = std::env::var(CHILD_VAR).expect("the parent test sets the URL");
    let config = config_for(&url);
    eprintln!("config: {config:?}");
    let err = RedisStorage::from_config(config, &setup(0, 12)).expect_err("wrong password");
    eprintln!("error: {err}");
    eprintln!("debug: {err:?}");
}
