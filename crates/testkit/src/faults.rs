//! Fault injection: wrappers that implement the real stage traits and fail on demand.
//!
//! A test keeps a [`FaultSwitch`] to a wrapped stage it handed to a pipeline, lets some calls
//! through, makes the rest fail, then heals the stage to look at what the failure left behind.
//! This is how redb tests its own recovery: a backend that fails after N operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use registry_core::{
    Cache, CacheKey, Entry, EntryId, ErrorCode, Fingerprint, Inserted, ListQuery, Restored,
    Sequence, StageError, StageResult, Storage,
};

/// A shared count of how many more calls may succeed before every call fails.
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    /// Calls left to succeed; `u64::MAX` means no limit.
    remaining: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl FaultSwitch {
    /// A switch that lets `ok_calls` calls succeed, then fails every call.
    pub fn new(ok_calls: u64) -> FaultSwitch {
        FaultSwitch {
            remaining: Arc::new(AtomicU64::new(ok_calls)),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A switch that lets every call through until told otherwise.
    pub fn healthy() -> FaultSwitch {
        FaultSwitch::new(u64::MAX)
    }

    /// From now on, lets `ok_calls` more calls succeed, then fails every call.
    pub fn fail_after(&self, ok_calls: u64) {
        self.remaining.store(ok_calls, Ordering::SeqCst);
    }

    /// Lets every call through again.
    pub fn heal(&self) {
        self.remaining.store(u64::MAX, Ordering::SeqCst);
    }

    /// How many calls have failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// Spends one call: `Ok` if it may go through, else the injected error.
    fn pass(&self, code: ErrorCode, what: &str) -> StageResult<()> {
        let allowed = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                u64::MAX => Some(u64::MAX),
                0 => None,
                n => Some(n - 1),
            })
            .is_ok();
        if allowed {
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        Err(StageError::new(
            code,
            format!("injected fault: {what} failed after its allowed calls were used up"),
        ))
    }
}

/// A storage that forwards to `S` until its [`FaultSwitch`] runs out, then fails every call with
/// code `Storage` without reaching `S`, as a store whose disk went away would.
#[derive(Debug)]
pub struct FailingStorage<S> {
    inner: S,
    switch: FaultSwitch,
}

impl<S: Storage> FailingStorage<S> {
    /// Wraps `inner`, letting `ok_calls` calls through (of any method) before failing.
    pub fn new(inner: S, ok_calls: u64) -> FailingStorage<S> {
        FailingStorage::with_switch(inner, FaultSwitch::new(ok_calls))
    }

    /// Wraps `inner` under a switch the caller keeps.
    pub fn with_switch(inner: S, switch: FaultSwitch) -> FailingStorage<S> {
        FailingStorage { inner, switch }
    }

    /// A handle on the switch, to change it after the storage is handed over.
    pub fn switch(&self) -> FaultSwitch {
        self.switch.clone()
    }

    fn pass(&self, method: &str) -> StageResult<()> {
        self.switch
            .pass(ErrorCode::Storage, &format!("storage {method}"))
    }
}

impl<S: Storage> Storage for FailingStorage<S> {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.pass("find")?;
        self.inner.find(fingerprints, out)
    }

    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.pass("get")?;
        self.inner.get(ids, out)
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        self.pass("allocate")?;
        self.inner.allocate(prefixes, out)
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        self.pass("insert")?;
        self.inner.insert(entries, out)
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        self.pass("update")?;
        self.inner.update(entries, out)
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        self.pass("history")?;
        self.inner.history(id, out)
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        self.pass("list")?;
        self.inner.list(query, out)
    }

    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        self.pass("restore")?;
        self.inner.restore(histories, out)
    }

    /// Not counted and never failed: the pipeline reads it once, when it is built.
    fn meta(&self, out: &mut registry_core::Meta) -> StageResult<()> {
        self.inner.meta(out)
    }

    fn set_meta(&self, changes: &registry_core::Meta) -> StageResult<()> {
        self.pass("set_meta")?;
        self.inner.set_meta(changes)
    }

    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        self.pass("place")?;
        self.inner.place(ids, shards)
    }

    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.pass("locate")?;
        self.inner.locate(ids, out)
    }

    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        self.pass("migrate")?;
        self.inner.migrate(ids, shards)
    }

    fn reindex(&self) -> StageResult<u64> {
        self.pass("reindex")?;
        self.inner.reindex()
    }

    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        self.pass("sequences")?;
        self.inner.sequences(raise, out)
    }

    fn backup(&self, dir: &str) -> StageResult<u64> {
        self.pass("backup")?;
        self.inner.backup(dir)
    }

    fn purge(&self, revision: &Entry) -> StageResult<()> {
        self.pass("purge")?;
        self.inner.purge(revision)
    }
}

/// A cache that fails every call with code `Unavailable`. The pipeline must then behave exactly
/// as with a cache that always misses, only slower.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokenCache;

impl BrokenCache {
    fn broken() -> StageError {
        StageError::new(
            ErrorCode::Unavailable,
            "injected fault: the cache is broken",
        )
    }
}

impl Cache for BrokenCache {
    fn get(&self, _keys: &[CacheKey], _out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        Err(BrokenCache::broken())
    }

    fn put(&self, _entries: &[Entry]) -> StageResult<()> {
        Err(BrokenCache::broken())
    }

    fn remove(&self, _keys: &[CacheKey]) -> StageResult<()> {
        Err(BrokenCache::broken())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStorage;

    #[test]
    fn fails_after_the_allowed_calls_until_healed() {
        let storage = FailingStorage::new(MemoryStorage::default(), 2);
        let switch = storage.switch();
        let allocate = || storage.allocate(&["SEC-RUL".to_owned()], &mut Vec::new());
        assert!(allocate().is_ok());
        assert!(allocate().is_ok());
        let err = allocate().expect_err("third call fails");
        assert_eq!(err.code, ErrorCode::Storage);
        assert!(err.message.contains("allocate"), "{}", err.message);
        assert_eq!(switch.failures(), 1);
        switch.heal();
        let mut out = Vec::new();
        storage
            .allocate(&["SEC-RUL".to_owned()], &mut out)
            .expect("healed");
        // The failed call never reached the store: no number was spent on it.
        assert_eq!(out, [3]);
        switch.fail_after(0);
        assert!(allocate().is_err());
    }
}
