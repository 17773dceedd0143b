//! Publishing and reading events.

use crate::model::Invalid;
use axum::extract::State;
use axum::{Extension, Json};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::deliveries::summary_json;
use super::error::not_found;
use super::extract::{Auth, JsonBody, Object, Path, Query};
use super::page::page_json;
use super::traced::{RequestSpan, trace_context};
use super::{ApiError, AppState};
use crate::model::event::check_channels;
use crate::model::publish::StoredEvent;
use crate::model::publish::{NewEvent, Published};
use crate::model::trace::TraceContext;
use crate::model::{EventId, EventName, Role, rfc3339};
use crate::service::publish;
use crate::telemetry::Under;

/// Most events in one batch publish.
const MAX_BATCH: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct EventIn {
    #[serde(rename = "type")]
    event_type: String,
    data: Option<Box<RawValue>>,
    idempotency_key: Option<String>,
    channels: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchIn {
    events: Option<Vec<Object<EventIn>>>,
}

impl EventIn {
    fn parse(self) -> Result<NewEvent, Invalid> {
        let name = EventName::parse(&self.event_type).map_err(|e| format!("type: {e}"))?;
        let data = self.data.ok_or("data is required: a JSON object")?;
        if !data.get().trim_start().starts_with('{') {
            return Err("data must be a JSON object".into());
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > 255)
        {
            return Err("idempotencyKey must be 1 to 255 characters".into());
        }
        let channels = self.channels.unwrap_or_default();
        check_channels(&channels)?;
        Ok(NewEvent {
            name,
            data: data.get().to_owned(),
            idempotency_key: self.idempotency_key,
            channels,
            trace: None,
        })
    }
}

fn published_json(p: &Published) -> Value {
    json!({
        "id": p.id,
        "type": p.name,
        "createdAt": rfc3339(p.created_at),
        "deliveries": p.deliveries,
    })
}

fn event_json(e: &StoredEvent) -> Value {
    let mut out = published_json(&e.published);
    out["data"] = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    out["channels"] = json!(e.channels);
    out["traceparent"] = json!(e.trace.as_ref().map(TraceContext::to_string));
    out["tracestate"] = json!(e.trace.as_ref().and_then(|t| t.state.as_deref()));
    out
}

/// The trace events published by a request keep: the request's span when traces are
/// exported (their attempts become its children), else the caller's `traceparent` as it came.
/// A malformed `traceparent` is refused.
fn published_trace(
    headers: &HeaderMap,
    span: Option<&RequestSpan>,
) -> Result<Option<TraceContext>, ApiError> {
    let caller = trace_context(headers).map_err(ApiError::invalid)?;
    Ok(span.map(RequestSpan::context).or(caller))
}

pub(super) async fn publish(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    span: Option<Extension<RequestSpan>>,
    body: JsonBody<EventIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Publisher)?;
    let span = span.map(|Extension(s)| s);
    let trace = published_trace(&headers, span.as_ref())?;
    let body = body.parse().await?;
    let mut event = body.parse().map_err(ApiError::invalid)?;
    event.trace = trace;
    let under = Under::new(&state.telemetry, span.map(|s| s.place));
    let published = publish::publish_under(&state.store, tenant, vec![event], under).await?;
    state.metrics.published(1);
    let first = published.first().ok_or_else(ApiError::internal)?;
    Ok((StatusCode::ACCEPTED, Json(published_json(first))))
}

pub(super) async fn publish_batch(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    span: Option<Extension<RequestSpan>>,
    body: JsonBody<BatchIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Publisher)?;
    let span = span.map(|Extension(s)| s);
    let trace = published_trace(&headers, span.as_ref())?;
    let body = body.parse().await?;
    let events = body
        .events
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::invalid("events is required: a list of 1 to 1000 events"))?;
    if events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "events holds {} events; the most in one batch is {MAX_BATCH}",
            events.len()
        )));
    }
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, Object(e))| {
            let mut event = e
                .parse()
                .map_err(|m| ApiError::invalid(format!("events[{i}]: {m}")))?;
            event.trace = trace.clone();
            Ok(event)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let under = Under::new(&state.telemetry, span.map(|s| s.place));
    let published = publish::publish_under(&state.store, tenant, events, under).await?;
    state.metrics.published(published.len() as u64);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"events": published.iter().map(published_json).collect::<Vec<_>>()})),
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let name = match query.get("type") {
        Some(t) => Some(
            EventName::parse(t)
                .map_err(ApiError::invalid)?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let page = state.store.list_events(tenant, name, query.page()?).await?;
    Ok(Json(page_json(page, event_json)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let id = EventId::parse(&id).ok_or_else(|| ApiError::not_found("event"))?;
    let detail = state
        .store
        .get_event(tenant, id)
        .await
        .map_err(not_found("event"))?;
    let mut out = event_json(&detail.event);
    out["deliveryCount"] = out["deliveries"].take();
    out["deliveries"] = detail.deliveries.iter().map(summary_json).collect();
    Ok(Json(out))
}
