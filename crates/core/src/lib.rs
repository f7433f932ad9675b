//! The registry's domain and its pipeline, in plain Rust.
//!
//! A request (a title, the header fields already known, free-form context) goes through five stages:
//! a [`Cache`] and a [`Storage`] lookup by fingerprint make registration idempotent, a [`Generator`]
//! fills the missing header fields and renders the YAML config, a [`Validator`] checks both against
//! the [`Schema`], a [`Router`] picks the storage shard, and the [`Storage`] allocates the id and
//! keeps the entry with its history. [`Pipeline`] drives them.
//!
//! Design decision: this crate knows nothing about `abi_stable`, dynamic loading or `registry.toml`.
//! Stage traits are ordinary object-safe Rust traits, batch-first (a slice in, a caller-owned `Vec`
//! out), so the same implementation can be linked statically (tests, benches) or exported from a
//! plugin library by `registry-abi`. An `async` stage API was rejected: a plugin library has its own
//! copy of every runtime, so futures cannot cross the boundary; the host owns concurrency instead.

mod entry;
mod entry_ref;
mod error;
mod header;
pub mod integrity;
pub mod layout;
pub mod nesting;
mod pipeline;
mod request;
pub mod rules;
mod schema;
mod stage;
pub mod time;

pub use entry::{Author, ContentHash, Entry, Fingerprint, Lifecycle, PURGED, Provenance, Purge};
pub use entry_ref::{AuthorRef, EntryRef, LifecycleRef, PurgeRef, refill_author, refill_purge};
pub use error::{
    Error, ErrorCode, LifecycleError, Problem, Severity, StageError, StageKind, StageResult,
};
pub use header::{
    EntryId, Field, Fields, Header, HeaderError, HeaderForm, RawHeader, find_header, is_version,
    normal_version,
};
pub use integrity::Damaged;
pub use pipeline::{
    Added, CallTiming, ChangeKind, Changes, CheckReport, Finding, MAX_MERGE_HOPS, Observer, Page,
    Pipeline, Purged, Renamed, Repaired, SHARD_PAGE, ShardMigration, StageCall, Stages, Turn,
    Turns, Updated,
};
pub use request::{
    Context, ContextRef, FINGERPRINT_DERIVATION, MAX_CONTEXT_PAIRS, MAX_CONTEXT_VALUE_BYTES,
    MAX_TITLE_BYTES, Request, RequestError, RequestRef, check_title, copy_into, derive_fingerprint,
    is_bidi_control, is_line_breaking,
};
pub use schema::{EVERY_SCOPE, Schema, SchemaError};
pub use stage::{
    Cache, CacheKey, CacheStats, Draft, DraftRef, Evaluation, FieldReport, FromConfig, Generator,
    Guess, GuessRef, Inserted, ListQuery, Meta, NotLoaded, Prediction, PredictionRef, Restored,
    Router, Sequence, Setup, Source, Storage, TrainOptions, TrainReport, UnavailableShard,
    Validator, lend_found,
};
pub use time::Timestamp;
