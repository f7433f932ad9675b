//! `registry serve`: one process owns the registry and many clients use it over HTTP, with the
//! command line's semantics (this crate is a front end on `registry-host`, as the CLI is).
//!
//! Built so far (issue 20 is under way): `GET /healthz`, `GET /v1/entries/{id}` (role `read`)
//! and `POST /v1/entries` (role `write`: register, 201 created or 200 existing, the same
//! idempotency as `registry add`), bearer tokens checked against the tokens file
//! ([`registry_host::tokens`]: 401 without a valid token, 403 for a role or scope it lacks),
//! errors as `application/problem+json` (RFC 9457) carrying the command line's error codes.
//! With no token configured, every request is let in, so the server refuses to listen beyond
//! loopback ([`registry_host::settings::ServeSettings::check_exposure`]).
//!
//! Storage calls block (redb fsyncs), so each request's pipeline call runs on tokio's blocking
//! pool, never on the threads that serve connections.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use registry_core::{EntryId, Error as CoreError, Pipeline};
use registry_host::requests::RequestLine;
use registry_host::tokens::{Role, Token, Tokens};
use registry_host::{Error, Needs, Registry, Settings};
use serde_json::json;

/// What every request handler shares.
struct Shared {
    pipeline: Pipeline,
    tokens: Tokens,
}

type AppState = Arc<Shared>;

/// The routes, on an opened registry and its tokens.
pub fn router(pipeline: Pipeline, tokens: Tokens) -> axum::Router {
    let state = Arc::new(Shared { pipeline, tokens });
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/entries", post(register))
        .route("/v1/entries/{id}", get(get_entry))
        .with_state(state)
}

/// Opens the registry of `settings`, binds `listen` (or `[serve] listen`) and serves until
/// interrupted (SIGINT), calling `ready` with the address bound (port 0 picks a free one).
///
/// # Errors
/// The registry or the tokens file cannot be opened, the address is refused (beyond loopback
/// with no token) or cannot be bound.
pub fn serve(
    settings: &Settings,
    listen: Option<SocketAddr>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let tokens = Tokens::load(&settings.serve.tokens_file)?;
    let mut serve_settings = settings.serve.clone();
    if let Some(listen) = listen {
        serve_settings.listen = listen;
    }
    serve_settings.check_exposure(tokens.all().len())?;
    let registry = Registry::open(settings, Needs::REGISTER)?;
    let app = router(registry.into_pipeline(), tokens);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::config(format!("cannot start the server's runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(serve_settings.listen)
            .await
            .map_err(|e| {
                Error::config(format!("cannot listen on {}: {e}", serve_settings.listen))
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::config(format!("cannot read the address bound: {e}")))?;
        ready(bound);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::config(format!("the server stopped: {e}")))
    })
}

/// An error answered as `application/problem+json`.
struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
        }
    }
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Problem {
        let (status, code) = match &e {
            CoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            CoreError::Invalid(_) | CoreError::Request(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            CoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            CoreError::Damaged(_) => (StatusCode::INTERNAL_SERVER_ERROR, "damaged"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
        };
        Problem::new(status, code, e.to_string())
    }
}

/// The token a request bears, checked for `role` (and for `scope` when given); any request
/// passes when no token is configured (the server then listens on loopback only).
fn authorize(
    state: &Shared,
    headers: &HeaderMap,
    role: Role,
    scope: Option<&str>,
) -> Result<Option<Token>, Problem> {
    if state.tokens.all().is_empty() {
        return Ok(None);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs `Authorization: Bearer <token>`",
            )
        })?;
    let token = state.tokens.verify(bearer.trim()).ok_or_else(|| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not one this server knows (revoked, or mistyped)",
        )
    })?;
    if !token.role.allows(role) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` may not do this: its role is too low",
                token.name
            ),
        ));
    }
    if let Some(scope) = scope
        && !token.covers(scope)
    {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("token `{}` may not touch scope {scope}", token.name),
        ));
    }
    Ok(Some(token.clone()))
}

/// Runs a pipeline call on the blocking pool.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&Pipeline) -> T + Send + 'static,
) -> Result<T, Problem> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || call(&state.pipeline))
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the request's work failed: {e}"),
            )
        })
}

async fn get_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let token = authorize(&state, &headers, Role::Read, None)?;
    let id: EntryId = id.parse().map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("`{id}` is not an id: {e}"),
        )
    })?;
    let entry = blocking(&state, move |p| p.get(&id)).await??;
    if let Some(t) = token
        && !t.covers(&entry.header.fields.scope)
    {
        // Not found rather than forbidden: a token limited to some scopes learns nothing of
        // the others.
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no entry with id {}", entry.header.id),
        ));
    }
    Ok(Json(entry).into_response())
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let line: RequestLine = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("the body is not a request: {e}"),
        )
    })?;
    let token = authorize(&state, &headers, Role::Write, line.scope.as_deref())?;
    if let Some(t) = token
        && !t.scopes.is_empty()
        && line.scope.is_none()
    {
        // A predicted scope could fall outside the token's: it must say which.
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` is limited to {}: name the scope in the request",
                t.name,
                t.scopes.join(", ")
            ),
        ));
    }
    let request = line
        .into_request(state.pipeline.schema(), true)
        .map_err(|why| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why))?;
    let mut added = blocking(&state, move |p| p.add(vec![request])).await?;
    let added = added.pop().ok_or_else(|| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the pipeline answered nothing",
        )
    })??;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(added)).into_response())
}
