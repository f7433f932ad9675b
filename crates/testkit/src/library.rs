//! The conformance suites run through a built plugin library, as the host will load it: the
//! runner of `registry-conformance` (see [`registry_conformance::library`]), here so that plugin
//! tests find every suite in one crate.
//!
//! These return `Err` with one line rather than panicking, as the conformance crate's do: a test
//! decides how to fail (`.unwrap_or_else(|e| panic!("{e}"))`), and can check that a broken
//! library fails with the right reason.

pub use registry_conformance::library::{check, check_with_schema, smoke, smoke_with_schema};
