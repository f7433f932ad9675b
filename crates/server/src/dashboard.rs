//! The web dashboard at `/`: one page, its script and its style sheet, compiled into the binary
//! with `include_str!` (from `crates/server/assets/`), so that `registry serve` needs no files
//! beside it and no page can differ from the binary's API.
//!
//! The pages hold no data, so they need no token: everything the dashboard shows comes from the
//! API, authenticated by the session cookie (`/v1/session`), with the CSRF token kept in the
//! page's memory for the writes. Every answer here carries a Content-Security-Policy allowing
//! only this origin's script, style and connections and no inline script or style at all, so
//! that an entry's title, context or config (written by whoever may register) can never run as
//! code even if the page ever inserted it as markup (it builds every node with `textContent`;
//! a test below keeps the script free of the HTML-parsing sinks).
//!
//! Plain JavaScript with no framework and no build step: the page is small, and a bundler or a
//! vendored library would be more code to review than the dashboard itself. Each asset has an
//! `ETag` of its content (FNV-1a, computed at compile time) and `Cache-Control: no-cache`, so a
//! browser revalidates on every load and gets `304` until the binary changes.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The Content-Security-Policy of every dashboard answer.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'self'";

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// FNV-1a of `body`: the `ETag`, computed when the binary is built.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Asset {
        Asset {
            body,
            content_type,
            hash: fnv1a(body.as_bytes()),
        }
    }

    fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }

    /// The file, or `304` when `If-None-Match` names its `ETag`.
    fn answer(&self, headers: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(|t| t.trim().trim_start_matches("W/"))
                    .any(|t| t == etag || t == "*")
            });
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut response = self.body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            response
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(value) = HeaderValue::from_str(&etag) {
            headers.insert(header::ETAG, value);
        }
        response
    }
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

static INDEX: Asset = Asset::new(
    include_str!("../assets/index.html"),
    "text/html; charset=utf-8",
);
static SCRIPT: Asset = Asset::new(
    include_str!("../assets/app.js"),
    "text/javascript; charset=utf-8",
);
static STYLE: Asset = Asset::new(include_str!("../assets/app.css"), "text/css; charset=utf-8");

/// `GET /`, `GET /assets/app.js` and `GET /assets/app.css` (and `HEAD`), each answer with the
/// security headers. Generic over the state so that it merges into a router before or after
/// its state is given.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(|h: HeaderMap| async move { INDEX.answer(&h) }))
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { SCRIPT.answer(&h) }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { STYLE.answer(&h) }),
        )
        .layer(axum::middleware::map_response(secure))
}

/// The headers every dashboard answer carries: the page may not be framed, sniffed into another
/// type, leak its address, or load anything from elsewhere.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_type_and_the_security_headers() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/app.css", "text/css"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert!(header_of(&response, header::CONTENT_TYPE).starts_with(kind));
            assert_eq!(
                header_of(&response, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
            assert_eq!(header_of(&response, header::REFERRER_POLICY), "no-referrer");
            assert_eq!(header_of(&response, header::X_FRAME_OPTIONS), "DENY");
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");

            let etag = header_of(&response, header::ETAG).to_owned();
            let again = get(path, Some(&etag)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
            assert_eq!(
                header_of(&again, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY
            );
            let stale = get(path, Some("\"0000000000000000\"")).await;
            assert_eq!(stale.status(), StatusCode::OK, "{path}");
        }
    }

    #[test]
    fn the_files_differ_in_their_etags() {
        assert_ne!(INDEX.etag(), SCRIPT.etag());
        assert_ne!(SCRIPT.etag(), STYLE.etag());
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// Entry text is attacker-controlled: the script never parses text as markup or code, and
    /// the page has no inline script, style or event handler (which the policy would block, so
    /// a slip would only show as a broken page).
    #[test]
    fn the_page_never_parses_text_as_markup_or_code() {
        let script = SCRIPT.body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
            "javascript:",
            "srcdoc",
            "setTimeout('",
            "setTimeout(\"",
            "setInterval('",
            "setInterval(\"",
            "localStorage",
            "sessionStorage",
            ".style.",
            "'style'",
            "\"style\"",
        ] {
            assert!(!script.contains(sink), "app.js uses {sink}");
        }
        let page = INDEX.body.to_ascii_lowercase();
        assert_eq!(page.matches("<script").count(), 1, "one script element");
        assert!(page.contains("<script src=\"/assets/app.js\""));
        for inline in [
            "<style",
            " style=",
            " onclick",
            " onload",
            " onerror",
            " onsubmit",
        ] {
            assert!(!page.contains(inline), "index.html has {inline}");
        }
    }
}
