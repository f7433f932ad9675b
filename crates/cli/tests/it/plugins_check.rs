//! `registry plugins check`: a usable plugin passes with exit code 0; every way a library can be
//! unusable gives exit code 2, a report on stdout and one line on stderr, with the loader's full
//! report only for `--verbose`.

use std::process::Output;

use serde_json::Value;

use crate::{Scratch, lib_path};

fn path_of(name: &str) -> String {
    lib_path(name).display().to_string()
}

/// `plugins check` with `--format json` on a library that must be unusable: the exit code must
/// be 2 and stdout the report.
fn unusable_json(s: &Scratch, args: &[&str]) -> Value {
    let mut all = vec!["plugins", "check"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let out = s.run(&all);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["usable"], false);
    assert!(
        !report["reason"].as_str().expect("a reason").contains('\n'),
        "{report}"
    );
    report
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

#[test]
fn default_plugins_are_usable() {
    let s = Scratch::new();
    for (name, stage) in [
        ("validator-schema", "validator"),
        ("storage-redb", "storage"),
    ] {
        let text = s.ok(&["plugins", "check", &path_of(name)]);
        assert!(text.contains(&format!("plugin    {name} ")), "{text}");
        assert!(
            text.contains(&format!(
                "abi       compatible with registry-abi {}",
                registry_abi::ABI_VERSION
            )),
            "{text}"
        );
        assert!(text.contains(&format!("stages    {stage}\n")), "{text}");
        assert!(text.contains(&format!("smoke     {stage} ok\n")), "{text}");
        assert!(text.ends_with("usable    yes\n"), "{text}");

        let report = s.json(&["plugins", "check", &path_of(name)]);
        assert_eq!(report["loadable"], true);
        assert_eq!(report["name"], name);
        assert_eq!(report["abi_version_expected"], registry_abi::ABI_VERSION);
        assert_eq!(report["abi_compatible"], true);
        assert_eq!(report["stages"], serde_json::json!([stage]));
        assert_eq!(
            report["checks"],
            serde_json::json!([{"stage": stage, "ok": true, "error": null}])
        );
        assert_eq!(report["usable"], true);
        assert_eq!(report["reason"], Value::Null);
    }
}

#[test]
fn a_plugin_name_is_looked_up_in_the_plugin_directory() {
    let s = Scratch::new();
    let report = s.json(&["plugins", "check", "router-hash", "--stage", "router"]);
    assert_eq!(report["path"], path_of("router-hash"));
    assert_eq!(report["usable"], true);
    // The listing of the configured stages is still `plugins` alone.
    assert!(s.json(&["plugins"]).is_array());
}

#[test]
fn a_library_that_is_not_a_plugin() {
    let s = Scratch::new();
    let path = path_of("fixture-not-a-plugin");
    let (code, msg) = s.fail(&["plugins", "check", &path]);
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        format!("{path}: not a registry plugin: the library exports no plugin root module")
    );
    let report = unusable_json(&s, &[&path]);
    assert_eq!(report["loadable"], false);
    assert_eq!(report["name"], Value::Null);
    assert_eq!(
        report["abi_compatible"],
        Value::Null,
        "not a plugin: no ABI to judge"
    );
    assert_eq!(report["checks"], serde_json::json!([]));
}

#[test]
fn a_file_that_is_not_a_library() {
    let s = Scratch::new();
    s.write("libx.so", "this is text, not a shared library\n");
    let (code, msg) = s.fail(&["plugins", "check", "libx.so"]);
    assert_eq!(code, 2);
    assert!(
        msg.starts_with("libx.so: not a loadable library: "),
        "{msg}"
    );
    let out = s.run(&["plugins", "check", "libx.so"]);
    assert!(stdout(&out).contains("usable    no"), "{}", stdout(&out));
    // A missing file says so, and how to get one.
    let (code, msg) = s.fail(&["plugins", "check", "./nothing.so"]);
    assert_eq!(code, 2);
    assert!(
        msg.starts_with("./nothing.so: library not found (build the plugins"),
        "{msg}"
    );
}

#[test]
fn a_plugin_whose_constructor_fails() {
    let s = Scratch::new();
    let path = path_of("fixture-faulty");
    let (code, msg) = s.fail(&[
        "plugins",
        "check",
        &path,
        "--stage-config",
        r#"{"fail_init": true}"#,
    ]);
    assert_eq!(code, 2);
    assert_eq!(
        msg,
        format!("{path}: validator: cannot start: fixture refuses to start")
    );
    let report = unusable_json(&s, &[&path, "--stage-config", r#"{"fail_init": true}"#]);
    assert_eq!(report["loadable"], true);
    assert_eq!(report["abi_compatible"], true);
    assert_eq!(
        report["checks"],
        serde_json::json!([{
            "stage": "validator",
            "ok": false,
            "error": "cannot start: fixture refuses to start"
        }])
    );

    // A constructor that panics is caught in the plugin and reported, not a crash
    // (`Scratch::fail` rejects a panic report on stderr).
    let (code, msg) = s.fail(&[
        "plugins",
        "check",
        &path,
        "--stage-config",
        r#"{"panic_init": true}"#,
    ]);
    assert_eq!(code, 2);
    assert!(
        msg.contains("validator: cannot start: panicked at "),
        "{msg}"
    );
    assert!(msg.ends_with("fixture panics while starting"), "{msg}");
}

#[test]
fn a_plugin_that_breaks_its_contract() {
    let s = Scratch::new();
    let path = path_of("fixture-faulty");
    // With its defaults the fixture accepts every request, even one the schema forbids.
    let (code, msg) = s.fail(&["plugins", "check", &path]);
    assert_eq!(code, 2);
    assert!(
        msg.starts_with(&format!(
            "{path}: validator: validator contract broken: check_requests must report an error"
        )),
        "{msg}"
    );
    // A panic during a call fails the check naming the call.
    let report = unusable_json(&s, &[&path, "--stage-config", r#"{"panic_on_call": true}"#]);
    let error = report["checks"][0]["error"].as_str().expect("error");
    assert!(
        error.contains("check_requests failed (Panic)")
            && error.contains("fixture panics while checking"),
        "{error}"
    );
}

#[test]
fn an_incompatible_abi_version_says_rebuild() {
    let s = Scratch::new();
    let path = path_of("fixture-abi-version");
    let expected = format!(
        "built against registry-abi 0.0.1, host expects {}: rebuild the plugin",
        registry_abi::ABI_VERSION
    );
    let (code, msg) = s.fail(&["plugins", "check", &path]);
    assert_eq!(code, 2);
    assert_eq!(msg, format!("{path}: {expected}"));
    let out = s.run(&["plugins", "check", &path]);
    assert!(
        stdout(&out).contains(&format!("abi       incompatible: {expected}\n")),
        "{}",
        stdout(&out)
    );
    let report = unusable_json(&s, &[&path]);
    assert_eq!(report["loadable"], false);
    assert_eq!(report["abi_compatible"], false);
    assert_eq!(report["reason"], expected);
}

#[test]
fn verbose_adds_the_layout_report() {
    let s = Scratch::new();
    let path = path_of("fixture-abi-layout");
    let (code, msg) = s.fail(&["plugins", "check", &path]);
    assert_eq!(code, 2);
    assert!(msg.ends_with(": rebuild the plugin"), "{msg}");
    let short = s.run(&["plugins", "check", &path]);
    let short = String::from_utf8_lossy(&short.stderr).into_owned();
    assert!(
        short.ends_with("(run with --verbose for details)\n"),
        "{short}"
    );
    let long = s.run(&["plugins", "check", &path, "--verbose"]);
    assert_eq!(long.status.code(), Some(2));
    let long = String::from_utf8_lossy(&long.stderr).into_owned();
    // `--verbose` first says which configuration and data directory the command uses.
    let (said, long) = long.split_at(long.find("error: ").expect("an error"));
    assert!(
        said.starts_with("config: built-in defaults\ndata dir: "),
        "{said}"
    );
    assert!(long.starts_with(&format!("error: {msg}\n")), "{long}");
    assert!(long.lines().count() > 5, "{long}");
    assert!(long.contains("Type Layout"), "{long}");
}

#[test]
fn a_stage_the_library_does_not_provide() {
    let s = Scratch::new();
    let report = unusable_json(&s, &[&path_of("storage-redb"), "--stage", "cache"]);
    assert_eq!(report["stages"], serde_json::json!(["storage"]));
    assert_eq!(
        report["reason"],
        "cache: the library provides no cache stage (it provides: storage)"
    );
}

#[test]
fn a_stage_config_that_is_not_an_object_is_a_usage_error() {
    let s = Scratch::new();
    let path = path_of("validator-schema");
    for config in ["{oops", "[1, 2]"] {
        let (code, msg) = s.fail(&["plugins", "check", &path, "--stage-config", config]);
        assert_eq!(code, 1, "{msg}");
        assert!(msg.starts_with("--stage-config "), "{msg}");
    }
}
