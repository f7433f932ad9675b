//! `registry serve`: one process owns the registry and many clients use it over HTTP, with the
//! command line's semantics (this crate is a front end on `registry-host`, as the CLI is).
//!
//! # Routes
//! Under `/v1`, JSON: register (`POST /v1/entries`: 201 created, 200 existing, the idempotency
//! of `registry add`), get (with the revision as its `ETag`), list (filters and a cursor),
//! update (`PATCH`, `If-Match` for optimistic concurrency: 412 and nothing written when the
//! entry moved on), retire, revive, merge, purge (admin), history, diff, predict, batch (NDJSON
//! in, one NDJSON result per line out, streamed both ways), export (streamed), lint of a posted
//! text, stats. `/healthz` (alive), `/readyz` (every shard answers; 503 naming those that do
//! not) and `/metrics` (Prometheus text). Errors are `application/problem+json` (RFC 9457)
//! carrying the command line's error names ([`problem`]). For people watching: full-text
//! search (`GET /v1/search`, module `search`), every change as server-sent events (`GET
//! /v1/events`, module `feed`), the live figures (`GET /v1/live`, module `live`), browser
//! sessions (`/v1/session`, module `session`) and the dashboard at `/` (module `dashboard`, its
//! files embedded).
//!
//! # Who may do what
//! Bearer tokens with a role and optional scopes ([`auth`]); per-token rate limits. With no
//! token configured every request is let in, so the server refuses to listen beyond loopback.
//!
//! # Bounded work
//! The server accepts at most `max_connections` connections at once (more wait in the
//! kernel's backlog); a connection whose request head has not arrived within
//! `header_timeout_ms` is closed; a request without an answer within `request_timeout_ms` gets
//! 503; bodies are read up to `max_body_bytes` (a batch: `max_batch_bytes`, each line within
//! `[limits] max_record_bytes`, streamed through bounded queues); streamed answers wait for a
//! slow reader instead of buffering. Storage calls block (redb fsyncs), so each request's
//! pipeline call runs on tokio's blocking pool, never on the threads that serve connections.
//! Registrations go through group commit (module `commit`).
//!
//! # Shutdown
//! SIGTERM or SIGINT: the listener closes, requests under way have `shutdown_timeout_ms` to
//! finish, the registrations queued are committed, and storage is closed; the process exits 0.

mod answers;
pub mod auth;
mod commit;
mod dashboard;
mod feed;
mod live;
mod log;
pub mod metrics;
mod openapi;
pub mod problem;
mod routes;
mod search;
mod session;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use registry_core::Pipeline;
use registry_host::settings::ServeLimits;
use registry_host::{Error, Needs, Registry, Settings};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::auth::Gate;
use crate::commit::Committer;
use crate::metrics::Metrics;
use crate::problem::Problem;

/// What every request handler shares.
pub(crate) struct Shared {
    pub pipeline: Arc<Pipeline>,
    pub gate: Gate,
    pub committer: Committer,
    pub metrics: Arc<Metrics>,
    pub limits: ServeLimits,
    /// `[limits] max_record_bytes`: the longest batch line.
    pub max_record_bytes: u64,
    /// The data directory, whose size `stats` reports.
    pub data_dir: std::path::PathBuf,
    /// The validator lint uses, built once.
    pub validator: Box<dyn registry_core::Validator>,
    /// The JSON of the entries read last.
    pub answers: answers::Answers,
    /// Every write, numbered ([`feed`]).
    pub feed: Arc<feed::Feed>,
    /// Event streams open at once, at most ([`feed::max_streams`]).
    pub streams: Arc<Semaphore>,
    /// The full-text index and its indexer; `None` when it could not be opened.
    pub search: Option<Arc<search::Search>>,
    /// The last minute of requests ([`live`]).
    pub window: live::Window,
    /// Whether the server speaks HTTPS (session cookies are then `Secure`).
    pub https: bool,
    requests: AtomicU64,
    started: i64,
}

pub(crate) type AppState = Arc<Shared>;

/// A server ready to run: its state, its routes, its TLS set-up when it serves HTTPS, and the
/// address it listens on.
pub struct Server {
    state: AppState,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The address to listen on.
    listen: SocketAddr,
}

impl Server {
    /// Opens the registry of `settings` and its tokens, ready to serve on `listen`.
    ///
    /// # Errors
    /// The registry, the tokens file, the TLS files or the validator cannot be opened, or
    /// `listen` is beyond loopback while no token exists.
    pub fn open(settings: &Settings, listen: SocketAddr) -> Result<Server, Error> {
        let limits = settings.serve.limits;
        // Read first: a certificate that cannot be used, or an address that may not be listened
        // on, is said before the registry opens.
        let tls = settings.serve.tls.as_ref().map(tls_acceptor).transpose()?;
        let gate = Gate::new(settings.serve.tokens_file.clone(), &limits)?;
        let mut exposure = settings.serve.clone();
        exposure.listen = listen;
        exposure.check_exposure(gate.count())?;
        let registry = Registry::open(settings, Needs::REGISTER)?;
        let validator = registry_host::lint::validator(settings)?;
        let pipeline = Arc::new(registry.into_pipeline());
        // Every write names its caller; one that did not would be recorded as by no one,
        // never as by the user running the server.
        pipeline.set_author(None);
        pipeline.enable_timings();
        let feed = feed::Feed::new();
        pipeline.set_observer(Arc::clone(&feed) as Arc<dyn registry_core::Observer>);
        // Search is derived data: an index that cannot be opened is said, and the server
        // serves everything else.
        let search = match search::Search::start(
            &settings.data_dir.join(registry_host::batch::SEARCH_DIR),
            Arc::clone(&pipeline),
            Arc::clone(&feed),
        ) {
            Ok(search) => Some(search),
            Err(e) => {
                tracing::warn!(target: "registry::search", error = %e, "search is off");
                None
            }
        };
        let metrics = Metrics::new(Arc::clone(&pipeline));
        let committer = Committer::start(
            Arc::clone(&pipeline),
            Arc::clone(&metrics),
            usize::try_from(limits.group_commit_max).unwrap_or(usize::MAX),
            Duration::from_micros(limits.group_commit_wait_us),
        )
        .map_err(|e| Error::config(format!("cannot start the group commit thread: {e}")))?;
        if let Some(search) = &search {
            let (search, feed) = (Arc::downgrade(search), Arc::downgrade(&feed));
            metrics.set_search(Box::new(move || match (search.upgrade(), feed.upgrade()) {
                (Some(search), Some(feed)) => {
                    let lag = search.lag(&feed);
                    (search.docs(), lag.changes, lag.seconds)
                }
                _ => (0, 0, 0.0),
            }));
        }
        let state = Arc::new(Shared {
            pipeline,
            gate,
            committer,
            metrics,
            limits,
            max_record_bytes: settings.max_record_bytes,
            data_dir: settings.data_dir.clone(),
            validator,
            answers: answers::Answers::new(limits.answer_cache_bytes),
            feed,
            streams: Arc::new(Semaphore::new(feed::max_streams(u64::from(
                limits.max_connections,
            )))),
            search,
            window: live::Window::new(),
            https: tls.is_some(),
            requests: AtomicU64::new(0),
            started: registry_core::Timestamp::now().0 / 1000,
        });
        let app = routes::router(Arc::clone(&state)).layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            observe,
        ));
        Ok(Server {
            state,
            app,
            tls,
            listen,
        })
    }

    /// Serves on `listen` until SIGTERM or SIGINT, calling `ready` with the address bound (port
    /// 0 picks a free one); then shuts down as the crate documentation says.
    ///
    /// # Errors
    /// The address cannot be bound, or the runtime cannot start.
    pub fn run(self, ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("serve")
            .build()
            .map_err(|e| Error::config(format!("cannot start the server's runtime: {e}")))?;
        let state = Arc::clone(&self.state);
        let result = runtime.block_on(self.serve(ready));
        // Registrations still queued are committed before storage closes, and the index
        // takes in the last changes.
        state.committer.close();
        state.feed.close();
        if let Some(search) = &state.search {
            search.join();
        }
        drop(runtime);
        result
    }

    async fn serve(self, ready: impl FnOnce(SocketAddr)) -> Result<(), Error> {
        let listen = self.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::config(format!("cannot listen on {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::config(format!("cannot read the address bound: {e}")))?;
        self.count_entries();
        ready(bound);
        tracing::info!(target: "registry::serve", %bound, "listening");

        let limits = self.state.limits;
        let permits = Arc::new(Semaphore::new(
            usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
        ));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut stop = std::pin::pin!(stop_signal());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
            .keep_alive(true);
        loop {
            let permit = tokio::select! {
                () = &mut stop => break,
                permit = Arc::clone(&permits).acquire_owned() => permit,
            };
            let Ok(permit) = permit else { break };
            let (stream, peer) = tokio::select! {
                () = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors, or a connection reset before it was accepted:
                        // the next accept may succeed.
                        tracing::warn!(target: "registry::serve", error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(self.app.clone().map_request(
                move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            ));
            let watcher = graceful.watcher();
            let builder = builder.clone();
            let tls = self.tls.clone();
            let handshake = Duration::from_millis(limits.header_timeout_ms);
            tokio::spawn(async move {
                match tls {
                    None => {
                        let connection = builder.serve_connection(TokioIo::new(stream), service);
                        let _ = watcher.watch(connection).await;
                    }
                    Some(acceptor) => {
                        // The handshake is bounded as a request head is.
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let connection =
                                    builder.serve_connection(TokioIo::new(stream), service);
                                let _ = watcher.watch(connection).await;
                            }
                            Ok(Err(e)) => tracing::debug!(
                                target: "registry::serve", %peer, error = %e, "TLS handshake failed"
                            ),
                            Err(_) => tracing::debug!(
                                target: "registry::serve", %peer, "TLS handshake timed out"
                            ),
                        }
                    }
                }
                drop(permit);
            });
        }
        drop(listener);
        tracing::info!(target: "registry::serve", "stopping: no new connections");
        // Event streams end now rather than hold the shutdown to its deadline.
        self.state.feed.close();
        let deadline = Duration::from_millis(limits.shutdown_timeout_ms);
        if tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                target: "registry::serve",
                "requests still under way after the shutdown deadline were cut"
            );
        }
        Ok(())
    }

    /// Counts the entries by scope in the background, for `/metrics`.
    fn count_entries(&self) {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            if let Ok(stats) =
                registry_host::batch::count(&state.pipeline, &mut registry_host::events::Quiet)
            {
                state.metrics.set_counted(stats.by_scope);
            }
        });
    }
}

/// Opens the registry of `settings`, binds `listen` (or `[serve] listen`) and serves until
/// SIGTERM or SIGINT, calling `ready` with the address bound (port 0 picks a free one).
///
/// # Errors
/// The registry or the tokens file cannot be opened, the address is refused (beyond loopback
/// with no token) or cannot be bound.
pub fn serve(
    settings: &Settings,
    listen: Option<SocketAddr>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let listen = listen.unwrap_or(settings.serve.listen);
    let log = log::Buffered::start();
    let _ = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_target(true)
        .try_init();
    let served = Server::open(settings, listen).and_then(|s| s.run(ready));
    log.flush_now();
    served
}

/// The TLS set-up of `[serve] tls_cert` and `tls_key`: TLS 1.2 and 1.3 (rustls, ring), HTTP/1.1.
///
/// # Errors
/// A file that cannot be read, holds no certificate or key, or a key that is not the
/// certificate's.
fn tls_acceptor(
    files: &registry_host::settings::TlsFiles,
) -> Result<tokio_rustls::TlsAcceptor, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let cert_name = files.cert.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|e| Error::config(format!("serve.tls_cert {cert_name}: cannot read: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "serve.tls_cert {cert_name}: no PEM certificate in it"
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        Error::config(format!(
            "serve.tls_key {}: cannot read a PEM private key: {e}",
            files.key.display()
        ))
    })?;
    // ring rather than aws-lc-rs: it builds in seconds with the C compiler alone, where
    // aws-lc-rs adds minutes and a CMake toolchain to every cold build. What ring lacks is
    // post-quantum hybrid key exchange (X25519MLKEM768), which rustls marks by deprecating
    // this provider; a deployment that needs it terminates TLS at a reverse proxy (README).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            Error::config(format!(
                "serve.tls_cert {cert_name} and serve.tls_key {}: {e}",
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The id of one request: the client's `X-Request-Id` when it is a short token of letters,
/// digits, `.`, `_` and `-`; else one made here, unique within the server's life.
fn request_id(state: &Shared, request: &Request) -> String {
    if let Some(given) = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        && !given.is_empty()
        && given.len() <= 64
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return given.to_owned();
    }
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{n:x}", state.started)
}

/// Every request: its id, who is calling (401, 429), a deadline (503), then one log line and
/// its metrics.
async fn observe(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&state, &request);
    let method = request.method().clone();
    let route = routes::route_label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    // The dashboard's files hold no data, and the session routes check what they need.
    let open = matches!(
        route,
        "/healthz" | "/readyz" | "/v1/openapi.json" | "/v1/session"
    ) || routes::PAGES.contains(&route);
    let admitted = if open {
        Ok(auth::Caller {
            token: None,
            peer,
            request: String::new(),
        })
    } else {
        session::check_origin(&method, request.headers())
            .and_then(|()| state.gate.admit(&method, request.headers(), peer))
    };
    let (mut response, caller) = match admitted {
        Ok(mut caller) => {
            caller.request.clone_from(&id);
            let name = caller.name().to_owned();
            request.extensions_mut().insert(caller);
            let deadline = Duration::from_millis(state.limits.request_timeout_ms);
            let response = match tokio::time::timeout(deadline, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    let mut p = Problem::new(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "timeout",
                        format!(
                            "no answer within {} ms ([serve] request_timeout_ms); a write may \
                             still complete: read before retrying",
                            state.limits.request_timeout_ms
                        ),
                    );
                    p.retry_after = Some(1);
                    p.into_response()
                }
            };
            (response, name)
        }
        Err(problem) => (problem.into_response(), "-".to_owned()),
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let took = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.request(route, &method, status, took);
    state.window.record(took);
    tracing::info!(
        target: "registry::http",
        id = %id,
        method = %method,
        path = ?path,
        status,
        micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        caller = ?caller,
        "request"
    );
    response
}
