//! Prometheus metrics, served at `GET /metrics` (operator token): events published, delivery
//! attempts by result, attempt latency, attempts in flight, deliveries pending, and statements
//! run on the database.

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::AttemptOutcome;

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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
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
        Self {
            inner: Arc::new(Inner {
                registry,
                events,
                attempts,
                latency,
                in_flight,
                pending,
            }),
        }
    }

    /// Counts published events.
    pub fn published(&self, n: u64) {
        self.inner.events.inc_by(n);
    }

    /// Counts an attempt that started.
    pub fn attempt_started(&self) {
        self.inner.in_flight.inc();
    }

    /// Counts an attempt's outcome.
    pub fn attempt_finished(&self, outcome: &AttemptOutcome) {
        self.inner.in_flight.dec();
        let result = outcome.error.map_or("success", |e| e.as_str());
        self.inner
            .attempts
            .get_or_create(&vec![("result", result)])
            .inc();
        self.inner
            .latency
            .observe(f64::from(outcome.latency_ms) / 1000.0);
    }

    /// The text exposition, with the pending count read at scrape time.
    pub fn render(&self, pending: u64) -> String {
        self.inner
            .pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}
