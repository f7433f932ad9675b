//! The conformance crate's own tests: each suite returns a [`Violation`] naming the rule a
//! broken stage breaks, and never panics doing so; and (feature `library`) the runner reports a
//! plugin's panics as errors without a panic reaching this process.

mod broken;
#[cfg(feature = "library")]
mod library;

use std::panic::{AssertUnwindSafe, catch_unwind};

use registry_conformance::{Violation, ViolationKind};
use registry_core::StageKind;

/// Runs a suite that must fail, and returns its violation: checks that it returned rather than
/// panicked, that it is a broken rule of `stage`, and that the rule contains `rule`.
fn violation(
    stage: StageKind,
    rule: &str,
    suite: impl FnOnce() -> Result<(), Violation>,
) -> Violation {
    let Ok(result) = catch_unwind(AssertUnwindSafe(suite)) else {
        panic!("the suite panicked instead of returning a violation naming {rule:?}");
    };
    let v = result.expect_err("the suite passed a broken implementation");
    assert_eq!(
        (v.stage(), v.kind()),
        (stage, ViolationKind::Contract),
        "{v}"
    );
    assert!(
        v.rule().contains(rule),
        "expected a rule naming {rule:?}, got {v}"
    );
    assert_eq!(
        v.to_string(),
        format!("{stage} contract broken: {}", v.rule())
    );
    assert!(!v.to_string().contains('\n'), "not one line: {v}");
    v
}
