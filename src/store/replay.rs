//! Replay: one more attempt of a delivery now (`retry`), and a window of an endpoint's
//! failed or never-made deliveries queued again (`recover`).

use super::sql::{Conn, vals};

use super::endpoints::{load, load_any};
use super::publish::add_delivery;
use super::rows::{SUMMARY_SELECT, replay_of, summary_row};
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::counts::EndpointChange;
use crate::model::replay::{RetryPlan, plan_retry, recover_window, replays_to};
use crate::model::{
    DeliveryId, DeliveryStatus, DeliverySummary, EndpointId, EventId, TenantId, UnixMs, now_ms,
};

/// Rows one recover step handles.
pub const RECOVER_CHUNK: i64 = 10_000;

/// One recover step over events after `after`: creates the endpoint's missing deliveries.
/// Returns (created, events scanned, last event id scanned).
fn recover_missed(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    endpoint_id: EndpointId,
    since: UnixMs,
    until: UnixMs,
    after: i64,
) -> Result<(i64, i64, i64), StoreError> {
    let endpoint = load(c, tenant_id, endpoint_id)?;
    let Some((start, end)) = recover_window(since, until, endpoint.created_at) else {
        return Ok((0, 0, after));
    };
    let (mut wanted, mut scanned, mut last) = (Vec::new(), 0i64, after);
    // The `hookd.*` announcements name the endpoint they are about in their data.
    let about = if c.is_postgres() {
        "CAST(ev.data AS jsonb) ->> 'endpointId'"
    } else {
        "json_extract(ev.data, '$.endpointId')"
    };
    let rows: Vec<MissedEvent> = c.query(
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
        &vals![tenant_id.0, start, end, after, endpoint_id.0, RECOVER_CHUNK],
        |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        },
    )?;
    for (id, name, about, data, channels) in rows {
        scanned += 1;
        last = id;
        let channels = super::rows::channels(channels, "events.channels")?.unwrap_or_default();
        let settings = &endpoint.settings;
        if replays_to(
            endpoint_id,
            settings,
            &name,
            &data,
            &channels,
            about.as_deref(),
        ) {
            wanted.push(last);
        }
    }
    let now = now_ms();
    for event_id in &wanted {
        add_delivery(c, &mut batch.ledger, EventId(*event_id), endpoint_id, now)?;
    }
    let created = wanted.len() as i64;
    batch.wake |= created > 0;
    Ok((created, scanned, last))
}

/// An event the recover window holds: id, type, the endpoint an operational event is about,
/// data, channels (JSON text).
type MissedEvent = (i64, String, Option<String>, String, Option<String>);

impl Store {
    /// Queues one more attempt of a delivery now. A failed or succeeded delivery gets exactly
    /// one attempt and returns to its status if that fails; a pending one keeps its schedule
    /// (the extra attempt does not use up a retry). `Conflict` while an attempt is in flight or
    /// the endpoint is disabled.
    pub async fn retry_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<DeliverySummary, StoreError> {
        self.writer
            .write(move |c, batch| {
                let summary = c
                    .query_opt(
                        &format!("{SUMMARY_SELECT} WHERE d.id = ?1 AND ev.tenant_id = ?2"),
                        &vals![id.0, tenant_id.0],
                        summary_row,
                    )?
                    .ok_or(StoreError::NotFound)?;
                let (leased, replay): (Option<i64>, _) = c.query_one(
                    "SELECT lease_until, replay_return, resume_at FROM deliveries WHERE id = ?1",
                    &vals![id.0],
                    |r| Ok((r.get(0)?, replay_of(r.get(1)?, r.get(2)?)?)),
                )?;
                let endpoint = load_any(c, summary.endpoint_id)?;
                let plan = plan_retry(
                    endpoint.id,
                    endpoint.settings.is_active,
                    summary.status,
                    leased.is_some(),
                    replay,
                )
                .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
                let now = now_ms();
                match plan {
                    RetryPlan::AlreadyQueued => {}
                    RetryPlan::ExtraAttempt => {
                        c.execute(
                            "UPDATE deliveries SET replay_return = 0, resume_at = next_attempt_at,
                                next_attempt_at = ?2, schedule_offset = schedule_offset + 1
                             WHERE id = ?1",
                            &vals![id.0, now],
                        )?;
                    }
                    RetryPlan::OneMore(finished) => {
                        c.execute(
                            "UPDATE deliveries SET status = 0, replay_return = ?2,
                                next_attempt_at = ?3, schedule_offset = schedule_offset + 1
                             WHERE id = ?1",
                            &vals![id.0, finished.code(), now],
                        )?;
                        batch.ledger.blocks.delivery_moved(
                            endpoint.id.0,
                            id.0,
                            finished,
                            DeliveryStatus::Pending,
                        );
                        let succeeded = i64::from(finished == DeliveryStatus::Succeeded);
                        batch.ledger.endpoints.change(
                            endpoint.id,
                            EndpointChange {
                                succeeded: -succeeded,
                                failed: succeeded - 1,
                                pending: 1,
                                ..EndpointChange::default()
                            },
                        );
                    }
                }
                batch.wake = true;
                c.query_one(
                    &format!("{SUMMARY_SELECT} WHERE d.id = ?1"),
                    &vals![id.0],
                    summary_row,
                )
            })
            .await
    }

    /// Replays an endpoint's window `[since, until)`: its failed deliveries go back to pending
    /// with a fresh retry schedule, and events of the window that it subscribes to but never
    /// got (published while it was disabled) get a delivery. Returns how many were queued;
    /// calling it again while they are pending queues nothing more. Works in chunks of
    /// `RECOVER_CHUNK` rows, each its own write, so a window of millions neither holds the
    /// writer nor memory; each chunk is complete, so an interrupted recover is simply repeated.
    pub async fn recover(
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
        let mut after = 0i64;
        loop {
            let (created, scanned, last) = self
                .writer
                .write(move |c, batch| {
                    recover_missed(c, batch, tenant_id, endpoint_id, since, until, after)
                })
                .await?;
            total += count(created);
            if scanned < RECOVER_CHUNK {
                break;
            }
            after = last;
        }
        Ok(total)
    }
}
