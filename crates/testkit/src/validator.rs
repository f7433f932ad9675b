//! The conformance suite of [`Validator`], panicking at the first broken rule: see
//! [`registry_conformance::validator`] for the rules.

use registry_conformance::validator as suite;
use registry_core::{Generator, Schema, Validator};

use crate::passed;

/// Runs every check against `validator`, with entries whose configs
/// [`KeywordlessGenerator`](crate::memory::KeywordlessGenerator) renders. Use [`check_with`]
/// when the validator expects the configs of a particular generator.
///
/// # Panics
/// With a message naming the rule, at the first contract the validator breaks.
#[track_caller]
pub fn check(validator: &dyn Validator, schema: &Schema) {
    passed(suite::check(validator, schema));
}

/// Runs every check against `validator`, with requests and entries built from `schema`'s values
/// and configs rendered by `generator`: "a valid entry" is one that generator rendered (see
/// [`registry_conformance::validator::check_with`]).
///
/// # Panics
/// With a message naming the rule, at the first contract the validator breaks, or when
/// `generator` fails to render.
#[track_caller]
pub fn check_with(validator: &dyn Validator, schema: &Schema, generator: &dyn Generator) {
    passed(suite::check_with(validator, schema, generator));
}
