//! [`Violation`]: what a conformance suite returns when a stage breaks one of its rules, or when
//! the suite itself cannot run.

use std::fmt;

use registry_core::StageKind;

/// Why a suite stopped: the first rule the stage broke, or what kept the suite from running.
///
/// Its text is one line: `{stage} contract broken: {rule}` for a broken rule (the message the
/// suites panicked with before they returned errors), `{stage} suite cannot run: {reason}` when
/// the suite's own environment failed it (no temporary directory, a schema the suite cannot draw
/// valid samples from). Line breaks in what a stage reported (an error message quoted in the
/// rule) are folded into spaces, so the text fits a one-line report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    stage: StageKind,
    kind: ViolationKind,
    rule: String,
}

/// Whose fault a [`Violation`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ViolationKind {
    /// The stage broke a rule of its contract.
    Contract,
    /// The suite could not run: its environment or its input failed it, not the stage.
    CannotRun,
}

impl Violation {
    /// The stage broke `rule`: a sentence naming what the stage must do and what it did.
    pub fn contract(stage: StageKind, rule: impl fmt::Display) -> Violation {
        Violation {
            stage,
            kind: ViolationKind::Contract,
            rule: one_line(&rule.to_string()),
        }
    }

    /// The suite of `stage` could not run, for `reason`; the stage was not at fault.
    pub fn cannot_run(stage: StageKind, reason: impl fmt::Display) -> Violation {
        Violation {
            stage,
            kind: ViolationKind::CannotRun,
            rule: one_line(&reason.to_string()),
        }
    }

    /// The stage whose suite stopped. The validator suite reports a generator that fails to
    /// render the entries it needs as a violation of the generator's contract.
    pub fn stage(&self) -> StageKind {
        self.stage
    }

    /// Whether the stage broke a rule or the suite could not run.
    pub fn kind(&self) -> ViolationKind {
        self.kind
    }

    /// The rule broken (or why the suite could not run), on one line, without the stage.
    pub fn rule(&self) -> &str {
        &self.rule
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ViolationKind::Contract => write!(f, "{} contract broken: {}", self.stage, self.rule),
            ViolationKind::CannotRun => write!(f, "{} suite cannot run: {}", self.stage, self.rule),
        }
    }
}

impl std::error::Error for Violation {}

/// The lines of `text`, trimmed and joined by spaces.
fn one_line(text: &str) -> String {
    if !text.contains(['\n', '\r']) {
        return text.to_owned();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_as_the_suites_always_said_it() {
        let v = Violation::contract(StageKind::Router, "route with 0 shards must fail");
        assert_eq!(
            v.to_string(),
            "router contract broken: route with 0 shards must fail"
        );
        assert_eq!(
            (v.stage(), v.kind(), v.rule()),
            (
                StageKind::Router,
                ViolationKind::Contract,
                "route with 0 shards must fail"
            )
        );
        let v = Violation::cannot_run(StageKind::Storage, "no temporary directory");
        assert_eq!(
            v.to_string(),
            "storage suite cannot run: no temporary directory"
        );
    }

    #[test]
    fn is_one_line_whatever_the_stage_said() {
        let v = Violation::contract(
            StageKind::Validator,
            "check_requests failed (Storage): first line\r\n  second line\n\n",
        );
        assert_eq!(
            v.to_string(),
            "validator contract broken: check_requests failed (Storage): first line second line"
        );
    }
}
