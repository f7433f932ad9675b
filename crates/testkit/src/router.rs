//! The conformance suite of [`Router`], panicking at the first broken rule: see
//! [`registry_conformance::router`] for the rules.

use registry_conformance::router as suite;
use registry_core::Router;

use crate::passed;

/// Runs every check against `router` (see [`registry_conformance::router::check`]).
///
/// # Panics
/// With a message naming the rule, at the first contract the router breaks.
#[track_caller]
pub fn check(router: &dyn Router) {
    passed(suite::check(router));
}

/// Runs a short subset of [`check`]: the error for 0 shards, and 1,000 keys routed in range and
/// consistently to 1, 4 and 7 shards.
///
/// # Panics
/// As [`check`], at the first contract the router breaks in the subset.
#[track_caller]
pub fn smoke(router: &dyn Router) {
    passed(suite::smoke(router));
}
