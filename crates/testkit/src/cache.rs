//! The conformance suite of [`Cache`]: lookups by both keys, replacement, removal and counters.

use registry_core::{Cache, CacheKey, CacheStats, Entry};

use crate::sample::{self, entry, revise};
use crate::{ok, one_each};

const STAGE: &str = "cache";

/// Runs every check against caches built by `make`, each check on a new one.
///
/// The caches must have room for at least four entries and keep them for the few milliseconds
/// the suite takes; a cache whose [`Cache::stats`] counts nothing (the trait's default) passes
/// the counter check.
///
/// # Panics
/// With a message naming the rule, at the first contract the cache breaks.
pub fn check(make: &dyn Fn() -> Box<dyn Cache>) {
    hits_by_both_keys(&*make());
    newer_revision_replaces(&*make());
    remove_forgets(&*make());
    counters(&*make());
}

/// Runs a short subset of [`check`]: entries put are found by both keys, in the order asked.
///
/// # Panics
/// As [`check`], at the first contract the cache breaks in the subset.
pub fn smoke(make: &dyn Fn() -> Box<dyn Cache>) {
    hits_by_both_keys(&*make());
}

fn get(cache: &dyn Cache, keys: &[CacheKey]) -> Vec<Option<Entry>> {
    one_each(STAGE, "get", keys.len(), None, |out| cache.get(keys, out))
}

fn put(cache: &dyn Cache, entries: &[Entry]) {
    ok(STAGE, "put", cache.put(entries));
}

fn remove(cache: &dyn Cache, keys: &[CacheKey]) {
    ok(STAGE, "remove", cache.remove(keys));
}

fn samples() -> (Entry, Entry) {
    (
        entry(
            sample::fields("SEC", "RULES", "LIVE", "REQUIRED"),
            1,
            "block ssh from the internet",
        ),
        entry(
            sample::fields("OPS", "SCRIPT", "DEV", "LIVE"),
            2,
            "restart the queue workers",
        ),
    )
}

/// A key that is neither an id key nor a fingerprint key of the samples.
fn unrelated() -> CacheKey {
    CacheKey::of_id(&registry_core::EntryId::new("GOV-RUL", 77))
}

fn hits_by_both_keys(cache: &dyn Cache) {
    let (a, b) = samples();
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    let [b_id, b_fp] = CacheKey::of_entry(&b);
    ensure!(
        STAGE,
        get(cache, &[a_id, b_fp]) == [None, None],
        "get on an empty cache must miss"
    );
    put(cache, &[]);
    put(cache, &[a.clone(), b.clone()]);
    get(cache, &[]);
    let found = get(cache, &[a_id, b_fp, unrelated(), a_fp, b_id]);
    ensure!(
        STAGE,
        found == [Some(a.clone()), Some(b.clone()), None, Some(a), Some(b)],
        "get must find each entry put by its id key and by its fingerprint key, miss other keys, \
         and answer in the order asked"
    );
}

fn newer_revision_replaces(cache: &dyn Cache) {
    let (a, _) = samples();
    let a2 = revise(&a, "DEPRECATED");
    put(cache, std::slice::from_ref(&a));
    put(cache, std::slice::from_ref(&a2));
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&a)) == [Some(a2.clone()), Some(a2)],
        "put of a newer revision must replace the cached one under both keys"
    );
}

fn remove_forgets(cache: &dyn Cache) {
    let (a, b) = samples();
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    put(cache, &[a, b.clone()]);
    remove(cache, &[a_id, unrelated()]);
    ensure!(
        STAGE,
        get(cache, &[a_id]) == [None],
        "get must miss a key that was removed"
    );
    remove(cache, &[a_fp]);
    ensure!(
        STAGE,
        get(cache, &[a_fp]) == [None],
        "get must miss a key that was removed"
    );
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&b)) == [Some(b.clone()), Some(b)],
        "remove must forget only the keys given"
    );
}

fn counters(cache: &dyn Cache) {
    let (a, _) = samples();
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    put(cache, &[a]);
    get(cache, &[a_id, unrelated(), a_fp]);
    get(cache, &[unrelated()]);
    let stats = cache.stats();
    ensure!(
        STAGE,
        stats == CacheStats::default()
            || stats
                == CacheStats {
                    hits: 2,
                    misses: 2,
                    entries: 2
                },
        "stats must count every key looked up as a hit or a miss and the keys cached (here 2 \
         hits, 2 misses, 2 keys of one entry), or count nothing at all; got {stats:?}"
    );
}
