//! OpenTelemetry traces: the spans hookd makes (each API request, a publish's fan-out and
//! commit, each delivery attempt, each schedule run), exported over OTLP/HTTP in protobuf to
//! a collector when one is set. Off by default, and then no span is made at all.
//!
//! Export never holds up the work it describes: a span goes into a bounded queue without
//! waiting, one task sends the queue in batches, and a span the queue has no room for (the
//! collector down or slow) is dropped and counted in `/metrics`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::metrics::OtlpCounts;
use crate::model::trace::{SpanId, SpanPlace, TraceContext};

/// Most spans in one export request.
const MAX_BATCH: usize = 512;
/// How long the exporter waits for a batch to fill once it has a span.
const LINGER: Duration = Duration::from_millis(200);
/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last batch.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how spans are exported.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The collector's traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// Headers sent with each export (a collector's API key).
    pub headers: Vec<(String, String)>,
    /// `service.name`.
    pub service_name: String,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Spans waiting for export at most; more are dropped.
    pub queue: usize,
}

/// The headers' values are left out: they are often a collector's API key.
impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("resource", &self.resource)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Why export could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}")]
pub struct TelemetryError {
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The process's span export, off or on; cheap to clone.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Export>>,
}

struct Export {
    queue: mpsc::Sender<SpanData>,
    scope: InstrumentationScope,
    counts: OtlpCounts,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A finished span, as hookd made it.
#[derive(Debug, Clone)]
pub struct Span {
    /// Its place in its trace.
    pub place: SpanPlace,
    /// Its name (`POST /v1/events`, `hookd.attempt`).
    pub name: Cow<'static, str>,
    /// Server (a request hookd answered), client (an attempt) or internal.
    pub kind: SpanKind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// What it was about.
    pub attributes: Vec<KeyValue>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl Telemetry {
    /// Starts exporting to `settings.endpoint`, counting in `counts`.
    pub fn start(settings: &OtlpSettings, counts: OtlpCounts) -> Result<Self, TelemetryError> {
        let failed = |source| TelemetryError {
            endpoint: settings.endpoint.clone(),
            source,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = opentelemetry_http::hyper::HyperClient::new(connector, EXPORT_TIMEOUT, None);
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(settings.headers.iter().cloned().collect::<HashMap<_, _>>())
            .build()
            .map_err(failed)?;
        let resource = Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attributes(
                settings
                    .resource
                    .iter()
                    .filter(|(k, _)| k != "service.name")
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        exporter.set_resource(&resource);
        let (queue, spans) = mpsc::channel(settings.queue.max(1));
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(send(exporter, spans, counts.clone(), stop.clone()));
        Ok(Self {
            inner: Some(Arc::new(Export {
                queue,
                scope: InstrumentationScope::builder("hookd")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
                counts,
                stop,
                task: Mutex::new(Some(task)),
            })),
        })
    }

    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// The place of a span that starts work from outside (a request, a run): under `parent`
    /// when one came with it, else the first of a new trace. `None` when export is off.
    pub fn begin(&self, parent: Option<&TraceContext>) -> Option<SpanPlace> {
        self.inner.as_ref()?;
        let span = SpanId::from_random(rand::random());
        Some(match parent {
            Some(parent) => SpanPlace::under(parent, span),
            None => SpanPlace::root(rand::random(), span),
        })
    }

    /// Queues a finished span for export, without waiting; a full queue drops it (counted).
    /// An unsampled trace's span is not exported.
    pub fn record(&self, span: Span) {
        let Some(export) = &self.inner else {
            return;
        };
        if !span.place.sampled() {
            return;
        }
        let data = span_data(span, export.scope.clone());
        if export.queue.try_send(data).is_err() {
            export.counts.dropped.inc();
        }
    }

    /// Sends what is queued and stops exporting, waiting a few seconds at most: what the
    /// collector has not taken by then is lost.
    pub async fn shutdown(&self) {
        let Some(export) = &self.inner else {
            return;
        };
        export.stop.notify_one();
        let task = export.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task
            && tokio::time::timeout(FLUSH_TIMEOUT, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

/// Records the steps of a use-case as children of the span it runs under, when it runs
/// under one.
#[derive(Clone, Copy, Default)]
pub struct Under<'a> {
    telemetry: Option<&'a Telemetry>,
    parent: Option<SpanPlace>,
}

impl<'a> Under<'a> {
    /// Steps not recorded.
    pub const NONE: Self = Self {
        telemetry: None,
        parent: None,
    };

    /// Steps recorded under `parent` (none when it is `None`).
    pub fn new(telemetry: &'a Telemetry, parent: Option<SpanPlace>) -> Self {
        Self {
            telemetry: Some(telemetry),
            parent,
        }
    }

    /// When a step starts, if steps are recorded (the clock is not read otherwise).
    pub fn start(&self) -> Option<SystemTime> {
        self.parent.map(|_| SystemTime::now())
    }

    /// Records a step that started at `start` (from [`Under::start`]) and ends now;
    /// `attributes` are only made when it is recorded.
    pub fn step(
        &self,
        name: &'static str,
        start: Option<SystemTime>,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) {
        let (Some(telemetry), Some(parent), Some(start)) = (self.telemetry, self.parent, start)
        else {
            return;
        };
        telemetry.record(Span {
            place: parent.child(SpanId::from_random(rand::random())),
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            start,
            end: SystemTime::now(),
            attributes: attributes(),
            error: None,
        });
    }
}

fn span_data(span: Span, scope: InstrumentationScope) -> SpanData {
    let place = span.place;
    SpanData {
        span_context: SpanContext::new(
            opentelemetry::TraceId::from_bytes(place.trace_id),
            opentelemetry::SpanId::from_bytes(place.span_id.0),
            TraceFlags::new(place.flags),
            false,
            TraceState::NONE,
        ),
        parent_span_id: place.parent.map_or(opentelemetry::SpanId::INVALID, |p| {
            opentelemetry::SpanId::from_bytes(p.0)
        }),
        parent_span_is_remote: place.parent_remote,
        span_kind: span.kind,
        name: span.name,
        start_time: span.start,
        end_time: span.end,
        attributes: span.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(why) => Status::error(why),
            None => Status::Unset,
        },
        instrumentation_scope: scope,
    }
}

/// The export task: sends the queue in batches until shutdown, then what is left.
async fn send(
    exporter: opentelemetry_otlp::SpanExporter,
    mut spans: mpsc::Receiver<SpanData>,
    counts: OtlpCounts,
    stop: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            n = spans.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
            () = stop.notified() => break,
        }
        let linger = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(linger, spans.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        export(
            &exporter,
            std::mem::take(&mut batch),
            &counts,
            EXPORT_TIMEOUT,
        )
        .await;
    }
    spans.close();
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
    }
    let flush = tokio::time::Instant::now() + FLUSH_TIMEOUT;
    while !batch.is_empty() {
        let rest = batch.split_off(batch.len().min(MAX_BATCH));
        let left = flush.saturating_duration_since(tokio::time::Instant::now());
        export(
            &exporter,
            std::mem::replace(&mut batch, rest),
            &counts,
            left,
        )
        .await;
    }
}

/// Sends one batch, counting what became of it.
async fn export(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    counts: &OtlpCounts,
    limit: Duration,
) {
    let n = batch.len() as u64;
    match tokio::time::timeout(limit, exporter.export(batch)).await {
        Ok(Ok(())) => {
            counts.exported.inc_by(n);
        }
        Ok(Err(e)) => {
            counts.failed.inc_by(n);
            tracing::warn!(error = %e, spans = n, "the collector did not take the spans");
        }
        Err(_) => {
            counts.failed.inc_by(n);
            tracing::warn!(spans = n, "the collector did not answer in time");
        }
    }
}
