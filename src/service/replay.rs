//! Replay by hand: one more attempt of a delivery now, and an endpoint's window recovered.
//! What to do is decided here from state read outside the writer ([`crate::model::replay`]);
//! the store applies a decision only while what it was decided from still holds (the
//! delivery as seen and its endpoint active; the endpoint unchanged), and hands it back
//! otherwise, to be decided again.

use crate::model::publish::Applied;
use crate::model::replay::{plan_missed, recover_window};
use crate::model::{DeliveryId, DeliverySummary, EndpointId, EventId, TenantId, UnixMs};
use crate::store::{Store, StoreError};

/// How many times a decision is made before giving up while what it is made from keeps
/// changing under it (an attempt starting and finishing, the endpoint edited, between each
/// read and write).
const DECISIONS: usize = 8;

/// Queues one more attempt of a tenant's delivery now. `Conflict` while an attempt is in
/// flight or the endpoint is disabled; `NotFound` for another tenant's delivery.
pub async fn retry(
    store: &Store,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<DeliverySummary, StoreError> {
    for _ in 0..DECISIONS {
        let planned = store
            .retry_facts(tenant, id)
            .await?
            .plan()
            .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
        match store.apply_retry(planned).await? {
            Applied::Done(summary) => return Ok(summary),
            Applied::Stale(_) => continue,
        }
    }
    Err(StoreError::StalePlan)
}

/// Replays an endpoint's window `[since, until)`: its failed deliveries go back to pending
/// with a fresh retry schedule, and events of the window that it subscribes to but never got
/// (published while it was disabled, or before it subscribed) get a delivery. Returns how
/// many were queued; calling it again while they are pending queues nothing more. Works in
/// chunks, each its own write, so a window of millions neither holds the writer nor memory;
/// each chunk is complete, so an interrupted recover is simply repeated.
pub async fn recover(
    store: &Store,
    tenant: TenantId,
    endpoint: EndpointId,
    since: UnixMs,
    until: UnixMs,
) -> Result<u64, StoreError> {
    let mut total = store.requeue_failed(tenant, endpoint, since, until).await?;
    let mut after = EventId(0);
    let mut decisions = 0;
    loop {
        let seen = store.get_endpoint(tenant, endpoint).await?;
        // Nothing before the endpoint existed can have been missed.
        let Some(window) = recover_window(since, until, seen.created_at) else {
            return Ok(total);
        };
        // A chunk at a time, until a read finds no more.
        let missed = store.missed_events(tenant, endpoint, window, after).await?;
        let Some(last) = missed.last().map(|e| e.id) else {
            return Ok(total);
        };
        match store
            .apply_recover(tenant, plan_missed(&seen, &missed))
            .await?
        {
            Applied::Done(created) => total += created,
            // The endpoint changed since it was read: this chunk is decided again from it.
            Applied::Stale(_) => {
                decisions += 1;
                if decisions == DECISIONS {
                    return Err(StoreError::StalePlan);
                }
                continue;
            }
        }
        after = last;
    }
}
