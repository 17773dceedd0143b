//! The delivery log: one endpoint's deliveries, and one delivery with its attempts.

use crate::model::trace::TraceContext;
use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, OptionalJson, Path, Query};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::model::{
    DeliveryFilter, DeliveryId, DeliveryStatus, DeliverySummary, EndpointId, Role, parse_rfc3339,
    rfc3339,
};
use crate::render::{EventView, shown_request};

/// A delivery as listed.
pub(super) fn summary_json(d: &DeliverySummary) -> Value {
    json!({
        "id": d.id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "endpointId": d.endpoint_id,
        "status": d.status.as_str(),
        "attemptCount": d.attempts,
        "nextAttemptAt": d.next_attempt_at.map(rfc3339),
        "createdAt": rfc3339(d.created_at),
    })
}

/// `status`, `eventType`, `since` and `until` (RFC 3339; since ≤ created < until).
fn delivery_filter(query: &Query) -> Result<DeliveryFilter, ApiError> {
    let status = match query.get("status") {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::invalid("status must be one of pending, succeeded, failed")
        })?),
    };
    let instant = |field: &str| match query.get(field) {
        None => Ok(None),
        Some(text) => parse_rfc3339(text).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "{field} '{text}' is not an RFC 3339 instant, like 2026-12-05T09:00:00Z"
            ))
        }),
    };
    let (since, until) = (instant("since")?, instant("until")?);
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(ApiError::invalid("since must be before until"));
    }
    let event_type = match query.get("eventType") {
        None | Some("") => None,
        Some(name) if name.chars().count() > 200 => {
            return Err(ApiError::invalid(
                "eventType must be at most 200 characters",
            ));
        }
        Some(name) => Some(name.to_owned()),
    };
    Ok(DeliveryFilter {
        status,
        event_type,
        since,
        until,
    })
}

pub(super) async fn list_for_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let id = EndpointId::parse(&id).ok_or_else(|| ApiError::not_found("endpoint"))?;
    let filter = delivery_filter(&query)?;
    let page = state
        .store
        .list_endpoint_deliveries(tenant, id, filter, query.page()?)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(page_json(page, summary_json)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let id = DeliveryId::parse(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let detail = state
        .store
        .get_delivery(tenant, id)
        .await
        .map_err(not_found("delivery"))?;
    let mut out = summary_json(&detail.summary);
    // Every attempt was a span of its event's trace (when it has one).
    let trace_id = detail.event_trace.as_ref().map(TraceContext::trace_id_hex);
    out["attempts"] = detail
        .attempts
        .iter()
        .map(|a| {
            let o = &a.outcome;
            json!({
                "number": a.number,
                "traceId": trace_id,
                "at": rfc3339(o.at),
                "responseCode": o.response_code,
                "latencyMs": o.latency_ms,
                "error": o.error.map(|e| e.as_str()),
                "errorMessage": o.error_message,
                "responseBody": o.response_body,
            })
        })
        .collect();
    let endpoint = state
        .store
        .get_endpoint(tenant, detail.summary.endpoint_id)
        .await
        .map_err(not_found("delivery"))?;
    let event_id = detail.summary.event_id.to_string();
    let timestamp = rfc3339(detail.event_created_at);
    let shown = shown_request(
        &endpoint.settings,
        EventView {
            id: &event_id,
            name: &detail.summary.event_type,
            timestamp: &timestamp,
            data: &detail.event_data,
        },
    );
    out["request"] = json!({
        "method": endpoint.settings.destination.verb(),
        "url": shown.url,
        "headers": shown.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
        "body": shown.body,
    });
    Ok(Json(out))
}

pub(super) async fn retry(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: OptionalJson<super::extract::NoFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    body.parse().await?;
    let id = DeliveryId::parse(&id).ok_or_else(|| ApiError::not_found("delivery"))?;
    let summary = crate::service::replay::retry(&state.store, tenant, id)
        .await
        .map_err(not_found("delivery"))?;
    Ok((StatusCode::ACCEPTED, Json(summary_json(&summary))))
}
