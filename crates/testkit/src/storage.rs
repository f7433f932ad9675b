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

/// What `storage` lends for `ids` ([`Storage::get_lent`](registry_core::Storage::get_lent)),
/// copied into entries: a test's view of the lending path.
///
/// # Errors
/// What `get_lent` returns, or a lent context that would not make a
/// [`Context`](registry_core::Context).
pub fn lent(
    storage: &dyn registry_core::Storage,
    ids: &[registry_core::EntryId],
) -> registry_core::StageResult<Vec<Option<registry_core::Entry>>> {
    let mut lent = Vec::new();
    storage.get_lent(ids, &mut Vec::new(), &mut |views| {
        lent = views
            .iter()
            .map(|v| v.map(|v| v.to_entry()).transpose())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                registry_core::StageError::new(
                    registry_core::ErrorCode::Internal,
                    format!("lent a bad context: {e}"),
                )
            })?;
        Ok(())
    })?;
    Ok(lent)
}
