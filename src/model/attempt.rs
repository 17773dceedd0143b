//! One attempt's result on its way into the store: the facts the rule looks at
//! ([`AttemptFacts`]) and what it decides ([`Transition`]). The rule itself lives in the
//! delivery engine; results are planned together by `model/results.rs`.

use super::delivery::{DeliveryFacts, DeliveryStatus};
use super::operational::Announcement;
use super::{AttemptOutcome, DisableReason, Endpoint, UnixMs};

/// An endpoint's state as the attempt's result is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    /// Whether it receives deliveries.
    pub is_active: bool,
    /// Deliveries in a row that failed for good, before this result.
    pub consecutive_failures: u64,
}

/// Everything the rule for "what happens after this attempt" looks at.
#[derive(Debug, Clone)]
pub struct AttemptFacts<'a> {
    /// The delivery.
    pub delivery: &'a DeliveryFacts,
    /// This attempt's number (1-based).
    pub attempt: u32,
    /// The endpoint, with the settings the attempt was made with.
    pub endpoint: &'a Endpoint,
    /// The endpoint's state now.
    pub state: EndpointState,
    /// What the attempt came to.
    pub outcome: &'a AttemptOutcome,
    /// A factor in 0.8..=1.2 that spreads retries out.
    pub jitter: f64,
}

/// How an endpoint's counters change with one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterChange {
    /// Added to its succeeded count (0 or 1).
    pub succeeded: u64,
    /// Added to its failed count (0 or 1).
    pub failed: u64,
    /// Taken from its pending count (0 or 1).
    pub settled: u64,
    /// Its consecutive-failure count from now on.
    pub consecutive_failures: u64,
}

/// What happens after an attempt: the delivery's next state, the endpoint's counters,
/// whether the endpoint is disabled, and the operational events to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// When it is attempted next (pending only).
    pub next_attempt_at: Option<UnixMs>,
    /// It failed for good this time.
    pub exhausted: bool,
    /// When the attempt finished (the endpoint's last delivery time).
    pub finished_at: UnixMs,
    /// The endpoint's counters.
    pub counters: CounterChange,
    /// Disable the endpoint, and why.
    pub disable: Option<DisableReason>,
    /// `hookd.*` events to publish to the endpoint's tenant (never to the endpoint itself).
    pub announce: Vec<Announcement>,
}

/// The rule that turns an attempt's facts into a transition; the delivery engine supplies it
/// and the store applies what it returns.
pub type AttemptRule = fn(&AttemptFacts<'_>) -> Transition;
