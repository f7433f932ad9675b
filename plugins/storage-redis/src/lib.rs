//! A [`registry_core::Storage`] shard kept in Redis Cluster, shared by every registry process
//! that names the same cluster and namespace.
//!
//! When one machine is outgrown, several hosts run `registry` against one sharded, replicated
//! store. Redis Cluster (Debian's `redis-server`, protocol-compatible with Valkey) is that store:
//! it spreads hash slots over masters, replicates each master, and promotes a replica when a
//! master dies. This crate keeps each registry shard in one hash slot and does every batch as
//! one Lua script there.
//!
//! # Key layout
//!
//! Registry shard `s` of `K` keeps every key under one hash tag (written `T`), so all of them
//! live in one hash slot on one master, and a script may touch any of them atomically. The tag
//! is `{<namespace>/<s>/<n>}` with the smallest `n` that puts it in the `s`-th of `K` equal runs
//! of slots (shard 0: in slot 0, so it is found before the shard count is known, and it records
//! the count the other tags follow from; [`shard_prefix`]), so the shards divide evenly over
//! masters that own equal runs of slots. Shards made by earlier releases keep their tag
//! `{<namespace>/<s>}`, which left 12 shards 5/5/2 on three masters. An id is written in its sortable *member* form, `<prefix> <digit count as a
//! letter><digits>` (`SEC-RUL b42` for `SEC-RUL-042`), which orders bytewise as ids do.
//!
//! | key                     | type       | holds                                                  |
//! |-------------------------|------------|--------------------------------------------------------|
//! | `T:meta`                | hash       | `shards`: the shard count the shard was created with; `format`: its storage format (none: 1) |
//! | `T:dicts`               | hash       | dictionary id → a zstd dictionary trained on the shard's configs (storage format 2) |
//! | `T:seq`                 | hash       | id prefix → count `c` of numbers handed out            |
//! | `T:e:<member>`          | list       | the entry's encoded revisions, oldest first            |
//! | `T:fp`                  | hash       | fingerprint (16 raw bytes) → member                    |
//! | `T:ids`                 | sorted set | every member, score 0, for listing in id order         |
//! | `T:ix:<field>:<value>`  | sorted set | members whose latest revision has that value; field is `scope`, `type`, `variant` or `status` |
//! | `T:done:<token>`        | string     | the reply of one writing call, for 300 s (see below)   |
//!
//! Revision `r` of an entry is element `r` of its list (revisions are numbered 1 to n without
//! gaps), so the length of the list is the latest revision. Entries are encoded by
//! `registry_codec::entry`: a versioned binary format with varint lengths, header fields first.
//!
//! # Storage formats
//!
//! A shard records its storage format in `T:meta` when it is created; a shard without one is
//! format 1 (made before formats were recorded) and a newer one than this build's is refused at
//! open, naming both. A format 1 shard is written as the builds that made it wrote it (entry
//! formats 2 and 3, configs as they are). A format 2 shard (every one this build creates)
//! writes entry format 4: configs compressed with zstd and the shard's newest dictionary, kept in
//! `T:dicts` and loaded at open. The first dictionary is trained by the insert whose batch holds
//! 500 configs or that brings the shard to 1,000 entries, on up to 500 of that batch's configs
//! and the latest stored ones, and stored with
//! `HSETNX`: when two hosts train at once, one dictionary wins and both use it. A host that meets
//! a dictionary id it has not loaded (another host trained it) loads them again.
//!
//! # Numbers
//!
//! Shard `s` of `K` hands out the numbers `n` with `(n - 1) % K == s`, as every storage does
//! ([`registry_core::rules::Numbering`]): the `c`-th is `s + 1 + K (c - 1)`, and `T:seq` keeps
//! `c` rather than the last number, raised by `HINCRBY` on the server, so hosts allocating at
//! once never get the same number and the scripts never do arithmetic on numbers beyond what
//! Lua's doubles hold exactly. `insert` and `restore` raise `c` to cover the numbers they store. If a failover loses an allocation that was not yet replicated, a
//! number may be handed out again, but never stored twice: `insert` refuses an id that already
//! holds an entry (code `Conflict`).
//!
//! # Operations
//!
//! - `insert`: one script checks every fingerprint (an existing one gives `Existing` with the
//!   stored entry) and every id, then writes the new entries, their fingerprints, the id set and
//!   the indexes.
//! - `update`: a compare-and-set per entry inside one script: the stored latest revision must be
//!   one less than the given one, else `Conflict` (or `NotFound`); only the `Ok` ones are
//!   written, and their changed index values moved. Two hosts updating one entry to the same
//!   revision: exactly one wins.
//! - `restore`: as the trait says; `Created`, `Unchanged`, `Conflict` or `Invalid` per history.
//! - `list` walks the smallest index among the query's filters (or `T:ids`) with `ZRANGEBYLEX`
//!   from `after`, keeps members every other filter's index holds (`ZSCORE`), and returns at most
//!   1,000 entries per script after looking at most at 20,000 members, so a long listing never
//!   blocks a node for long; the client continues from where the script stopped.
//!
//! # Durability, retries and failures
//!
//! Redis replicates asynchronously: a write acknowledged by a master that dies before its
//! replica has it is lost when the replica takes over. With `wait_replicas = N`, every write
//! is followed by `WAIT N wait_timeout_ms` on the same connection, and reported stored only once
//! N replicas have it; fewer gives code `Unavailable` naming how many acknowledged (the write is
//! on the master, and a retry reports its entries as already stored). On disk, durability is the
//! server's `appendonly`/`appendfsync` setting.
//!
//! Redirections (`MOVED`, `ASK`) are followed by the `redis` crate's cluster connection. Lost
//! connections, `CLUSTERDOWN` and failovers are retried by this crate: `retries` times, waiting
//! from `retry_wait_min_ms` doubling up to `retry_wait_max_ms`, each time on a fresh connection.
//! Then the call fails with code `Unavailable`, one line naming the nodes and the last error.
//! Every writing call (allocate, insert, update, restore) carries a random token, the same for
//! all its tries; its script keeps its reply under `T:done:<token>` for 300 s, and a retry whose
//! token is there gets that reply without running again. So a retry after a reply lost in
//! transit neither stores anything twice nor reports the call's own writes as conflicts.
//! The defaults ride out a failover of a cluster with `cluster-node-timeout 2000` (about 4 s).
//!
//! # Credentials
//!
//! A password goes in the node URLs (`redis://:secret@host:port`, or with an ACL user
//! `redis://user:secret@host:port`; a password holding `@`, `/`, `:` or `%` is percent-encoded,
//! `%40` for `@`). The `redis` crate authenticates to every node with the first URL's
//! credentials and refuses URLs that differ.
//!
//! No message shows a password: every error, config error and `Debug` output shows a node URL
//! as `redis://user:***@host:port` (or `redis://***@host:port`), and the text of a `redis`
//! error is put in a message only after every node URL in it is shown that way and every
//! password, as written and percent-decoded, is replaced by `***`. A string given for `nodes`
//! instead of a list is named the same way in the config error.
//!
//! A refused password or permission is not retried: no wait cures it, and retrying would only
//! delay the answer (by the whole retry budget for every shard). It fails the call at once
//! with code `Config` and one line: `cannot authenticate to redis://user:***@host:port: wrong
//! password or user (authentication failed)` for a refused `AUTH` (`WRONGPASS` when the
//! server's code is known), `... the cluster requires a password and the node urls give none
//! (NOAUTH) ...`, or `cannot <call>: the cluster denies user `name` a permission: <the refused
//! command> (NOPERM)`. Code `Config` also tells a host not to open the other shards with the
//! same credentials.
//!
//! # Shard count
//!
//! The registry's shards (`shards` in `registry.toml`) are spread over the masters by hash slot.
//! Choose at least 4 × the number of masters (e.g. 12 or 16 for 3 masters): with fewer, some
//! master may get noticeably more shards than another. The count cannot change later: each shard
//! records it in `T:meta` and refuses to open with another.
//!
//! # Design decisions
//!
//! - One hash tag per registry shard rather than one per entry: every batch is then one atomic
//!   script on one node, which is exactly the trait's transaction contract. Rejected: keys spread
//!   over all slots, which would need cross-slot transactions Redis Cluster does not have.
//! - The synchronous cluster client, with a small pool of connections (`pool_size`) per shard,
//!   rather than the async one: the plugin owns no runtime and shares none with the host, and a
//!   batch is one round trip anyway.
//! - A hand-written binary encoding rather than JSON: about half the memory per entry, and the
//!   stored bytes depend on no serialization crate.

mod client;
mod keys;
mod redact;
mod scripts;
mod storage;

use serde::Deserialize;

pub use storage::RedisStorage;

/// The prefix every key of shard `shard` of `shards` in `namespace` starts with, hash tag
/// included (`{registry/3/41}:`), as this build creates shards: to look at a shard with
/// `redis-cli`, or to measure it. A shard made by an earlier release has the tag
/// `{<namespace>/<shard>}` instead.
pub fn shard_prefix(namespace: &str, shard: u32, shards: u32) -> String {
    keys::Keys::balanced(namespace, shard, shards)
        .prefix()
        .to_owned()
}

/// The `[storage.config]` table of `registry.toml`.
///
/// Its `Debug` output shows the nodes without their passwords.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Seed nodes of the cluster, as `redis://host:port` URLs (a password goes in the URL,
    /// `redis://:secret@host:port` or `redis://user:secret@host:port`, percent-encoded; see
    /// the crate documentation). Required: one reachable node is enough to find the others.
    #[serde(deserialize_with = "redact::deserialize_nodes")]
    pub nodes: Vec<String>,
    /// The prefix of every key, so several registries can share one cluster. Default
    /// `"registry"`; without braces or spaces.
    pub namespace: String,
    /// How many replicas must have a write before it is reported stored (Redis `WAIT`).
    /// Default 0: acknowledged by the master only.
    pub wait_replicas: u32,
    /// How long `WAIT` waits for the replicas, in milliseconds. Default 1000.
    pub wait_timeout_ms: u64,
    /// How many times a call is tried again while the cluster is unreachable or failing over.
    /// Default 8.
    pub retries: u32,
    /// The first wait before trying again, in milliseconds; it doubles with each retry.
    /// Default 50.
    pub retry_wait_min_ms: u64,
    /// The longest wait between two tries, in milliseconds. Default 2000.
    pub retry_wait_max_ms: u64,
    /// How long to wait for a TCP connection to a node, in milliseconds. Default 1000.
    pub connect_timeout_ms: u64,
    /// How long to wait for a node's reply, in milliseconds (at least `wait_timeout_ms` plus a
    /// second when `wait_replicas` is set). Default 5000.
    pub response_timeout_ms: u64,
    /// How many cluster connections one shard keeps, i.e. how many calls it runs at once.
    /// Default 4.
    pub pool_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: Vec::new(),
            namespace: "registry".to_owned(),
            wait_replicas: 0,
            wait_timeout_ms: 1000,
            retries: 8,
            retry_wait_min_ms: 50,
            retry_wait_max_ms: 2000,
            connect_timeout_ms: 1000,
            response_timeout_ms: 5000,
            pool_size: 4,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be left out (or shown unredacted) unnoticed.
        let Config {
            nodes,
            namespace,
            wait_replicas,
            wait_timeout_ms,
            retries,
            retry_wait_min_ms,
            retry_wait_max_ms,
            connect_timeout_ms,
            response_timeout_ms,
            pool_size,
        } = self;
        let nodes: Vec<String> = nodes.iter().map(|n| redact::shown(n)).collect();
        f.debug_struct("Config")
            .field("nodes", &nodes)
            .field("namespace", namespace)
            .field("wait_replicas", wait_replicas)
            .field("wait_timeout_ms", wait_timeout_ms)
            .field("retries", retries)
            .field("retry_wait_min_ms", retry_wait_min_ms)
            .field("retry_wait_max_ms", retry_wait_max_ms)
            .field("connect_timeout_ms", connect_timeout_ms)
            .field("response_timeout_ms", response_timeout_ms)
            .field("pool_size", pool_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keys_and_defaults() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v);
        assert_eq!(
            parse(serde_json::json!({})).expect("empty is default"),
            Config::default()
        );
        assert_eq!(
            parse(serde_json::json!({
                "nodes": ["redis://127.0.0.1:7100"], "namespace": "ns", "wait_replicas": 1,
                "wait_timeout_ms": 10, "retries": 2, "retry_wait_min_ms": 1,
                "retry_wait_max_ms": 3, "connect_timeout_ms": 4, "response_timeout_ms": 5,
                "pool_size": 6
            }))
            .expect("all keys"),
            Config {
                nodes: vec!["redis://127.0.0.1:7100".into()],
                namespace: "ns".into(),
                wait_replicas: 1,
                wait_timeout_ms: 10,
                retries: 2,
                retry_wait_min_ms: 1,
                retry_wait_max_ms: 3,
                connect_timeout_ms: 4,
                response_timeout_ms: 5,
                pool_size: 6,
            }
        );
        let err = parse(serde_json::json!({"node": []})).expect_err("misspelt");
        assert!(err.to_string().contains("unknown field `node`"), "{err}");
        assert!(parse(serde_json::json!({"nodes": "redis://x:1"})).is_err());
    }

    #[test]
    fn passwords_are_not_shown_by_debug_or_config_errors() {
        let config = Config {
            nodes: vec![
                "redis://:hunter2@127.0.0.1:7100".into(),
                "redis://admin:p%40ss@127.0.0.1:7101".into(),
            ],
            ..Config::default()
        };
        let debug = format!("{config:?}");
        assert!(
            debug.starts_with(
                "Config { nodes: [\"redis://***@127.0.0.1:7100\", \
                 \"redis://admin:***@127.0.0.1:7101\"], namespace: \"registry\""
            ),
            "{debug}"
        );
        assert!(
            !debug.contains("hunter2") && !debug.contains("p%40ss"),
            "{debug}"
        );
        let err = serde_json::from_value::<Config>(serde_json::json!({
            "nodes": "redis://:hunter2@127.0.0.1:7100"
        }))
        .expect_err("a string, not a list");
        assert_eq!(
            err.to_string(),
            "invalid type: string \"redis://***@127.0.0.1:7100\", expected a list of node urls, \
             e.g. [\"redis://127.0.0.1:7000\"]"
        );
    }
}
