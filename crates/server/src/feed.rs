//! The change feed: every write the server's pipeline makes, numbered, kept in a ring of the
//! most recent ones, and streamed to clients as server-sent events (`GET /v1/events`).
//!
//! While `registry serve` runs it owns the data directory (storage's lock), so every write of
//! the registry goes through its pipeline, and the pipeline tells the feed of each one once it is
//! durable ([`registry_core::Observer`]): the feed cannot miss a write path. Each change gets the
//! next sequence number; its event id is `EPOCH-SEQ`, where the epoch names this run of the
//! server. A client reconnecting with `Last-Event-ID` gets every change after it, as long as it
//! is still in the ring ([`RING`] changes); when it is not (too old, or from another run of the
//! server, whose numbers mean nothing here) the stream starts with a `reset` event, and the
//! client reloads what it shows before following the stream.
//!
//! The search indexer follows the same ring with its own cursor ([`Feed::wait_after`]).
//!
//! With a Redis storage shared by several servers, each server's feed holds its own writes only.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use registry_core::{ChangeKind, Entry, EntryId, Observer, Timestamp};
use registry_host::tokens::Role;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;

/// Changes kept for resuming streams and for the indexer: about 100 bytes each, so the ring
/// stays under 10 MiB.
pub(crate) const RING: usize = 65_536;

/// One change, as streamed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    pub seq: u64,
    pub action: &'static str,
    pub id: EntryId,
    pub revision: u32,
    pub scope: String,
    /// Who made it: the writer's name, as the audit log records it; `None` when not known.
    pub actor: Option<String>,
    /// When the server heard of it.
    pub at: Timestamp,
    #[serde(skip)]
    pub kind: ChangeKind,
    /// When the server heard of it, for the indexer's lag.
    #[serde(skip)]
    pub heard: Instant,
}

/// The changes after a sequence number.
#[derive(Debug)]
pub(crate) enum Since {
    /// The changes after it, in order (empty when there is none yet).
    Changes(Vec<Arc<Change>>),
    /// Some of them have left the ring: the reader must start again from the whole registry.
    Gone,
}

struct Ring {
    changes: VecDeque<Arc<Change>>,
    /// The sequence number of the last change (0 before the first).
    last: u64,
    closed: bool,
}

/// The feed of one server run.
pub(crate) struct Feed {
    epoch: String,
    ring: Mutex<Ring>,
    /// Wakes the indexer's thread.
    grown: Condvar,
    /// Wakes the event streams.
    latest: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").field("epoch", &self.epoch).finish()
    }
}

thread_local! {
    /// The caller a request handler acts for, for writes whose revision names another author
    /// (an import keeps the exported authors; a purge keeps the revision's).
    static ACTING: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work` with the changes it makes on this thread attributed to `actor`.
pub(crate) fn acting_as<T>(actor: &str, work: impl FnOnce() -> T) -> T {
    ACTING.with(|a| *a.borrow_mut() = Some(actor.to_owned()));
    let out = work();
    ACTING.with(|a| *a.borrow_mut() = None);
    out
}

impl Feed {
    pub fn new() -> Arc<Feed> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Start time and process id: two runs of the server never share an epoch.
        let epoch = format!(
            "{:x}",
            (nanos as u64) ^ (u64::from(std::process::id()) << 48)
        );
        Arc::new(Feed {
            epoch,
            ring: Mutex::new(Ring {
                changes: VecDeque::with_capacity(1024),
                last: 0,
                closed: false,
            }),
            grown: Condvar::new(),
            latest: tokio::sync::watch::Sender::new(0),
        })
    }

    /// This run's epoch, the first part of every event id.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The sequence number of the last change (0 before the first).
    pub fn last(&self) -> u64 {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last
    }

    /// The sequence number an event id names, if it is one of this run's.
    pub fn parse_id(&self, id: &str) -> Option<u64> {
        let (epoch, seq) = id.trim().split_once('-')?;
        (epoch == self.epoch).then(|| seq.parse().ok()).flatten()
    }

    /// At most `max` changes after `after`.
    pub fn since(&self, after: u64, max: usize) -> Since {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        since(&ring, after, max)
    }

    /// The changes after `after` (at most `max`), waiting up to `wait` for one when there is
    /// none; empty after the wait, or once the feed is closed.
    pub fn wait_after(&self, after: u64, max: usize, wait: Duration) -> Since {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let (ring, _) = self
            .grown
            .wait_timeout_while(ring, wait, |r| r.last <= after && !r.closed)
            .unwrap_or_else(PoisonError::into_inner);
        since(&ring, after, max)
    }

    /// Follows the sequence number of the last change (for the event streams).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Ends every stream and wakes the indexer: the server is stopping.
    pub fn close(&self) {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.grown.notify_all();
        self.latest.send_modify(|_| {});
    }

    /// Whether [`Feed::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.ring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed
    }

    /// Adds changes, numbered in order.
    fn push(&self, kind: ChangeKind, entries: &[&Entry]) {
        let actor = ACTING.with(|a| a.borrow().clone());
        let at = Timestamp::now();
        let heard = Instant::now();
        let last = {
            let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            for entry in entries {
                ring.last += 1;
                let change = Change {
                    seq: ring.last,
                    action: kind.name(),
                    id: entry.header.id.clone(),
                    revision: entry.revision,
                    scope: entry.header.fields.scope.clone(),
                    actor: actor
                        .clone()
                        .or_else(|| entry.author.as_ref().map(|a| a.name.clone())),
                    at,
                    kind,
                    heard,
                };
                if ring.changes.len() == RING {
                    ring.changes.pop_front();
                }
                ring.changes.push_back(Arc::new(change));
            }
            ring.last
        };
        self.grown.notify_all();
        self.latest.send_replace(last);
    }
}

fn since(ring: &Ring, after: u64, max: usize) -> Since {
    if after >= ring.last {
        return Since::Changes(Vec::new());
    }
    let first = ring.last + 1 - ring.changes.len() as u64;
    if after + 1 < first {
        return Since::Gone;
    }
    let skip = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
    Since::Changes(ring.changes.iter().skip(skip).take(max).cloned().collect())
}

impl Observer for Feed {
    fn changed(&self, kind: ChangeKind, entries: &[&Entry]) {
        self.push(kind, entries);
    }
}

/// Event streams open at once, at most: the rest of `max_connections` stays for requests.
pub(crate) fn max_streams(max_connections: u64) -> usize {
    usize::try_from(max_connections / 2)
        .unwrap_or(usize::MAX)
        .max(1)
}

/// How often an idle stream sends a comment, so that proxies and clients see it alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/events` query: the browser's `EventSource` sends `Last-Event-ID` as a header on
/// reconnection; a client that starts anew can name it here.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct EventParams {
    /// Resume after this event id (as the `Last-Event-ID` header does).
    #[serde(default)]
    last_event_id: Option<String>,
}

/// A stream of every change (role `read`; a scoped token sees its scopes' changes):
/// `text/event-stream`, events `change` (data: the change as JSON) with ids `EPOCH-SEQ`, and
/// `reset` when the stream cannot resume where the client asked (reload, then follow).
#[utoipa::path(get, path = "/v1/events", params(EventParams,
    ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
    (status = 200, description = "Server-sent events: `change` (data: a Change) and `reset`", content_type = "text/event-stream", body = crate::openapi::ChangeEvent),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role does not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 503, description = "Too many event streams open", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let permit = Arc::clone(&state.streams)
        .try_acquire_owned()
        .map_err(|_| {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many event streams are open (half of [serve] max_connections)",
            );
            p.retry_after = Some(5);
            p
        })?;
    let feed = Arc::clone(&state.feed);
    let asked = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(params.last_event_id);
    let last = feed.last();
    let (cursor, reset) = match asked.as_deref().map(|id| feed.parse_id(id)) {
        None => (last, None),
        Some(Some(seq)) if seq <= last => (seq, None),
        Some(_) => (
            last,
            Some("the event id is not one of this server run's: reload, then follow"),
        ),
    };
    let follow = Follow {
        rx: feed.subscribe(),
        feed,
        cursor,
        reset,
        caller,
        pending: VecDeque::new(),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        f.next()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), f))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// One client's place in the feed.
struct Follow {
    feed: Arc<Feed>,
    rx: tokio::sync::watch::Receiver<u64>,
    cursor: u64,
    reset: Option<&'static str>,
    caller: Caller,
    pending: VecDeque<Event>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Follow {
    /// The next event; `None` once the server stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if let Some(reason) = self.reset.take() {
                return Some(
                    Event::default()
                        .event("reset")
                        .id(format!("{}-{}", self.feed.epoch(), self.cursor))
                        .data(serde_json::json!({ "reason": reason }).to_string()),
                );
            }
            // Seen before reading: a change pushed after this wakes the wait below.
            self.rx.borrow_and_update();
            if self.feed.is_closed() {
                return None;
            }
            match self.feed.since(self.cursor, 256) {
                Since::Gone => {
                    self.cursor = self.feed.last();
                    self.reset = Some("changes were missed (the stream fell too far behind)");
                }
                Since::Changes(changes) if changes.is_empty() => {
                    if self.rx.changed().await.is_err() {
                        return None;
                    }
                }
                Since::Changes(changes) => {
                    for change in changes {
                        self.cursor = change.seq;
                        if !self.caller.sees(&change.scope) {
                            continue;
                        }
                        let data = serde_json::to_string(&*change).unwrap_or_default();
                        self.pending.push_back(
                            Event::default()
                                .event("change")
                                .id(format!("{}-{}", self.feed.epoch(), change.seq))
                                .data(data),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        let mut e: Entry = serde_json::from_value(serde_json::json!({
            "scope": "SEC", "type": "RULES", "variant": "LIVE", "id": format!("SEC-RUL-{n:03}"),
            "version": "v1.0", "status": "DEV", "title": "t", "context": {}, "config": "a: 1\n",
            "hash": "0".repeat(64), "fingerprint": "0".repeat(32), "revision": 1,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "lifecycle": "active"
        }))
        .expect("an entry");
        e.author = Some(registry_core::Author::new("alice", "127.0.0.1", "r1"));
        e
    }

    fn seqs(s: Since) -> Vec<u64> {
        match s {
            Since::Changes(c) => c.iter().map(|c| c.seq).collect(),
            Since::Gone => vec![u64::MAX],
        }
    }

    #[test]
    fn changes_are_numbered_and_read_after_any_point_still_in_the_ring() {
        let feed = Feed::new();
        let (a, b) = (entry(1), entry(2));
        feed.changed(ChangeKind::Created, &[&a, &b]);
        feed.changed(ChangeKind::Retired, &[&a]);
        assert_eq!(feed.last(), 3);
        assert_eq!(seqs(feed.since(0, 10)), [1, 2, 3]);
        assert_eq!(seqs(feed.since(1, 10)), [2, 3]);
        assert_eq!(seqs(feed.since(1, 1)), [2]);
        assert_eq!(seqs(feed.since(3, 10)), Vec::<u64>::new());
        let Since::Changes(c) = feed.since(2, 10) else {
            panic!("in the ring")
        };
        assert_eq!(
            (c[0].action, c[0].id.to_string(), c[0].actor.as_deref()),
            ("retired", "SEC-RUL-001".to_owned(), Some("alice"))
        );
    }

    #[test]
    fn a_point_that_left_the_ring_is_gone() {
        let feed = Feed::new();
        let e = entry(1);
        for _ in 0..RING + 5 {
            feed.changed(ChangeKind::Updated, &[&e]);
        }
        assert_eq!(seqs(feed.since(0, 1)), [u64::MAX]);
        assert_eq!(seqs(feed.since(4, 1)), [u64::MAX]);
        assert_eq!(seqs(feed.since(5, 1)), [6]);
    }

    #[test]
    fn event_ids_of_another_run_are_not_this_runs() {
        let feed = Feed::new();
        let id = format!("{}-42", feed.epoch());
        assert_eq!(feed.parse_id(&id), Some(42));
        assert_eq!(feed.parse_id("0-42"), None);
        assert_eq!(feed.parse_id("garbage"), None);
        assert_eq!(feed.parse_id(&format!("{}-x", feed.epoch())), None);
    }

    #[test]
    fn acting_as_names_the_caller_instead_of_the_revisions_author() {
        let feed = Feed::new();
        let e = entry(1);
        acting_as("bob", || feed.changed(ChangeKind::Imported, &[&e]));
        feed.changed(ChangeKind::Imported, &[&e]);
        let Since::Changes(c) = feed.since(0, 10) else {
            panic!("in the ring")
        };
        assert_eq!(c[0].actor.as_deref(), Some("bob"));
        assert_eq!(c[1].actor.as_deref(), Some("alice"));
    }

    #[test]
    fn a_waiting_reader_wakes_on_a_change_and_on_close() {
        let feed = Feed::new();
        let waiter = {
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || seqs(feed.wait_after(0, 10, Duration::from_secs(30))))
        };
        std::thread::sleep(Duration::from_millis(50));
        feed.changed(ChangeKind::Created, &[&entry(1)]);
        assert_eq!(waiter.join().expect("joins"), [1]);
        let waiter = {
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || seqs(feed.wait_after(1, 10, Duration::from_secs(30))))
        };
        std::thread::sleep(Duration::from_millis(50));
        feed.close();
        assert_eq!(waiter.join().expect("joins"), Vec::<u64>::new());
    }
}
