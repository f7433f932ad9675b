//! The conformance suite of [`Storage`](registry_core::Storage), panicking at the first broken
//! rule: see [`registry_conformance::storage`] for the rules.

use registry_conformance::storage as suite;

pub use registry_conformance::storage::Make;

use crate::passed;

/// Runs every check against stores built by `make`, in fresh temporary data directories (see
/// [`registry_conformance::storage::check`]).
///
/// # Panics
/// With a message naming the rule, at the first contract the store breaks, or when `make`
/// panics.
#[track_caller]
pub fn check(make: &Make<'_>) {
    passed(suite::check(make));
}

/// Runs a short subset of [`check`]: lookups on an empty store, allocation across a reopen, and
/// inserts read back, for a one-shard registry.
///
/// # Panics
/// As [`check`], at the first contract the store breaks in the subset.
#[track_caller]
pub fn smoke(make: &Make<'_>) {
    passed(suite::smoke(make));
}
