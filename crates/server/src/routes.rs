//! The routes, one handler each: the command line's operations on one entry or a page of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use registry_core::{Changes, Context, EntryId, Fields, Lifecycle, ListQuery, Pipeline};
use registry_host::requests::RequestLine;
use registry_host::tokens::Role;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{AppState, stream};

/// The most entries one list page holds.
pub const MAX_PAGE: usize = 1000;

/// A list page unless `limit` says otherwise.
const DEFAULT_PAGE: usize = 100;

/// Every route's pattern, as `MatchedPath` gives it: the `route` label of the request metrics
/// (a `&'static str`, so that counting a request allocates nothing). A test checks it against
/// the OpenAPI document's paths.
pub(crate) const ROUTES: &[&str] = &[
    "/healthz",
    "/v1/openapi.json",
    "/readyz",
    "/metrics",
    "/v1/entries",
    "/v1/entries/{id}",
    "/v1/entries/{id}/history",
    "/v1/entries/{id}/diff",
    "/v1/entries/{id}/retire",
    "/v1/entries/{id}/revive",
    "/v1/entries/{id}/merge",
    "/v1/entries/{id}/purge",
    "/v1/predict",
    "/v1/batch",
    "/v1/export",
    "/v1/import",
    "/v1/lint",
    "/v1/stats",
    "/v1/search",
    "/v1/events",
    "/v1/live",
    "/v1/session",
    "/v1/audit",
    "/",
    "/assets/app.js",
    "/assets/app.css",
];

/// The dashboard's files among [`ROUTES`]: pages, not API routes, so not in the OpenAPI
/// document.
pub(crate) const PAGES: &[&str] = &["/", "/assets/app.js", "/assets/app.css"];

/// The [`ROUTES`] pattern `matched` is, or `unmatched` (a request no route took).
pub(crate) fn route_label(matched: Option<&str>) -> &'static str {
    matched
        .and_then(|m| ROUTES.iter().find(|r| **r == m).copied())
        .unwrap_or("unmatched")
}

pub(crate) fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(health))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/entries", post(register).get(list))
        .route("/v1/entries/{id}", get(get_entry).patch(update))
        .route("/v1/entries/{id}/history", get(history))
        .route("/v1/entries/{id}/diff", get(diff))
        .route("/v1/entries/{id}/retire", post(retire))
        .route("/v1/entries/{id}/revive", post(revive))
        .route("/v1/entries/{id}/merge", post(merge))
        .route("/v1/entries/{id}/purge", post(purge))
        .route("/v1/predict", post(predict))
        .route("/v1/batch", post(stream::batch))
        .route("/v1/export", get(stream::export))
        .route("/v1/import", post(stream::import))
        .route("/v1/lint", post(lint))
        .route("/v1/stats", get(stats))
        .route("/v1/audit", get(audit))
        .route("/v1/search", get(crate::search::search))
        .route("/v1/events", get(crate::feed::events))
        .route("/v1/live", get(crate::live::live))
        .route(
            "/v1/session",
            get(crate::session::current)
                .post(crate::session::sign_in)
                .delete(crate::session::sign_out),
        )
        .merge(crate::dashboard::router())
        .fallback(|| async {
            Problem::not_found("no such route: the routes are listed at /v1/openapi.json")
        })
        .with_state(state)
}

/// Runs a pipeline call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Pipeline) -> T + Send + 'static,
) -> Result<T, Problem> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || call(&state.pipeline))
        .await
        .map_err(|e| Problem::internal(format!("the request's work failed: {e}")))
}

/// Reads a whole body of at most `[serve] max_body_bytes` (413 past it).
pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, Problem> {
    let limit = usize::try_from(state.limits.max_body_bytes).unwrap_or(usize::MAX);
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the body is over {limit} bytes ([serve] max_body_bytes); send many \
                     entries to /v1/batch"
                ),
            )
        } else {
            Problem::bad_request(format!("cannot read the body: {e}"))
        }
    })
}

/// Reads a JSON body (400 naming what is wrong).
pub(crate) async fn read_json<T: DeserializeOwned>(
    state: &AppState,
    body: Body,
) -> Result<T, Problem> {
    let bytes = read_body(state, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Problem::bad_request(format!("the body is not what this route takes: {e}")))
}

fn parse_id(id: &str) -> Result<EntryId, Problem> {
    id.parse()
        .map_err(|e| Problem::bad_request(format!("`{id}` is not an id: {e}")))
}

/// `ETag` of an entry: its revision, quoted.
fn etag(revision: u32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The revision an `If-Match` header names: `"N"` (or `W/"N"`); `None` without the header or
/// for `*`.
fn if_match(headers: &HeaderMap) -> Result<Option<u32>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "If-Match `{text}` is not an entry's ETag (its revision, quoted: \"3\")"
            ))
        })
}

/// 412 for a write refused because the entry is no longer at the revision `If-Match` named.
fn precondition_failed(state: &AppState, id: &EntryId, expected: u32) -> Problem {
    let now = state.pipeline.get(id).map(|e| e.revision);
    let detail = match now {
        Ok(revision) => format!(
            "entry {id} is at revision {revision}, not {expected} as If-Match says: nothing was \
             written (read it again, then retry)"
        ),
        Err(_) => format!("entry {id} is not at revision {expected}: nothing was written"),
    };
    Problem::new(StatusCode::PRECONDITION_FAILED, "conflict", detail)
}

/// Reads `id` for `caller`, who must see its scope (else: not found).
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &EntryId,
) -> Result<registry_core::Entry, Problem> {
    // A cached entry is answered here; only a miss goes to a thread that may block.
    let entry = match state.pipeline.get_cached(id) {
        Some(entry) => entry,
        None => {
            let wanted = id.clone();
            blocking(state, move |p| p.get(&wanted)).await??
        }
    };
    if !caller.sees(&entry.header.fields.scope) {
        // Not found rather than forbidden: a token limited to some scopes learns nothing of
        // the others.
        return Err(Problem::not_found(format!("no entry with id {id}")));
    }
    Ok(entry)
}

/// Alive: the server answers.
#[utoipa::path(get, path = "/healthz", security(()), responses(
    (status = 200, description = "Alive", body = String, content_type = "text/plain")
))]
pub(crate) async fn health() -> &'static str {
    "ok\n"
}

/// Ready: every shard answers a read.
#[utoipa::path(get, path = "/readyz", security(()), responses(
    (status = 200, description = "Every shard answers", body = String, content_type = "text/plain"),
    (status = 503, description = "Shards that do not answer, named", body = crate::openapi::Problem, content_type = "application/problem+json"),
))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let health = blocking(&state, Pipeline::health).await;
    let problems: Vec<String> = match health {
        Ok(shards) => shards
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().err().map(|e| format!("shard {i}: {e}")))
            .collect(),
        Err(p) => vec![p.detail],
    };
    if problems.is_empty() {
        "ready\n".into_response()
    } else {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("not ready: {}", problems.join("; ")),
        );
        p.retry_after = Some(5);
        p.into_response()
    }
}

/// Prometheus metrics (role `read`).
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let text = tokio::task::spawn_blocking(move || state.metrics.encode())
        .await
        .map_err(|e| Problem::internal(format!("cannot read the metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// An entry's latest revision (role `read`); its `ETag` is the revision.
#[utoipa::path(get, path = "/v1/entries/{id}", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042")), responses(
    (status = 200, description = "The entry", body = crate::openapi::Entry,
     headers(("ETag" = String, description = "The revision, quoted"))),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn get_entry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let id = parse_id(&id)?;
    let entry = visible(&state, &caller, &id).await?;
    let tag = etag(entry.revision);
    let json = state
        .answers
        .json(entry)
        .map_err(|e| Problem::internal(format!("cannot write the entry as JSON: {e}")))?;
    let mut response = Response::new(Body::from(json));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::ETAG, tag);
    Ok(response)
}

/// Registers an entry (role `write`), as `registry add`: 201 when created, 200 when the same
/// request was registered before.
#[utoipa::path(post, path = "/v1/entries", request_body = crate::openapi::RegisterRequest, responses(
    (status = 201, description = "Created", body = crate::openapi::Added),
    (status = 200, description = "Already registered: the existing entry", body = crate::openapi::Added),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 413, description = "Body over its limit", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 503, description = "Storage unavailable, or no answer in time", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Write)?;
    let line: RequestLine = read_json(&state, body).await?;
    check_request_scope(&caller, line.scope.as_deref())?;
    let request = line
        .into_request(state.pipeline.schema(), true)
        .map_err(|why| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why))?
        .by(Some(caller.author()));
    let added = state.committer.register(request).await.ok_or_else(|| {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down and takes no more registrations",
        );
        p.retry_after = Some(1);
        p
    })??;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let tag = etag(added.entry.revision);
    let location = HeaderValue::from_str(&format!("/v1/entries/{}", added.entry.header.id));
    let mut response = (status, Json(added)).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    if let Ok(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// A token limited to scopes must name one of them in a registration: a predicted scope could
/// fall outside.
pub(crate) fn check_request_scope(caller: &Caller, scope: Option<&str>) -> Result<(), Problem> {
    match (scope, caller.scopes()) {
        (Some(scope), _) => caller.require_scope(scope),
        (None, []) => Ok(()),
        (None, scopes) => Err(Problem::forbidden(format!(
            "token `{}` is limited to {}: name the scope in the request",
            caller.name(),
            scopes.join(", ")
        ))),
    }
}

/// `GET /v1/entries` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    variant: Option<String>,
    status: Option<String>,
    /// Also retired and merged entries.
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
    /// The cursor: the `next` of the page before.
    after: Option<String>,
}

/// A page of entries in id order (role `read`), active ones unless `all`.
#[utoipa::path(get, path = "/v1/entries", params(
    ("scope" = Option<String>, Query, description = "Only this scope"),
    ("type" = Option<String>, Query, description = "Only this type"),
    ("variant" = Option<String>, Query, description = "Only this variant"),
    ("status" = Option<String>, Query, description = "Only this status"),
    ("all" = Option<bool>, Query, description = "Also retired and merged entries"),
    ("limit" = Option<usize>, Query, description = "Entries per page, 1 to 1000 (100)"),
    ("after" = Option<String>, Query, description = "The cursor: the previous page's `next`"),
), responses(
    (status = 200, description = "A page", body = crate::openapi::ListPage),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let schema = state.pipeline.schema();
    let filter = Fields {
        scope: params.scope,
        kind: params.kind,
        variant: params.variant,
        status: params.status,
    };
    let mut canonical: Fields<Option<String>> = Fields::default();
    for (field, value) in filter.iter() {
        if let Some(v) = value {
            let Some(known) = schema.canonical(field, v) else {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("unknown-{field}"),
                    format!(
                        "unknown {field} `{v}`: allowed values are {}",
                        schema.allowed(field).join(", ")
                    ),
                ));
            };
            canonical[field] = Some(known.to_owned());
        }
    }
    if let Some(scope) = &canonical.scope {
        caller.require_scope(scope)?;
    }
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Problem::bad_request(format!(
            "limit {limit} is not between 1 and {MAX_PAGE}"
        )));
    }
    let after = params.after.as_deref().map(parse_id).transpose()?;
    let all = params.all;
    let scopes = caller.scopes().to_vec();
    let (entries, damaged, next) = blocking(&state, move |p| {
        page(p, canonical, after, limit, all, &scopes)
    })
    .await??;
    Ok(Json(ListPage {
        entries,
        next,
        damaged,
    })
    .into_response())
}

/// One page of `GET /v1/entries`.
#[derive(Debug, serde::Serialize)]
struct ListPage {
    entries: Vec<registry_core::Entry>,
    /// The cursor of the next page (`after`), when more may follow.
    next: Option<EntryId>,
    /// The entries of this stretch that failed their integrity check, one line each: left
    /// out of `entries`, never hiding the others.
    damaged: Vec<String>,
}

/// One page of at most `limit` entries after `after` passing the filter (active ones unless
/// `all`, of `scopes` when given), reading storage until the page is full or the listing
/// ends; the cursor of the next page when there may be more.
#[allow(clippy::type_complexity)]
fn page(
    pipeline: &Pipeline,
    filter: Fields<Option<String>>,
    after: Option<EntryId>,
    limit: usize,
    all: bool,
    scopes: &[String],
) -> Result<(Vec<registry_core::Entry>, Vec<String>, Option<EntryId>), Problem> {
    let mut entries = Vec::with_capacity(limit);
    let mut damaged = Vec::new();
    let mut query = ListQuery {
        filter,
        after,
        limit,
    };
    loop {
        let page = pipeline.list(&query)?;
        damaged.extend(page.damaged.iter().map(ToString::to_string));
        let read = page.entries.len();
        for e in page.entries {
            let last = e.header.id.clone();
            let keep = (all || e.lifecycle.is_active())
                && (scopes.is_empty()
                    || scopes
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&e.header.fields.scope)));
            if keep {
                entries.push(e);
                if entries.len() == limit {
                    // More may follow this one.
                    return Ok((entries, damaged, Some(last)));
                }
            }
            query.after = Some(last);
        }
        match page.next {
            Some(next) if read > 0 => query.after = Some(next),
            _ => return Ok((entries, damaged, None)),
        }
    }
}

/// `PATCH /v1/entries/{id}`: the changes `registry update` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    title: Option<String>,
    variant: Option<String>,
    status: Option<String>,
    version: Option<String>,
    /// Context to set.
    #[serde(default)]
    context: BTreeMap<String, String>,
    /// Context keys to remove.
    #[serde(default)]
    unset_context: Vec<String>,
}

/// Writes a new revision (role `write`), as `registry update`; with `If-Match`, only from
/// that revision.
#[utoipa::path(patch, path = "/v1/entries/{id}", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042"),
    ("If-Match" = Option<String>, Header, description = "The revision the change is made on, quoted (an ETag)"),
), request_body = crate::openapi::UpdateRequest, responses(
    (status = 200, description = "The entry after", body = crate::openapi::Updated),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 412, description = "If-Match names a revision the entry is no longer at: nothing written", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 413, description = "Body over its limit", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Write)?;
    let id = parse_id(&id)?;
    let expected = if_match(&headers)?;
    let body: UpdateBody = read_json(&state, body).await?;
    let pairs: Vec<(String, String)> = body.context.into_iter().collect();
    Context::new(pairs.clone()).map_err(|e| Problem::from(registry_host::Error::from(e)))?;
    visible(&state, &caller, &id).await?;
    let changes = Changes {
        title: body.title,
        variant: body.variant,
        status: body.status,
        version: body.version,
        context: pairs,
        unset_context: body.unset_context,
        expected_revision: expected,
        author: Some(caller.author()),
    };
    let target = id.clone();
    let updated = blocking(&state, move |p| p.update(&target, changes)).await?;
    let updated = match (updated, expected) {
        (Err(registry_core::Error::Conflict(_)), Some(n)) => {
            return Err(precondition_failed(&state, &id, n));
        }
        (result, _) => result?,
    };
    let tag = etag(updated.entry.revision);
    let mut response = Json(updated).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
}

async fn set_lifecycle(
    state: AppState,
    caller: Caller,
    id: &str,
    headers: &HeaderMap,
    lifecycle: Lifecycle,
) -> Result<Response, Problem> {
    caller.require(Role::Write)?;
    let id = parse_id(id)?;
    let expected = if_match(headers)?;
    visible(&state, &caller, &id).await?;
    let target = id.clone();
    let author = Some(caller.author());
    let updated = blocking(&state, move |p| {
        p.set_lifecycle_by(&target, lifecycle, expected, author)
    })
    .await?;
    let updated = match (updated, expected) {
        (Err(registry_core::Error::Conflict(_)), Some(n)) => {
            return Err(precondition_failed(&state, &id, n));
        }
        (result, _) => result?,
    };
    let tag = etag(updated.entry.revision);
    let mut response = Json(updated).into_response();
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
}

/// Retires an entry (role `write`), as `registry retire`.
#[utoipa::path(post, path = "/v1/entries/{id}/retire", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042"),
    ("If-Match" = Option<String>, Header, description = "The revision it is made on, quoted"),
), responses(
    (status = 200, description = "The entry after", body = crate::openapi::Updated),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 412, description = "If-Match names a revision the entry is no longer at: nothing written", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn retire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_lifecycle(state, caller, &id, &headers, Lifecycle::Retired).await
}

/// Revives a retired or merged entry (role `write`).
#[utoipa::path(post, path = "/v1/entries/{id}/revive", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042"),
    ("If-Match" = Option<String>, Header, description = "The revision it is made on, quoted"),
), responses(
    (status = 200, description = "The entry after", body = crate::openapi::Updated),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 412, description = "If-Match names a revision the entry is no longer at: nothing written", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn revive(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    set_lifecycle(state, caller, &id, &headers, Lifecycle::Active).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    into: String,
}

/// Merges a duplicate into the entry to keep (role `write`), as `registry merge`.
#[utoipa::path(post, path = "/v1/entries/{id}/merge", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042"),
    ("If-Match" = Option<String>, Header, description = "The duplicate's revision, quoted"),
), request_body = crate::openapi::MergeRequest, responses(
    (status = 200, description = "The duplicate after", body = crate::openapi::Updated),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 412, description = "If-Match names a revision the entry is no longer at: nothing written", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn merge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let body: MergeBody = read_json(&state, body).await?;
    let into = parse_id(&body.into)?;
    visible(&state, &caller, &into).await?;
    set_lifecycle(state, caller, &id, &headers, Lifecycle::Merged(into)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    revision: u32,
    field: String,
    reason: String,
}

/// Purges a secret from one revision (role `admin`), as `registry purge`.
#[utoipa::path(post, path = "/v1/entries/{id}/purge", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042")),
    request_body = crate::openapi::PurgeRequest, responses(
    (status = 200, description = "What was purged", body = crate::openapi::Purged),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn purge(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let id = parse_id(&id)?;
    let body: PurgeBody = read_json(&state, body).await?;
    visible(&state, &caller, &id).await?;
    let actor = caller.name().to_owned();
    let purged = blocking(&state, move |p| {
        crate::feed::acting_as(&actor, || {
            p.purge(&id, body.revision, &body.field, &body.reason)
        })
    })
    .await??;
    Ok(Json(purged).into_response())
}

/// Every revision, oldest first (role `read`).
#[utoipa::path(get, path = "/v1/entries/{id}/history", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042")), responses(
    (status = 200, description = "The revisions", body = Vec<crate::openapi::Entry>),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let id = parse_id(&id)?;
    visible(&state, &caller, &id).await?;
    let revisions = blocking(&state, move |p| p.history(&id)).await??;
    Ok(Json(revisions).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiffParams {
    from: Option<u32>,
    to: Option<u32>,
}

/// What changed between two revisions (role `read`), as `registry diff`.
#[utoipa::path(get, path = "/v1/entries/{id}/diff", params(("id" = String, Path, description = "Entry id, e.g. SEC-RUL-042"),
    ("from" = Option<u32>, Query, description = "From this revision (the one before `to`)"),
    ("to" = Option<u32>, Query, description = "To this revision (the latest)"),
), responses(
    (status = 200, description = "The changes", body = crate::openapi::Diff),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    params: Result<Query<DiffParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let id = parse_id(&id)?;
    visible(&state, &caller, &id).await?;
    let diff = blocking(&state, move |p| {
        registry_host::diff::diff(p, &id, params.from, params.to)
    })
    .await??;
    Ok(Json(diff).into_response())
}

/// What a registration would fill in, storing nothing (role `read`), as `registry predict`.
#[utoipa::path(post, path = "/v1/predict", request_body = crate::openapi::RegisterRequest, responses(
    (status = 200, description = "Each field's value and where it comes from", body = crate::openapi::Prediction),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 413, description = "Body over its limit", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn predict(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let line: RequestLine = read_json(&state, body).await?;
    let request = line
        .into_request(state.pipeline.schema(), true)
        .map_err(|why| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why))?;
    let mut predicted = blocking(&state, move |p| p.predict(vec![request])).await??;
    let fields = predicted
        .pop()
        .ok_or_else(|| Problem::internal("the generator answered nothing"))??;
    Ok(Json(fields).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LintParams {
    /// The file name the text is linted as (diagnostics name it).
    name: Option<String>,
    /// Also check each header against its registered entry.
    #[serde(default)]
    registered: bool,
    /// Look for headers in the first this many lines.
    lines: Option<usize>,
    /// Comma-separated codes to report (all when absent).
    select: Option<String>,
    /// Comma-separated codes never to report.
    ignore: Option<String>,
    #[serde(default)]
    require_header: bool,
}

/// Lints a posted text as a file (role `read`), as `registry lint --format json`.
#[utoipa::path(post, path = "/v1/lint", params(
    ("name" = Option<String>, Query, description = "The file name findings give (posted)"),
    ("registered" = Option<bool>, Query, description = "Also check headers against the registry"),
    ("lines" = Option<usize>, Query, description = "Headers are looked for in this many first lines (20)"),
    ("select" = Option<String>, Query, description = "Comma-separated codes to report"),
    ("ignore" = Option<String>, Query, description = "Comma-separated codes never to report"),
    ("require_header" = Option<bool>, Query, description = "A text without a header is an error"),
), request_body(content = String, content_type = "text/plain"), responses(
    (status = 200, description = "The findings", body = crate::openapi::LintReport),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 413, description = "Body over its limit", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 422, description = "Invalid values", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
/// The lint JSON of the command line: `summary` and `findings`.
pub(crate) async fn lint(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<LintParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let bytes = read_body(&state, body).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| Problem::bad_request("the body is not UTF-8 text"))?;
    let split = |list: Option<String>| -> Vec<String> {
        list.map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    let options = registry_host::lint::Options {
        paths: Vec::new(),
        registered: params.registered,
        lines: params.lines.unwrap_or(20).clamp(1, 10_000),
        max_file_size: state.limits.max_body_bytes,
        follow: false,
        threads: Some(1),
        select: params.select.map(|s| split(Some(s))),
        ignore: split(params.ignore),
        require_header: params.require_header,
    };
    let name = params.name.unwrap_or_else(|| "posted".to_owned());
    let shared = Arc::clone(&state);
    let findings = tokio::task::spawn_blocking(move || {
        let registered = options.registered.then_some(&*shared.pipeline);
        let report = registry_host::lint::lint_text(
            shared.pipeline.schema(),
            shared.validator.as_ref(),
            registered,
            &name,
            &text,
            &options,
        )?;
        let findings: Vec<serde_json::Value> = report
            .diagnostics
            .iter()
            .map(|d| {
                json!({
                    "file": registry_host::lint::shown(&report.paths[d.file]),
                    "line": d.line,
                    "column": d.column,
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                })
            })
            .collect();
        Ok::<_, registry_host::Error>(json!({
            "summary": report.summary(),
            "findings": findings,
        }))
    })
    .await
    .map_err(|e| Problem::internal(format!("lint failed: {e}")))??;
    Ok(Json(findings).into_response())
}

/// What the registry holds (role `read`, every scope), as `registry stats`.
#[utoipa::path(get, path = "/v1/stats", responses(
    (status = 200, description = "The counts", body = crate::openapi::Stats),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Problem> {
    caller.require(Role::Read)?;
    if !caller.scopes().is_empty() {
        return Err(Problem::forbidden(format!(
            "token `{}` is limited to some scopes, and stats count every scope",
            caller.name()
        )));
    }
    let data_dir = state.data_dir.clone();
    let mut stats = blocking(&state, move |p| {
        registry_host::batch::count(p, &mut registry_host::events::Quiet).map(|mut s| {
            s.measure(&data_dir);
            s
        })
    })
    .await??;
    if let Some(search) = &state.search {
        let lag = search.lag(&state.feed);
        stats.search = Some(registry_host::batch::SearchStats {
            docs: search.docs(),
            bytes: registry_host::batch::bytes_on_disk(
                &state.data_dir.join(registry_host::batch::SEARCH_DIR),
            ),
            lag_changes: lag.changes,
            lag_seconds: lag.seconds,
        });
    }
    Ok(Json(stats).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// Only writes at or after this instant (RFC 3339, a date, or a time ago: `24h`).
    since: Option<String>,
    actor: Option<String>,
    id: Option<String>,
    /// At most this many records, the oldest first (1 to 10,000; 1,000 by default).
    limit: Option<usize>,
}

/// The most records one audit answer holds.
const MAX_AUDIT: usize = 10_000;

/// `GET /v1/audit` (admin): `registry audit`'s records, oldest first; `truncated` when more
/// follow (ask again with `since` the last record's time).
#[utoipa::path(get, path = "/v1/audit", params(
    ("since" = Option<String>, Query, description = "Writes at or after: RFC 3339, a date, or a time ago (24h)"),
    ("actor" = Option<String>, Query, description = "Writes by this author"),
    ("id" = Option<String>, Query, description = "Writes of this entry"),
    ("limit" = Option<usize>, Query, description = "Records, 1 to 10000 (1000)"),
), responses(
    (status = 200, description = "The records, oldest first", body = crate::openapi::AuditPage),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "No valid token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "The token's role or scopes do not allow it", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 404, description = "No such entry", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 429, description = "Over the token's rate", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let Query(params) = params.map_err(|e| Problem::bad_request(e.body_text()))?;
    let since = params
        .since
        .as_deref()
        .map(|s| registry_core::Timestamp::parse_instant(s, registry_core::Timestamp::now()))
        .transpose()
        .map_err(|why| Problem::bad_request(format!("since: {why}")))?;
    let limit = params.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_AUDIT {
        return Err(Problem::bad_request(format!(
            "limit {limit} is not between 1 and {MAX_AUDIT}"
        )));
    }
    let query = registry_host::audit::Query {
        since,
        actor: params.actor,
        id: params.id.as_deref().map(parse_id).transpose()?,
        scopes: caller.scopes().to_vec(),
    };
    let (mut records, damaged) = blocking(&state, move |p| {
        registry_host::audit::read(p, &query, &mut registry_host::events::Quiet)
    })
    .await??;
    let truncated = records.len() > limit;
    records.truncate(limit);
    Ok(Json(json!({
        "records": records,
        "truncated": truncated,
        "damaged": damaged,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_metrics_label() {
        let doc = crate::openapi::document();
        let mut documented: Vec<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(String::as_str)
            .chain(["/v1/openapi.json"])
            .chain(PAGES.iter().copied())
            .collect();
        documented.sort_unstable();
        documented.dedup();
        let mut labelled = ROUTES.to_vec();
        labelled.sort_unstable();
        assert_eq!(labelled, documented);
        assert_eq!(route_label(Some("/v1/entries/{id}")), "/v1/entries/{id}");
        assert_eq!(route_label(Some("/nowhere")), "unmatched");
        assert_eq!(route_label(None), "unmatched");
    }
}
