//! The runner through built libraries: a plugin that panics is an error naming the call, and no
//! panic happens in this process on the way. The libraries must be built first (`cargo build
//! --workspace`, or `cargo xtask test`); they are found next to this test binary's `deps/`.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Once;

use registry_conformance::library::{check, smoke};
use registry_core::StageKind;

fn lib(name: &str) -> PathBuf {
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

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static PANICS: Cell<u32> = const { Cell::new(0) };
}

static HOOK: Once = Once::new();

/// Runs `f` and counts the panics this thread raised meanwhile, caught or not. The hook counts
/// only on a thread that is watching and hands every other panic to the hook before it.
fn panics_during<R>(f: impl FnOnce() -> R) -> (R, u32) {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if WATCHING.with(Cell::get) {
                PANICS.with(|p| p.set(p.get() + 1));
            }
            previous(info);
        }));
    });
    PANICS.with(|p| p.set(0));
    WATCHING.with(|w| w.set(true));
    let result = f();
    WATCHING.with(|w| w.set(false));
    (result, PANICS.with(Cell::get))
}

#[test]
fn a_plugin_that_panics_is_an_error_and_no_panic_reaches_the_host() {
    let faulty = lib("fixture-faulty");
    let (result, panics) =
        panics_during(|| check(&faulty, StageKind::Validator, r#"{"panic_on_call": true}"#));
    let e = result.expect_err("a validator that panics fails its check");
    assert!(e.contains("check_requests failed (Panic)"), "{e}");
    assert!(e.contains("fixture panics while checking"), "{e}");
    assert_eq!(panics, 0, "the runner panicked on the way to {e:?}");

    let (result, panics) =
        panics_during(|| smoke(&faulty, StageKind::Validator, r#"{"panic_init": true}"#));
    let e = result.expect_err("a constructor that panics fails the check");
    assert!(e.contains("cannot start: panicked at "), "{e}");
    assert_eq!(panics, 0, "the runner panicked on the way to {e:?}");
}

#[test]
fn a_broken_rule_is_the_violations_text() {
    let (result, panics) =
        panics_during(|| check(&lib("fixture-faulty"), StageKind::Validator, "{}"));
    let e = result.expect_err("a validator that accepts everything breaks a rule");
    assert!(
        e.starts_with("validator contract broken: check_requests must report an error on field"),
        "{e}"
    );
    assert_eq!(panics, 0);
}

#[test]
fn a_conforming_plugin_passes() {
    for (stage, name) in [
        (StageKind::Router, "router-hash"),
        (StageKind::Storage, "storage-redb"),
        (StageKind::Cache, "cache-quick"),
        (StageKind::Cache, "cache-moka"),
    ] {
        let (result, panics) = panics_during(|| smoke(&lib(name), stage, "{}"));
        result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(panics, 0);
    }
}
