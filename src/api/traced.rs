//! Each API request as a span, when traces are exported: the middleware below starts it
//! (under the caller's `traceparent`, or as the first span of a new trace), hands it to the
//! handler (events a request publishes keep it as their parent, so their attempts join the
//! trace under the request), and records it with the response's status. It also reads the
//! trace context a request carries, for the handlers.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use http::HeaderMap;

use crate::model::Invalid;
use crate::model::trace::{SpanPlace, TraceContext};
use crate::telemetry::{Span, Telemetry};

/// The span of the request being handled (in its extensions).
#[derive(Debug, Clone)]
pub(super) struct RequestSpan {
    /// Its place in its trace.
    pub place: SpanPlace,
    /// The caller's `tracestate`, handed on.
    state: Option<String>,
}

impl RequestSpan {
    /// The context an event this request publishes keeps: its attempts become children of
    /// the request's span.
    pub fn context(&self) -> TraceContext {
        self.place.context(self.state.clone())
    }
}

/// Wraps a request in a span.
pub(super) async fn request(
    State(telemetry): State<Telemetry>,
    mut request: Request,
    next: Next,
) -> Response {
    let start = SystemTime::now();
    // A malformed `traceparent` is the handler's to refuse; the span starts a trace of its own.
    let caller = trace_context(request.headers()).ok().flatten();
    let Some(place) = telemetry.begin(caller.as_ref()) else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    request.extensions_mut().insert(RequestSpan {
        place,
        state: caller.and_then(|c| c.state),
    });
    let response = next.run(request).await;
    let status = response.status();
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    telemetry.record(Span {
        place,
        name: Cow::Owned(name),
        kind: SpanKind::Server,
        start,
        end: SystemTime::now(),
        attributes,
        error: status
            .is_server_error()
            .then(|| format!("answered {}", status.as_u16())),
    });
    response
}

/// The W3C trace context a request carries (`traceparent`, with its `tracestate`); `None`
/// without a `traceparent` (or with an empty one, or an all-zero id). A malformed
/// `traceparent` is refused; a `tracestate` that is not printable ASCII is dropped, as any
/// malformed one is.
pub(super) fn trace_context(headers: &HeaderMap) -> Result<Option<TraceContext>, Invalid> {
    // An empty `traceparent` is as good as none.
    let Some(parent) = headers
        .get("traceparent")
        .filter(|v| !v.as_bytes().trim_ascii().is_empty())
    else {
        return Ok(None);
    };
    let parent = parent
        .to_str()
        .map_err(|_| Invalid("traceparent must be printable ASCII".into()))?;
    let state = headers.get("tracestate").and_then(|v| v.to_str().ok());
    TraceContext::parse(parent, state)
}
