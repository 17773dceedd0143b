//! The dashboard, served from the binary itself: a few static files (`ui/` in the
//! repository), embedded at build time. It is a client of the `/v1` API like any other.

use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use super::ApiError;

/// The dashboard's files: name, content type, body.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "page.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/page.js"),
    ),
    (
        "schedules.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/schedules.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/charts.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/style.css"),
    ),
];

/// Only this origin's own files and API; nothing from elsewhere, no inline script.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

fn file(name: &str) -> Result<Response, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok((
        [
            (CONTENT_TYPE, *content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (CACHE_CONTROL, "no-cache"),
        ],
        *body,
    )
        .into_response())
}

/// `GET /`: the dashboard.
pub(super) async fn root() -> Redirect {
    Redirect::to("/ui/")
}

/// `GET /ui/`: its page.
pub(super) async fn index() -> Result<Response, ApiError> {
    file("index.html")
}

/// `GET /ui/{file}`: its scripts and styles.
pub(super) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    file(&name)
}
