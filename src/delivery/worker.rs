//! One attempt of one claimed delivery: sign, POST, classify. The step, kept apart from the
//! dispatcher's loop so it can be driven directly.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use tracing::Instrument;

use crate::model::claim::{Claim, ClaimedEvent};
use crate::model::trace::{SpanId, SpanPlace};
use crate::model::{AttemptOutcome, ErrorClass, EventId, Format, now_ms, rfc3339};
use crate::outbound::{Message, Outbound};
use crate::render::{EventView, format_headers, render};
use crate::signing::Signer;
use crate::telemetry::{Span, Telemetry};

/// An event rendered in one endpoint format: the request body and the headers the format
/// goes with (the dispatcher renders it once per event and format, whatever the number of
/// endpoints).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The request body.
    pub body: Bytes,
    /// The content type, and CloudEvents' `ce-*` attributes in binary mode.
    pub headers: Arc<[(&'static str, String)]>,
}

/// An event in an endpoint's format.
pub fn render_body(event_id: EventId, event: &ClaimedEvent, format: Format) -> Rendered {
    let id = event_id.to_string();
    let timestamp = rfc3339(event.created_at);
    let view = EventView {
        id: &id,
        name: &event.name,
        timestamp: &timestamp,
        data: &event.data,
    };
    Rendered {
        body: Bytes::from(render(format, view)),
        headers: format_headers(format, view).into(),
    }
}

/// Makes one attempt of a claimed delivery, `rendered` in its endpoint's format, and returns
/// its outcome (never an error: a failure is an outcome too). With `telemetry` on, the
/// attempt is a span, exported.
pub async fn attempt(
    outbound: &Outbound,
    claim: &Claim,
    rendered: &Rendered,
    telemetry: &Telemetry,
) -> AttemptOutcome {
    let (endpoint, secrets) = &*claim.endpoint;
    let span = tracing::debug_span!(
        "attempt",
        delivery_id = %claim.delivery_id,
        endpoint_id = %endpoint.id,
        event_id = %claim.event_id,
        attempt = claim.attempt,
    );
    async {
        let keys: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signer = match Signer::new(endpoint.settings.signature_scheme, &keys) {
            Ok(s) => s,
            Err(e) => {
                return AttemptOutcome {
                    at: now_ms(),
                    response_code: None,
                    latency_ms: 0,
                    error: Some(ErrorClass::Connect),
                    error_message: Some(format!("cannot sign: {e}")),
                    response_body: None,
                    retry_after_ms: None,
                };
            }
        };
        let id = claim.event_id.to_string();
        // The attempt is a span of the event's trace: the receiver's spans join it under it.
        // With tracing on, an event without a trace has its attempt start one.
        let event = &claim.event;
        let place = match &event.trace {
            Some(t) => Some(SpanPlace::under(t, SpanId::from_random(rand::random()))),
            None => telemetry.begin(None),
        };
        let state = event.trace.as_ref().and_then(|t| t.state.as_deref());
        let trace = place.map(|p| (p.context(None).to_string(), state));
        let msg = Message {
            id: &id,
            event_type: &event.name,
            body: &rendered.body,
            format_headers: &rendered.headers,
            trace: trace
                .as_ref()
                .map(|(parent, state)| (parent.as_str(), *state)),
        };
        let outcome = outbound.send(endpoint, &signer, msg).await;
        if let Some(place) = place.filter(|_| telemetry.is_on()) {
            telemetry.record(attempt_span(place, claim, &outcome));
        }
        tracing::debug!(
            status = ?outcome.response_code,
            error = ?outcome.error,
            latency_ms = outcome.latency_ms,
            "attempt finished"
        );
        outcome
    }
    .instrument(span)
    .await
}

/// An attempt as a span: a client span under the event's, with what an operator filters on.
fn attempt_span(place: SpanPlace, claim: &Claim, outcome: &AttemptOutcome) -> Span {
    use opentelemetry::KeyValue;
    let endpoint = &claim.endpoint.0;
    let mut attributes = vec![
        KeyValue::new("hookd.tenant.id", endpoint.tenant_id.to_string()),
        KeyValue::new("hookd.endpoint.id", endpoint.id.to_string()),
        KeyValue::new("hookd.event.id", claim.event_id.to_string()),
        KeyValue::new("hookd.event.type", claim.event.name.clone()),
        KeyValue::new("hookd.delivery.id", claim.delivery_id.to_string()),
        KeyValue::new("hookd.attempt", i64::from(claim.attempt)),
    ];
    // A broker's message follows OpenTelemetry's messaging conventions; a request, HTTP's.
    let kind = match endpoint.settings.destination.broker() {
        None => {
            attributes.push(KeyValue::new("http.request.method", "POST"));
            opentelemetry::trace::SpanKind::Client
        }
        Some((system, name)) => {
            attributes.push(KeyValue::new("messaging.system", system));
            attributes.push(KeyValue::new("messaging.destination.name", name.to_owned()));
            attributes.push(KeyValue::new("messaging.operation.type", "send"));
            opentelemetry::trace::SpanKind::Producer
        }
    };
    if let Some(code) = outcome.response_code {
        attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
    }
    if let Some(class) = outcome.error {
        attributes.push(KeyValue::new("error.type", class.as_str()));
    }
    Span {
        place,
        name: Cow::Borrowed("hookd.attempt"),
        kind,
        // The outcome's start: no clock is read for a span when export is off.
        start: SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(u64::try_from(outcome.at).unwrap_or(0)),
        end: SystemTime::now(),
        attributes,
        error: outcome.error.map(|class| {
            outcome
                .error_message
                .clone()
                .unwrap_or_else(|| class.as_str().to_owned())
        }),
    }
}
