//! `library::check` and `library::smoke` against the built libraries: every default plugin
//! passes, and each way a library can fail gives one line saying why.
//!
//! The libraries must be built first (`cargo build --workspace`, or `cargo xtask test`); they are
//! found next to this test binary's `deps/` directory.

use std::path::PathBuf;

use registry_core::StageKind;
use registry_testkit::library::{check, check_with_schema, smoke};

pub(crate) fn lib(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    dir.join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

const DEFAULTS: [(StageKind, &str); 5] = [
    (StageKind::Cache, "cache-quick"),
    (StageKind::Generator, "generator-default"),
    (StageKind::Validator, "validator-schema"),
    (StageKind::Storage, "storage-redb"),
    (StageKind::Router, "router-hash"),
];

/// The error of a check that must fail; it must be one line.
fn failure(result: Result<(), String>) -> String {
    let e = result.expect_err("the check passed");
    assert!(!e.contains('\n'), "not one line: {e}");
    e
}

#[test]
fn every_default_plugin_passes_its_suite_through_its_library() {
    for (stage, name) in DEFAULTS {
        check(&lib(name), stage, "{}").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_default_plugin_passes_the_smoke_test() {
    for (stage, name) in DEFAULTS {
        smoke(&lib(name), stage, "{}").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_default_plugin_passes_with_another_schema() {
    use registry_core::{Fields, Schema};
    let list = |s: &[&str]| s.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    let schema = Schema::new(
        Fields {
            scope: list(&["NET", "IAM"]),
            kind: list(&["POLICY"]),
            variant: list(&["A", "B", "C"]),
            status: list(&["ON", "OFF"]),
        },
        "v1".into(),
        Fields::default(),
    )
    .expect("valid schema");
    check_with_schema(
        &lib("validator-schema"),
        StageKind::Validator,
        "{}",
        &schema,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn config_reaches_the_constructor() {
    check(
        &lib("cache-quick"),
        StageKind::Cache,
        r#"{"max_entries": 100}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = failure(smoke(
        &lib("cache-quick"),
        StageKind::Cache,
        r#"{"max_entires": 100}"#,
    ));
    assert!(
        e.contains("cannot start: unknown field `max_entires`"),
        "{e}"
    );
}

#[test]
fn a_validator_that_accepts_everything_breaks_a_named_rule() {
    let e = failure(check(&lib("fixture-faulty"), StageKind::Validator, "{}"));
    assert!(
        e.starts_with("validator contract broken: check_requests must report an error on field"),
        "{e}"
    );
}

#[test]
fn a_constructor_that_fails_is_reported_as_such() {
    let path = lib("fixture-faulty");
    let e = failure(smoke(&path, StageKind::Validator, r#"{"fail_init": true}"#));
    assert_eq!(
        e,
        format!(
            "validator plugin {}: cannot start: fixture refuses to start",
            path.display()
        )
    );
    let e = failure(check(
        &path,
        StageKind::Validator,
        r#"{"panic_init": true}"#,
    ));
    assert!(e.contains("cannot start: panicked at "), "{e}");
    assert!(e.ends_with("fixture panics while starting"), "{e}");
}

#[test]
fn a_panic_in_a_call_fails_the_check_naming_the_call() {
    let e = failure(check(
        &lib("fixture-faulty"),
        StageKind::Validator,
        r#"{"panic_on_call": true}"#,
    ));
    assert!(e.contains("check_requests failed (Panic)"), "{e}");
    assert!(e.contains("fixture panics while checking"), "{e}");
}

#[test]
fn libraries_that_do_not_load_give_the_hosts_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = dir.path().join("libtext.so");
    std::fs::write(&text, "not a library\n").expect("write");
    let cases = [
        (lib("no-such-plugin"), "library not found"),
        (text, "not a loadable library"),
        (
            lib("fixture-not-a-plugin"),
            "not a registry plugin: the library exports no plugin root module",
        ),
        (
            lib("fixture-abi-version"),
            "built against registry-abi 0.0.1, host expects",
        ),
        (
            lib("fixture-abi-layout"),
            "built against an incompatible registry-abi",
        ),
    ];
    for (path, reason) in cases {
        let e = failure(smoke(&path, StageKind::Validator, "{}"));
        let prefix = format!("validator plugin {}: {reason}", path.display());
        assert!(e.starts_with(&prefix), "expected {prefix:?}, got {e:?}");
    }
}

#[test]
fn a_stage_the_library_does_not_provide() {
    let e = failure(check(&lib("storage-redb"), StageKind::Cache, "{}"));
    assert!(
        e.ends_with("the library provides no cache stage (it provides: storage)"),
        "{e}"
    );
}
