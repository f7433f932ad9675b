//! The conformance suite of [`Cache`], panicking at the first broken rule: see
//! [`registry_conformance::cache`] for the rules.

use registry_conformance::cache as suite;
use registry_core::Cache;

use crate::passed;

/// Runs every check against caches built by `make`, each check on a new one (see
/// [`registry_conformance::cache::check`]).
///
/// # Panics
/// With a message naming the rule, at the first contract the cache breaks.
#[track_caller]
pub fn check(make: &dyn Fn() -> Box<dyn Cache>) {
    passed(suite::check(&|| Ok(make())));
}

/// Runs a short subset of [`check`]: entries put are found by both keys, in the order asked.
///
/// # Panics
/// As [`check`], at the first contract the cache breaks in the subset.
#[track_caller]
pub fn smoke(make: &dyn Fn() -> Box<dyn Cache>) {
    passed(suite::smoke(&|| Ok(make())));
}
