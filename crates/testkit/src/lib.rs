//! Tools for testing stage implementations: reference doubles, fault injection, and the
//! conformance suites of `registry-conformance` in the form a test calls them.
//!
//! - [`memory`] holds simple, `Mutex`-based implementations of all five stage traits. Pipeline
//!   tests run on them, and they are the reference the suites are themselves tested against.
//! - [`faults`] wraps real implementations to fail on demand, so tests can show what a failure
//!   does and, above all, what it leaves intact.
//! - [`storage`], [`cache`], [`router`], [`generator`] and [`validator`] each hold a `check`
//!   function that runs the stage's suite from `registry-conformance` and panics with the
//!   [`Violation`]'s text ("storage contract broken: …"), naming the rule, at the first one
//!   broken. Every plugin runs the suite of its stage in its own tests.
//! - [`sample`] (the conformance crate's) builds requests, drafts and entries the way the
//!   pipeline builds them.
//! - [`snapshot`] compares output with a committed file, rewritten only when asked.
//! - `library` (cargo feature `library`) runs the same suites through a built plugin library,
//!   loaded as the host loads it, and reports the broken rule as an `Err` rather than a panic.
//!
//! Design decision: the suites live in `registry-conformance` and return
//! `Result<(), Violation>`, so the `registry` binary can run them on a plugin (`registry plugins
//! check`) without linking test code or catching panics; this crate keeps what only tests need.
//! Its `check` functions are thin wrappers that panic, so a plugin calls one from an ordinary
//! `#[test]` and a failure reads like any failed assertion. Rejected: making every test
//! `.unwrap()` the conformance crate's `Result` (it works, but the message then starts with
//! `called Result::unwrap() on an Err value`), and generating tests with a macro.

pub mod cache;
pub mod faults;
pub mod generator;
#[cfg(feature = "library")]
pub mod library;
pub mod memory;
pub mod router;
pub mod snapshot;
pub mod storage;
pub mod text;
pub mod validator;

pub use registry_conformance::{Violation, sample};

/// Passes, or panics with the violation's text.
#[track_caller]
fn passed(result: Result<(), Violation>) {
    if let Err(violation) = result {
        panic!("{violation}");
    }
}
