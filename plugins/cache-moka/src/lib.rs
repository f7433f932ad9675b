//! A [`registry_core::Cache`] kept in a bounded, concurrent in-memory map (mini-moka).
//!
//! Entries are cached under both of their keys (id and fingerprint), sharing one `Arc<Entry>`, so
//! a lookup by either finds the same revision and an entry costs its memory once. The bound is
//! counted in entries, as the original system's 10,000-entry cache was, and mini-moka's TinyLFU
//! policy decides what to evict; entries may also expire a fixed time after they were cached.
//!
//! Design decision: mini-moka rather than moka. Both measured alike for this workload; mini-moka
//! has no background threads and far fewer dependencies, which matters in a plugin library that
//! carries its own copy of everything it links. A plain `Mutex<HashMap>` is faster still, but has
//! no bound or eviction policy and serializes every reader.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mini_moka::sync::{Cache as Moka, ConcurrentCacheExt};
use registry_core::{
    Cache, CacheKey, CacheStats, Entry, ErrorCode, FromConfig, Setup, StageError, StageResult,
};
use serde::Deserialize;

/// The longest `ttl_secs` accepted: 1000 years, mini-moka's limit.
pub const MAX_TTL_SECS: u64 = 1000 * 365 * 24 * 3600;

/// The `[cache.config]` table of `registry.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How many entries the cache holds at most. Each entry takes two keys (its id and its
    /// fingerprint), so up to twice as many keys are cached. `0` disables caching: every lookup
    /// misses and nothing is kept. Default 10000.
    pub max_entries: u64,
    /// How many seconds an entry stays cached after it was put, at most [`MAX_TTL_SECS`]; `0`
    /// means entries never expire (they are only evicted for room). Default 300.
    pub ttl_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_entries: 10_000,
            ttl_secs: 300,
        }
    }
}

/// A bounded cache of entries by id and by fingerprint, counting its hits and misses.
pub struct MokaCache {
    /// `None` when caching is disabled (`max_entries = 0`).
    map: Option<Moka<u128, Arc<Entry>>>,
    config: Config,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MokaCache {
    /// Looks up each key in order, giving `found` what the cache holds for it, and counts the
    /// hits and misses once per batch (the counters are shared by every thread).
    fn lookup(&self, keys: &[CacheKey], mut found: impl FnMut(Option<Arc<Entry>>)) {
        let Some(map) = &self.map else {
            keys.iter().for_each(|_| found(None));
            self.misses.fetch_add(keys.len() as u64, Ordering::Relaxed);
            return;
        };
        let mut hits = 0;
        for key in keys {
            let entry = map.get(&key.0);
            hits += u64::from(entry.is_some());
            found(entry);
        }
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
    }

    /// Builds a cache from its configuration.
    ///
    /// # Errors
    /// Code `Config` when `ttl_secs` is over [`MAX_TTL_SECS`].
    pub fn new(config: Config) -> StageResult<MokaCache> {
        if config.ttl_secs > MAX_TTL_SECS {
            return Err(StageError::new(
                ErrorCode::Config,
                format!(
                    "ttl_secs {} is too long: the limit is {MAX_TTL_SECS} (1000 years); use 0 for no expiry",
                    config.ttl_secs
                ),
            ));
        }
        let map = (config.max_entries > 0).then(|| {
            let builder = Moka::builder().max_capacity(config.max_entries.saturating_mul(2));
            let builder = match config.ttl_secs {
                0 => builder,
                secs => builder.time_to_live(Duration::from_secs(secs)),
            };
            builder.build()
        });
        Ok(MokaCache {
            map,
            config,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }
}

impl fmt::Debug for MokaCache {
    // mini-moka's own `Debug` lists every cached entry, which is no use in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FromConfig for MokaCache {
    type Config = Config;

    fn from_config(config: Config, _setup: &Setup) -> StageResult<MokaCache> {
        MokaCache::new(config)
    }
}

impl MokaCache {
    /// Caches one entry under both of its keys, sharing one copy: `make` makes it only when
    /// the cache is on.
    fn insert(&self, make: impl FnOnce() -> Arc<Entry>) {
        if let Some(map) = &self.map {
            let shared = make();
            for key in CacheKey::of_entry(&shared) {
                map.insert(key.0, Arc::clone(&shared));
            }
        }
    }
}

impl Cache for MokaCache {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        out.reserve(keys.len());
        self.lookup(keys, |found| {
            out.push(found.map(|entry| Entry::clone(&entry)))
        });
        Ok(())
    }

    fn get_shared(&self, keys: &[CacheKey], out: &mut Vec<Option<Arc<Entry>>>) -> StageResult<()> {
        out.reserve(keys.len());
        self.lookup(keys, |found| out.push(found));
        Ok(())
    }

    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        for entry in entries {
            self.insert(|| Arc::new(entry.clone()));
        }
        Ok(())
    }

    /// Keeps the entries given, without copying them.
    fn put_owned(&self, entries: Vec<Entry>) -> StageResult<()> {
        for entry in entries {
            self.insert(|| Arc::new(entry));
        }
        Ok(())
    }

    /// Keeps the entries given, shared with the caller.
    fn put_shared(&self, entries: &[Arc<Entry>]) -> StageResult<()> {
        for entry in entries {
            self.insert(|| Arc::clone(entry));
        }
        Ok(())
    }

    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        if let Some(map) = &self.map {
            for key in keys {
                map.invalidate(&key.0);
            }
        }
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        let entries = self.map.as_ref().map_or(0, |map| {
            // mini-moka counts lazily; running its pending maintenance makes the count exact.
            map.sync();
            map.entry_count()
        });
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::{Context, EntryId, Fields, Header, Request, Schema, Timestamp};
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, MapDeserializer};

    fn entry(title: &str, number: u64, revision: u32) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "REQUIRED".into(),
            },
            id: EntryId::new("SEC-RUL", number),
            version: "v2.9".into(),
        };
        let request = Request::new(title, Fields::default(), None, Context::default())
            .expect("test titles are valid");
        let config = format!("title: {title}\nrevision: {revision}\n");
        Entry {
            hash: Entry::compute_hash(&header, title, &Context::default(), &config),
            previous: None,
            purge: None,
            author: None,
            header,
            title: title.to_owned(),
            context: Context::default(),
            config,
            fingerprint: request.fingerprint(),
            revision,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_000),
            provenance: None,
            lifecycle: registry_core::Lifecycle::Active,
        }
    }

    fn cache(max_entries: u64, ttl_secs: u64) -> MokaCache {
        MokaCache::new(Config {
            max_entries,
            ttl_secs,
        })
        .expect("valid config")
    }

    fn get(cache: &MokaCache, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let mut out = Vec::new();
        cache.get(keys, &mut out).expect("get works");
        assert_eq!(out.len(), keys.len(), "one value per key");
        out
    }

    #[test]
    fn hit_by_both_keys_and_miss_otherwise() {
        let cache = cache(100, 0);
        let a = entry("block ssh", 1, 1);
        let b = entry("rotate keys", 2, 1);
        let [a_id, a_fp] = CacheKey::of_entry(&a);
        let [b_id, b_fp] = CacheKey::of_entry(&b);
        assert_eq!(get(&cache, &[a_id, a_fp]), [None, None]);
        cache.put(std::slice::from_ref(&a)).expect("put works");
        assert_eq!(
            get(&cache, &[a_fp, b_id, a_id, b_fp]),
            [Some(a.clone()), None, Some(a), None]
        );
    }

    #[test]
    fn newer_revision_replaces_older() {
        let cache = cache(100, 0);
        let first = entry("block ssh", 1, 1);
        let second = entry("block ssh", 1, 2);
        cache.put(&[first]).expect("put works");
        cache.put(std::slice::from_ref(&second)).expect("put works");
        let keys = CacheKey::of_entry(&second);
        assert_eq!(get(&cache, &keys), [Some(second.clone()), Some(second)]);
    }

    #[test]
    fn remove_forgets_only_the_given_keys() {
        let cache = cache(100, 0);
        let a = entry("block ssh", 1, 1);
        let b = entry("rotate keys", 2, 1);
        cache.put(&[a.clone(), b.clone()]).expect("put works");
        let [a_id, a_fp] = CacheKey::of_entry(&a);
        cache.remove(&[a_id]).expect("remove works");
        assert_eq!(get(&cache, &[a_id, a_fp]), [None, Some(a)]);
        cache.remove(&[a_fp]).expect("remove works");
        assert_eq!(get(&cache, &[a_fp]), [None]);
        assert_eq!(
            get(&cache, &CacheKey::of_entry(&b)),
            [Some(b.clone()), Some(b)]
        );
    }

    #[test]
    fn zero_entries_disables_caching() {
        let cache = cache(0, 300);
        let a = entry("block ssh", 1, 1);
        cache.put(std::slice::from_ref(&a)).expect("put works");
        assert_eq!(get(&cache, &CacheKey::of_entry(&a)), [None, None]);
        cache.remove(&CacheKey::of_entry(&a)).expect("remove works");
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 0,
                misses: 2,
                entries: 0
            }
        );
    }

    #[test]
    fn stats_count_hits_misses_and_keys() {
        let cache = cache(100, 300);
        let a = entry("block ssh", 1, 1);
        let b = entry("rotate keys", 2, 1);
        cache.put(&[a.clone(), b]).expect("put works");
        let [a_id, a_fp] = CacheKey::of_entry(&a);
        get(&cache, &[a_id, a_fp, CacheKey(7)]);
        get(&cache, &[CacheKey(8)]);
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 2,
                entries: 4
            }
        );
    }

    #[test]
    fn stays_within_its_bound() {
        let cache = cache(3, 0);
        let entries: Vec<Entry> = (1..=50)
            .map(|n| entry(&format!("rule {n}"), n, 1))
            .collect();
        cache.put(&entries).expect("put works");
        let stats = cache.stats();
        assert!(
            stats.entries <= 6,
            "{} keys cached for 3 entries",
            stats.entries
        );
    }

    #[test]
    fn config_keys_and_defaults() {
        let parse = |pairs: Vec<(&'static str, u64)>| {
            Config::deserialize(MapDeserializer::<_, DeError>::new(
                pairs.into_iter().map(|(k, v)| (k, v.into_deserializer())),
            ))
        };
        assert_eq!(parse(vec![]), Ok(Config::default()));
        assert_eq!(
            parse(vec![("ttl_secs", 0)]),
            Ok(Config {
                max_entries: 10_000,
                ttl_secs: 0
            })
        );
        let err = parse(vec![("max_entry", 5)]).expect_err("misspelt key");
        assert!(err.to_string().contains("max_entry"), "{err}");
    }

    #[test]
    fn conformance() {
        registry_testkit::cache::check(&|| Box::new(cache(100, 300)));
        registry_testkit::cache::check(&|| Box::new(cache(4, 0)));
    }

    #[test]
    fn rejects_a_ttl_mini_moka_cannot_hold() {
        let setup = Setup {
            schema: Schema::default(),
            data_dir: std::env::temp_dir(),
            config_dir: std::env::temp_dir(),
            shard: 0,
            shards: 1,
            create: None,
        };
        let config = Config {
            ttl_secs: MAX_TTL_SECS + 1,
            ..Config::default()
        };
        let err = MokaCache::from_config(config, &setup).expect_err("ttl over the limit");
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains("ttl_secs"), "{}", err.message);
        let longest = Config {
            ttl_secs: MAX_TTL_SECS,
            ..Config::default()
        };
        assert!(MokaCache::from_config(longest, &setup).is_ok());
    }
}
