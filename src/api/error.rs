//! The API's error type and the one place that maps errors to HTTP status codes.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::model::plan::PlanRefusal;
use crate::store::StoreError;

/// An error answered as `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    /// Whether the connection is closed after the answer (the request was not read whole).
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            close: false,
        }
    }

    /// The sentence the caller is told.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: the body is not well-formed.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// 400: the body is not JSON (cut short, bytes after it, none where one is needed).
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 401: no token, or one that is not valid.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid token as 'Authorization: Bearer <token>'",
        )
    }

    /// 403: the token is valid but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing (or not this tenant's).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }

    /// 409: conflicts with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 408: the body did not arrive within `limit`; the connection is closed.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        let mut e = Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms",
                limit.as_millis()
            ),
        );
        e.close = true;
        e
    }

    /// 415: not JSON.
    pub fn unsupported_media_type() -> Self {
        Self::unsupported_media_type_of("application/json")
    }

    /// 415 naming what is accepted.
    pub fn unsupported_media_type_of(accepted: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as {accepted}"),
        )
    }

    /// 401: a signed call whose signature does not hold.
    pub fn signature(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_signature", message)
    }

    /// 429: too many calls; try again in `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many calls to this webhook; try again in {secs}s"),
        );
        e.retry_after = Some(secs);
        e
    }

    /// 422: well-formed but invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    /// 503: storage cannot take the request now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            message,
        );
        e.retry_after = Some(1);
        e
    }

    /// 403 or 429: the tenant's plan refused the request; nothing was written.
    pub fn plan(refusal: PlanRefusal) -> Self {
        let message = refusal.to_string();
        match refusal {
            PlanRefusal::FeatureOff(_) => {
                Self::new(StatusCode::FORBIDDEN, "plan_required", message)
            }
            PlanRefusal::Endpoints { .. } => {
                Self::new(StatusCode::FORBIDDEN, "quota_exceeded", message)
            }
            PlanRefusal::EventsPerDay { retry_after, .. } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message);
                e.retry_after = Some(retry_after);
                e
            }
        }
    }

    /// 500: a fault of hookd's; the details go to the log, not the caller.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "hookd failed to handle the request; the details are in its log",
        )
    }
}

/// Maps a store `NotFound` to a 404 that names what was missing.
pub(super) fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

use crate::report::ErrorChain;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Missing(message) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            StoreError::Conflict(message) => Self::conflict(message),
            StoreError::Invalid(message) => Self::invalid(message),
            StoreError::Plan(refusal) => Self::plan(refusal),
            e if e.is_unavailable() => {
                tracing::error!(error = %ErrorChain(&e), "storage unavailable");
                Self::unavailable("storage is unavailable; nothing was changed, try again")
            }
            e => {
                tracing::error!(error = %ErrorChain(&e), "database error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        if self.close {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
