//! Replay's rows: a delivery's retry state and its decided retry applied, and a recover
//! window's failed deliveries requeued, missed events read and their decided deliveries
//! created. What to do is decided in `service::replay`.

use crate::db::sql::{Conn, vals};

use super::endpoints::load;
use super::publish::add_delivery;
use super::rows::{SUMMARY_SELECT, corrupt, replay_of, summary_row};
use super::{Store, StoreError, count};
use crate::model::counts::EndpointChange;
use crate::model::publish::Applied;
use crate::model::replay::{MissedEvent, PlannedRetry, RecoverPlan, RetryFacts, RetryPlan};
use crate::model::{
    DeliveryId, DeliveryStatus, DeliverySummary, EndpointId, EventId, TenantId, UnixMs, now_ms,
};

/// Rows one recover step handles.
const RECOVER_CHUNK: i64 = 10_000;

/// Reads up to `RECOVER_CHUNK` events of a tenant created in `[start, end)` with ids above
/// `after` that `endpoint_id` has no delivery of, oldest first.
fn missed_in(
    c: &Conn<'_>,
    tenant_id: TenantId,
    endpoint_id: EndpointId,
    (start, end): (UnixMs, UnixMs),
    after: EventId,
) -> Result<Vec<MissedEvent>, StoreError> {
    // The `hookd.*` announcements name the endpoint they are about in their data.
    let about = if c.is_postgres() {
        "CAST(ev.data AS jsonb) ->> 'endpointId'"
    } else {
        "json_extract(ev.data, '$.endpointId')"
    };
    c.query(
        &format!(
            "SELECT ev.id, ev.type, CASE WHEN ev.type LIKE 'hookd.%' THEN {about} END, ev.data,
                    ev.channels
             FROM events ev
             WHERE ev.tenant_id = ?1 AND ev.id > ?4
               AND ev.created_at >= ?2 AND ev.created_at < ?3
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.event_id = ev.id AND d.endpoint_id = ?5)
             ORDER BY ev.id LIMIT ?6"
        ),
        &vals![
            tenant_id.0,
            start,
            end,
            after.0,
            endpoint_id.0,
            RECOVER_CHUNK
        ],
        |row| {
            Ok(MissedEvent {
                id: EventId(row.get(0)?),
                name: row.get(1)?,
                about: row.get(2)?,
                data: row.get(3)?,
                channels: super::rows::channels(row.get(4)?, "events.channels")?
                    .unwrap_or_default(),
            })
        },
    )
}

impl Store {
    /// What a retry of a tenant's delivery is decided from.
    pub async fn retry_facts(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<RetryFacts, StoreError> {
        self.read(move |c| {
            c.query_opt(
                "SELECT d.endpoint_id, e.is_active, d.status, d.lease_until, d.replay_return,
                        d.resume_at
                 FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
                 WHERE d.id = ?1 AND e.tenant_id = ?2",
                &vals![id.0, tenant_id.0],
                |r| {
                    Ok(RetryFacts {
                        delivery: id,
                        endpoint: EndpointId(r.get(0)?),
                        endpoint_active: r.get::<i64>(1)? != 0,
                        status: DeliveryStatus::from_code(r.get(2)?)
                            .ok_or_else(|| corrupt("deliveries.status"))?,
                        in_flight: r.get::<Option<i64>>(3)?.is_some(),
                        replay: replay_of(r.get(4)?, r.get(5)?)?,
                    })
                },
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Applies a decided retry while the delivery is still as it was seen (same status, no
    /// attempt in flight, no replay queued) and its endpoint active; hands the plan back
    /// otherwise. A pending delivery gets one extra attempt now that does not use up a retry;
    /// a finished one is pending for one attempt and returns to its status if that fails.
    pub async fn apply_retry(
        &self,
        retry: PlannedRetry,
    ) -> Result<Applied<DeliverySummary, PlannedRetry>, StoreError> {
        self.writer
            .write(move |c, batch| {
                let (id, endpoint) = (retry.facts.delivery, retry.facts.endpoint);
                // Each update holds only while the delivery and its endpoint are as seen.
                const AS_SEEN: &str = "lease_until IS NULL AND replay_return IS NULL
                     AND EXISTS (SELECT 1 FROM endpoints WHERE id = ?3 AND is_active = 1)";
                let now = now_ms();
                let applied = match retry.plan {
                    RetryPlan::AlreadyQueued => 1,
                    RetryPlan::ExtraAttempt => c.execute(
                        &format!(
                            "UPDATE deliveries SET replay_return = 0, resume_at = next_attempt_at,
                                next_attempt_at = ?2, schedule_offset = schedule_offset + 1
                             WHERE id = ?1 AND status = 0 AND {AS_SEEN}"
                        ),
                        &vals![id.0, now, endpoint.0],
                    )?,
                    RetryPlan::OneMore(finished) => {
                        let n = c.execute(
                            &format!(
                                "UPDATE deliveries SET status = 0, replay_return = ?4,
                                    next_attempt_at = ?2, schedule_offset = schedule_offset + 1
                                 WHERE id = ?1 AND status = ?4 AND {AS_SEEN}"
                            ),
                            &vals![id.0, now, endpoint.0, finished.code()],
                        )?;
                        if n == 1 {
                            batch.ledger.blocks.delivery_moved(
                                endpoint.0,
                                id.0,
                                finished,
                                DeliveryStatus::Pending,
                            );
                            batch
                                .ledger
                                .endpoints
                                .change(endpoint, EndpointChange::of_reopened(finished));
                        }
                        n
                    }
                };
                if applied == 0 {
                    return Ok(Applied::Stale(retry));
                }
                batch.wake = true;
                let summary = c.query_one(
                    &format!("{SUMMARY_SELECT} WHERE d.id = ?1"),
                    &vals![id.0],
                    summary_row,
                )?;
                Ok(Applied::Done(summary))
            })
            .await
    }

    /// Puts an endpoint's failed deliveries created in `[since, until)` back to pending with a
    /// fresh retry schedule; returns how many. Works in chunks of `RECOVER_CHUNK` rows, each
    /// its own write, so a window of millions neither holds the writer nor memory.
    pub async fn requeue_failed(
        &self,
        tenant_id: TenantId,
        endpoint_id: EndpointId,
        since: UnixMs,
        until: UnixMs,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let requeued = self
                .writer
                .write(move |c, batch| {
                    load(c, tenant_id, endpoint_id)?;
                    let requeued = c.query(
                        "UPDATE deliveries SET status = 0, next_attempt_at = ?4,
                                schedule_offset = attempts, replay_return = NULL, resume_at = NULL
                             WHERE id IN (
                                 SELECT id FROM deliveries
                                 WHERE endpoint_id = ?1 AND status = 2
                                   AND created_at >= ?2 AND created_at < ?3
                                 ORDER BY id LIMIT ?5)
                             RETURNING id",
                        &vals![endpoint_id.0, since, until, now_ms(), RECOVER_CHUNK],
                        |r| r.get::<i64>(0),
                    )?;
                    for id in &requeued {
                        batch.ledger.blocks.delivery_moved(
                            endpoint_id.0,
                            *id,
                            DeliveryStatus::Failed,
                            DeliveryStatus::Pending,
                        );
                    }
                    let n = requeued.len() as i64;
                    batch.ledger.endpoints.change(
                        endpoint_id,
                        EndpointChange {
                            failed: -n,
                            pending: n,
                            ..EndpointChange::default()
                        },
                    );
                    batch.wake |= n > 0;
                    Ok(n)
                })
                .await?;
            total += count(requeued);
            if requeued < RECOVER_CHUNK {
                break;
            }
        }
        Ok(total)
    }

    /// Events of a recover window `[start, end)` after `after` that an endpoint never got a
    /// delivery of (at most `RECOVER_CHUNK`, oldest first).
    pub async fn missed_events(
        &self,
        tenant_id: TenantId,
        endpoint_id: EndpointId,
        window: (UnixMs, UnixMs),
        after: EventId,
    ) -> Result<Vec<MissedEvent>, StoreError> {
        self.read(move |c| missed_in(c, tenant_id, endpoint_id, window, after))
            .await
    }

    /// Creates the deliveries a recover step decided, while the endpoint is unchanged since;
    /// hands the plan back otherwise. An event that got a delivery of the endpoint meanwhile
    /// gets no second one. Returns how many were created.
    pub async fn apply_recover(
        &self,
        tenant_id: TenantId,
        plan: RecoverPlan,
    ) -> Result<Applied<u64, RecoverPlan>, StoreError> {
        self.writer
            .write(move |c, batch| {
                let endpoint = load(c, tenant_id, plan.endpoint)?;
                if endpoint.updated_at != plan.seen_at {
                    return Ok(Applied::Stale(plan));
                }
                let now = now_ms();
                let mut created = 0u64;
                for event in &plan.events {
                    let delivered = c
                        .query_opt(
                            "SELECT 1 FROM deliveries WHERE event_id = ?1 AND endpoint_id = ?2",
                            &vals![event.0, plan.endpoint.0],
                            |_| Ok(()),
                        )?
                        .is_some();
                    if !delivered {
                        add_delivery(c, &mut batch.ledger, *event, plan.endpoint, now)?;
                        created += 1;
                    }
                }
                batch.wake |= created > 0;
                Ok(Applied::Done(created))
            })
            .await
    }
}
