//! Full-text search on the server: the index (`registry-search`, in `DATA/search`) kept up to
//! date behind the writes by one thread, and `GET /v1/search`.
//!
//! The indexer follows the change feed ([`crate::feed`]) with its own cursor: it reads each
//! changed entry from storage (so it indexes what storage holds, whatever order the writes
//! came in), and commits when the feed has gone quiet for [`QUIET`] or [`COMMIT_EVERY`] has
//! passed since the last commit, so a burst of registrations costs one commit a second, not one
//! per write, and the writes never wait for the index. At start, and whenever it falls behind
//! the feed's ring, it catches up from storage instead (every entry's id and revision compared
//! with the index's). A purge is followed by [`SearchIndex::expunge_deleted`], so the purged
//! text leaves the index's files too. The lag (changes written and not yet searchable, and how
//! long the oldest of them has waited) is in `/v1/live`, `/v1/stats` and `/metrics`.
//!
//! A hit is never an entry storage does not hold: each one is read from storage before it is
//! answered, and left out when storage holds another revision (the index has not caught up) or
//! nothing; `stale` counts those left out.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::response::{IntoResponse, Response};
use registry_core::{ChangeKind, Error as CoreError, Pipeline};
use registry_host::tokens::Role;
use registry_search::{SearchIndex, SearchQuery};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::feed::{Feed, Since};
use crate::problem::Problem;

/// How long the feed stays quiet before the indexer commits what it has.
const QUIET: Duration = Duration::from_millis(200);

/// The longest between two commits while changes keep coming.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Changes read from the feed at once.
const BATCH: usize = 4096;

/// The most hits one answer holds.
pub(crate) const MAX_HITS: usize = 100;

/// The index and its indexer.
pub(crate) struct Search {
    index: Arc<SearchIndex>,
    /// The last change of the feed the index holds, committed.
    committed: AtomicU64,
    /// Whether the first catch-up is done.
    ready: AtomicBool,
    /// The indexer's last failure, if its last attempt failed.
    failure: Mutex<Option<String>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Search")
    }
}

/// How far the index is behind the writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Lag {
    /// Changes written and not yet searchable.
    pub changes: u64,
    /// How long the oldest of them has waited, in seconds.
    pub seconds: f64,
}

impl Search {
    /// Opens the index in `dir` and starts its indexer on `feed`.
    ///
    /// # Errors
    /// The index cannot be opened or the thread cannot start.
    pub fn start(
        dir: &Path,
        pipeline: Arc<Pipeline>,
        feed: Arc<Feed>,
    ) -> Result<Arc<Search>, registry_host::Error> {
        let dir = dir.to_owned();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (search_tx, search_rx) = std::sync::mpsc::channel::<Arc<Search>>();
        // The index is opened on the indexer's thread, once it runs at a lower priority, so
        // that the threads tantivy starts for its writer (indexing, merging) inherit it too.
        let handle = std::thread::Builder::new()
            .name("search-index".into())
            .spawn(move || {
                lower_priority();
                let opened = SearchIndex::open(&dir);
                let failed = opened.is_err();
                let _ = opened_tx.send(opened.map(|o| (Arc::new(o.index), o.rebuilt)));
                if failed {
                    return;
                }
                if let Ok(search) = search_rx.recv() {
                    search.follow(&pipeline, &feed);
                }
            })
            .map_err(|e| {
                registry_host::Error::config(format!("cannot start the search indexer: {e}"))
            })?;
        let (index, rebuilt) = opened_rx
            .recv()
            .map_err(|_| registry_host::Error::config("the search indexer stopped at its start"))?
            .map_err(|e| registry_host::Error::config(e.to_string()))?;
        if rebuilt {
            tracing::info!(target: "registry::search", "search index created; filling it from storage");
        }
        let search = Arc::new(Search {
            index,
            committed: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            failure: Mutex::new(None),
            thread: Mutex::new(Some(handle)),
        });
        search_tx
            .send(Arc::clone(&search))
            .map_err(|_| registry_host::Error::config("the search indexer stopped at its start"))?;
        Ok(search)
    }

    /// Documents in the index.
    pub fn docs(&self) -> u64 {
        self.index.docs()
    }

    /// Whether the index has caught up with storage once since the server started.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The indexer's last failure, if its last attempt failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How far the index is behind the feed.
    pub fn lag(&self, feed: &Feed) -> Lag {
        let committed = self.committed.load(Ordering::Acquire);
        let changes = feed.last().saturating_sub(committed);
        let seconds = match feed.since(committed, 1) {
            Since::Changes(c) => c.first().map_or(0.0, |c| c.heard.elapsed().as_secs_f64()),
            Since::Gone => f64::NAN,
        };
        Lag {
            changes,
            seconds: if seconds.is_nan() { 0.0 } else { seconds },
        }
    }

    /// Waits for the indexer to finish (after [`Feed::close`]).
    pub fn join(&self) {
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn fail(&self, what: &str, e: &dyn std::fmt::Display) {
        let message = format!("{what}: {e}");
        tracing::warn!(target: "registry::search", error = %message, "search indexer");
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
    }

    fn succeed(&self) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The indexer's loop, until the feed closes.
    fn follow(&self, pipeline: &Pipeline, feed: &Feed) {
        let mut cursor = self.catch_up(pipeline, feed);
        let mut pending = false;
        let mut purged = false;
        let mut last_commit = Instant::now();
        loop {
            let closed = feed.is_closed();
            let changes = match feed.wait_after(cursor, BATCH, QUIET) {
                Since::Gone => {
                    cursor = self.catch_up(pipeline, feed);
                    pending = false;
                    last_commit = Instant::now();
                    continue;
                }
                Since::Changes(changes) => changes,
            };
            if let Some(last) = changes.last() {
                let ids: BTreeSet<_> = changes.iter().map(|c| c.id.clone()).collect();
                purged |= changes.iter().any(|c| c.kind == ChangeKind::Purged);
                match self.apply(pipeline, ids.into_iter()) {
                    Ok(()) => {
                        cursor = last.seq;
                        pending = true;
                    }
                    Err(e) => {
                        self.fail("cannot update the search index", &e);
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            let quiet = changes.is_empty();
            if pending && (quiet || closed || last_commit.elapsed() >= COMMIT_EVERY) {
                match self.index.commit() {
                    Ok(()) => {
                        self.committed.store(cursor, Ordering::Release);
                        pending = false;
                        last_commit = Instant::now();
                        self.succeed();
                    }
                    Err(e) => self.fail("cannot commit the search index", &e),
                }
                if purged && !pending {
                    purged = false;
                    if let Err(e) = self.index.expunge_deleted() {
                        self.fail("cannot expunge purged text from the search index", &e);
                    }
                }
            }
            if closed && !pending {
                return;
            }
        }
    }

    /// Indexes what storage holds now for each id.
    fn apply(
        &self,
        pipeline: &Pipeline,
        ids: impl Iterator<Item = registry_core::EntryId>,
    ) -> Result<(), registry_search::SearchError> {
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        for id in ids {
            match pipeline.get_uncached(&id) {
                Ok(entry) => upsert.push(entry),
                Err(CoreError::NotFound(_)) => remove.push(id),
                // Damaged or unreadable now: searches read storage before answering anyway,
                // and the next catch-up looks again.
                Err(e) => {
                    tracing::warn!(target: "registry::search", %id, error = %e, "not indexed");
                }
            }
        }
        self.index.upsert(&upsert)?;
        self.index.remove(&remove)
    }

    /// Brings the index up to date with storage; the feed's position it is up to date with.
    fn catch_up(&self, pipeline: &Pipeline, feed: &Feed) -> u64 {
        loop {
            // Changes from here on are applied after the catch-up (again, harmlessly).
            let from = feed.last();
            let started = Instant::now();
            match registry_search::catch_up(&self.index, pipeline, &mut |_| {}) {
                Ok(done) => {
                    self.committed.store(from, Ordering::Release);
                    self.ready.store(true, Ordering::Release);
                    self.succeed();
                    tracing::info!(
                        target: "registry::search",
                        scanned = done.scanned,
                        upserted = done.upserted,
                        removed = done.removed,
                        millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "search index caught up"
                    );
                    return from;
                }
                Err(e) => {
                    self.fail("cannot catch the search index up with storage", &e);
                    if feed.is_closed() {
                        return from;
                    }
                    std::thread::sleep(Duration::from_secs(5));
                }
            }
        }
    }
}

/// How much lower than the request threads the indexer runs (a nice value): on a machine with
/// few cores, indexing then takes the time requests leave, instead of sharing it with them.
const INDEXER_NICENESS: i32 = 10;

/// Lowers the calling thread's priority by [`INDEXER_NICENESS`] (Linux; elsewhere nothing).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on this thread's id changes only
        // its own scheduling priority, and its failure leaves the priority as it was.
        unsafe {
            let tid = libc::gettid();
            let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            libc::setpriority(
                libc::PRIO_PROCESS,
                tid as libc::id_t,
                now.saturating_add(INDEXER_NICENESS),
            );
        }
    }
}

/// `GET /v1/search` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    /// Words to find in titles, contexts and configs (all of them; "a phrase" in quotes;
    /// `-word` to leave out; `a OR b`); empty lists the entries the filters select.
    #[serde(default)]
    q: String,
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    variant: Option<String>,
    status: Option<String>,
    /// Also retired and merged entries.
    #[serde(default)]
    retired: bool,
    /// Hits per answer (at most 100; 20 unless given).
    limit: Option<usize>,
    /// Hits to skip, for the next page.
    #[serde(default)]
    offset: usize,
}

/// Entries ranked by how well they match (role `read`; a scoped token finds its scopes'
/// entries only). Each hit is the entry as storage holds it.
#[utoipa::path(get, path = "/v1/search", params(SearchParams), responses(
    (status = 200, description = "The hits, best first", body = crate::openapi::SearchAnswer),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 503, description = "Search is not available", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let Some(search) = state.search.clone() else {
        return Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "search is off on this server",
        ));
    };
    let limit = params.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_HITS {
        return Err(Problem::bad_request(format!(
            "limit must be 1 to {MAX_HITS}, not {limit}"
        )));
    }
    if params.q.len() > 1000 {
        return Err(Problem::bad_request(
            "q is longer than 1000 bytes".to_owned(),
        ));
    }
    // A token limited to some scopes searches those only, so that neither its hits nor the
    // total count entries it may not see.
    if let Some(scope) = &params.scope {
        caller.require_scope(scope)?;
    }
    let query = SearchQuery {
        text: params.q,
        scope: params.scope,
        scopes: caller.scopes().to_vec(),
        kind: params.kind,
        variant: params.variant,
        status: params.status,
        include_retired: params.retired,
        limit,
        offset: params.offset,
    };
    let started = Instant::now();
    let answer = crate::routes::blocking(&state, move |p| {
        let found = search
            .index
            .search(&query)
            .map_err(|e| Problem::internal(e.to_string()))?;
        let mut hits = Vec::with_capacity(found.hits.len());
        let mut stale = 0u64;
        for hit in found.hits {
            match p.get(&hit.id) {
                Ok(entry) if entry.revision == hit.revision => {
                    if caller.sees(&entry.header.fields.scope) {
                        hits.push(json!({ "score": hit.score, "entry": entry }));
                    }
                }
                Ok(_) | Err(CoreError::NotFound(_)) => stale += 1,
                Err(e) => return Err(Problem::from(registry_host::Error::from(e))),
            }
        }
        Ok::<_, Problem>((hits, found.total, stale))
    })
    .await??;
    let (hits, total, stale) = answer;
    let lag = state
        .search
        .as_ref()
        .map(|s| s.lag(&state.feed))
        .unwrap_or(Lag {
            changes: 0,
            seconds: 0.0,
        });
    Ok(Json(json!({
        "hits": hits,
        "total": total,
        "stale": stale,
        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
        "lag": { "changes": lag.changes, "seconds": lag.seconds },
    }))
    .into_response())
}
