//! Deliveries: the claim that leases due rows to workers, the fenced recording of each
//! attempt's outcome, and the delivery log.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::endpoints::{deactivate, load, load_any, secrets};
use super::events::publish_operational;
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::Format;
use crate::model::delivery::next_retry_delay;
use crate::model::event::OPERATIONAL_PREFIX;
use crate::model::{
    AttemptOutcome, DeliveryId, DeliveryStatus, Endpoint, EndpointId, EventId, Page, PageRequest,
    TenantId, UnixMs, now_ms, rfc3339,
};
use crate::render::{EventView, render};

/// What the dispatcher asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Claim rows due at or before this time.
    pub now: UnixMs,
    /// At most this many rows (the free worker slots).
    pub limit: usize,
    /// At most this many in flight per endpoint, counting `busy` (1 for FIFO endpoints).
    pub per_endpoint: usize,
    /// Per endpoint: attempts in flight, and attempts started in the last second (checked
    /// against the endpoint's `rateLimit`).
    pub busy: Vec<(EndpointId, EndpointLoad)>,
    /// How long a lease lasts beyond the endpoint's timeout.
    pub lease_margin_ms: i64,
}

/// What an endpoint is already doing, as the dispatcher counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointLoad {
    /// Attempts in flight.
    pub in_flight: usize,
    /// Attempts started within the last second.
    pub started_last_second: usize,
    /// Attempts started within the last tenth of a second.
    pub started_last_tenth: usize,
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
    /// The request body, rendered once per event.
    pub body: Bytes,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded; the delivery now has this status.
    Applied(DeliveryStatus),
    /// The lease had passed to another attempt (or the delivery finished): nothing written.
    Stale,
}

/// One delivery as listed.
#[derive(Debug, Clone)]
pub struct DeliverySummary {
    /// The delivery.
    pub id: DeliveryId,
    /// Its event.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// Its endpoint.
    pub endpoint_id: EndpointId,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt goes, while pending.
    pub next_attempt_at: Option<UnixMs>,
    /// When it was created.
    pub created_at: UnixMs,
}

/// One attempt as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub number: u32,
    /// The outcome.
    pub outcome: AttemptOutcome,
}

/// A delivery with its attempts, oldest first.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery.
    pub summary: DeliverySummary,
    /// Its attempts.
    pub attempts: Vec<AttemptRecord>,
}

/// The select list [`summary_row`] reads.
pub(super) const SUMMARY_SELECT: &str = "SELECT d.id, d.event_id, ev.type, d.endpoint_id, \
     d.status, d.attempts, d.next_attempt_at, d.created_at \
     FROM deliveries d JOIN events ev ON ev.id = d.event_id";

/// Reads a row selected with [`SUMMARY_SELECT`].
pub(super) fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliverySummary> {
    let status = DeliveryStatus::from_code(r.get(4)?);
    Ok(DeliverySummary {
        id: DeliveryId(r.get(0)?),
        event_id: EventId(r.get(1)?),
        event_type: r.get(2)?,
        endpoint_id: EndpointId(r.get(3)?),
        status,
        attempts: r.get(5)?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            r.get(6)?
        } else {
            None
        },
        created_at: r.get(7)?,
    })
}

/// After a restart, leases held by the previous process are void: their rows are due now.
pub(super) fn release_leases(c: &Connection) -> Result<usize, StoreError> {
    let n = c.execute(
        "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL
         WHERE lease_until IS NOT NULL",
        [now_ms()],
    )?;
    if n > 0 {
        tracing::info!(
            deliveries = n,
            "re-queued deliveries that were in flight before a restart"
        );
    }
    Ok(n)
}

/// Claims due deliveries in one `UPDATE … RETURNING`: at most `limit` rows, earliest due
/// first. Each endpoint offers at most `min(per_endpoint, limit, max(32, 2·limit / endpoints
/// with room))` candidates, so the sort stays small with many endpoints. Per active endpoint, at most `per_endpoint` in flight (one, and only the oldest
/// pending delivery, for FIFO endpoints), and no more starts than its `rateLimit` leaves in
/// the last second — paced to a tenth of it per 100 ms, so a limit spreads starts evenly
/// instead of bursting at each second. Each claimed row gets a lease (its `next_attempt_at` moves to the
/// lease's end) and its next attempt number.
fn claim_rows(
    c: &Connection,
    req: &ClaimRequest,
    lease: i64,
) -> Result<Vec<(i64, i64, i64, u32)>, StoreError> {
    let busy: serde_json::Map<String, serde_json::Value> = req
        .busy
        .iter()
        .map(|(id, load)| {
            (
                id.0.to_string(),
                serde_json::json!([
                    load.in_flight,
                    load.started_last_second,
                    load.started_last_tenth
                ]),
            )
        })
        .collect();
    let busy = serde_json::Value::Object(busy).to_string();
    let mut stmt = c.prepare_cached(
        "UPDATE deliveries
         SET attempts = attempts + 1,
             lease = ?6,
             lease_until = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id),
             next_attempt_at = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id)
         WHERE id IN (
             -- CROSS JOIN keeps endpoints the outer loop, so deliveries are only ever probed
             -- through the due index, never scanned.
             WITH load(endpoint, in_flight, last_second, last_tenth) AS (
                 SELECT CAST(key AS INTEGER), value ->> 0, value ->> 1, value ->> 2
                 FROM json_each(?2)),
             room(endpoint, ordering, room) AS (
                 SELECT e.id, e.ordering, min(
                     CASE e.ordering WHEN 'fifo' THEN 1 ELSE ?3 END - coalesce(l.in_flight, 0),
                     coalesce(min(e.rate_limit - coalesce(l.last_second, 0),
                                  (e.rate_limit + 9) / 10 - coalesce(l.last_tenth, 0)), ?3))
                 FROM endpoints e LEFT JOIN load l ON l.endpoint = e.id
                 WHERE e.is_active = 1)
             SELECT id FROM (
                 SELECT d.id AS id, d.next_attempt_at AS due, r.room AS room,
                        row_number() OVER (PARTITION BY r.endpoint ORDER BY d.next_attempt_at, d.id) AS rn
                 FROM room r
                 CROSS JOIN deliveries d ON d.id IN (
                     SELECT x.id FROM deliveries x
                     WHERE x.endpoint_id = r.endpoint AND x.status = 0 AND x.next_attempt_at <= ?1
                     ORDER BY x.next_attempt_at, x.id
                     LIMIT (SELECT min(?3, ?4, max(32, 2 * ?4 / count(*))) FROM room WHERE room > 0))
                 WHERE r.room > 0 AND r.ordering = 'none'
                 UNION ALL
                 SELECT d.id, d.next_attempt_at, r.room, 1
                 FROM room r
                 CROSS JOIN deliveries d ON d.id = (
                     SELECT x.id FROM deliveries x
                     WHERE x.endpoint_id = r.endpoint AND x.status = 0
                     ORDER BY x.id LIMIT 1)
                 WHERE r.room > 0 AND r.ordering = 'fifo' AND d.next_attempt_at <= ?1)
             WHERE rn <= room
             ORDER BY due, id
             LIMIT ?4)
         RETURNING id, event_id, endpoint_id, attempts",
    )?;
    let rows = stmt
        .query_map(
            params![
                req.now,
                busy,
                req.per_endpoint as i64,
                req.limit as i64,
                req.lease_margin_ms,
                lease
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The body of an event in an endpoint's format, rendered from the stored row.
fn render_body(c: &Connection, event_id: i64, format: Format) -> Result<Bytes, StoreError> {
    let (name, data, created_at): (String, String, i64) = c
        .prepare_cached("SELECT type, data, created_at FROM events WHERE id = ?1")?
        .query_row([event_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let id = EventId(event_id).to_string();
    let timestamp = rfc3339(created_at);
    let view = EventView {
        id: &id,
        name: &name,
        timestamp: &timestamp,
        data: &data,
    };
    Ok(Bytes::from(render(format, view)))
}

/// Where a delivery goes after a failed attempt.
enum AfterFailure {
    /// Retry on the schedule at this time.
    RetryAt(i64),
    /// A manual extra attempt on a pending delivery failed: its schedule resumes here.
    Resume(i64),
    /// A manual retry of a finished delivery failed: back to that status.
    Return(DeliveryStatus),
    /// Failed for good (schedule used up, or 410 Gone).
    Exhausted,
}

struct Row {
    status: i64,
    endpoint_id: i64,
    schedule_offset: u32,
    replay_return: Option<i64>,
    resume_at: Option<i64>,
    was_exhausted: bool,
    event_id: i64,
    event_type: String,
    lease: Option<i64>,
}

/// The outcome-driven update of one delivery and its endpoint's counters, with the
/// operational events it causes (never for a `hookd.*` delivery, so they cannot loop).
fn record_in(
    c: &Connection,
    batch: &mut Batch,
    claim: &Claim,
    outcome: &AttemptOutcome,
    jitter: f64,
) -> Result<Recorded, StoreError> {
    let (delivery, attempt, endpoint) = (claim.delivery_id, claim.attempt, &claim.endpoint.0);
    let row = c
        .prepare_cached(
            "SELECT d.status, d.endpoint_id, d.schedule_offset, d.replay_return,
                    d.resume_at, d.was_exhausted, d.event_id, ev.type, d.lease
             FROM deliveries d JOIN events ev ON ev.id = d.event_id WHERE d.id = ?1",
        )?
        .query_row([delivery.0], |r| {
            Ok(Row {
                status: r.get(0)?,
                endpoint_id: r.get(1)?,
                schedule_offset: r.get(2)?,
                replay_return: r.get(3)?,
                resume_at: r.get(4)?,
                was_exhausted: r.get::<_, i64>(5)? != 0,
                event_id: r.get(6)?,
                event_type: r.get(7)?,
                lease: r.get(8)?,
            })
        })
        .optional()?;
    let Some(row) = row else {
        return Ok(Recorded::Stale);
    };
    if row.status != DeliveryStatus::Pending.code() || row.lease != Some(claim.lease) {
        return Ok(Recorded::Stale);
    }
    let finished = outcome.at + i64::from(outcome.latency_ms);
    c.prepare_cached(
        "INSERT OR REPLACE INTO attempts (delivery_id, number, at, response_code, latency_ms,
            error, error_message, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        delivery.0,
        attempt,
        outcome.at,
        outcome.response_code,
        outcome.latency_ms,
        outcome.error.map(|e| e.as_str()),
        outcome.error_message,
        outcome.response_body,
    ])?;

    let gone = outcome.response_code == Some(410);
    let after = (!outcome.is_success()).then(|| match (gone, row.replay_return) {
        (true, _) => AfterFailure::Exhausted,
        (false, Some(0)) => AfterFailure::Resume(row.resume_at.unwrap_or(finished)),
        (false, Some(code)) => AfterFailure::Return(DeliveryStatus::from_code(code)),
        (false, None) => next_retry_delay(
            &endpoint.settings.retry_schedule,
            attempt.saturating_sub(row.schedule_offset),
            jitter,
            outcome.retry_after_ms,
        )
        .map_or(AfterFailure::Exhausted, |ms| {
            AfterFailure::RetryAt(finished + ms as i64)
        }),
    });
    let (new_status, next_at) = match &after {
        None => (DeliveryStatus::Succeeded, None),
        Some(AfterFailure::RetryAt(at) | AfterFailure::Resume(at)) => {
            (DeliveryStatus::Pending, Some(*at))
        }
        Some(AfterFailure::Return(status)) => (*status, None),
        Some(AfterFailure::Exhausted) => (DeliveryStatus::Failed, None),
    };
    let exhausted = matches!(after, Some(AfterFailure::Exhausted));
    c.prepare_cached(
        "UPDATE deliveries SET status = ?2, next_attempt_at = ?3, lease_until = NULL, lease = NULL,
            replay_return = NULL, resume_at = NULL,
            was_exhausted = was_exhausted OR ?4
         WHERE id = ?1",
    )?
    .execute(params![delivery.0, new_status.code(), next_at, exhausted])?;

    let finished_now = new_status != DeliveryStatus::Pending;
    let (succeeded, failed) = match new_status {
        DeliveryStatus::Succeeded => (1, 0),
        DeliveryStatus::Failed => (0, 1),
        DeliveryStatus::Pending => (0, 0),
    };
    let last_status = if outcome.is_success() {
        "succeeded"
    } else {
        "failed"
    };
    // The endpoint's settings come from the claim; its state is read fresh here.
    let (is_active, consecutive): (bool, i64) = c
        .prepare_cached(
            "UPDATE endpoints SET
                succeeded = succeeded + ?2,
                failed = failed + ?3,
                pending = pending - ?4,
                consecutive_failures = CASE WHEN ?5 THEN 0 ELSE consecutive_failures + ?6 END,
                last_delivery_at = ?7, last_delivery_status = ?8, last_response_code = ?9
             WHERE id = ?1
             RETURNING is_active, consecutive_failures",
        )?
        .query_row(
            params![
                row.endpoint_id,
                succeeded,
                failed,
                i64::from(finished_now),
                outcome.is_success(),
                i64::from(exhausted),
                finished,
                last_status,
                outcome.response_code
            ],
            |r| Ok((r.get::<_, i64>(0)? != 0, r.get::<_, i64>(1)?)),
        )?;

    let operational = row.event_type.starts_with(OPERATIONAL_PREFIX);
    let announce = |name: &str, batch: &mut Batch| {
        let data = serde_json::json!({
            "endpointId": endpoint.id,
            "deliveryId": delivery,
            "eventId": EventId(row.event_id),
            "eventType": row.event_type,
            "attempts": attempt,
            "responseCode": outcome.response_code,
            "error": outcome.error.map(|e| e.as_str()),
        });
        publish_operational(c, batch, endpoint, name, data)
    };
    if !operational && exhausted {
        announce("hookd.delivery.exhausted", batch)?;
    }
    if !operational && outcome.is_success() && row.was_exhausted {
        announce("hookd.delivery.recovered", batch)?;
    }
    if is_active && exhausted {
        let limit = i64::from(endpoint.settings.disable_after);
        let reason = if gone {
            Some("gone")
        } else if limit > 0 && consecutive >= limit {
            Some("consecutive_failures")
        } else {
            None
        };
        if let Some(reason) = reason {
            deactivate(c, endpoint.id, finished, reason, true)?;
            tracing::warn!(endpoint_id = %endpoint.id, reason, consecutive, "endpoint disabled");
            if !operational {
                let data = serde_json::json!({
                    "endpointId": endpoint.id,
                    "reason": reason,
                    "consecutiveFailures": consecutive,
                    "disabledAt": rfc3339(finished),
                });
                publish_operational(c, batch, endpoint, "hookd.endpoint.disabled", data)?;
            }
        }
    }
    Ok(Recorded::Applied(new_status))
}

impl Store {
    /// Leases due deliveries (see [`ClaimRequest`]) and renders their bodies. Answers before
    /// the lease is committed: a lease lost to a crash or a failed commit only means the row
    /// is claimed again (and the stale attempt's result is fenced out).
    pub async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claim>, StoreError> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let lease = self.leases.next();
        self.writer
            .write_eager(move |c, _| {
                let rows = claim_rows(c, &req, lease)?;
                let mut endpoints: HashMap<i64, Arc<(Endpoint, Vec<String>)>> = HashMap::new();
                // Rendered once per event and format, whatever the number of endpoints.
                let mut bodies: HashMap<(i64, Format), Bytes> = HashMap::new();
                let mut claims = Vec::with_capacity(rows.len());
                for (id, event_id, endpoint_id, attempt) in rows {
                    let endpoint = match endpoints.get(&endpoint_id) {
                        Some(e) => e.clone(),
                        None => {
                            let e = load_any(c, EndpointId(endpoint_id))?;
                            let s = secrets(c, e.id, req.now)?;
                            let shared = Arc::new((e, s));
                            endpoints.insert(endpoint_id, shared.clone());
                            shared
                        }
                    };
                    let format = endpoint.0.settings.format;
                    let body = match bodies.get(&(event_id, format)) {
                        Some(b) => b.clone(),
                        None => {
                            let b = render_body(c, event_id, format)?;
                            bodies.insert((event_id, format), b.clone());
                            b
                        }
                    };
                    claims.push(Claim {
                        delivery_id: DeliveryId(id),
                        event_id: EventId(event_id),
                        attempt,
                        lease,
                        endpoint,
                        body,
                    });
                }
                Ok(claims)
            })
            .await
    }

    /// Records the outcome of a claim's attempt, unless its lease has passed to a later
    /// attempt. The retry schedule and disable rule are the claim's (as they were when it was
    /// attempted); the endpoint's state is read fresh.
    pub async fn record_attempt(
        &self,
        claim: Claim,
        outcome: AttemptOutcome,
    ) -> Result<Recorded, StoreError> {
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        self.writer
            .write_unguarded(move |c, batch| record_in(c, batch, &claim, &outcome, jitter))
            .await
    }

    /// One delivery of a tenant with its attempts.
    pub async fn get_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<DeliveryDetail, StoreError> {
        self.read(move |c| {
            let summary = c
                .prepare_cached(&format!(
                    "{SUMMARY_SELECT} WHERE d.id = ?1 AND ev.tenant_id = ?2"
                ))?
                .query_row(params![id.0, tenant_id.0], summary_row)
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let attempts = c
                .prepare_cached(
                    "SELECT number, at, response_code, latency_ms, error, error_message,
                        response_body
                     FROM attempts WHERE delivery_id = ?1 ORDER BY number",
                )?
                .query_map([id.0], |r| {
                    let error: Option<String> = r.get(4)?;
                    Ok(AttemptRecord {
                        number: r.get(0)?,
                        outcome: AttemptOutcome {
                            at: r.get(1)?,
                            response_code: r.get(2)?,
                            latency_ms: r.get(3)?,
                            error: error.as_deref().and_then(crate::model::ErrorClass::parse),
                            error_message: r.get(5)?,
                            response_body: r.get(6)?,
                            retry_after_ms: None,
                        },
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DeliveryDetail { summary, attempts })
        })
        .await
    }

    /// One page of an endpoint's deliveries, newest first, optionally of one status. The
    /// total comes from the endpoint's counters, never from counting rows.
    pub async fn list_endpoint_deliveries(
        &self,
        tenant_id: TenantId,
        endpoint_id: EndpointId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>, StoreError> {
        self.read(move |c| {
            let endpoint = load(c, tenant_id, endpoint_id)?;
            let k = &endpoint.counters;
            let total = match status {
                None => k.succeeded + k.failed + k.pending,
                Some(DeliveryStatus::Pending) => k.pending,
                Some(DeliveryStatus::Succeeded) => k.succeeded,
                Some(DeliveryStatus::Failed) => k.failed,
            };
            let rows = c
                .prepare_cached(&format!(
                    "{SUMMARY_SELECT} WHERE d.endpoint_id = ?1 AND (?2 IS NULL OR d.status = ?2)
                     ORDER BY d.id DESC LIMIT ?3 OFFSET ?4"
                ))?
                .query_map(
                    params![
                        endpoint_id.0,
                        status.map(|s| s.code()),
                        page.size,
                        page.offset()
                    ],
                    summary_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page.page(rows, total))
        })
        .await
    }

    /// How many deliveries are pending in the whole database (for shutdown logs and tests).
    pub async fn pending_total(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 =
                c.query_row("SELECT coalesce(sum(pending), 0) FROM endpoints", [], |r| {
                    r.get(0)
                })?;
            Ok(count(n))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Durability;
    use crate::model::{EndpointSettings, EventName, EventPattern, Ordering, SignatureScheme};
    use crate::store::{NewEndpoint, NewEvent};

    fn settings() -> EndpointSettings {
        EndpointSettings {
            name: "e".into(),
            url: url::Url::parse("http://127.0.0.1:9/h").expect("url"),
            events: vec![EventPattern::All],
            signature_scheme: SignatureScheme::Standard,
            signature_header_name: None,
            format: Format::Json,
            headers: Default::default(),
            retry_schedule: vec![Duration::from_secs(60)],
            disable_after: 0,
            timeout_ms: 1000,
            rate_limit: None,
            ordering: Ordering::None,
            is_active: true,
        }
    }

    fn request(now: UnixMs) -> ClaimRequest {
        ClaimRequest {
            now,
            limit: 10,
            per_endpoint: 10,
            busy: Vec::new(),
            lease_margin_ms: 1000,
        }
    }

    async fn wait_queued(store: &Store, n: usize) {
        while store.writer.queued() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A claim is answered before its batch commits. When that batch rolls back, the lease
    /// it handed out must still never be handed out again.
    #[tokio::test]
    async fn a_lease_from_a_rolled_back_batch_is_never_handed_out_again() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, handle) =
            Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
        let tenant = store.create_tenant("t".into()).await.expect("tenant");
        store
            .create_endpoint(
                tenant.id,
                NewEndpoint {
                    settings: settings(),
                    secret: crate::signing::generate_secret(),
                },
            )
            .await
            .expect("endpoint");
        let event = NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
        };
        store
            .publish(tenant.id, vec![event])
            .await
            .expect("publish");
        let now = now_ms();

        // Hold the writer inside one batch while the claim and a failing write queue behind
        // it, so both land in the next batch, in that order.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .writer
                    .write(move |_, _| {
                        let _ = started_tx.send(());
                        let _ = release_rx.recv();
                        Ok(())
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .expect("join")
            .expect("blocker started");
        let claim = tokio::spawn({
            let store = store.clone();
            async move { store.claim(request(now)).await }
        });
        wait_queued(&store, 1).await;
        let failing = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .writer
                    .write_unguarded(|_, _| -> Result<(), StoreError> {
                        Err(StoreError::Unavailable("disk full (simulated)".into()))
                    })
                    .await
            }
        });
        wait_queued(&store, 2).await;
        release_tx.send(()).expect("release");
        blocker.await.expect("join").expect("blocker committed");
        let rolled_back = claim.await.expect("join").expect("claim answered");
        assert_eq!(rolled_back.len(), 1);
        assert!(
            failing.await.expect("join").is_err(),
            "its batch rolled back"
        );

        // The lease was lost with the batch: the row is claimable again, under a new lease.
        let current = store.claim(request(now)).await.expect("claim");
        assert_eq!(current.len(), 1);
        assert_eq!(current[0].delivery_id, rolled_back[0].delivery_id);

        let ok = AttemptOutcome {
            at: now,
            response_code: Some(200),
            latency_ms: 1,
            error: None,
            error_message: None,
            response_body: None,
            retry_after_ms: None,
        };
        let stale = store
            .record_attempt(rolled_back[0].clone(), ok.clone())
            .await
            .expect("record");
        assert_eq!(
            stale,
            Recorded::Stale,
            "the rolled-back lease is fenced out"
        );
        let applied = store
            .record_attempt(current[0].clone(), ok)
            .await
            .expect("record");
        assert_eq!(applied, Recorded::Applied(DeliveryStatus::Succeeded));
        drop(store);
        handle.close();
    }
}
