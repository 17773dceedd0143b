//! Publishing: the API's `POST /v1/events` and incoming webhooks' calls. The plan (each event's
//! targets, the quota, the idempotency window, the schedules the events make due) is computed
//! here, outside the writer, from the tenant's [`crate::fanout::Audience`]; the store applies
//! it in one commit, or hands it back when the tenant's subscriptions changed meanwhile, and
//! it is computed again from the new ones.

use std::future::Future;

use opentelemetry::KeyValue;

use crate::fanout::Fanout;
use crate::model::incoming::{IncomingHook, IncomingRequest};
use crate::model::publish::{Applied, Metering, NewEvent, PublishPlan, Published};
use crate::model::{IncomingRequestId, TenantId, now_ms};
use crate::store::{Store, StoreError};
use crate::telemetry::Under;

/// How many times a publish is planned before giving up, while the tenant's subscriptions
/// keep changing under it (each change makes one plan stale, at most) or its writes lose to
/// other processes' (on PostgreSQL two publishes of the same idempotency keys in different
/// orders may deadlock; one of them is undone and applied again).
const PLANS: usize = 8;

/// Publishes a tenant's events, all or nothing, and answers once they and their deliveries
/// are committed.
pub async fn publish(
    store: &Store,
    tenant: TenantId,
    events: Vec<NewEvent>,
) -> Result<Vec<Published>, StoreError> {
    publish_under(store, tenant, events, Under::NONE).await
}

/// [`publish`], with the fan-out and the commit as spans `under` the caller's.
pub async fn publish_under(
    store: &Store,
    tenant: TenantId,
    events: Vec<NewEvent>,
    under: Under<'_>,
) -> Result<Vec<Published>, StoreError> {
    planned(store, tenant, events, under, |plan| {
        store.apply_publish(plan)
    })
    .await
}

/// Plans `events` for `tenant` and hands each plan to `apply` until one is not stale; each
/// plan (`hookd.fanout`) and each apply (`hookd.commit`) is a span `under` the caller's.
pub async fn planned<T, F, Fut>(
    store: &Store,
    tenant: TenantId,
    mut events: Vec<NewEvent>,
    under: Under<'_>,
    mut apply: F,
) -> Result<T, StoreError>
where
    F: FnMut(PublishPlan) -> Fut,
    Fut: Future<Output = Result<Applied<T>, StoreError>>,
{
    for _ in 0..PLANS {
        let planning = under.start();
        let audience = store.audience(tenant).await?;
        let plan = audience.plan(
            tenant,
            events,
            Fanout::Subscribers,
            Metering::Counted,
            now_ms(),
        );
        // Only inserts with idempotency keys wait on other processes' (for their commit):
        // only those events are kept to be applied again.
        let keyed = events_keyed(&plan).then(|| plan.events.clone());
        let n = plan.events.len() as i64;
        let counts = || {
            vec![
                KeyValue::new("hookd.tenant.id", tenant.to_string()),
                KeyValue::new("hookd.events", n),
            ]
        };
        under.step("hookd.fanout", planning, || {
            let deliveries: usize = plan.events.iter().map(|p| p.targets.len()).sum();
            let mut attributes = counts();
            attributes.push(KeyValue::new("hookd.deliveries", deliveries as i64));
            attributes
        });
        let committing = under.start();
        let applied = apply(plan).await;
        under.step("hookd.commit", committing, || {
            let mut attributes = counts();
            let outcome = match &applied {
                Ok(Applied::Done(_)) => "committed",
                Ok(Applied::Stale(_)) => "stale plan",
                Err(_) => "failed",
            };
            attributes.push(KeyValue::new("hookd.commit.outcome", outcome));
            attributes
        });
        match applied {
            Ok(Applied::Done(done)) => return Ok(done),
            Ok(Applied::Stale(plan)) => {
                store.forget_audience(tenant);
                events = plan.into_events();
            }
            Err(e) if e.lost_to_another_writer() && keyed.is_some() => {
                events = keyed.into_iter().flatten().map(|p| p.event).collect();
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::StalePlan)
}

fn events_keyed(plan: &PublishPlan) -> bool {
    plan.events
        .iter()
        .any(|p| p.event.idempotency_key.is_some())
}

/// Logs a call to an incoming hook and, when `event` is given, publishes it in the same
/// commit, planned as `POST /v1/events` plans its events. Answers once both are durable.
pub async fn record_incoming(
    store: &Store,
    hook: &IncomingHook,
    request: IncomingRequest,
    event: Option<NewEvent>,
    under: Under<'_>,
) -> Result<(IncomingRequestId, Option<Published>), StoreError> {
    let Some(event) = event else {
        return match store.record_incoming(hook.id, request, None).await? {
            Applied::Done(done) => Ok(done),
            Applied::Stale(_) => Err(StoreError::StalePlan),
        };
    };
    planned(store, hook.tenant_id, vec![event], under, |plan| {
        store.record_incoming(hook.id, request.clone(), Some(plan))
    })
    .await
}
