//! Errors as `application/problem+json` (RFC 9457), carrying the command line's error names.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use registry_core::Error as CoreError;
use registry_host::Error;
use serde_json::json;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered as `application/problem+json`: `status`, a `title` (the status's reason),
/// `detail` (the one line the command line would print) and `code`, the command line's name for
/// the error (`not-found`, `conflict`, `invalid`, a validator's problem code, ...).
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// Seconds to wait before trying again (429, 503): the `Retry-After` header.
    pub retry_after: Option<u64>,
    /// The field or argument at fault, when the error is about one (`id`, `scope`, ...).
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code: code.into(),
            detail: detail.into(),
            retry_after: None,
            field: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// The body as JSON text, for a stream that reports an error in band.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, PROBLEM_JSON)],
            self.to_json().to_string(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Problem {
        Problem::from(Error::from(e))
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Problem {
        let status = match (e.kind(), e.is_input()) {
            ("not-found", _) => StatusCode::NOT_FOUND,
            ("conflict", _) => StatusCode::CONFLICT,
            (_, true) => StatusCode::UNPROCESSABLE_ENTITY,
            ("unavailable" | "storage", false) => StatusCode::SERVICE_UNAVAILABLE,
            (_, false) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = match (e.kind(), e.is_input()) {
            ("input", true) => "invalid".to_owned(),
            (kind, _) => kind.to_owned(),
        };
        let field = e.location.as_ref().and_then(|l| l.field.clone());
        let mut problem = Problem::new(status, code, e.message);
        problem.field = field;
        problem
    }
}
