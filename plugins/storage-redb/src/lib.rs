//! A [`registry_core::Storage`] shard kept in one redb file.
//!
//! Each shard is `{data_dir}/shard-{shard:03}.redb`: an embedded, transactional B-tree store, so
//! the registry needs no server and a batch of inserts costs one `fsync`. Every table key starts
//! with the id prefix and sequence number, which grow together, so inserts land at the end of the
//! trees; random keys (hashes) were measured about 15 times slower and are kept to the one table
//! that needs them, the fingerprint lookup.
//!
//! Design decisions:
//! - Entries are stored in a hand-written, versioned binary format (module `codec`) rather than through
//!   a serialization crate, so the bytes on disk depend on nothing but this crate.
//! - redb stays behind the `Storage` trait and inside this crate: its next major version changes
//!   the API, and only this crate will have to follow.
//! - Sequence numbers are allocated with non-durable commits; see [`RedbStorage`] for why that
//!   never lets two stored entries share an id.

mod codec;
mod storage;

use serde::Deserialize;

pub use storage::{Encoded, RedbStorage};

/// The `[storage.config]` table of `registry.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Memory for redb's page cache, in MiB, for all shards together: each shard gets
    /// `cache_size_mb / shards`, at least 4. Default 32.
    ///
    /// The cache keeps recently used pages in memory; a registry loading entries in bulk reads
    /// few pages back, and measured as fast with 16 MiB per shard as with 64, so the default
    /// keeps the process small. The operating system's file cache still holds the rest.
    pub cache_size_mb: u64,
    /// How long to wait, in milliseconds, for another process that holds a shard's file to let go
    /// of it before giving up with code `Unavailable`. Default 10000.
    pub lock_timeout_ms: u64,
    /// Whether `insert` and `update` wait for the data to reach the disk (one `fsync` per batch)
    /// before returning. Default `true`.
    ///
    /// With `false`, commits are still atomic and consistent, and a clean shutdown writes them
    /// out, but a crash or power loss rolls the shard back to its last durable state (the last
    /// clean shutdown): every entry stored since then is lost, together with its ids, so the ids
    /// may later be handed out again to other entries.
    pub durable: bool,
    /// How many newly registered fingerprints a shard keeps pending (appended to a log and
    /// held in memory, about 100 bytes each) before merging them into its fingerprint index in
    /// one pass. Larger values make bulk loads faster on large registries and cost memory.
    /// Default 65536.
    pub fingerprint_merge: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cache_size_mb: 32,
            lock_timeout_ms: 10_000,
            durable: true,
            fingerprint_merge: 65_536,
        }
    }
}
