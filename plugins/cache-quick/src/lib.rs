//! The default [`registry_core::Cache`]: a bounded, concurrent in-memory map (quick_cache).
//!
//! Entries are cached under both of their keys (id and fingerprint), sharing one `Arc<Entry>`, so
//! a lookup by either finds the same revision and an entry costs its memory once. The bound is
//! counted in entries, as in `cache-moka`; quick_cache's CLOCK-Pro policy decides what to evict.
//! An entry expires `ttl_secs` after it was put: each keeps the instant it was put, a lookup
//! after that misses and removes it (if it is still the one it found), and an expired entry
//! nobody asks for waits to be evicted within the bound.
//!
//! Design decision: quick_cache rather than mini-moka (the `cache-moka` plugin, kept for
//! registries that name it). Measured with the `stage_times` example (batches of 1,000 new
//! requests through a one-shard registry), the same code with either cache as the default,
//! alternated three times, µs per request or entry:
//!
//! | | mini-moka | quick_cache |
//! |---|---|---|
//! | `cache.get`, built in | 0.44 to 0.51 | 0.06 to 0.07 |
//! | `cache.put`, built in | 2.04 to 2.15 | 1.07 to 1.19 |
//! | `add`, built in | 13.6 to 14.9 | 12.2 to 15.2 |
//! | `cache.get`, plugin library | 0.56 to 0.64 | 0.16 to 0.19 |
//! | `cache.put`, plugin library | 3.63 to 4.20 | 2.45 to 2.63 |
//! | `add`, plugin library | 18.3 to 21.0 | 15.5 to 16.7 |
//!
//! mini-moka's TinyLFU admission also refuses nearly every new key once it is full: in a
//! standalone loop putting 400,000 keys into a cache of 20,000, none of the last 10,000 was
//! found, so the entries a bulk load put were seldom found after it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::OptionsBuilder;
use quick_cache::sync::Cache as Quick;
use registry_core::{
    Cache, CacheKey, CacheStats, Entry, ErrorCode, FromConfig, Setup, StageError, StageResult,
};
use serde::Deserialize;

/// The keys a cache of any bound sizes its tables for when it starts; it grows past them up to
/// its bound as entries are put.
const PREALLOCATED_KEYS: usize = 1 << 14;

/// The `[cache.config]` table of `registry.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How many entries the cache holds at most. Each entry takes two keys (its id and its
    /// fingerprint), so up to twice as many keys are cached. `0` disables caching: every lookup
    /// misses and nothing is kept. Default 10000.
    pub max_entries: u64,
    /// How many seconds an entry stays cached after it was put; `0` means entries never expire
    /// (they are only evicted for room). Default 300.
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

/// A cached entry and the instant it was put.
type Cached = (Arc<Entry>, Instant);

/// A bounded cache of entries by id and by fingerprint, counting its hits and misses.
pub struct QuickCache {
    /// `None` when caching is disabled (`max_entries = 0`).
    map: Option<Quick<u128, Cached>>,
    /// How long an entry stays; `None` for ever.
    ttl: Option<Duration>,
    config: Config,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl QuickCache {
    /// Builds a cache from its configuration.
    ///
    /// # Errors
    /// Code `Config` when `max_entries` is beyond what this machine can address.
    pub fn new(config: Config) -> StageResult<QuickCache> {
        let ttl = (config.ttl_secs > 0).then(|| Duration::from_secs(config.ttl_secs));
        QuickCache::with_ttl(config, ttl)
    }

    fn with_ttl(config: Config, ttl: Option<Duration>) -> StageResult<QuickCache> {
        let keys = config.max_entries.saturating_mul(2);
        let too_large = || {
            StageError::new(
                ErrorCode::Config,
                format!(
                    "max_entries {} is too large for this machine",
                    config.max_entries
                ),
            )
        };
        let map = if config.max_entries == 0 {
            None
        } else {
            let estimated = usize::try_from(keys).map_err(|_| too_large())?;
            let options = OptionsBuilder::new()
                .estimated_items_capacity(estimated.min(PREALLOCATED_KEYS))
                .weight_capacity(keys)
                .build()
                .map_err(|_| too_large())?;
            Some(Quick::with_options(
                options,
                Default::default(),
                Default::default(),
                Default::default(),
            ))
        };
        Ok(QuickCache {
            map,
            ttl,
            config,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Whether an entry put at `at` has expired.
    fn expired(&self, at: Instant) -> bool {
        self.ttl.is_some_and(|ttl| at.elapsed() > ttl)
    }

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
            let entry = match map.get(&key.0) {
                Some((_, at)) if self.expired(at) => {
                    // Only if it is still the expired one: a newer put stays.
                    map.remove_if(&key.0, |(_, now)| *now == at);
                    None
                }
                Some((entry, _)) => Some(entry),
                None => None,
            };
            hits += u64::from(entry.is_some());
            found(entry);
        }
        self.hits.fetch_add(hits, Ordering::Relaxed);
        self.misses
            .fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
    }

    /// Caches one entry under both of its keys, sharing one copy: `make` makes it only when
    /// the cache is on.
    fn insert(&self, make: impl FnOnce() -> Arc<Entry>) {
        if let Some(map) = &self.map {
            let shared = make();
            let at = Instant::now();
            for key in CacheKey::of_entry(&shared) {
                map.insert(key.0, (Arc::clone(&shared), at));
            }
        }
    }
}

impl fmt::Debug for QuickCache {
    // Lists the configuration and the counters, not the cached entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuickCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FromConfig for QuickCache {
    type Config = Config;

    fn from_config(config: Config, _setup: &Setup) -> StageResult<QuickCache> {
        QuickCache::new(config)
    }
}

impl Cache for QuickCache {
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
                map.remove(&key.0);
            }
        }
        Ok(())
    }

    /// `entries` counts the keys held, expired ones included until they are looked up or
    /// evicted.
    fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.map.as_ref().map_or(0, |map| map.len() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_conformance::sample;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, MapDeserializer};

    fn entry(number: u64) -> Entry {
        let fields = sample::fields("SEC", "RULES", "LIVE", "REQUIRED");
        sample::entry(fields, number, &format!("rule {number}"))
    }

    fn cache(max_entries: u64, ttl_secs: u64) -> QuickCache {
        QuickCache::new(Config {
            max_entries,
            ttl_secs,
        })
        .expect("valid config")
    }

    fn get(cache: &QuickCache, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let mut out = Vec::new();
        cache.get(keys, &mut out).expect("get works");
        assert_eq!(out.len(), keys.len(), "one value per key");
        out
    }

    #[test]
    fn conformance() {
        registry_testkit::cache::check(&|| Box::new(cache(100, 300)));
        registry_testkit::cache::check(&|| Box::new(cache(4, 0)));
    }

    #[test]
    fn zero_entries_disables_caching() {
        let cache = cache(0, 300);
        let a = entry(1);
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
    fn stays_within_its_bound_and_keeps_the_entries_asked_for() {
        let cache = cache(50, 0);
        let hot = entry(1);
        cache.put(std::slice::from_ref(&hot)).expect("put works");
        for n in 2..=2000 {
            cache.put(&[entry(n)]).expect("put works");
            // Asked for again and again while the others pass through once.
            if n % 10 == 0 {
                assert_eq!(
                    get(&cache, &CacheKey::of_entry(&hot)[..1]),
                    [Some(hot.clone())]
                );
            }
        }
        let keys = cache.stats().entries;
        assert!(keys <= 100, "{keys} keys cached for 50 entries");
        assert!(keys >= 50, "only {keys} keys cached for 50 entries");
    }

    #[test]
    fn an_entry_expires_after_its_time_and_a_newer_put_stays() {
        let config = Config {
            max_entries: 10,
            ttl_secs: 1,
        };
        let brief =
            QuickCache::with_ttl(config, Some(Duration::from_millis(50))).expect("valid config");
        let a = entry(1);
        let keys = CacheKey::of_entry(&a);
        brief.put(std::slice::from_ref(&a)).expect("put works");
        assert_eq!(get(&brief, &keys), [Some(a.clone()), Some(a.clone())]);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(get(&brief, &keys[..1]), [None]);
        assert_eq!(
            brief.stats().entries,
            1,
            "the expired key looked up is removed"
        );
        // Put again: the fingerprint's key, expired but never looked up, is replaced.
        brief.put(std::slice::from_ref(&a)).expect("put works");
        assert_eq!(get(&brief, &keys), [Some(a.clone()), Some(a)]);

        let forever = cache(10, 0);
        let b = entry(2);
        forever.put(std::slice::from_ref(&b)).expect("put works");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(get(&forever, &CacheKey::of_entry(&b)[..1]), [Some(b)]);
    }

    #[test]
    fn the_largest_bound_and_ttl_build_a_working_cache() {
        let setup = Setup {
            schema: registry_core::Schema::default(),
            data_dir: std::env::temp_dir(),
            config_dir: std::env::temp_dir(),
            shard: 0,
            shards: 1,
            create: None,
        };
        let largest = Config {
            max_entries: u64::MAX,
            ttl_secs: u64::MAX,
        };
        // Sized for a few keys at first, whatever the bound.
        let cache = QuickCache::from_config(largest, &setup).expect("builds");
        let a = entry(1);
        cache.put(std::slice::from_ref(&a)).expect("put works");
        assert_eq!(get(&cache, &CacheKey::of_entry(&a)[1..]), [Some(a)]);
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
}
