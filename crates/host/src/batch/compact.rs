//! `compact`: every shard rewritten in its most compact form, and the space it gives back.

use std::path::Path;

use registry_core::Pipeline;
use serde::Serialize;

use super::bytes_on_disk;
use crate::error::Error;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Compaction {
    /// Stored revisions rewritten (with a dictionary trained afresh, for a store that has them).
    pub rewritten: u64,
    pub shards: usize,
    /// The data directory's size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Compacts every shard of `pipeline` ([`Pipeline::compact`]), measuring `data_dir` before and
/// after (once `pipeline` is dropped, so its files are complete).
///
/// # Errors
/// A shard that cannot be compacted (its storage cannot, or its store fails); the shards
/// before it are compacted, and every entry reads back as before either way.
pub fn compact(pipeline: Pipeline, data_dir: &Path) -> Result<Compaction, Error> {
    let bytes_before = bytes_on_disk(data_dir);
    let rewritten = pipeline.compact()?;
    let shards = pipeline.shards();
    drop(pipeline);
    Ok(Compaction {
        rewritten,
        shards,
        bytes_before,
        bytes_after: bytes_on_disk(data_dir),
    })
}
