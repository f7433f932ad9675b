//! Errors: what a stage reports (a code and a message, so it can cross a library boundary) and
//! what the pipeline reports to its caller.

use std::fmt;

use serde::Serialize;

use crate::header::EntryId;
use crate::request::RequestError;

/// The five pipeline stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageKind {
    Cache,
    Generator,
    Validator,
    Storage,
    Router,
}

impl StageKind {
    pub const ALL: [StageKind; 5] = [
        StageKind::Cache,
        StageKind::Generator,
        StageKind::Validator,
        StageKind::Storage,
        StageKind::Router,
    ];

    /// The stage's name, as in `registry.toml` section headers.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Cache => "cache",
            StageKind::Generator => "generator",
            StageKind::Validator => "validator",
            StageKind::Storage => "storage",
            StageKind::Router => "router",
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of failure a stage reports. Stable numbers: they cross the plugin boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u32)]
pub enum ErrorCode {
    /// The input is wrong; retrying it unchanged fails again.
    Invalid = 1,
    NotFound = 2,
    /// Someone else changed the data first (a stale revision, an id already taken).
    Conflict = 3,
    /// The plugin's configuration is wrong.
    Config = 4,
    /// The backing store failed (I/O, corruption, a lock held by another process).
    Storage = 5,
    /// A resource is temporarily unavailable; a retry may succeed.
    Unavailable = 6,
    /// The plugin panicked; the call had no effect the plugin could guarantee.
    Panic = 7,
    /// Anything else: a bug in the plugin.
    Internal = 8,
    /// A store the registry has is gone or empty (a shard file deleted or truncated to zero
    /// bytes, a shard's keys removed): refused until the operator restores it, never recreated.
    Missing = 9,
}

impl ErrorCode {
    /// Maps a number from the boundary back to a code; unknown numbers become `Internal`.
    pub fn from_u32(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::Invalid,
            2 => ErrorCode::NotFound,
            3 => ErrorCode::Conflict,
            4 => ErrorCode::Config,
            5 => ErrorCode::Storage,
            6 => ErrorCode::Unavailable,
            7 => ErrorCode::Panic,
            9 => ErrorCode::Missing,
            _ => ErrorCode::Internal,
        }
    }
}

/// An error reported by a stage: a code and a one-line message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    pub code: ErrorCode,
    pub message: String,
}

impl StageError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StageError {
            code,
            message: message.into(),
        }
    }
}

pub type StageResult<T> = Result<T, StageError>;

/// How bad a validation problem is. Errors stop an entry from being stored; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem a validator found in one item of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Index of the item in the batch the validator was given.
    #[serde(skip)]
    pub item: usize,
    pub severity: Severity,
    /// A stable, kebab-case code, e.g. `unknown-scope`.
    pub code: String,
    /// The field or key the problem is about, e.g. `scope` or `config.dashboard.title`.
    pub field: String,
    pub message: String,
}

/// What the pipeline reports for a request, an id or an update it cannot complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Validation failed; holds every problem found (at least one error).
    #[error("{}", first_problems(.0))]
    Invalid(Vec<Problem>),
    #[error("no entry with id {0}")]
    NotFound(EntryId),
    #[error("{stage}: {error}")]
    Stage { stage: StageKind, error: StageError },
    #[error("entry {0} was changed by someone else meanwhile: retry")]
    Conflict(EntryId),
    /// The stored entry fails an integrity check (its content does not match its hash, say).
    #[error("{0}")]
    Damaged(crate::integrity::Damaged),
    /// A change the entry's lifecycle does not allow.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

/// A change refused because of where an entry is in its life ([`crate::Lifecycle`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Only an active entry's content can change.
    #[error("entry {id} is {state}: revive it before changing it")]
    NotActive {
        id: crate::EntryId,
        state: crate::Lifecycle,
    },
    #[error("cannot merge entry {0} into itself")]
    IntoItself(crate::EntryId),
    /// A merge target must be active, so merges never form a chain or a cycle.
    #[error("cannot merge into entry {target}: it is {state}")]
    TargetNotActive {
        target: crate::EntryId,
        state: crate::Lifecycle,
    },
    /// Merges from the entry lead through more entries than are ever followed.
    #[error(
        "merges from entry {0} lead through more than {max} entries: revive one of them",
        max = crate::MAX_MERGE_HOPS
    )]
    MergeChain(crate::EntryId),
}

impl Error {
    pub fn stage(stage: StageKind, error: StageError) -> Error {
        Error::Stage { stage, error }
    }

    /// Whether the caller's input is at fault (as opposed to configuration, plugins or storage).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Request(_)
            | Error::Invalid(_)
            | Error::NotFound(_)
            | Error::Conflict(_)
            | Error::Lifecycle(_) => true,
            Error::Damaged(_) => false,
            Error::Stage { error, .. } => {
                matches!(error.code, ErrorCode::Invalid | ErrorCode::NotFound)
            }
        }
    }
}

fn first_problems(problems: &[Problem]) -> String {
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.message.clone())
        .collect();
    match errors.len() {
        0 => "invalid entry".to_owned(),
        _ => errors.join("; "),
    }
}
