//! Firing a schedule, the schedule-run service: read its period from the read pool, render the
//! digest and plan its event (to the schedule's endpoint alone, from the tenant's audience,
//! deciding the run's status from the plan) outside the writer, and hand the run to the store,
//! which writes it in one short write while the schedule and the tenant's endpoints are as
//! they were read, and hands it back otherwise (the plan is made again). The scheduler's
//! timer and the API's trigger run this same step.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanKind;

use crate::fanout::Fanout;
use crate::model::publish::{Metering, NewEvent};
use crate::model::run::{NewRun, RunCommit, RunOutput};
use crate::model::schedule::{DIGEST_EVENT, Schedule, ScheduleTarget, covers, digest_outcome};
use crate::model::trace::{SpanId, SpanPlace, TraceContext};
use crate::model::{EndpointId, EventName, RunId, TenantId, UnixMs, rfc3339};
use crate::report::ErrorChain;
use crate::store::{Store, StoreError};
use crate::telemetry::{Span, Telemetry};

use super::digest::Digest;
use super::documents::{self, DocumentError};

/// Most events listed in one digest (all are counted).
const DIGEST_EVENTS: usize = 100;
/// How often a digest is planned before giving up, while the tenant's endpoints keep changing
/// under it (each change makes one plan stale, at most).
const DIGEST_PLANS: usize = 8;
/// How often a manual run is tried again when the schedule changes under it.
const TRIGGER_TRIES: usize = 5;

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The digest document could not be rendered.
    #[error("the digest could not be rendered")]
    Document(#[from] DocumentError),
    /// The task rendering the document ended without an answer.
    #[error("the rendering task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The schedule kept changing while a manual run was being made.
    #[error("the schedule kept changing; try again")]
    Busy,
}

/// When a run is and what it does to the schedule's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The timer's run for the fire time `at`: afterwards the schedule moves to its next time
    /// after `now` (catch-up fires once), and a one-time schedule is completed.
    Timed(UnixMs),
    /// A manual run: the schedule's timing is left as it is.
    Manual,
}

/// The subject of a schedule's digests.
pub fn subject_of(schedule: &Schedule) -> String {
    schedule
        .spec
        .custom_subject
        .clone()
        .unwrap_or_else(|| "hookd digest".into())
}

/// Makes one run of `schedule` as read; its digest event keeps `trace` (the run's span, so the
/// digest's attempts join the run's trace). Returns what the commit did.
pub async fn fire(
    store: &Store,
    schedule: Schedule,
    slot: Slot,
    now: UnixMs,
    trace: Option<TraceContext>,
) -> Result<RunCommit, FireError> {
    let spec = schedule.spec.clone();
    let patterns = spec.event_types.clone();
    let period = store
        .period(
            schedule.tenant_id,
            schedule.last_event_id,
            DIGEST_EVENTS,
            move |name| covers(patterns.as_deref(), name),
        )
        .await?;
    let period_start = schedule.last_run_at.unwrap_or(schedule.created_at);
    let event_count: u64 = period.counts.iter().map(|(_, n)| n).sum();
    let digest = Digest {
        subject: subject_of(&schedule),
        message: spec.custom_message.clone(),
        period: (rfc3339(period_start), rfc3339(now)),
        counts: period.counts,
        events: period
            .newest
            .into_iter()
            .map(|e| (e.id.to_string(), e.name, rfc3339(e.created_at), e.data))
            .collect(),
        include_changelog: spec.include_changelog,
    };
    let format = spec.format;
    let (slot, next) = match slot {
        Slot::Timed(at) => (at, Some(spec.after_run(now))),
        // Manual runs take negative slots, so they never collide with timed ones.
        Slot::Manual => (-now, None),
    };
    let last_event_id = period.last_event_id;
    let run = |output| NewRun {
        schedule: schedule.clone(),
        slot,
        started_at: now,
        period_start,
        last_event_id,
        event_count,
        next,
        output,
    };
    let endpoint = match &spec.target {
        ScheduleTarget::Endpoint(endpoint) => *endpoint,
        // An email's document is made and committed once: it has no plan to go stale.
        ScheduleTarget::Email(_) => {
            let subject = digest.subject.clone();
            let document =
                tokio::task::spawn_blocking(move || documents::file(format, &digest)).await??;
            return Ok(store
                .commit_run(run(RunOutput::Email { subject, document }))
                .await?);
        }
    };
    let content =
        tokio::task::spawn_blocking(move || documents::content(format, &digest)).await??;
    let data = serde_json::json!({
        "scheduleId": schedule.id,
        "periodStart": rfc3339(period_start),
        "periodEnd": rfc3339(now),
        "eventCount": event_count,
        "format": format.as_str(),
        "content": content,
    })
    .to_string();
    let tenant = schedule.tenant_id;
    for _ in 0..DIGEST_PLANS {
        let output = plan_digest(store, tenant, endpoint, &data, now, trace.clone()).await?;
        match store.commit_run(run(output)).await? {
            RunCommit::StaleDigest => store.forget_audience(tenant),
            done => return Ok(done),
        }
    }
    Ok(RunCommit::StaleDigest)
}

/// The digest event planned as hookd's own to the schedule's endpoint alone (none when it is
/// disabled or gone), from the tenant's endpoints as this process knows them, with what the
/// run comes to.
async fn plan_digest(
    store: &Store,
    tenant: TenantId,
    endpoint: EndpointId,
    data: &str,
    now: UnixMs,
    trace: Option<TraceContext>,
) -> Result<RunOutput, StoreError> {
    let event = NewEvent {
        name: EventName::parse(DIGEST_EVENT).map_err(StoreError::invalid_name)?,
        data: data.to_owned(),
        idempotency_key: None,
        channels: Vec::new(),
        trace,
    };
    let audience = store.audience(tenant).await?;
    let digest = audience.plan(
        tenant,
        vec![event],
        Fanout::Only(endpoint),
        Metering::Internal,
        now,
    );
    let targets: Vec<EndpointId> = digest
        .events
        .iter()
        .flat_map(|p| p.targets.iter().copied())
        .collect();
    let (status, error) = digest_outcome(endpoint, &targets);
    Ok(RunOutput::Webhook {
        digest,
        status,
        error,
    })
}

/// [`fire`], as a `hookd.schedule.run` span when `telemetry` is on: under `parent` (the API
/// request of a trigger), or the first of a new trace (a timed run).
pub async fn fire_traced(
    store: &Store,
    schedule: Schedule,
    slot: Slot,
    now: UnixMs,
    telemetry: &Telemetry,
    parent: Option<SpanPlace>,
) -> Result<RunCommit, FireError> {
    let place = match parent {
        Some(parent) if telemetry.is_on() => {
            Some(parent.child(SpanId::from_random(rand::random())))
        }
        _ => telemetry.begin(None),
    };
    let Some(place) = place else {
        return fire(store, schedule, slot, now, None).await;
    };
    let start = SystemTime::now();
    let (id, tenant) = (schedule.id, schedule.tenant_id);
    let fired = fire(store, schedule, slot, now, Some(place.context(None))).await;
    let (outcome, error) = match &fired {
        Ok(RunCommit::Written(_)) => ("ran", None),
        Ok(RunCommit::AlreadyRan) => ("already ran", None),
        Ok(RunCommit::Changed | RunCommit::StaleDigest) => ("changed meanwhile", None),
        Err(e) => ("failed", Some(ErrorChain(e).to_string())),
    };
    telemetry.record(Span {
        place,
        name: Cow::Borrowed("hookd.schedule.run"),
        kind: SpanKind::Internal,
        start,
        end: SystemTime::now(),
        attributes: vec![
            KeyValue::new("hookd.tenant.id", tenant.to_string()),
            KeyValue::new("hookd.schedule.id", id.to_string()),
            KeyValue::new("hookd.schedule.outcome", outcome),
        ],
        error,
    });
    fired
}

/// Runs a schedule now, outside its timing (the API's trigger); answers once the run and its
/// digest are committed. The run is a span under `parent` when `telemetry` is on.
pub async fn trigger(
    store: &Store,
    tenant_id: crate::model::TenantId,
    id: crate::model::ScheduleId,
    telemetry: &Telemetry,
    parent: Option<SpanPlace>,
) -> Result<RunId, FireError> {
    for _ in 0..TRIGGER_TRIES {
        let schedule = store.get_schedule(tenant_id, id).await?;
        // Two manual runs in the same millisecond would share a slot: the second waits one.
        let now = crate::model::now_ms();
        match fire_traced(store, schedule, Slot::Manual, now, telemetry, parent).await? {
            RunCommit::Written(run) => return Ok(run),
            RunCommit::AlreadyRan | RunCommit::Changed | RunCommit::StaleDigest => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
    Err(FireError::Busy)
}
