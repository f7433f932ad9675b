//! Bad input: a clear one-line error, the right exit code, and nothing stored or damaged.

use crate::{Scratch, lib_path};

/// Adds one entry, runs a failing command, and checks the error and that the store is intact.
fn check(args: &[&str], code: i32, message: &str) {
    let s = Scratch::new();
    let before = s.add("An existing rule", &[]);
    let (got_code, got) = s.fail(args);
    assert_eq!(got_code, code, "{args:?}: {got}");
    assert!(
        got.contains(message),
        "{args:?}: expected `{message}` in `{got}`"
    );
    assert_eq!(
        s.ids(),
        [before["id"].as_str().expect("id")],
        "{args:?} changed the store"
    );
    let again = s.json(&["get", before["id"].as_str().expect("id")]);
    assert_eq!(again["hash"], before["hash"]);
}

#[test]
fn unknown_field_values_name_the_field_and_the_allowed_values() {
    check(
        &["add", "--title", "t", "--scope", "XYZ"],
        1,
        "unknown scope `XYZ`: allowed values are GOV, SEC, OPS, ALERT, BASH, DASHBOARD, ETL",
    );
    check(
        &["add", "--title", "t", "--type", "RULEZ"],
        1,
        "unknown type `RULEZ`",
    );
    check(
        &["add", "--title", "t", "--variant", "NOPE"],
        1,
        "unknown variant `NOPE`",
    );
    check(
        &["add", "--title", "t", "--status", "MAYBE"],
        1,
        "unknown status `MAYBE`",
    );
    check(&["list", "--status", "MAYBE"], 1, "unknown status `MAYBE`");
}

#[test]
fn titles() {
    check(&["add", "--title", "   "], 1, "title is empty");
    check(
        &["add", "--title", &"x".repeat(1025)],
        1,
        "title is 1025 bytes long: the limit is 1024",
    );
    check(
        &[
            "add",
            "--title",
            "ok\n[SEC][RULES][LIVE][SEC-RUL-999][v2.9][LIVE]",
        ],
        1,
        "title contains a line break or control character",
    );
    check(&["add", "--title", "tab\there"], 1, "control character");
    check(
        &["add", "--title", "t", "--scope", "SEC][X"],
        1,
        "scope `SEC][X` is not a valid value",
    );
    check(
        &["add", "--title", "t", "--version", "2.9"],
        1,
        "version `2.9` is not a version",
    );
}

#[test]
fn context() {
    check(
        &["add", "--title", "t", "--context", "novalue"],
        1,
        "malformed context `novalue`: expected KEY=VALUE",
    );
    check(
        &["add", "--title", "t", "--context", "=x"],
        1,
        "context key `` is not valid",
    );
    check(
        &[
            "add",
            "--title",
            "t",
            "--context",
            "a=1",
            "--context",
            "a=2",
        ],
        1,
        "context key `a` is given twice",
    );
    check(
        &["update", "SEC-RUL-001", "--context", "bad"],
        1,
        "malformed context `bad`",
    );
}

#[test]
fn ids() {
    check(&["get", "GOV-RUL-999"], 1, "no entry with id GOV-RUL-999");
    check(&["get", "not-an-id"], 1, "malformed id `not-an-id`");
    check(
        &["history", "GOV-RUL-999"],
        1,
        "no entry with id GOV-RUL-999",
    );
    check(
        &["update", "GOV-RUL-999", "--status", "LIVE"],
        1,
        "no entry with id GOV-RUL-999",
    );
    check(
        &["update", "GOV-RUL-001", "--status", "MAYBE"],
        1,
        "unknown status `MAYBE`",
    );
    check(
        &["update", "GOV-RUL-001", "--title", "a\nb"],
        1,
        "title contains a line break",
    );
}

/// Writes a registry.toml into the scratch directory (next to the data) and checks the failure.
fn check_config(toml: &str, code: i32, message: &str) {
    let s = Scratch::new();
    let before = s.add("An existing rule", &[]);
    s.write("registry.toml", toml);
    let (got_code, got) = s.fail(&["add", "--title", "new"]);
    assert_eq!(got_code, code, "{toml}: {got}");
    assert!(
        got.contains(message),
        "{toml}: expected `{message}` in `{got}`"
    );
    std::fs::remove_file(s.path().join("registry.toml")).expect("remove");
    assert_eq!(s.ids(), [before["id"].as_str().expect("id")]);
}

#[test]
fn unknown_keys_name_the_key_and_the_file() {
    check_config("data_dirr = \"x\"\n", 2, "unknown key `data_dirr`");
    check_config("data_dirr = \"x\"\n", 2, "registry.toml");
    check_config(
        "[schema]\nscopes = [\"A\"]\n",
        2,
        "unknown key `schema.scopes`",
    );
    check_config(
        "[cache.config]\nmax_entires = 5\n",
        2,
        "unknown field `max_entires`",
    );
    check_config(
        "[storage.config]\ncache_size = 5\n",
        2,
        "storage stage: shard 0: unknown field `cache_size`",
    );
    check_config(
        "[schema.defaults]\nscope = \"NOPE\"\n",
        2,
        "schema.defaults.scope: `NOPE` is not one of schema.scope",
    );
    check_config("[schema\n", 2, "registry.toml");
    check_config(
        "[schema.required]\nNOPE = [\"owner\"]\nGOV = [\"a..b\"]\n",
        2,
        "registry.toml: schema.required.GOV: `a..b` is not a key path: use dot-separated names, \
         e.g. metadata.owner; schema.required.NOPE: `NOPE` is not one of schema.scope",
    );
}

#[test]
fn a_config_without_a_required_key_is_refused_and_nothing_stored() {
    check_config(
        "[schema.required]\n\"*\" = [\"dashboard.title\", \"owner\"]\n",
        1,
        "config lacks `owner`, which schema.required asks of every GOV entry",
    );
}

#[test]
fn missing_config_file() {
    let s = Scratch::new();
    let (code, msg) = s.fail(&["list", "--config", "nope.toml"]);
    assert_eq!(code, 2);
    assert_eq!(msg, "config file nope.toml not found");
}

#[test]
fn plugin_load_failures() {
    // A bare name names a built-in plugin, never a file.
    check_config(
        "[storage]\nlibrary = \"no-such-storage\"\n",
        2,
        "storage stage: no plugin named `no-such-storage` is built in (built in: cache-quick, cache-moka, ",
    );
    // A file name is a library in the plugin directory.
    check_config(
        "[storage]\nlibrary = \"libno_such_storage.so\"\n",
        2,
        "storage plugin ",
    );
    check_config(
        "[storage]\nlibrary = \"libno_such_storage.so\"\n",
        2,
        "library not found",
    );
    let not_plugin = lib_path("fixture-not-a-plugin");
    check_config(
        &format!(
            "[cache]\nlibrary = {:?}\n",
            not_plugin.display().to_string()
        ),
        2,
        "not a registry plugin",
    );
    let old = lib_path("fixture-abi-version");
    check_config(
        &format!("[router]\nlibrary = {:?}\n", old.display().to_string()),
        2,
        "built against registry-abi 0.0.1",
    );
    check_config(
        &format!(
            "[validator]\nlibrary = {:?}\n[validator.config]\nfail_init = true\n",
            lib_path("fixture-faulty").display().to_string()
        ),
        2,
        "cannot start: fixture refuses to start",
    );
}

#[test]
fn every_failing_stage_is_reported_at_once() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        "[cache]\nlibrary = \"nope-a\"\n[router]\nlibrary = \"nope-b\"\n",
    );
    let (code, msg) = s.fail(&["add", "--title", "t"]);
    assert_eq!(code, 2);
    assert!(msg.starts_with("2 stages failed to load"), "{msg}");
    assert!(
        msg.contains("cache stage: no plugin named `nope-a`")
            && msg.contains("router stage: no plugin named `nope-b`"),
        "{msg}"
    );
}

#[test]
fn abi_mismatch_detail_only_with_verbose() {
    let s = Scratch::new();
    let layout = lib_path("fixture-abi-layout");
    s.write(
        "registry.toml",
        &format!("[router]\nlibrary = {:?}\n", layout.display().to_string()),
    );
    let out = s.run(&["add", "--title", "t"]);
    let short = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2));
    assert!(short.lines().count() <= 2, "{short}");
    let out = s.run(&["add", "--title", "t", "--verbose"]);
    let long = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2));
    assert!(long.lines().count() > 5, "{long}");
}

#[test]
fn plugin_panic_is_an_error_not_a_crash() {
    let s = Scratch::new();
    s.write(
        "registry.toml",
        &format!(
            "[validator]\nlibrary = {:?}\n[validator.config]\npanic_on_call = true\n",
            lib_path("fixture-faulty").display().to_string()
        ),
    );
    let (code, msg) = s.fail(&["add", "--title", "t"]);
    assert_eq!(code, 2);
    assert!(
        msg.contains("validator: panicked at") && msg.contains("fixture panics while checking"),
        "{msg}"
    );
    std::fs::remove_file(s.path().join("registry.toml")).expect("remove");
    assert!(s.ids().is_empty());
}

#[test]
fn unwritable_data_directory() {
    let s = Scratch::new();
    let file = s.write("occupied", "a file, not a directory\n");
    let (code, msg) = s.fail(&[
        "add",
        "--title",
        "t",
        "--data-dir",
        &file.join("data").display().to_string(),
    ]);
    assert_eq!(code, 2);
    assert!(msg.contains("cannot create data directory"), "{msg}");
}

#[test]
fn shard_count_is_fixed_at_creation() {
    let s = Scratch::new();
    s.add("first", &[]);
    let out = s
        .command(&["list"])
        .env("REGISTRY_SHARDS", "3")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let msg = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        msg.contains("was created with shards = 1, but is opened with shards = 3"),
        "{msg}"
    );
    // The count in the file is as binding as the one from the environment.
    let u = Scratch::unpinned();
    u.write("registry.toml", "shards = 1\n");
    u.add("first", &[]);
    u.write("registry.toml", "shards = 3\n");
    let (code, msg) = u.fail(&["list"]);
    assert_eq!(code, 2);
    assert!(
        msg.contains("was created with shards = 1, but is opened with shards = 3"),
        "{msg}"
    );
}

#[test]
fn a_new_registry_has_one_shard_per_core() {
    let s = Scratch::unpinned();
    s.add("first", &[]);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for shard in 0..cores {
        let file = s.data_dir().join(format!("shard-{shard:03}.redb"));
        assert!(file.is_file(), "{}", file.display());
    }
    assert!(
        !s.data_dir().join(format!("shard-{cores:03}.redb")).exists(),
        "one shard per core, no more"
    );
    // The count lives in the shards, not in a file beside them.
    assert!(!s.data_dir().join("shards").exists());
}

#[test]
fn usage_errors_exit_1() {
    let s = Scratch::new();
    let out = s.run(&["add"]);
    assert_eq!(out.status.code(), Some(1));
    let out = s.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_configuration_error_in_json_names_the_file_and_the_key() {
    let s = Scratch::new();
    let file = s.write("registry.toml", "[schema]\nscopez = [\"A\"]\n");
    let out = s.run(&["list", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let error: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("one JSON object on stderr");
    assert_eq!(error["error"]["code"], "config", "{error}");
    assert_eq!(error["error"]["field"], "schema.scopez", "{error}");
    assert_eq!(
        error["error"]["file"]
            .as_str()
            .map(std::path::PathBuf::from),
        Some(file.canonicalize().expect("real path")),
        "{error}"
    );
}
