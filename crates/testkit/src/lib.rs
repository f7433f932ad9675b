//! Tools for checking stage implementations: reference doubles, fault injection and one
//! conformance suite per stage.
//!
//! - [`memory`] holds simple, `Mutex`-based implementations of all five stage traits. Pipeline
//!   tests run on them, and they are the reference the suites are themselves tested against.
//! - [`faults`] wraps real implementations to fail on demand, so tests can show what a failure
//!   does and, above all, what it leaves intact.
//! - [`storage`], [`cache`], [`router`], [`generator`] and [`validator`] each hold a `check`
//!   function that drives an implementation through the contracts written on its trait in
//!   `registry-core` and panics, naming the rule, at the first one broken. Every plugin runs the
//!   suite of its stage in its own tests.
//! - [`sample`] builds requests, drafts and entries the way the pipeline builds them.
//! - `library` (cargo feature `library`) runs the same suites through a built plugin library,
//!   loaded as the host loads it, and reports the broken rule as an `Err` rather than a panic.
//!
//! Design decision: the suites are plain functions that panic, not a test harness or macro that
//! generates tests. A plugin calls one from an ordinary `#[test]`, and a failure reads like any
//! failed assertion. The price is that a suite stops at the first broken rule rather than
//! listing them all; each rule is small enough to fix and rerun.

/// Fails a suite: panics with the stage and the rule broken.
macro_rules! ensure {
    ($stage:expr, $cond:expr, $($message:tt)+) => {
        assert!(
            $cond,
            "{} contract broken: {}",
            $stage,
            format_args!($($message)+)
        )
    };
}

pub mod cache;
pub mod faults;
pub mod generator;
#[cfg(feature = "library")]
pub mod library;
pub mod memory;
pub mod router;
pub mod sample;
pub mod storage;
pub mod validator;

use std::fmt::Debug;

use registry_core::StageResult;

/// The value of a stage call the suite needs to succeed, or a panic naming the call.
#[track_caller]
fn ok<T>(stage: &str, call: &str, result: StageResult<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!(
            "{stage} contract broken: {call} failed ({:?}): {}",
            e.code, e.message
        ),
    }
}

/// Calls a batch method that must push exactly one value per input onto `out`, after what `out`
/// already holds, and returns the values pushed. The call starts with `filler` in `out`, so an
/// implementation that clears the caller's vector is caught.
#[track_caller]
fn one_each<T>(
    stage: &str,
    call: &str,
    inputs: usize,
    filler: T,
    f: impl FnOnce(&mut Vec<T>) -> StageResult<()>,
) -> Vec<T> {
    let mut out = vec![filler];
    ok(stage, call, f(&mut out));
    ensure!(
        stage,
        out.len() == inputs + 1,
        "{call} must push exactly one value per input onto the output and keep what it held: \
         given {inputs} inputs and an output holding 1 value, it left {} values",
        out.len()
    );
    out.remove(0);
    out
}

/// Calls a method that pushes any number of values onto `out`, and returns them. The call starts
/// with `filler` in `out`, which must still be there first.
#[track_caller]
fn appended<T: Clone + PartialEq + Debug>(
    stage: &str,
    call: &str,
    filler: T,
    f: impl FnOnce(&mut Vec<T>) -> StageResult<()>,
) -> Vec<T> {
    let mut out = vec![filler.clone()];
    ok(stage, call, f(&mut out));
    ensure!(
        stage,
        out.first() == Some(&filler),
        "{call} must push onto the output and keep what it held: the output started with \
         {filler:?} and now starts with {:?}",
        out.first()
    );
    out.remove(0);
    out
}
