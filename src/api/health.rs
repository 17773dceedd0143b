//! `GET /health`: whether the database takes writes right now.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub(super) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let probe = tokio::time::timeout(Duration::from_secs(2), state.store.probe_write()).await;
    let problem = match probe {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
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
