//! The conformance suite of [`Cache`]: lookups by both keys, replacement, removal and counters.

use registry_core::{Cache, CacheKey, CacheStats, Entry, StageKind, StageResult};

use crate::sample::{self, revise, try_entry};
use crate::{Violation, ok, one_each, sampled};

const STAGE: StageKind = StageKind::Cache;

/// Builds a new, empty cache, as the cache's constructor does: an error is the constructor's.
pub type Make<'a> = dyn Fn() -> StageResult<Box<dyn Cache>> + 'a;

/// Runs every check against caches built by `make`, each check on a new one.
///
/// The caches must have room for at least four entries and keep them for the few milliseconds
/// the suite takes; a cache whose [`Cache::stats`] counts nothing (the trait's default) passes
/// the counter check.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the cache breaks; `make` failing is
/// one.
pub fn check(make: &Make<'_>) -> Result<(), Violation> {
    hits_by_both_keys(&*open(make)?)?;
    newer_revision_replaces(&*open(make)?)?;
    remove_forgets(&*open(make)?)?;
    counters(&*open(make)?)
}

/// Runs a short subset of [`check`]: entries put are found by both keys, in the order asked.
///
/// # Errors
/// As [`check`], at the first contract the cache breaks in the subset.
pub fn smoke(make: &Make<'_>) -> Result<(), Violation> {
    hits_by_both_keys(&*open(make)?)
}

/// Builds a cache the suite expects to build.
fn open(make: &Make<'_>) -> Result<Box<dyn Cache>, Violation> {
    match make() {
        Ok(cache) => Ok(cache),
        Err(e) => fail!(STAGE, "building a cache failed: {}", e.message),
    }
}

fn get(cache: &dyn Cache, keys: &[CacheKey]) -> Result<Vec<Option<Entry>>, Violation> {
    one_each(STAGE, "get", keys.len(), None, |out| cache.get(keys, out))
}

fn put_owned(cache: &dyn Cache, entries: Vec<Entry>) -> Result<(), Violation> {
    ok(STAGE, "put_owned", cache.put_owned(entries))
}

fn put_shared(cache: &dyn Cache, entries: &[std::sync::Arc<Entry>]) -> Result<(), Violation> {
    ok(STAGE, "put_shared", cache.put_shared(entries))
}

fn put(cache: &dyn Cache, entries: &[Entry]) -> Result<(), Violation> {
    ok(STAGE, "put", cache.put(entries))
}

fn remove(cache: &dyn Cache, keys: &[CacheKey]) -> Result<(), Violation> {
    ok(STAGE, "remove", cache.remove(keys))
}

fn samples() -> Result<(Entry, Entry), Violation> {
    Ok((
        sampled(
            STAGE,
            try_entry(
                sample::fields("SEC", "RULES", "LIVE", "REQUIRED"),
                1,
                "block ssh from the internet",
            ),
        )?,
        sampled(
            STAGE,
            try_entry(
                sample::fields("OPS", "SCRIPT", "DEV", "LIVE"),
                2,
                "restart the queue workers",
            ),
        )?,
    ))
}

/// A key that is neither an id key nor a fingerprint key of the samples.
fn unrelated() -> CacheKey {
    CacheKey::of_id(&registry_core::EntryId::new("GOV-RUL", 77))
}

fn hits_by_both_keys(cache: &dyn Cache) -> Result<(), Violation> {
    let (a, b) = samples()?;
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    let [b_id, b_fp] = CacheKey::of_entry(&b);
    ensure!(
        STAGE,
        get(cache, &[a_id, b_fp])? == [None, None],
        "get on an empty cache must miss"
    );
    put(cache, &[])?;
    put(cache, &[a.clone(), b.clone()])?;
    get(cache, &[])?;
    let found = get(cache, &[a_id, b_fp, unrelated(), a_fp, b_id])?;
    ensure!(
        STAGE,
        found == [Some(a.clone()), Some(b.clone()), None, Some(a), Some(b)],
        "get must find each entry put by its id key and by its fingerprint key, miss other keys, \
         and answer in the order asked"
    );
    Ok(())
}

fn newer_revision_replaces(cache: &dyn Cache) -> Result<(), Violation> {
    let (a, _) = samples()?;
    let a2 = revise(&a, "DEPRECATED");
    let a3 = revise(&a2, "REQUIRED");
    let a4 = revise(&a3, "DEPRECATED");
    put(cache, std::slice::from_ref(&a))?;
    put(cache, std::slice::from_ref(&a2))?;
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&a))? == [Some(a2.clone()), Some(a2)],
        "put of a newer revision must replace the cached one under both keys"
    );
    put_owned(cache, vec![a3.clone()])?;
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&a))? == [Some(a3.clone()), Some(a3)],
        "put_owned must cache as put does: a newer revision replaces the cached one under both keys"
    );
    put_shared(cache, &[std::sync::Arc::new(a4.clone())])?;
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&a))? == [Some(a4.clone()), Some(a4)],
        "put_shared must cache as put does: a newer revision replaces the cached one under both keys"
    );
    Ok(())
}

fn remove_forgets(cache: &dyn Cache) -> Result<(), Violation> {
    let (a, b) = samples()?;
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    put(cache, &[a, b.clone()])?;
    remove(cache, &[a_id, unrelated()])?;
    ensure!(
        STAGE,
        get(cache, &[a_id])? == [None],
        "get must miss a key that was removed"
    );
    remove(cache, &[a_fp])?;
    ensure!(
        STAGE,
        get(cache, &[a_fp])? == [None],
        "get must miss a key that was removed"
    );
    ensure!(
        STAGE,
        get(cache, &CacheKey::of_entry(&b))? == [Some(b.clone()), Some(b)],
        "remove must forget only the keys given"
    );
    Ok(())
}

fn counters(cache: &dyn Cache) -> Result<(), Violation> {
    let (a, _) = samples()?;
    let [a_id, a_fp] = CacheKey::of_entry(&a);
    put(cache, &[a])?;
    get(cache, &[a_id, unrelated(), a_fp])?;
    get(cache, &[unrelated()])?;
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
    Ok(())
}
