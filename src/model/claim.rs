//! A claim: what the dispatcher asks the store for (due deliveries, at most its free slots,
//! paced per endpoint by what each is already doing), and each leased delivery as it comes
//! back, with everything a worker needs to attempt it.

use std::sync::Arc;

use super::delivery::DeliveryFacts;
use super::trace::TraceContext;
use super::{DeliveryId, Endpoint, EndpointId, EventId, UnixMs};

/// What the dispatcher asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Claim rows due at or before this time.
    pub now: UnixMs,
    /// At most this many rows (the free worker slots).
    pub limit: usize,
    /// At most this many in flight per endpoint, counting `busy` (1 for FIFO endpoints).
    pub per_endpoint: usize,
    /// At most this many in flight for an endpoint `busy` does not list (a new or idle one).
    pub unlisted_slots: usize,
    /// Per endpoint: attempts in flight, attempts started in the last second and tenth
    /// (checked against the endpoint's `rateLimit`), and its slot budget.
    pub busy: Vec<(EndpointId, EndpointLoad)>,
    /// How long a lease lasts beyond the endpoint's timeout.
    pub lease_margin_ms: i64,
}

/// What an endpoint is already doing, as the dispatcher counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointLoad {
    /// Attempts in flight.
    pub in_flight: usize,
    /// Attempts finished whose results are not recorded yet: they still hold their leases, so
    /// on PostgreSQL they count as in flight (in this process's claims and in what it reports
    /// to the others'); SQLite's one process counts attempts in flight alone, as before.
    pub recording: usize,
    /// Attempts started within the last second.
    pub started_last_second: usize,
    /// Attempts started within the last tenth of a second.
    pub started_last_tenth: usize,
    /// At most this many in flight now (slots follow success); `None` for the per-endpoint
    /// cap itself.
    pub slots: Option<usize>,
}

/// One leased delivery, with everything a worker needs to attempt it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Its event: the `webhook-id`.
    pub event_id: EventId,
    /// This attempt's number (1-based), as the log shows it.
    pub attempt: u32,
    /// The lease's fencing token: recording a result needs it. Never handed out twice, even
    /// when the claim's batch rolls back (the attempt number would then repeat).
    pub lease: i64,
    /// The endpoint and its signing secrets (the current one first, then any still in a
    /// rotation's grace period), shared by the claims of one batch.
    pub endpoint: Arc<(Endpoint, Vec<String>)>,
    /// The event as stored, shared by the claims of one batch; the delivery engine renders
    /// it in the endpoint's format.
    pub event: Arc<ClaimedEvent>,
    /// What the rule after the attempt reads of the delivery, as claimed: none of it changes
    /// while the lease holds (a retry by hand or a recover waits for a delivery without one).
    pub facts: DeliveryFacts,
}

/// An event as a claim carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEvent {
    /// Its type.
    pub name: String,
    /// Its `data`, as JSON text.
    pub data: String,
    /// When it was published.
    pub created_at: UnixMs,
    /// The trace it belongs to: each attempt sends a `traceparent` of it.
    pub trace: Option<TraceContext>,
}
