//! The streamed routes: `POST /v1/batch` (NDJSON requests in, one NDJSON result per line out,
//! as each group of lines is committed) and `GET /v1/export` (the export file, written as it is
//! read).
//!
//! Both stream through bounded queues: a batch keeps at most two groups of 1,000 lines
//! committing while it reads the next, and reads on only once the results of the oldest are
//! queued for the client; an export's reader waits for a slow client rather than buffering;
//! memory stays bounded whatever the size. A client that goes away
//! stops the work (a batch keeps the groups already committed, as `registry batch` does when
//! interrupted).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use registry_core::{EntryId, Request, Turns};
use registry_host::requests::{RequestLine, strip_position};
use registry_host::tokens::Role;
use registry_host::transfer::FileFormat;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::check_request_scope;

/// Lines registered per pipeline call: the group a batch commits at once.
const GROUP: usize = 1000;

/// Chunks of output queued for a slow client, at most.
const QUEUED: usize = 16;

/// Bytes gathered before an export sends a chunk.
const CHUNK: usize = 64 * 1024;

type Chunk = Result<Bytes, io::Error>;

/// A streamed body from the receiving end of a queue.
fn body(rx: mpsc::Receiver<Chunk>) -> Body {
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// One line's result, as `registry batch --results` writes it.
#[derive(Debug, Serialize)]
struct Outcome {
    line: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<EntryId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Outcome {
    fn failed(line: u64, code: &str, message: String) -> Outcome {
        Outcome {
            line,
            status: "failed",
            id: None,
            code: Some(code.to_owned()),
            message: Some(message),
        }
    }
}

/// Registers many entries (role `write`), as `registry batch`: one request per line in, one
/// result per line out, as each group of lines is committed; a bad line fails alone.
#[utoipa::path(post, path = "/v1/batch",
    request_body(content = String, content_type = "application/x-ndjson", description = "One registration (RegisterRequest) per line"),
    responses(
    (status = 200, description = "One BatchOutcome per request line; a last line {\"error\": Problem} when the batch stopped", body = crate::openapi::BatchOutcome, content_type = "application/x-ndjson"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
/// `POST /v1/batch`.
pub(crate) async fn batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request_body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Write)?;
    let (tx, rx) = mpsc::channel(QUEUED);
    tokio::spawn(async move {
        if let Err(problem) = run_batch(&state, &caller, request_body, &tx).await {
            let mut line = serde_json::json!({ "error": problem.to_json() }).to_string();
            line.push('\n');
            let _ = tx.send(Ok(Bytes::from(line))).await;
        }
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body(rx),
    )
        .into_response())
}

/// A line read and parsed, or why it is not a request.
type Item = (u64, Result<Request, Outcome>);

/// Reads the request body line by line, registering each group of lines and sending the
/// results. Two groups are committed at once, numbered in input order ([`Turns`]), so reading
/// and parsing the next lines overlaps the commits, and memory holds at most three groups. An
/// error that ends the whole batch (the body over its limit, unreadable) is returned, after
/// the results of every group before it were sent.
async fn run_batch(
    state: &AppState,
    caller: &Caller,
    request_body: Body,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Problem> {
    let max_line = usize::try_from(state.max_record_bytes).unwrap_or(usize::MAX);
    let max_total = state.limits.max_batch_bytes;
    let mut data = request_body.into_data_stream();
    let mut partial: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut number = 0u64;
    let mut total = 0u64;
    let mut group: Vec<Item> = Vec::with_capacity(GROUP);
    let turns = Turns::new();
    let mut in_flight: VecDeque<Committing> = VecDeque::with_capacity(IN_FLIGHT);
    while let Some(chunk) = data.next().await {
        let chunk =
            chunk.map_err(|e| Problem::bad_request(format!("cannot read the body: {e}")))?;
        total += chunk.len() as u64;
        if total > max_total {
            in_flight.push_back(start(state, &turns, std::mem::take(&mut group)));
            while let Some(committing) = in_flight.pop_front() {
                finish(state, committing, tx).await?;
            }
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the batch is over {max_total} bytes ([serve] max_batch_bytes): the lines \
                     before line {} were answered, the rest not read",
                    number + 1
                ),
            ));
        }
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            rest = if ended { &rest[piece.len() + 1..] } else { &[] };
            if !too_long {
                if partial.len() + piece.len() > max_line {
                    too_long = true;
                    partial.clear();
                } else {
                    partial.extend_from_slice(piece);
                }
            }
            if ended {
                number += 1;
                if let Some(item) = parse(state, caller, number, &partial, too_long) {
                    group.push(item);
                }
                partial.clear();
                too_long = false;
                if group.len() >= GROUP {
                    if in_flight.len() == IN_FLIGHT
                        && let Some(oldest) = in_flight.pop_front()
                    {
                        finish(state, oldest, tx).await?;
                    }
                    let full = std::mem::replace(&mut group, Vec::with_capacity(GROUP));
                    in_flight.push_back(start(state, &turns, full));
                }
            }
        }
    }
    if !partial.is_empty() || too_long {
        number += 1;
        if let Some(item) = parse(state, caller, number, &partial, too_long) {
            group.push(item);
        }
    }
    in_flight.push_back(start(state, &turns, group));
    while let Some(committing) = in_flight.pop_front() {
        finish(state, committing, tx).await?;
    }
    Ok(())
}

/// Groups committed at once by one batch.
const IN_FLIGHT: usize = 2;

/// A group on its way to storage: each line's outcome where it is known already (a line that
/// did not parse), and the commit of the others.
struct Committing {
    outcomes: Vec<Option<Outcome>>,
    /// For each request committed: its place in `outcomes` and its line number.
    lines: Vec<(usize, u64)>,
    commit:
        Option<tokio::task::JoinHandle<Vec<Result<registry_core::Added, registry_core::Error>>>>,
}

/// Starts committing a group's requests on the blocking pool, in the next turn.
fn start(state: &AppState, turns: &std::sync::Arc<Turns>, items: Vec<Item>) -> Committing {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(items.len());
    let mut requests = Vec::new();
    let mut lines = Vec::new();
    for (i, (number, item)) in items.into_iter().enumerate() {
        match item {
            Ok(request) => {
                requests.push(request);
                lines.push((i, number));
                outcomes.push(None);
            }
            Err(outcome) => outcomes.push(Some(outcome)),
        }
    }
    let commit = (!requests.is_empty()).then(|| {
        let shared = Arc::clone(state);
        let turn = turns.take();
        tokio::task::spawn_blocking(move || shared.pipeline.add_in_turn(requests, turn))
    });
    Committing {
        outcomes,
        lines,
        commit,
    }
}

/// Waits for a group's commit and sends every line's result, in line order.
async fn finish(
    state: &AppState,
    committing: Committing,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), Problem> {
    let Committing {
        mut outcomes,
        lines,
        commit,
    } = committing;
    if outcomes.is_empty() {
        return Ok(());
    }
    if let Some(commit) = commit {
        let results = commit
            .await
            .map_err(|e| Problem::internal(format!("the batch's work failed: {e}")))?;
        for ((i, number), result) in lines.into_iter().zip(results) {
            outcomes[i] = Some(match result {
                Ok(added) => {
                    if added.created {
                        state.metrics.created(&added.entry.header.fields.scope);
                    }
                    Outcome {
                        line: number,
                        status: if added.created {
                            "created"
                        } else {
                            "duplicate"
                        },
                        id: Some(added.entry.header.id.clone()),
                        code: None,
                        message: None,
                    }
                }
                Err(e) => {
                    let e = registry_host::Error::from(e);
                    let code = e.kind().to_owned();
                    Outcome::failed(number, &code, e.message)
                }
            });
        }
    }
    let mut out = Vec::with_capacity(outcomes.len() * 64);
    for outcome in outcomes.into_iter().flatten() {
        // Serializing a plain struct of strings and numbers cannot fail.
        let _ = serde_json::to_writer(&mut out, &outcome);
        out.push(b'\n');
    }
    tx.send(Ok(Bytes::from(out)))
        .await
        .map_err(|_| Problem::bad_request("the client went away"))
}

/// One line: `None` for a blank one.
fn parse(
    state: &AppState,
    caller: &Caller,
    number: u64,
    line: &[u8],
    too_long: bool,
) -> Option<Item> {
    if too_long {
        return Some((
            number,
            Err(Outcome::failed(
                number,
                "too-large",
                format!(
                    "line is over {} bytes ([limits] max_record_bytes)",
                    state.max_record_bytes
                ),
            )),
        ));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let parsed = std::str::from_utf8(line)
        .map_err(|_| "line is not UTF-8 text".to_owned())
        .and_then(|text| {
            serde_json::from_str::<RequestLine>(text).map_err(|e| strip_position(&e.to_string()))
        });
    let request = match parsed {
        Ok(line) => match check_request_scope(caller, line.scope.as_deref()) {
            Ok(()) => line
                .into_request(state.pipeline.schema(), true)
                .map_err(|why| Outcome::failed(number, "invalid", why)),
            Err(p) => Err(Outcome::failed(number, &p.code, p.detail)),
        },
        Err(why) => Err(Outcome::failed(number, "invalid", why)),
    };
    Some((number, request))
}

/// `GET /v1/export` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    /// Comma-separated scopes (all when absent).
    scope: Option<String>,
    /// `jsonl` (the default) or `yaml`.
    format: Option<String>,
    /// Also each revision's author (`registry export --audit`); role `admin`.
    #[serde(default)]
    audit: bool,
}

#[utoipa::path(get, path = "/v1/export", params(
    ("scope" = Option<String>, Query, description = "Comma-separated scopes (all)"),
    ("format" = Option<String>, Query, description = "jsonl (default) or yaml"),
    ("audit" = Option<bool>, Query, description = "Also each revision's author (role admin)"),
), responses(
    (status = 200, description = "The export file, streamed; cut short (an incomplete answer) when damaged entries were left out", body = String, content_type = "application/x-ndjson"),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
/// `GET /v1/export`: the records `registry export` writes, streamed.
pub(crate) async fn export(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    if params.audit {
        caller.require(Role::Admin)?;
    }
    let audit = params.audit;
    let (format, media) = match params.format.as_deref() {
        None | Some("jsonl") => (FileFormat::Jsonl, "application/x-ndjson"),
        Some("yaml") => (FileFormat::Yaml, "application/yaml"),
        Some(other) => {
            return Err(Problem::bad_request(format!(
                "format `{other}` is not jsonl or yaml"
            )));
        }
    };
    let asked: Vec<String> = params
        .scope
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut scopes = registry_host::transfer::check_scopes(&asked, state.pipeline.schema())?;
    if scopes.is_empty() {
        scopes = caller.scopes().to_vec();
    }
    for scope in &scopes {
        caller.require_scope(scope)?;
    }
    let (tx, rx) = mpsc::channel(QUEUED);
    let shared = Arc::clone(&state);
    tokio::task::spawn_blocking(move || {
        let mut out = Sender {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let fail = |e: io::Error| registry_host::Error::config(format!("export stopped: {e}"));
        let written = registry_host::transfer::export(
            &shared.pipeline,
            &scopes,
            format,
            audit,
            &mut out,
            &fail,
            &mut registry_host::events::Quiet,
        );
        match written.and_then(|damaged| out.flush().map(|()| damaged).map_err(fail)) {
            Ok(0) => {}
            Ok(damaged) => {
                // The status has been sent: the stream is cut so that the client sees an
                // incomplete answer rather than a complete-looking export missing entries.
                tracing::warn!(target: "registry::export", damaged, "export left out damaged entries");
                let _ = out.tx.blocking_send(Err(io::Error::other(format!(
                    "{damaged} damaged entries were left out: run `registry check`"
                ))));
            }
            Err(e) => {
                let _ = out.tx.blocking_send(Err(io::Error::other(e.message)));
            }
        }
    });
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, media)], body(rx)).into_response())
}

/// A writer that sends what it is given to the client in chunks, waiting while the queue is
/// full; an error once the client has gone away.
struct Sender {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl Write for Sender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// `POST /v1/import` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportParams {
    /// Import nothing unless every record is good.
    #[serde(default)]
    atomic: bool,
}

/// What `POST /v1/import` answers: `registry import --format json`'s summary, the records read
/// and the hint a failure count comes with.
#[derive(Debug, Serialize)]
struct ImportAnswer {
    #[serde(flatten)]
    summary: registry_host::transfer::Summary,
    failures: Vec<registry_host::transfer::Failure>,
    total: usize,
    hint: Option<String>,
}

/// Imports an export file or requests (role `admin`: records carry their own histories, times
/// and authors), as `registry import`. The body is spooled to a private temporary file in the
/// data directory as it arrives (within `max_batch_bytes`), then imported from it, so memory
/// holds a batch of records whatever the file's size.
#[utoipa::path(post, path = "/v1/import", params(
    ("atomic" = Option<bool>, Query, description = "Import nothing unless every record is good"),
), request_body(content = String, content_type = "application/x-ndjson", description = "An export (JSONL or YAML) or plain requests"),
responses(
    (status = 200, description = "What was imported, and every record that failed", body = crate::openapi::ImportSummary),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role is not admin", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 413, description = "Body over its limit", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    request_body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let spool = tempfile::Builder::new()
        .prefix(".import-")
        .tempfile_in(&state.data_dir)
        .map_err(|e| Problem::internal(format!("cannot spool the import: {e}")))?;
    let (mut file, path) = spool.into_parts();
    let mut data = request_body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk =
            chunk.map_err(|e| Problem::bad_request(format!("cannot read the body: {e}")))?;
        total += chunk.len() as u64;
        if total > state.limits.max_batch_bytes {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the import is over {} bytes ([serve] max_batch_bytes): nothing was imported",
                    state.limits.max_batch_bytes
                ),
            ));
        }
        // A write to the page cache; the runtime lends this thread's other work out meanwhile.
        tokio::task::block_in_place(|| file.write_all(&chunk))
            .map_err(|e| Problem::internal(format!("cannot spool the import: {e}")))?;
    }
    tokio::task::block_in_place(|| file.flush())
        .map_err(|e| Problem::internal(format!("cannot spool the import: {e}")))?;
    drop(file);
    let shared = Arc::clone(&state);
    let atomic = params.atomic;
    let author = caller.author();
    let actor = caller.name().to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        crate::feed::acting_as(&actor, || {
            // The spool is removed when `path` drops, however the import ends.
            let source =
                registry_host::transfer::Source::open(&path, shared.max_record_bytes, atomic)?
                    .by(author);
            let mut failures = Vec::new();
            let imported = registry_host::transfer::import(
                &shared.pipeline,
                source,
                &mut |mut f| {
                    failures.append(&mut f);
                    Ok(())
                },
                &mut registry_host::events::Quiet,
            )?;
            drop(path);
            Ok::<_, registry_host::Error>(ImportAnswer {
                summary: imported.summary,
                failures,
                total: imported.total,
                hint: imported.hint,
            })
        })
    })
    .await
    .map_err(|e| Problem::internal(format!("the import failed: {e}")))?
    .map_err(Problem::from)?;
    Ok(axum::Json(answer).into_response())
}
