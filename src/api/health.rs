//! `GET /health` (whether the database takes writes right now) and `GET /metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let probe = tokio::time::timeout(Duration::from_secs(2), state.store.probe_write()).await;
    let problem = match probe {
        Ok(Ok(())) => state
            .store
            .write_failure()
            .map(|why| format!("writes are failing: {why}")),
        Ok(Err(e)) => Some(crate::report::ErrorChain(&e).to_string()),
        Err(_) => Some("the database did not commit a write within 2s".to_owned()),
    };
    let version = env!("CARGO_PKG_VERSION");
    match problem {
        None => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok", "version": version})),
        ),
        Some(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "degraded", "database": problem, "version": version})),
        ),
    }
}

pub(super) async fn metrics(
    State(state): State<AppState>,
    auth: super::extract::Auth,
    headers: http::HeaderMap,
) -> Result<axum::response::Response, super::ApiError> {
    use axum::response::IntoResponse;
    auth.operator()?;
    let pending = state.store.pending_total().await?;
    let queues = state.store.queues().await?;
    let body = state
        .metrics
        .render(pending, queues, crate::model::now_ms());
    // Prometheus asks for OpenMetrics; anyone else (curl, a generated client) gets the same
    // text as plain text, which the classic exposition format parses too.
    let openmetrics = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let content_type = match openmetrics {
        true => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        false => "text/plain; version=0.0.4; charset=utf-8",
    };
    Ok(([(http::header::CONTENT_TYPE, content_type)], body).into_response())
}
