//! Prometheus metrics, served at `GET /metrics` (operator token): events published, delivery
//! attempts by result, attempt latency, attempts in flight, deliveries pending, statements run
//! on the database, span export; and, with bounded cardinality, attempts by endpoint for the
//! busiest endpoints and the queue of the tenants with the deepest ones, the rest summed as
//! `other`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::{AttemptOutcome, EndpointId, TenantId, TenantQueue, UnixMs};

/// The busiest endpoints (and the tenants with the deepest queues) that get series of their
/// own, unless `metrics_top` says otherwise.
pub const DEFAULT_TOP: usize = 20;

type Labels = Vec<(&'static str, &'static str)>;

/// The process's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events: Counter,
    attempts: Family<Labels, Counter>,
    latency: Histogram,
    in_flight: Gauge,
    pending: Gauge,
    otlp: OtlpCounts,
    by_endpoint: Arc<ByEndpoint>,
}

/// What OpenTelemetry export did with the spans it was handed (all zero when it is off).
#[derive(Clone, Default)]
pub struct OtlpCounts {
    /// Spans the collector took.
    pub exported: Counter,
    /// Spans dropped because the export queue was full (the collector down or slow).
    pub dropped: Counter,
    /// Spans lost because the collector refused them or could not be reached.
    pub failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(DEFAULT_TOP)
    }
}

impl Metrics {
    /// Registers every metric; `top` endpoints and tenants get series of their own.
    pub fn new(top: usize) -> Self {
        let mut registry = Registry::default();
        let events = Counter::default();
        registry.register(
            "hookd_events_published",
            "Events accepted by publish",
            events.clone(),
        );
        let attempts = Family::<Labels, Counter>::default();
        registry.register(
            "hookd_delivery_attempts",
            "Delivery attempts by result (success or the error class)",
            attempts.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "hookd_delivery_attempt_seconds",
            "Time from the start of an attempt to its outcome",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "hookd_deliveries_in_flight",
            "Attempts in flight now",
            in_flight.clone(),
        );
        registry.register(
            "hookd_db_statements",
            "Statements run on the database (SQLite or PostgreSQL), reads and writes",
            crate::db::sql::STATEMENTS.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "hookd_deliveries_pending",
            "Deliveries waiting for an attempt",
            pending.clone(),
        );
        let otlp = OtlpCounts::default();
        registry.register(
            "hookd_otlp_spans_exported",
            "Spans the OpenTelemetry collector took",
            otlp.exported.clone(),
        );
        registry.register(
            "hookd_otlp_spans_dropped",
            "Spans dropped because the export queue was full",
            otlp.dropped.clone(),
        );
        registry.register(
            "hookd_otlp_spans_failed",
            "Spans lost because the collector refused them or could not be reached",
            otlp.failed.clone(),
        );
        let by_endpoint = Arc::new(ByEndpoint {
            top,
            book: Mutex::default(),
        });
        registry.register_collector(Box::new(by_endpoint.clone()));
        Self {
            inner: Arc::new(Inner {
                registry,
                events,
                attempts,
                latency,
                in_flight,
                pending,
                otlp,
                by_endpoint,
            }),
        }
    }

    /// The counters OpenTelemetry export moves.
    pub fn otlp(&self) -> OtlpCounts {
        self.inner.otlp.clone()
    }

    /// Counts published events.
    pub fn published(&self, n: u64) {
        self.inner.events.inc_by(n);
    }

    /// Counts an attempt that started.
    pub fn attempt_started(&self) {
        self.inner.in_flight.inc();
    }

    /// Counts an attempt's outcome, for its endpoint too.
    pub fn attempt_finished(&self, endpoint: (EndpointId, TenantId), outcome: &AttemptOutcome) {
        self.inner.in_flight.dec();
        let result = outcome.error.map_or("success", |e| e.as_str());
        if let Ok(mut book) = self.inner.by_endpoint.book.lock() {
            book.count(endpoint, result, self.inner.by_endpoint.top);
        }
        self.inner
            .attempts
            .get_or_create(&vec![("result", result)])
            .inc();
        self.inner
            .latency
            .observe(f64::from(outcome.latency_ms) / 1000.0);
    }

    /// The text exposition, with the pending count and the tenants' queues read at scrape
    /// time (`now` to age them). Each scrape ranks the endpoints again.
    pub fn render(&self, pending: u64, queues: Vec<TenantQueue>, now: UnixMs) -> String {
        self.inner
            .pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        if let Ok(mut book) = self.inner.by_endpoint.book.lock() {
            book.rank(self.inner.by_endpoint.top);
            book.queues = top_queues(queues, self.inner.by_endpoint.top, now);
        }
        let mut out = String::new();
        if encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Attempts by endpoint, and the tenants' queues, with bounded cardinality: only the `top`
/// busiest endpoints get series of their own.
#[derive(Debug)]
struct ByEndpoint {
    top: usize,
    book: Mutex<EndpointBook>,
}

/// Who is counted where. An endpoint's series counts its attempts while it is among the
/// busiest (from its first attempt while there are fewer than `top` endpoints); every other
/// attempt goes to `other`. Both only grow, as counters must, whoever moves in or out.
#[derive(Debug, Default)]
struct EndpointBook {
    endpoints: HashMap<EndpointId, EndpointEntry>,
    members: usize,
    other: BTreeMap<&'static str, u64>,
    queues: Vec<QueueLine>,
}

/// The score under which an endpoint that is not among the busiest is forgotten: one attempt,
/// halved ten times.
const FORGOTTEN_BELOW: f64 = 1.0 / 1024.0;

#[derive(Debug)]
struct EndpointEntry {
    tenant: TenantId,
    member: bool,
    /// Attempts since the last ranking.
    recent: u64,
    /// How busy it is lately: halved at each ranking, plus the attempts since the one before.
    score: f64,
    results: BTreeMap<&'static str, u64>,
}

impl EndpointBook {
    fn count(
        &mut self,
        (endpoint, tenant): (EndpointId, TenantId),
        result: &'static str,
        top: usize,
    ) {
        let room = self.members < top;
        let entry = self.endpoints.entry(endpoint).or_insert(EndpointEntry {
            tenant,
            member: false,
            recent: 0,
            score: 0.0,
            results: BTreeMap::new(),
        });
        if !entry.member && room {
            entry.member = true;
            self.members += 1;
        }
        entry.recent += 1;
        let counts = match entry.member {
            true => &mut entry.results,
            false => &mut self.other,
        };
        *counts.entry(result).or_default() += 1;
    }

    /// Scores every endpoint again and makes the `top` busiest the members.
    fn rank(&mut self, top: usize) {
        for entry in self.endpoints.values_mut() {
            entry.score = entry.score / 2.0 + entry.recent as f64;
            entry.recent = 0;
        }
        let scores: Vec<(EndpointId, f64)> = self
            .endpoints
            .iter()
            .map(|(id, e)| (*id, e.score))
            .collect();
        let chosen = busiest(scores, top);
        self.members = 0;
        for (id, entry) in &mut self.endpoints {
            entry.member = chosen.contains(id);
            self.members += usize::from(entry.member);
        }
        // An endpoint idle for about ten rankings (or deleted) is forgotten, so the book stays
        // as long as the busy set: should it be among the busiest again, its series starts
        // again from zero, as after a restart.
        self.endpoints
            .retain(|_, e| e.member || e.score >= FORGOTTEN_BELOW);
    }
}

/// The `top` highest scores above zero, ties to the lower id (so a ranking is repeatable).
fn busiest(mut scores: Vec<(EndpointId, f64)>, top: usize) -> Vec<EndpointId> {
    scores.retain(|(_, s)| *s > 0.0);
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.0.cmp(&b.0.0)));
    scores.into_iter().take(top).map(|(id, _)| id).collect()
}

/// A tenant's queue as exported: `None` for the others, summed (their oldest is the oldest).
#[derive(Debug, Clone, PartialEq)]
struct QueueLine {
    tenant: Option<TenantId>,
    pending: u64,
    oldest_age_seconds: f64,
}

/// The `top` tenants with the deepest queues, then the rest summed (when there is a rest).
fn top_queues(mut queues: Vec<TenantQueue>, top: usize, now: UnixMs) -> Vec<QueueLine> {
    queues.sort_by(|a, b| b.pending.cmp(&a.pending).then(a.tenant.0.cmp(&b.tenant.0)));
    let age = |q: &TenantQueue| {
        q.oldest_created_at
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0)
    };
    let rest = queues.split_off(top.min(queues.len()));
    let mut lines: Vec<QueueLine> = queues
        .iter()
        .map(|q| QueueLine {
            tenant: Some(q.tenant),
            pending: q.pending,
            oldest_age_seconds: age(q),
        })
        .collect();
    if !rest.is_empty() {
        lines.push(QueueLine {
            tenant: None,
            pending: rest.iter().map(|q| q.pending).sum(),
            oldest_age_seconds: rest.iter().map(age).fold(0.0, f64::max),
        });
    }
    lines
}

type LabelPairs = Vec<(&'static str, String)>;

impl Collector for ByEndpoint {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(book) = self.book.lock() else {
            return Ok(());
        };
        let mut attempts: Vec<(LabelPairs, u64)> = Vec::new();
        let mut members: Vec<(&EndpointId, &EndpointEntry)> =
            book.endpoints.iter().filter(|(_, e)| e.member).collect();
        members.sort_by_key(|(id, _)| id.0);
        for (id, entry) in members {
            for (result, n) in &entry.results {
                let labels = vec![
                    ("tenant", entry.tenant.to_string()),
                    ("endpoint", id.to_string()),
                    ("result", (*result).to_owned()),
                ];
                attempts.push((labels, *n));
            }
        }
        for (result, n) in &book.other {
            let labels = vec![
                ("tenant", "other".to_owned()),
                ("endpoint", "other".to_owned()),
                ("result", (*result).to_owned()),
            ];
            attempts.push((labels, *n));
        }
        let family = encoder.encode_descriptor(
            "hookd_endpoint_attempts",
            "Delivery attempts by endpoint and result, for the busiest endpoints (the rest summed under endpoint other)",
            None,
            MetricType::Counter,
        )?;
        let mut family = family;
        for (labels, n) in &attempts {
            ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
        }
        let tenant = |line: &QueueLine| {
            vec![(
                "tenant",
                line.tenant
                    .map_or_else(|| "other".to_owned(), |t| t.to_string()),
            )]
        };
        let mut depth = encoder.encode_descriptor(
            "hookd_tenant_pending",
            "Deliveries waiting for an attempt, for the tenants with the deepest queues (the rest summed under tenant other)",
            None,
            MetricType::Gauge,
        )?;
        for line in &book.queues {
            let gauge = ConstGauge::new(i64::try_from(line.pending).unwrap_or(i64::MAX));
            gauge.encode(depth.encode_family(&tenant(line))?)?;
        }
        let mut oldest = encoder.encode_descriptor(
            "hookd_tenant_oldest_pending_age_seconds",
            "Age of the tenant's oldest pending delivery (0 when none is pending)",
            None,
            MetricType::Gauge,
        )?;
        for line in &book.queues {
            let gauge = ConstGauge::new(line.oldest_age_seconds);
            gauge.encode(oldest.encode_family(&tenant(line))?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: (EndpointId, TenantId) = (EndpointId(1), TenantId(1));
    const B: (EndpointId, TenantId) = (EndpointId(2), TenantId(1));
    const C: (EndpointId, TenantId) = (EndpointId(3), TenantId(2));

    fn series(book: &EndpointBook) -> (Vec<(i64, u64)>, u64) {
        let mut members: Vec<(i64, u64)> = book
            .endpoints
            .iter()
            .filter(|(_, e)| e.member)
            .map(|(id, e)| (id.0, e.results.values().sum()))
            .collect();
        members.sort_unstable();
        (members, book.other.values().sum())
    }

    #[test]
    fn only_the_busiest_endpoints_get_series_and_every_count_only_grows() {
        let mut book = EndpointBook::default();
        // Room for two: the first two endpoints count from their first attempt.
        for _ in 0..3 {
            book.count(A, "success", 2);
        }
        book.count(B, "success", 2);
        for _ in 0..5 {
            book.count(C, "http_status", 2);
        }
        assert_eq!(series(&book), (vec![(1, 3), (2, 1)], 5));
        // Ranked: C (5) and A (3) are the busiest; B's series stops, C's starts.
        book.rank(2);
        assert_eq!(series(&book), (vec![(1, 3), (3, 0)], 5));
        book.count(B, "success", 2);
        book.count(C, "http_status", 2);
        assert_eq!(series(&book), (vec![(1, 3), (3, 1)], 6));
        assert_eq!(book.other.get("success"), Some(&1));
        assert_eq!(book.other.get("http_status"), Some(&5));
    }

    #[test]
    fn a_ranking_forgets_old_busyness_by_halves() {
        let mut book = EndpointBook::default();
        for _ in 0..8 {
            book.count(A, "success", 1);
        }
        book.rank(1);
        for _ in 0..5 {
            book.count(B, "success", 1);
        }
        // A: 8/2 = 4 against B's 5.
        book.rank(1);
        assert_eq!(series(&book).0, vec![(2, 0)]);
        assert_eq!(
            busiest(vec![(EndpointId(9), 1.0), (EndpointId(4), 1.0)], 1),
            [EndpointId(4)]
        );
        assert!(busiest(vec![(EndpointId(9), 0.0)], 1).is_empty());
        // Idle, A (score 4) is forgotten once its score is below one attempt halved ten
        // times; B stays among the busiest, idle or not, until another is busier.
        for _ in 0..12 {
            book.rank(1);
        }
        assert!(book.endpoints.contains_key(&A.0));
        book.rank(1);
        let kept: Vec<EndpointId> = book.endpoints.keys().copied().collect();
        assert_eq!(kept, [B.0]);
        assert_eq!(
            book.other.get("success"),
            Some(&5),
            "what other counted stays"
        );
    }

    #[test]
    fn the_deepest_queues_get_series_and_the_rest_are_summed_with_the_oldest_age() {
        let q = |tenant, pending, oldest| TenantQueue {
            tenant: TenantId(tenant),
            pending,
            oldest_created_at: oldest,
        };
        let lines = top_queues(
            vec![
                q(1, 5, Some(9_000)),
                q(2, 50, Some(8_000)),
                q(3, 1, Some(1_000)),
                q(4, 0, None),
            ],
            2,
            10_000,
        );
        assert_eq!(lines.len(), 3);
        assert_eq!((lines[0].tenant, lines[0].pending), (Some(TenantId(2)), 50));
        assert_eq!(lines[0].oldest_age_seconds, 2.0);
        assert_eq!((lines[1].tenant, lines[1].pending), (Some(TenantId(1)), 5));
        assert_eq!(lines[2].tenant, None);
        assert_eq!((lines[2].pending, lines[2].oldest_age_seconds), (1, 9.0));
        assert_eq!(top_queues(vec![q(1, 5, None)], 2, 10_000).len(), 1);
    }
}
