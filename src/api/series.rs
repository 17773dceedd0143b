//! Charts' data: an endpoint's attempts per step over the last day or week (succeeded,
//! failed, success rate, latency p50/p99), and every endpoint's at once for a list of
//! sparklines.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, Path, Query};
use super::{ApiError, AppState};
use crate::model::series::{Point, Window};
use crate::model::{EndpointId, Role, now_ms, rfc3339};

/// `window`: `24h` (the default) or `7d`.
fn window(query: &Query) -> Result<Window, ApiError> {
    match query.get("window") {
        None => Ok(Window::Day),
        Some(text) => Window::parse(text)
            .ok_or_else(|| ApiError::invalid(format!("window must be 24h or 7d (not '{text}')"))),
    }
}

fn point_json(p: &Point) -> Value {
    let finished = p.succeeded + p.failed;
    let rate =
        (finished > 0).then(|| (p.succeeded as f64 * 10_000.0 / finished as f64).round() / 100.0);
    json!({
        "at": rfc3339(p.at),
        "succeeded": p.succeeded,
        "failed": p.failed,
        "successRate": rate,
        "p50Ms": p.p50_ms,
        "p99Ms": p.p99_ms,
    })
}

fn series_json(window: Window, points: &[Point]) -> Value {
    json!({
        "window": window.as_str(),
        "stepSeconds": window.step_seconds(),
        "points": points.iter().map(point_json).collect::<Vec<_>>(),
    })
}

pub(super) async fn endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let window = window(&query)?;
    let id = EndpointId::parse(&id).ok_or_else(|| ApiError::not_found("endpoint"))?;
    let points = state
        .store
        .endpoint_series(tenant, id, window, now_ms())
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(series_json(window, &points)))
}

pub(super) async fn all_endpoints(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let window = window(&query)?;
    let all = state.store.tenant_series(tenant, window, now_ms()).await?;
    let endpoints: Vec<Value> = all
        .iter()
        .map(|(id, points)| {
            let mut series = series_json(window, points);
            series["endpointId"] = json!(id);
            series
        })
        .collect();
    Ok(Json(json!({
        "window": window.as_str(),
        "stepSeconds": window.step_seconds(),
        "endpoints": endpoints,
    })))
}
