//! Who is asking: the bearer token checked against the tokens file, and each token's rate.
//!
//! The tokens file is read again when it changes (looked at no more than once a second), so a
//! token added or revoked with `registry token` counts on a running server within a second,
//! without a restart; once the server has known a token, an emptied or removed file lets no one
//! in (never everyone). With no token configured every request is let in, and the server only
//! listens on loopback ([`registry_host::settings::ServeSettings::check_exposure`]).
//!
//! Rates are a token bucket per token (per client address when no token is configured), the
//! `governor` crate's GCRA: `rate_limit` requests a second on average, `rate_burst` at once.
//! A request over the rate is answered 429 with `Retry-After` and does no work.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use registry_host::Error;
use registry_host::settings::ServeLimits;
use registry_host::tokens::{Role, Token, Tokens};

use crate::problem::Problem;
use crate::session::Sessions;

/// How often the tokens file is looked at for a change, at most.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The caller of one request, as authentication found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` when the server has no token (loopback only): everything is allowed.
    pub token: Option<Token>,
    /// The client's address.
    pub peer: IpAddr,
    /// The request's id (`X-Request-Id`).
    pub request: String,
}

impl Caller {
    /// Who, as the audit and the request log name it: the token's name, or `anonymous`.
    pub fn name(&self) -> &str {
        self.token.as_ref().map_or("anonymous", |t| t.name.as_str())
    }

    /// The author of the writes this request makes: the token's name (`anonymous` without
    /// tokens), the client's address and the request's id.
    pub fn author(&self) -> registry_core::Author {
        registry_core::Author::new(self.name(), &self.peer.to_string(), &self.request)
    }

    /// Refuses a caller whose token's role is below `role` (403).
    pub fn require(&self, role: Role) -> Result<(), Problem> {
        match &self.token {
            Some(t) if !t.role.allows(role) => Err(Problem::forbidden(format!(
                "token `{}` has role {}, and this needs {}",
                t.name,
                t.role.name(),
                role.name()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a caller whose token is limited to scopes that do not include `scope` (403).
    pub fn require_scope(&self, scope: &str) -> Result<(), Problem> {
        match &self.token {
            Some(t) if !t.covers(scope) => Err(Problem::forbidden(format!(
                "token `{}` may not touch scope {scope}",
                t.name
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the caller may see entries of `scope` (a token limited to other scopes learns
    /// nothing of them: they are not found).
    pub fn sees(&self, scope: &str) -> bool {
        self.token.as_ref().is_none_or(|t| t.covers(scope))
    }

    /// The scopes the caller is limited to; empty for all.
    pub fn scopes(&self) -> &[String] {
        self.token.as_ref().map_or(&[], |t| &t.scopes)
    }
}

/// The tokens file as last read, and when it was looked at.
struct Loaded {
    tokens: Tokens,
    /// Whether a token is required: once the server has known a token, a tokens file emptied
    /// or removed lets no one in rather than everyone.
    required: bool,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// Checks bearer tokens and rates.
pub struct Gate {
    path: PathBuf,
    loaded: RwLock<Loaded>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Serializes reloads, so that one request rereads the file while the others go on.
    reloading: Mutex<()>,
    sessions: Sessions,
}

impl Gate {
    /// Reads the tokens file at `path` (none yet is no token).
    ///
    /// # Errors
    /// The file cannot be read or is not a tokens file.
    pub fn new(path: PathBuf, limits: &ServeLimits) -> Result<Gate, Error> {
        let tokens = Tokens::load(&path)?;
        let modified = modified(&path);
        let limiter = NonZeroU32::new(limits.rate_limit).map(|rate| {
            let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Ok(Gate {
            path,
            loaded: RwLock::new(Loaded {
                required: !tokens.all().is_empty(),
                tokens,
                modified,
                checked: Instant::now(),
            }),
            limiter,
            reloading: Mutex::new(()),
            sessions: Sessions::default(),
        })
    }

    /// How many tokens the server knows now.
    pub fn count(&self) -> usize {
        self.loaded.read().map_or(0, |l| l.tokens.all().len())
    }

    /// The sessions signed in with a token ([`crate::session`]).
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Whether the server needs a token (it knows one, or has known one).
    pub fn required(&self) -> bool {
        self.reload_if_changed();
        self.loaded.read().is_ok_and(|l| l.required)
    }

    /// The token a presented secret is, if the server knows it.
    pub fn verify(&self, secret: &str) -> Option<Token> {
        self.reload_if_changed();
        self.loaded.read().ok()?.tokens.verify(secret).cloned()
    }

    /// The caller of a request with this method and these headers from `peer`: 401 without a
    /// token the server knows (once it knows any), from the `Authorization` header or a session
    /// cookie (whose writes must carry its CSRF token: 403 otherwise); 403 for a server without
    /// tokens asked under a name that is not loopback; 429 over the rate.
    pub fn admit(
        &self,
        method: &axum::http::Method,
        headers: &HeaderMap,
        peer: IpAddr,
    ) -> Result<Caller, Problem> {
        self.reload_if_changed();
        let token =
            {
                let loaded = self
                    .loaded
                    .read()
                    .map_err(|_| Problem::internal("the tokens are unreadable after a failure"))?;
                if !loaded.required {
                    crate::session::check_loopback_host(headers)?;
                    None
                } else {
                    let bearer = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "));
                    Some(match bearer {
                        Some(bearer) => loaded.tokens.verify(bearer.trim()).cloned().ok_or_else(
                            || {
                                Problem::new(
                                    StatusCode::UNAUTHORIZED,
                                    "unauthorized",
                                    "the token is not one this server knows (revoked, or mistyped)",
                                )
                            },
                        )?,
                        None => self.session_token(&loaded.tokens, method, headers)?,
                    })
                }
            };
        let caller = Caller {
            token,
            peer,
            request: String::new(),
        };
        if let Some(limiter) = &self.limiter {
            let key = match &caller.token {
                Some(t) => format!("token:{}", t.name),
                None => format!("peer:{peer}"),
            };
            if let Err(not_until) = limiter.check_key(&key) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut problem = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    format!(
                        "{} is over its rate ([serve] rate_limit): retry after the time \
                         Retry-After says",
                        caller.name()
                    ),
                );
                problem.retry_after = Some(wait.as_secs() + 1);
                return Err(problem);
            }
            if limiter.len() > 10_000 {
                limiter.retain_recent();
            }
        }
        Ok(caller)
    }

    /// The token of the session a request's cookie names: 401 without one (or when its token
    /// was revoked), 403 for a write without the session's CSRF token.
    fn session_token(
        &self,
        tokens: &Tokens,
        method: &axum::http::Method,
        headers: &HeaderMap,
    ) -> Result<Token, Problem> {
        let unauthorized = |detail: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_owned())
        };
        let session = self.sessions.of(headers).ok_or_else(|| {
            unauthorized(
                "this server needs `Authorization: Bearer <token>` (or a session: POST \
                 /v1/session)",
            )
        })?;
        let token = tokens
            .all()
            .iter()
            .find(|t| t.hash == session.token)
            .cloned()
            .ok_or_else(|| unauthorized("the session's token was revoked: sign in again"))?;
        if crate::session::writes(method) {
            let sent = headers
                .get(crate::session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !crate::session::same_secret(sent, &session.csrf) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a write with the session cookie needs its `X-CSRF-Token` header",
                ));
            }
        }
        Ok(token)
    }

    /// Reads the tokens file again if it changed since it was read (looked at once a second at
    /// most). A file that cannot be read now keeps the tokens read before, so a failed edit
    /// never opens the server.
    fn reload_if_changed(&self) {
        let due = self
            .loaded
            .read()
            .is_ok_and(|l| l.checked.elapsed() >= RELOAD_EVERY);
        if !due {
            return;
        }
        let Ok(_one) = self.reloading.try_lock() else {
            return;
        };
        let now = modified(&self.path);
        let changed = self.loaded.read().is_ok_and(|l| l.modified != now);
        let reread = changed.then(|| Tokens::load(&self.path));
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.checked = Instant::now();
            if let Some(Ok(tokens)) = reread {
                loaded.required |= !tokens.all().is_empty();
                loaded.tokens = tokens;
                loaded.modified = now;
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
