//! The conformance suite of [`Generator`], panicking at the first broken rule: see
//! [`registry_conformance::generator`] for the rules.

use registry_conformance::generator as suite;
use registry_core::{Generator, Schema};

use crate::passed;

/// Runs every check against `generator`, with requests and drafts built from `schema`'s values
/// (see [`registry_conformance::generator::check`]).
///
/// # Panics
/// With a message naming the rule, at the first contract the generator breaks.
#[track_caller]
pub fn check(generator: &dyn Generator, schema: &Schema) {
    passed(suite::check(generator, schema));
}
