//! Publishing as data: the events a publish asks for, the plan computed for them outside the
//! store (each event with the endpoints it goes to, from one version of the tenant's
//! subscriptions), and what a publish answers. The store applies a plan and decides nothing:
//! it refuses one computed from an older version, and the publish service computes it again.

use super::ids::{EndpointId, EventId, ScheduleId, TenantId};
use super::plan::Plan;
use super::trace::TraceContext;
use super::{DeliverySummary, EventName, UnixMs};

/// An event to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its type.
    pub name: EventName,
    /// Its `data`, as JSON text.
    pub data: String,
    /// A key that makes publishing it again within 24h a no-op.
    pub idempotency_key: Option<String>,
    /// The channels it is published on (checked with `check_channels`).
    pub channels: Vec<String>,
    /// The trace it belongs to (a publisher's `traceparent`), passed on to every attempt.
    pub trace: Option<TraceContext>,
}

/// What a publish answers for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's id.
    pub id: EventId,
    /// Its type.
    pub name: String,
    /// When it was (first) published.
    pub created_at: UnixMs,
    /// How many endpoints it fanned out to.
    pub deliveries: u64,
}

/// Whether a publish counts towards the tenant's daily events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// The tenant's own events (the API, incoming webhooks): counted, and refused past the
    /// plan's daily limit.
    Counted,
    /// hookd's own (`hookd.*` announcements, digests): neither counted nor refused.
    Internal,
}

/// One event of a plan, with the endpoints it goes to.
#[derive(Debug, Clone)]
pub struct PlannedEvent {
    /// The event.
    pub event: NewEvent,
    /// One delivery each, in endpoint order.
    pub targets: Vec<EndpointId>,
}

/// A publish as the store applies it, all or nothing.
#[derive(Debug, Clone)]
pub struct PublishPlan {
    /// Whose events.
    pub tenant: TenantId,
    /// The version of the tenant's subscriptions, plan and schedules the targets were
    /// computed from: the store refuses the plan when the tenant's version has moved.
    pub version: i64,
    /// When it was planned: the events' `created_at`, the deliveries' first due time.
    pub at: UnixMs,
    /// The events in order.
    pub events: Vec<PlannedEvent>,
    /// The plan the stored events are counted against (its daily limit refuses them all);
    /// `None` for hookd's own events, which are not counted.
    pub quota: Option<Plan>,
    /// An event with an idempotency key first used at or after this time is answered with
    /// that first event instead; an older use of the key is forgotten.
    pub repeats_since: UnixMs,
    /// `on_status_change` schedules that these events make due now.
    pub wake_schedules: Vec<ScheduleId>,
}

impl PublishPlan {
    /// The events, to be planned again (the plan was stale).
    pub fn into_events(self) -> Vec<NewEvent> {
        self.events.into_iter().map(|p| p.event).collect()
    }
}

/// What applying a plan `P` came to (a publish's by default).
#[derive(Debug, Clone)]
pub enum Applied<T = Vec<Published>, P = PublishPlan> {
    /// Committed, with its answer (a publish's: one per event, in order).
    Done(T),
    /// Nothing written: what the plan was computed from changed since (a publish's: the
    /// tenant's subscriptions), so it is handed back to be computed again.
    Stale(P),
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The publish answer's fields.
    pub published: Published,
    /// Its `data`, as JSON text.
    pub data: String,
    /// The channels it was published on.
    pub channels: Vec<String>,
    /// The trace it belongs to, when it was published with one.
    pub trace: Option<TraceContext>,
}

/// An event with its deliveries.
#[derive(Debug, Clone)]
pub struct EventDetail {
    /// The event.
    pub event: StoredEvent,
    /// One per endpoint it fanned out to.
    pub deliveries: Vec<DeliverySummary>,
}
