//! Rows to model types and back: the select lists and row readers the store's files share.
//! A stored value hookd cannot read back is an error, never a guess.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{StoreError, count};
use crate::db::sql::{Conn, Row};
use crate::model::delivery::Replay;
use crate::model::destination::Destination;
use crate::model::endpoint::{EndpointCounters, HeaderSetting, Sealed};
use crate::model::filter::Filter;
use crate::model::trace::TraceContext;
use crate::model::{
    DeliveryId, DeliveryStatus, DeliverySummary, DisableReason, Endpoint, EndpointId,
    EndpointSettings, EventId, EventPattern, Format, Ordering, SignatureScheme, TenantId, UnixMs,
};

/// A row error for a stored value that does not parse.
pub(super) fn corrupt(what: &'static str) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: "the stored value does not parse".to_owned(),
    }
}

/// Parses a stored JSON array of event patterns.
pub(super) fn patterns(json: &str, what: &'static str) -> Result<Vec<EventPattern>, StoreError> {
    let names: Vec<String> = serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })?;
    names
        .iter()
        .map(|n| EventPattern::parse(n))
        .collect::<Result<_, _>>()
        .map_err(|detail| StoreError::Corrupt {
            what,
            detail: detail.to_string(),
        })
}

/// A delivery's manual replay, from its stored `replay_return` (0: a pending delivery's extra
/// attempt, resuming at `resume_at`; else the status to return to).
pub(super) fn replay_of(
    replay_return: Option<i64>,
    resume_at: Option<UnixMs>,
) -> Result<Option<Replay>, StoreError> {
    Ok(match replay_return {
        None => None,
        Some(0) => Some(Replay::Resume(resume_at)),
        Some(code) => Some(Replay::Return(
            DeliveryStatus::from_code(code).ok_or_else(|| corrupt("replay_return"))?,
        )),
    })
}

/// An endpoint's counters as they read (the columns of [`endpoint_row`] from `succeeded` to
/// `last_response_code`): the endpoint row's plus what each process added (`endpoint_counts`),
/// and the latest result, whichever is newest. Selected from `endpoints`.
macro_rules! endpoint_counters {
    () => {
        concat!(
            "CAST(succeeded + coalesce((SELECT sum(k.succeeded) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id), 0) AS BIGINT),
             CAST(failed + coalesce((SELECT sum(k.failed) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id), 0) AS BIGINT),
             CAST(pending + coalesce((SELECT sum(k.pending) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id), 0) AS BIGINT),
             consecutive_failures, ",
            "CASE WHEN (SELECT max(k.last_delivery_at) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id) > coalesce(last_delivery_at, -1)
             THEN (SELECT max(k.last_delivery_at) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id) ELSE last_delivery_at END,
             CASE WHEN (SELECT max(k.last_delivery_at) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id) > coalesce(last_delivery_at, -1)
             THEN (SELECT k.last_delivery_status FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id AND k.last_delivery_at IS NOT NULL
                ORDER BY k.last_delivery_at DESC LIMIT 1) ELSE last_delivery_status END,
             CASE WHEN (SELECT max(k.last_delivery_at) FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id) > coalesce(last_delivery_at, -1)
             THEN (SELECT k.last_response_code FROM endpoint_counts k
                WHERE k.endpoint_id = endpoints.id AND k.last_delivery_at IS NOT NULL
                ORDER BY k.last_delivery_at DESC LIMIT 1) ELSE last_response_code END"
        )
    };
}
pub(super) use endpoint_counters;

/// The columns [`endpoint_row`] reads, up to the counters.
macro_rules! endpoint_settings {
    () => {
        "id, tenant_id, name, url, events, signature_scheme, signature_header, \
         format, headers, retry_schedule, disable_after, timeout_ms, rate_limit, ordering, \
         is_active, disabled_at, disabled_reason, created_at, updated_at, "
    };
}

/// The columns [`endpoint_row`] reads after the counters.
macro_rules! endpoint_credentials {
    () => {
        ", filter, channels, auth, client_certificate, url_sealed, destination"
    };
}

/// The columns [`endpoint_row`] reads on `c`: on PostgreSQL the counters add up each
/// process's rows; SQLite's one writer counts on the endpoint's row alone (what a copy brings
/// is folded by the copy), so there they are read as they are.
pub(super) fn endpoint_columns(c: &Conn<'_>) -> &'static str {
    if c.is_postgres() {
        concat!(
            endpoint_settings!(),
            endpoint_counters!(),
            endpoint_credentials!()
        )
    } else {
        concat!(
            endpoint_settings!(),
            "succeeded, failed, pending, consecutive_failures, last_delivery_at, \
             last_delivery_status, last_response_code",
            endpoint_credentials!()
        )
    }
}

/// Reads one endpoint row selected with [`endpoint_columns`].
pub(super) fn endpoint_row(r: &Row<'_>) -> Result<Endpoint, StoreError> {
    let url: String = r.get(3)?;
    let events: String = r.get(4)?;
    let headers: String = r.get(8)?;
    let retry: String = r.get(9)?;
    let retry_ms: Vec<u64> = serde_json::from_str(&retry).map_err(|_| corrupt("retry"))?;
    let scheme: String = r.get(5)?;
    let format: String = r.get(7)?;
    let ordering: String = r.get(13)?;
    let settings = EndpointSettings {
        name: r.get(2)?,
        url: url::Url::parse(&url).map_err(|_| corrupt("url"))?,
        events: patterns(&events, "endpoints.events").map_err(|_| corrupt("events"))?,
        signature_scheme: SignatureScheme::parse(&scheme).ok_or_else(|| corrupt("scheme"))?,
        signature_header_name: r.get(6)?,
        format: Format::parse(&format).ok_or_else(|| corrupt("format"))?,
        headers: header_settings(&headers)?,
        retry_schedule: retry_ms.into_iter().map(Duration::from_millis).collect(),
        disable_after: r.get(10)?,
        timeout_ms: r.get(11)?,
        rate_limit: r.get(12)?,
        ordering: Ordering::parse(&ordering).ok_or_else(|| corrupt("ordering"))?,
        is_active: r.get::<i64>(14)? != 0,
        filter: match r.get::<Option<String>>(26)? {
            Some(text) => Some(std::sync::Arc::new(filter(&text)?)),
            None => None,
        },
        channels: channels(r.get(27)?, "endpoints.channels")?,
        auth: r.get::<Option<String>>(28)?.map(Sealed),
        client_certificate: r.get::<Option<String>>(29)?.map(Sealed),
        url_sealed: r.get::<Option<String>>(30)?.map(Sealed),
        destination: match r.get::<Option<String>>(31)? {
            None => Destination::Http,
            Some(text) => serde_json::from_str(&text)
                .ok()
                .and_then(|v| Destination::parse(&v).ok())
                .ok_or_else(|| corrupt("destination"))?,
        },
    };
    let last_at: Option<i64> = r.get(23)?;
    let counters = EndpointCounters {
        succeeded: count(r.get(19)?),
        failed: count(r.get(20)?),
        pending: count(r.get(21)?),
        consecutive_failures: count(r.get(22)?),
        last_delivery: match last_at {
            Some(at) => Some((at, r.get(24)?, r.get(25)?)),
            None => None,
        },
    };
    Ok(Endpoint {
        id: EndpointId(r.get(0)?),
        tenant_id: TenantId(r.get(1)?),
        settings,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        disabled_at: r.get(15)?,
        disabled_reason: match r.get::<Option<String>>(16)? {
            Some(reason) => {
                Some(DisableReason::parse(&reason).ok_or_else(|| corrupt("disabled_reason"))?)
            }
            None => None,
        },
        counters,
    })
}

/// Channels as stored: a JSON array, or NULL for none.
/// An event's trace context as its two columns: the `traceparent` (version 00) and the
/// `tracestate`.
pub(super) fn trace_columns(trace: &Option<TraceContext>) -> (Option<String>, Option<String>) {
    match trace {
        Some(t) => (Some(t.to_string()), t.state.clone()),
        None => (None, None),
    }
}

/// An event's trace context from its two columns, as [`trace_columns`] wrote them.
pub(super) fn trace(
    traceparent: Option<String>,
    tracestate: Option<String>,
) -> Result<Option<TraceContext>, StoreError> {
    match traceparent {
        Some(t) => {
            TraceContext::parse(&t, tracestate.as_deref()).map_err(|_| corrupt("traceparent"))
        }
        None => Ok(None),
    }
}

pub(super) fn channels_text(channels: &[String]) -> Option<String> {
    (!channels.is_empty()).then(|| serde_json::to_string(channels).unwrap_or_else(|_| "[]".into()))
}

/// Parses stored channels (a JSON array; NULL for none).
pub(super) fn channels(
    text: Option<String>,
    what: &'static str,
) -> Result<Option<Vec<String>>, StoreError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        })
    })
    .transpose()
}

/// Parses a stored payload filter.
pub(super) fn filter(text: &str) -> Result<Filter, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "endpoints.filter",
        detail,
    };
    let source: serde_json::Value =
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    Filter::parse(&source).map_err(|e| corrupt(e.0))
}

/// Custom headers as stored: a JSON object of each name and its value, `{"sealed": "…"}` when
/// sealed, the value itself when not.
fn headers_text(headers: &BTreeMap<String, HeaderSetting>) -> String {
    let stored: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| {
            let value = match value {
                HeaderSetting::Plain(v) => serde_json::json!(v),
                HeaderSetting::Sealed(sealed) => serde_json::json!({"sealed": sealed.0}),
            };
            (name.clone(), value)
        })
        .collect();
    serde_json::Value::Object(stored).to_string()
}

/// Reads custom headers as [`headers_text`] stores them.
fn header_settings(text: &str) -> Result<BTreeMap<String, HeaderSetting>, StoreError> {
    let stored: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|_| corrupt("headers"))?;
    stored
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(v) => HeaderSetting::Plain(v),
                serde_json::Value::Object(mut o) => match o.remove("sealed") {
                    Some(serde_json::Value::String(s)) => HeaderSetting::Sealed(Sealed(s)),
                    _ => return Err(corrupt("headers")),
                },
                _ => return Err(corrupt("headers")),
            };
            Ok((name, value))
        })
        .collect()
}

/// An endpoint's settings as the JSON text columns store them.
pub(super) struct Columns {
    pub(super) events: String,
    pub(super) headers: String,
    pub(super) retry: String,
    pub(super) filter: Option<String>,
    pub(super) channels: Option<String>,
    pub(super) destination: Option<String>,
}

/// The JSON text columns of an endpoint's settings.
pub(super) fn columns(s: &EndpointSettings) -> Columns {
    let events: Vec<String> = s.events.iter().map(ToString::to_string).collect();
    let retry: Vec<u64> = s
        .retry_schedule
        .iter()
        .map(|d| d.as_millis() as u64)
        .collect();
    Columns {
        events: serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
        headers: headers_text(&s.headers),
        retry: serde_json::to_string(&retry).unwrap_or_else(|_| "[]".into()),
        filter: s.filter.as_ref().map(|f| f.source().to_string()),
        channels: s.channels.as_deref().and_then(channels_text),
        destination: (!s.destination.is_http()).then(|| s.destination.to_json().to_string()),
    }
}

/// The select list [`summary_row`] reads.
pub(super) const SUMMARY_SELECT: &str = "SELECT d.id, d.event_id, ev.type, d.endpoint_id, \
     d.status, d.attempts, d.next_attempt_at, d.created_at \
     FROM deliveries d JOIN events ev ON ev.id = d.event_id";

/// Reads a row selected with [`SUMMARY_SELECT`].
pub(super) fn summary_row(r: &Row<'_>) -> Result<DeliverySummary, StoreError> {
    let status = DeliveryStatus::from_code(r.get(4)?).ok_or_else(|| corrupt("status"))?;
    Ok(DeliverySummary {
        id: DeliveryId(r.get(0)?),
        event_id: EventId(r.get(1)?),
        event_type: r.get(2)?,
        endpoint_id: EndpointId(r.get(3)?),
        status,
        attempts: r.get(5)?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            r.get(6)?
        } else {
            None
        },
        created_at: r.get(7)?,
    })
}
