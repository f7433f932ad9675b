//! Keeping the index in line with storage: [`catch_up`] and [`rebuild`].
//!
//! Both page through [`Pipeline::list`] (every lifecycle: a list query filters only on header
//! fields) a page of [`PAGE`] entries at a time, so a registry of any size is indexed in
//! bounded memory: what is held is one page, and for [`catch_up`] the map of the ids and
//! revisions the index holds (about 60 bytes an entry). An entry whose stored content fails its
//! hash ([`registry_core::Page::damaged`]) is neither indexed nor removed: its document, if it
//! has one, stays as it was until the entry is repaired.
//!
//! Neither is atomic with the writes of others: run them where the index's other writes are
//! made (the one writer thread), or pause those, so a document written from a newer revision
//! is not replaced by the older one read here.

use registry_core::{ListQuery, Pipeline};

use crate::index::{SearchError, SearchErrorKind, SearchIndex};

/// Entries read from storage per [`Pipeline::list`] call.
pub const PAGE: usize = 1000;

/// Documents written between two commits by [`catch_up`], so a long catch-up that is cut short
/// keeps most of its work.
pub const COMMIT_EVERY: u64 = 100_000;

/// What [`catch_up`] or [`rebuild`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaughtUp {
    /// Entries read from storage.
    pub scanned: u64,
    /// Documents written: entries the index did not hold, or held at another revision.
    pub upserted: u64,
    /// Documents deleted: ids storage no longer holds.
    pub removed: u64,
}

/// Brings the index up to date with storage: lists every entry (all lifecycles), writes a
/// document for each one the index lacks or holds at another revision, deletes the documents
/// of ids storage no longer holds, and commits. `progress` is called with the number of
/// entries scanned so far after each page.
///
/// # Errors
/// [`SearchErrorKind::Storage`] when storage cannot be listed; a failure of the index. What
/// was committed before stays, and a later catch-up finishes the work.
pub fn catch_up(
    index: &SearchIndex,
    pipeline: &Pipeline,
    progress: &mut dyn FnMut(u64),
) -> Result<CaughtUp, SearchError> {
    let mut held = index.revisions()?;
    let mut done = CaughtUp::default();
    let mut since_commit = 0u64;
    scan(index, pipeline, progress, &mut done, |page, damaged| {
        for id in damaged {
            held.remove(&id.to_string());
        }
        let stale: Vec<_> = page
            .into_iter()
            .filter(|e| held.remove(&e.header.id.to_string()) != Some(e.revision))
            .collect();
        index.upsert(&stale)?;
        since_commit += stale.len() as u64;
        if since_commit >= COMMIT_EVERY {
            index.commit()?;
            since_commit = 0;
        }
        Ok(stale.len() as u64)
    })?;
    let gone: Vec<String> = held.into_keys().collect();
    for chunk in gone.chunks(PAGE) {
        index.remove_texts(chunk)?;
    }
    done.removed = gone.len() as u64;
    index.commit()?;
    Ok(done)
}

/// Empties the index and fills it from storage (`registry reindex`), then commits once: until
/// then, searches see the index as it was.
///
/// # Errors
/// As [`catch_up`]; the index is then as it was before (nothing was committed).
pub fn rebuild(
    index: &SearchIndex,
    pipeline: &Pipeline,
    progress: &mut dyn FnMut(u64),
) -> Result<CaughtUp, SearchError> {
    index.clear()?;
    let mut done = CaughtUp::default();
    scan(index, pipeline, progress, &mut done, |page, _| {
        index.upsert(&page)?;
        Ok(page.len() as u64)
    })?;
    index.commit()?;
    Ok(done)
}

/// Pages through every stored entry, giving each page (and the ids of its damaged entries)
/// to `each`, which returns how many documents it wrote.
fn scan(
    index: &SearchIndex,
    pipeline: &Pipeline,
    progress: &mut dyn FnMut(u64),
    done: &mut CaughtUp,
    mut each: impl FnMut(
        Vec<registry_core::Entry>,
        Vec<registry_core::EntryId>,
    ) -> Result<u64, SearchError>,
) -> Result<(), SearchError> {
    let mut query = ListQuery {
        limit: PAGE,
        ..ListQuery::default()
    };
    loop {
        let page = pipeline.list(&query).map_err(|e| {
            SearchError::new(
                SearchErrorKind::Storage,
                index.dir(),
                format!("cannot list storage: {e}"),
            )
        })?;
        done.scanned += (page.entries.len() + page.damaged.len()) as u64;
        let damaged = page.damaged.into_iter().map(|d| d.id).collect();
        done.upserted += each(page.entries, damaged)?;
        progress(done.scanned);
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(()),
        }
    }
}
