//! One attempt of one claimed delivery: sign, POST, classify. The step, kept apart from the
//! dispatcher's loop so it can be driven directly.

use bytes::Bytes;
use tracing::Instrument;

use crate::model::claim::{Claim, ClaimedEvent};
use crate::model::trace::SpanId;
use crate::model::{AttemptOutcome, ErrorClass, EventId, Format, now_ms, rfc3339};
use crate::outbound::{Message, Outbound};
use crate::render::{EventView, render};
use crate::signing::Signer;

/// The request body of an event in an endpoint's format (the dispatcher renders it once per
/// event and format, whatever the number of endpoints).
pub fn render_body(event_id: EventId, event: &ClaimedEvent, format: Format) -> Bytes {
    let id = event_id.to_string();
    let timestamp = rfc3339(event.created_at);
    let view = EventView {
        id: &id,
        name: &event.name,
        timestamp: &timestamp,
        data: &event.data,
    };
    Bytes::from(render(format, view))
}

/// Makes one attempt of a claimed delivery with its rendered `body` and returns its outcome
/// (never an error: a failure is an outcome too).
pub async fn attempt(outbound: &Outbound, claim: &Claim, body: &Bytes) -> AttemptOutcome {
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
        let event = &claim.event;
        let traceparent = event
            .trace
            .as_ref()
            .map(|t| t.child(SpanId::from_random(rand::random())));
        let trace = traceparent
            .as_deref()
            .zip(event.trace.as_ref())
            .map(|(parent, t)| (parent, t.state.as_deref()));
        let outcome = outbound
            .send(
                endpoint,
                &signer,
                Message {
                    id: &id,
                    body,
                    trace,
                },
            )
            .await;
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
