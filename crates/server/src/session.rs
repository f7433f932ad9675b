//! Browser sessions: a token exchanged once for a cookie, so that the dashboard's requests (and
//! its `EventSource`, which cannot send an `Authorization` header) are authenticated without the
//! page ever holding the token.
//!
//! `POST /v1/session` with `{"token": "..."}` checks the token and answers with a session cookie
//! (`registry_session`: 256 random bits, `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` on
//! HTTPS, for [`TTL`]) and a CSRF token. A request with the cookie and no `Authorization` header
//! acts as the session's token, looked up again in the tokens file on every request, so revoking
//! the token ends its sessions; a write (any method but GET and HEAD) must also carry the CSRF
//! token as `X-CSRF-Token`, which another site's page cannot read or send. `DELETE /v1/session`
//! ends the session. Sessions live in the server's memory: a restart signs everyone out. At most
//! [`MAX_SESSIONS`]; past that, signing in ends the session closest to expiring.
//!
//! Every write is also refused when the browser says it comes from another site
//! (`Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` that is not the server's own):
//! on a server without tokens, a page on the web could otherwise post a batch to a registry on
//! the visitor's loopback. And a server without tokens answers only requests addressed to a
//! loopback name (`Host`), so a page whose domain is re-pointed at 127.0.0.1 (DNS rebinding)
//! cannot read it either.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use registry_core::ContentHash;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::problem::Problem;

/// The cookie's name.
pub(crate) const COOKIE: &str = "registry_session";

/// The header carrying the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// How long a session lasts.
pub(crate) const TTL: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at most.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token's hash: the token it acts as, found again at every request.
    pub token: ContentHash,
    pub csrf: String,
    expires: Instant,
}

/// The sessions of this server run.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session acting as the token whose hash is `token`: its cookie value and CSRF token.
    ///
    /// # Errors
    /// No random bytes.
    pub fn create(&self, token: ContentHash) -> Result<(String, String), Problem> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut map = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                token,
                csrf: csrf.clone(),
                expires: now + TTL,
            },
        );
        Ok((id, csrf))
    }

    /// The session a request's cookie names, if it is one and has not expired.
    pub fn of(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let mut map = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let session = map.get(id)?;
        if session.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some(session.clone())
    }

    /// Ends the session a request's cookie names.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.by_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }
}

/// The session cookie's value in a request.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// 256 random bits as hex.
fn random_hex() -> Result<String, Problem> {
    registry_host::tokens::random_hex("a session").map_err(|e| Problem::internal(e.to_string()))
}

/// Whether two secrets are equal, in a time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a method writes.
pub(crate) fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a write the browser says comes from another site (see the module documentation).
pub(crate) fn check_origin(method: &Method, headers: &HeaderMap) -> Result<(), Problem> {
    if !writes(method) {
        return Ok(());
    }
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let bare = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            bare != Some(host)
        });
    if matches!(site, "cross-site" | "same-site") || foreign_origin {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "cross-site",
            "a write from another site's page is refused (Origin or Sec-Fetch-Site)",
        ));
    }
    Ok(())
}

/// Refuses a request addressed to a name that is not loopback, on a server without tokens.
pub(crate) fn check_loopback_host(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "not-loopback",
            "this server has no token, so it answers requests to loopback names only \
             (localhost, 127.0.0.1, [::1])",
        ))
    }
}

/// The JSON of a session: who, the CSRF token, and whether tokens are required.
fn describe(token: Option<&registry_host::tokens::Token>, csrf: &str, required: bool) -> Response {
    Json(json!({
        "name": token.map_or("anonymous", |t| t.name.as_str()),
        "role": token.map_or("admin", |t| t.role.name()),
        "scopes": token.map_or(&[][..], |t| &t.scopes[..]),
        "csrf": csrf,
        "required": required,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Who the session cookie signs in as (200), or 401 when there is none and the server needs a
/// token. A server without tokens answers `required: false`.
#[utoipa::path(get, path = "/v1/session", responses(
    (status = 200, description = "The session", body = crate::openapi::Session),
    (status = 401, description = "No session", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn current(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let caller = state.gate.admit(&Method::GET, &headers, peer.ip())?;
    let csrf = state
        .gate
        .sessions()
        .of(&headers)
        .map(|s| s.csrf)
        .unwrap_or_default();
    Ok(describe(
        caller.token.as_ref(),
        &csrf,
        state.gate.required(),
    ))
}

/// Signs in: exchanges a token for a session cookie and a CSRF token.
#[utoipa::path(post, path = "/v1/session", request_body = crate::openapi::SignIn, responses(
    (status = 200, description = "Signed in: the session (and its cookie in Set-Cookie)", body = crate::openapi::Session),
    (status = 400, description = "Malformed request", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 401, description = "Not a token this server knows", body = crate::openapi::Problem, content_type = "application/problem+json"),
    (status = 403, description = "From another site's page", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    check_origin(&Method::POST, &headers)?;
    let body: SignIn = crate::routes::read_json(&state, body).await?;
    let Some(token) = state.gate.verify(body.token.trim()) else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the token is not one this server knows (revoked, or mistyped)",
        ));
    };
    let (id, csrf) = state.gate.sessions().create(token.hash)?;
    let mut response = describe(Some(&token), &csrf, true);
    let secure = if state.https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signs out: ends the session and clears its cookie (204 whether or not there was one).
#[utoipa::path(delete, path = "/v1/session", responses(
    (status = 204, description = "Signed out"),
    (status = 403, description = "From another site's page", body = crate::openapi::Problem, content_type = "application/problem+json")
))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_origin(&Method::DELETE, &headers)?;
    state.gate.sessions().end(&headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("registry_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_until_it_ends() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.create(ContentHash([7; 32])).expect("created");
        assert_eq!((id.len(), csrf.len()), (64, 64));
        assert_ne!(id, csrf);
        let with = headers(&[("cookie", &format!("theme=dark; {COOKIE}={id}"))]);
        let found = sessions.of(&with).expect("found");
        assert_eq!(
            (found.token, found.csrf.as_str()),
            (ContentHash([7; 32]), csrf.as_str())
        );
        assert!(
            sessions
                .of(&headers(&[("cookie", "registry_session=abc")]))
                .is_none()
        );
        let other = "0".repeat(64);
        assert!(
            sessions
                .of(&headers(&[("cookie", &format!("{COOKIE}={other}"))]))
                .is_none()
        );
        sessions.end(&with);
        assert!(sessions.of(&with).is_none());
    }

    #[test]
    fn writes_from_another_site_are_refused_reads_are_not() {
        let ok = |m: Method, h: &[(&'static str, &str)]| check_origin(&m, &headers(h)).is_ok();
        assert!(ok(Method::POST, &[("host", "127.0.0.1:8080")]));
        assert!(ok(
            Method::POST,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ]
        ));
        assert!(ok(Method::POST, &[("sec-fetch-site", "same-origin")]));
        assert!(!ok(
            Method::POST,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example")
            ]
        ));
        assert!(!ok(Method::PATCH, &[("sec-fetch-site", "cross-site")]));
        assert!(!ok(Method::DELETE, &[("sec-fetch-site", "same-site")]));
        assert!(ok(
            Method::GET,
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example")
            ]
        ));
    }

    #[test]
    fn only_loopback_names_are_answered_without_tokens() {
        let ok = |host: &str| check_loopback_host(&headers(&[("host", host)])).is_ok();
        for host in [
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]:80",
            "LOCALHOST",
            "127.9.9.9",
        ] {
            assert!(ok(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1:80",
            "[2001:db8::1]:80",
            "localhost.evil",
        ] {
            assert!(!ok(host), "{host}");
        }
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
