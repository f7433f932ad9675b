//! One conformance suite per stage, returning the first rule a stage breaks as a [`Violation`].
//!
//! - [`storage`], [`cache`], [`router`], [`generator`] and [`validator`] each hold a `check`
//!   function that drives an implementation through the contracts written on its trait in
//!   `registry-core` and returns `Err(Violation)`, naming the rule, at the first one broken.
//! - [`sample`] builds requests, drafts and entries the way the pipeline builds them, and
//!   [`reference`](mod@reference) holds the generator whose configs the suites treat as valid.
//! - `library` (cargo feature `library`) runs the same suites through a built plugin library,
//!   loaded as the host loads it: `registry plugins check` runs it, and so do plugin tests.
//!
//! Design decision: the suites return `Result` and never panic, so a program can run them on a
//! plugin it was handed (`registry plugins check`) with no panic hook and no `catch_unwind`,
//! and without linking test code: this crate holds the suites and what they need, nothing else.
//! Plugin tests use them through `registry-testkit`, whose functions of the same names are thin
//! wrappers that panic with the [`Violation`]'s text, so a failure reads like any failed
//! assertion. Rejected: suites that panic, run by the binary under `catch_unwind` with a
//! process-wide panic hook to keep the panics quiet (how it was done before): the hook is global
//! to the process, and the binary had to link the testkit's doubles and `tempfile` to get at the
//! suites. A suite stops at the first broken rule rather than listing them all; each rule is
//! small enough to fix and rerun.
//!
//! The test doubles (memory stages, fault injection) stay in `registry-testkit`, which depends on
//! this crate; this crate depends on neither it nor `tempfile` (see `scratch.rs` for the
//! temporary directories the storage suite and the library runner need).

/// Fails a suite: returns a [`Violation`] of `$stage` naming the rule broken.
macro_rules! fail {
    ($stage:expr, $($message:tt)+) => {
        return Err($crate::Violation::contract($stage, format!($($message)+)))
    };
}

/// Fails a suite, as [`fail!`], unless `$cond` holds.
macro_rules! ensure {
    ($stage:expr, $cond:expr, $($message:tt)+) => {
        if !$cond {
            fail!($stage, $($message)+);
        }
    };
}

pub mod cache;
pub mod generator;
#[cfg(feature = "library")]
pub mod library;
pub mod reference;
pub mod router;
pub mod sample;
mod scratch;
pub mod storage;
pub mod validator;
mod violation;

use std::fmt::Debug;

use registry_core::{StageKind, StageResult};

pub use violation::{Violation, ViolationKind};

/// The value of a stage call the suite needs to succeed, or a violation naming the call.
fn ok<T>(stage: StageKind, call: &str, result: StageResult<T>) -> Result<T, Violation> {
    match result {
        Ok(value) => Ok(value),
        Err(e) => fail!(stage, "{call} failed ({:?}): {}", e.code, e.message),
    }
}

/// A sample the suite needs, or a violation saying the suite cannot run without it.
fn sampled<T>(stage: StageKind, sample: Result<T, String>) -> Result<T, Violation> {
    sample.map_err(|e| Violation::cannot_run(stage, e))
}

/// Calls a batch method that must push exactly one value per input onto `out`, after what `out`
/// already holds, and returns the values pushed. The call starts with `filler` in `out`, so an
/// implementation that clears the caller's vector is caught.
fn one_each<T>(
    stage: StageKind,
    call: &str,
    inputs: usize,
    filler: T,
    f: impl FnOnce(&mut Vec<T>) -> StageResult<()>,
) -> Result<Vec<T>, Violation> {
    let mut out = vec![filler];
    ok(stage, call, f(&mut out))?;
    ensure!(
        stage,
        out.len() == inputs + 1,
        "{call} must push exactly one value per input onto the output and keep what it held: \
         given {inputs} inputs and an output holding 1 value, it left {} values",
        out.len()
    );
    out.remove(0);
    Ok(out)
}

/// Calls a method that pushes any number of values onto `out`, and returns them. The call starts
/// with `filler` in `out`, which must still be there first.
fn appended<T: Clone + PartialEq + Debug>(
    stage: StageKind,
    call: &str,
    filler: T,
    f: impl FnOnce(&mut Vec<T>) -> StageResult<()>,
) -> Result<Vec<T>, Violation> {
    let mut out = vec![filler.clone()];
    ok(stage, call, f(&mut out))?;
    ensure!(
        stage,
        out.first() == Some(&filler),
        "{call} must push onto the output and keep what it held: the output started with \
         {filler:?} and now starts with {:?}",
        out.first()
    );
    out.remove(0);
    Ok(out)
}
