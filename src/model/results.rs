//! A batch of finished attempts planned together, outside the writer: each endpoint's
//! results in order, each seeing the state the earlier ones left ([`plan_endpoint`]), with
//! what the plan depends on ([`StateGuard`]) so the store can refuse it when that changed.

use super::attempt::{AttemptFacts, AttemptRule, EndpointState, Transition};
use super::counts::EndpointChange;
use super::delivery::DeliveryFacts;
use super::publish::PublishPlan;
use super::{
    AttemptOutcome, DeliveryId, DeliveryStatus, DisableReason, Endpoint, EndpointId, TenantId,
    UnixMs,
};

/// One finished attempt to be recorded: what it was claimed with and what it came to.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The delivery as claimed.
    pub delivery: &'a DeliveryFacts,
    /// The claim's fencing token: the result is written only while it holds.
    pub lease: i64,
    /// The attempt's number.
    pub attempt: u32,
    /// The endpoint, with the settings the attempt was made with.
    pub endpoint: &'a Endpoint,
    /// What the attempt came to.
    pub outcome: &'a AttemptOutcome,
    /// The retry's spread, drawn once per result so a plan made again agrees with the first.
    pub jitter: f64,
}

/// What an endpoint's results were decided from, and so must still hold when they are
/// written: nothing of its state (their transitions do not depend on it), or exactly the state
/// read (a result failed for good: whether the endpoint is disabled, and what is announced,
/// depends on its run of failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateGuard {
    /// Any state will do.
    Any,
    /// Only this state (as the writing batch sees it, its own earlier results included).
    Exactly(EndpointState),
}

/// One result as planned: the rows it writes and what it changes.
#[derive(Debug, Clone)]
pub struct PlannedResult<P> {
    /// Where it stands among the results handed in.
    pub index: usize,
    /// The delivery.
    pub delivery: DeliveryId,
    /// The claim's fencing token.
    pub lease: i64,
    /// The attempt's number.
    pub attempt: u32,
    /// What the attempt came to (the attempt row).
    pub outcome: AttemptOutcome,
    /// What follows it.
    pub transition: Transition,
    /// What it changes in its endpoint's counters.
    pub(crate) change: EndpointChange,
    /// Its announcements, planned (the caller turns `transition.announce` into these).
    pub announce: Vec<P>,
}

/// One endpoint's results in a plan, in the order they are written.
#[derive(Debug, Clone)]
pub struct EndpointResults<P> {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its tenant.
    pub tenant: TenantId,
    /// What must still hold of its state.
    pub guard: StateGuard,
    /// The results.
    pub results: Vec<PlannedResult<P>>,
    /// Disable it, why, and when (at most once; later results see it disabled).
    pub disable: Option<(DisableReason, UnixMs)>,
}

/// Plans one endpoint's results, in order, from its `state` as read: each result's
/// transition (by `rule`) sees the state the earlier ones left, and the guard says what the
/// plan depends on.
pub fn plan_endpoint<P>(
    (endpoint, tenant): (EndpointId, TenantId),
    mut state: EndpointState,
    finished: &[(usize, Finished<'_>)],
    rule: AttemptRule,
) -> EndpointResults<P> {
    let read = state;
    let mut depends = false;
    let mut disable = None;
    let mut results = Vec::with_capacity(finished.len());
    for (index, f) in finished {
        let t = rule(&AttemptFacts {
            delivery: f.delivery,
            attempt: f.attempt,
            endpoint: f.endpoint,
            state,
            outcome: f.outcome,
            jitter: f.jitter,
        });
        depends |= t.exhausted || t.disable.is_some();
        let change = EndpointChange::of_result(state.consecutive_failures, &t, f.outcome);
        state.consecutive_failures = t.counters.consecutive_failures;
        if let Some(reason) = t.disable {
            state.is_active = false;
            disable = Some((reason, t.finished_at));
        }
        results.push(PlannedResult {
            index: *index,
            delivery: f.delivery.id,
            lease: f.lease,
            attempt: f.attempt,
            outcome: f.outcome.clone(),
            transition: t,
            change,
            announce: Vec::new(),
        });
    }
    EndpointResults {
        endpoint,
        tenant,
        guard: if depends {
            StateGuard::Exactly(read)
        } else {
            StateGuard::Any
        },
        results,
        disable,
    }
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded; the delivery now has this status.
    Applied(DeliveryStatus),
    /// The lease had passed to another attempt (or the delivery finished): nothing written.
    Stale,
}

/// Results planned outside the writer (the recording service): each endpoint's, with
/// their announcements planned from its tenant's audience.
pub type ResultsPlan = Vec<EndpointResults<PublishPlan>>;

/// What writing a [`ResultsPlan`] did.
#[derive(Debug, Default)]
pub struct ResultsApplied {
    /// Each result written, or found stale, by its index in the plan.
    pub recorded: Vec<(usize, Recorded)>,
    /// The results handed back unwritten, because what they were planned from changed since
    /// (their endpoint's state, or the tenant's endpoints their announcements go to).
    pub stale: Vec<usize>,
    /// The endpoints disabled.
    pub disabled: Vec<EndpointId>,
}
