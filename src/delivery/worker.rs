//! One attempt of one claimed delivery: sign, POST, classify. The step, kept apart from the
//! dispatcher's loop so it can be driven directly.

use std::sync::Arc;

use bytes::Bytes;
use tracing::Instrument;

use crate::model::claim::{Claim, ClaimedEvent};
use crate::model::trace::SpanId;
use crate::model::{AttemptOutcome, ErrorClass, EventId, Format, now_ms, rfc3339};
use crate::outbound::{Message, Outbound};
use crate::render::{EventView, format_headers, render};
use crate::signing::Signer;

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
/// its outcome (never an error: a failure is an outcome too).
pub async fn attempt(outbound: &Outbound, claim: &Claim, rendered: &Rendered) -> AttemptOutcome {
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
        let trace = event.trace.as_ref().map(|t| {
            let parent = t.child(SpanId::from_random(rand::random()));
            (parent, t.state.as_deref())
        });
        let msg = Message {
            id: &id,
            body: &rendered.body,
            format_headers: &rendered.headers,
            trace: trace
                .as_ref()
                .map(|(parent, state)| (parent.as_str(), *state)),
        };
        let outcome = outbound.send(endpoint, &signer, msg).await;
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
