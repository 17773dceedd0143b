//! Deliveries: the claim that leases due rows to workers, the fenced recording of each
//! attempt's outcome, and the delivery log.

use std::collections::HashMap;
use std::sync::Arc;

use super::sql::{Conn, vals};

use super::endpoints::{deactivate, load, load_any, secrets};
use super::ledger::{EndpointChange, Streak};
use super::paging::{self, List};
use super::publish::announce;
use super::rows::{SUMMARY_SELECT, corrupt, replay_of, summary_row};
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::attempt::{AttemptFacts, AttemptRule, EndpointState, Transition};
use crate::model::delivery::DeliveryFacts;
use crate::model::{
    AttemptOutcome, AttemptRecord, DeliveryDetail, DeliveryId, DeliveryStatus, DeliverySummary,
    Endpoint, EndpointId, EventId, Page, PageRequest, TenantId, UnixMs, now_ms,
};
use crate::report::ErrorChain;

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
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded; the delivery now has this status.
    Applied(DeliveryStatus),
    /// The lease had passed to another attempt (or the delivery finished): nothing written.
    Stale,
}

/// After a restart, leases held by the previous process are void: their rows are due now.
pub(super) fn release_leases(c: &Conn<'_>) -> Result<usize, StoreError> {
    // Only pending rows hold leases: the due index finds them (no index on the lease itself,
    // which every claim and every result would otherwise have to update).
    let n = c.execute(
        "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL
         WHERE status = 0 AND lease_until IS NOT NULL",
        &vals![now_ms()],
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
    c: &Conn<'_>,
    req: &ClaimRequest,
    lease: i64,
) -> Result<Vec<(i64, i64, i64, u32)>, StoreError> {
    let busy = busy_json(req);
    c.query(
        "UPDATE deliveries
         SET attempts = attempts + 1,
             lease = ?6,
             lease_until = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id),
             next_attempt_at = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id)
         WHERE id IN (
             -- CROSS JOIN keeps endpoints the outer loop, so deliveries are only ever probed
             -- through the due index, never scanned.
             WITH load(endpoint, in_flight, last_second, last_tenth, slots) AS (
                 SELECT CAST(key AS INTEGER), value ->> 0, value ->> 1, value ->> 2, value ->> 3
                 FROM json_each(?2)),
             room(endpoint, ordering, room) AS (
                 SELECT e.id, e.ordering, min(
                     min(CASE e.ordering WHEN 'fifo' THEN 1 ELSE ?3 END,
                         coalesce(l.slots, CASE WHEN l.endpoint IS NULL THEN ?7 ELSE ?3 END))
                         - coalesce(l.in_flight, 0),
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
        &vals![
            req.now,
            busy,
            req.per_endpoint,
            req.limit,
            req.lease_margin_ms,
            lease,
            req.unlisted_slots
        ],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

/// The dispatcher's per-endpoint load as the claim statements read it: `{"<endpoint id>":
/// [in flight, started last second, started last tenth, slots]}`.
fn busy_json(req: &ClaimRequest) -> String {
    let busy: serde_json::Map<String, serde_json::Value> = req
        .busy
        .iter()
        .map(|(id, load)| {
            (
                id.0.to_string(),
                serde_json::json!([
                    load.in_flight,
                    load.started_last_second,
                    load.started_last_tenth,
                    load.slots
                ]),
            )
        })
        .collect();
    serde_json::Value::Object(busy).to_string()
}

/// The stored events behind a claim's rows, read in one statement (one round trip on
/// PostgreSQL, however many rows).
fn claimed_events(
    c: &Conn<'_>,
    ids: &[i64],
) -> Result<HashMap<i64, Arc<ClaimedEvent>>, StoreError> {
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let rows = c.query(
        &format!(
            "SELECT id, type, data, created_at FROM events WHERE {}",
            c.in_ids("id", 1)
        ),
        &vals![list],
        |r| {
            let event = ClaimedEvent {
                name: r.get(1)?,
                data: r.get(2)?,
                created_at: r.get(3)?,
            };
            Ok((r.get::<i64>(0)?, Arc::new(event)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// A pending delivery's lease, endpoint and facts, with its endpoint's state as committed.
type Leased = (i64, EndpointId, DeliveryFacts, EndpointState);

/// The pending deliveries among `ids`, each with its lease, facts and endpoint's state, read
/// in one statement (one round trip on PostgreSQL for a whole batch of results).
fn leased_facts(c: &Conn<'_>, ids: &[i64]) -> Result<HashMap<DeliveryId, Leased>, StoreError> {
    let list = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let rows = c.query(
        &format!(
            "SELECT d.id, d.lease, d.schedule_offset, d.replay_return, d.resume_at,
                    d.was_exhausted, d.event_id, ev.type, e.is_active, e.consecutive_failures,
                    d.endpoint_id
             FROM deliveries d
             JOIN events ev ON ev.id = d.event_id
             JOIN endpoints e ON e.id = d.endpoint_id
             WHERE {} AND d.status = 0 AND d.lease IS NOT NULL",
            c.in_ids("d.id", 1)
        ),
        &vals![list],
        |r| {
            let id = DeliveryId(r.get(0)?);
            let facts = DeliveryFacts {
                id,
                event_id: EventId(r.get(6)?),
                event_type: r.get(7)?,
                schedule_offset: r.get(2)?,
                replay: replay_of(r.get(3)?, r.get(4)?)?,
                was_exhausted: r.get::<i64>(5)? != 0,
            };
            let state = EndpointState {
                is_active: r.get::<i64>(8)? != 0,
                consecutive_failures: count(r.get(9)?),
            };
            Ok((id, (r.get::<i64>(1)?, EndpointId(r.get(10)?), facts, state)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// A batch of results being recorded: the leases and facts of its deliveries, read at its
/// start, and the attempt rows and delivery updates it writes. On SQLite each row is written
/// at once (a statement costs no round trip); on PostgreSQL they are gathered and written in
/// two statements for the whole batch ([`Recording::write`]).
struct Recording {
    leased: HashMap<DeliveryId, Leased>,
    attempts: Vec<serde_json::Value>,
    deliveries: Vec<serde_json::Value>,
}

impl Recording {
    fn start(c: &Conn<'_>, ids: &[i64]) -> Result<Self, StoreError> {
        Ok(Self {
            leased: leased_facts(c, ids)?,
            attempts: Vec::new(),
            deliveries: Vec::new(),
        })
    }

    fn add(
        &mut self,
        c: &Conn<'_>,
        claim: &Claim,
        outcome: &AttemptOutcome,
        t: &Transition,
    ) -> Result<(), StoreError> {
        let id = claim.delivery_id.0;
        if c.is_postgres() {
            self.attempts.push(serde_json::json!({
                "delivery_id": id, "number": claim.attempt, "at": outcome.at,
                "response_code": outcome.response_code, "latency_ms": outcome.latency_ms,
                "error": outcome.error.map(|e| e.as_str()),
                "error_message": outcome.error_message, "response_body": outcome.response_body,
            }));
            self.deliveries.push(serde_json::json!({
                "id": id, "status": t.status.code(), "next_attempt_at": t.next_attempt_at,
                "exhausted": i64::from(t.exhausted),
            }));
            return Ok(());
        }
        c.execute(
            "INSERT INTO attempts (delivery_id, number, at, response_code, latency_ms,
                error, error_message, response_body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (delivery_id, number) DO UPDATE SET at = excluded.at,
                response_code = excluded.response_code, latency_ms = excluded.latency_ms,
                error = excluded.error, error_message = excluded.error_message,
                response_body = excluded.response_body",
            &vals![
                id,
                claim.attempt,
                outcome.at,
                outcome.response_code,
                outcome.latency_ms,
                outcome.error.map(|e| e.as_str()),
                outcome.error_message,
                outcome.response_body,
            ],
        )?;
        c.execute(
            "UPDATE deliveries SET status = ?2, next_attempt_at = ?3, lease_until = NULL,
                lease = NULL, replay_return = NULL, resume_at = NULL,
                was_exhausted = CASE WHEN ?4 = 1 THEN 1 ELSE was_exhausted END
             WHERE id = ?1",
            &vals![id, t.status.code(), t.next_attempt_at, t.exhausted],
        )?;
        Ok(())
    }

    /// Writes what was gathered (PostgreSQL), each kind in one statement.
    fn write(self, c: &Conn<'_>) -> Result<(), StoreError> {
        if self.attempts.is_empty() {
            return Ok(());
        }
        let json = |rows: Vec<serde_json::Value>| serde_json::Value::Array(rows).to_string();
        c.execute(
            "INSERT INTO attempts (delivery_id, number, at, response_code, latency_ms,
                error, error_message, response_body)
             SELECT x.delivery_id, x.number, x.at, x.response_code, x.latency_ms,
                x.error, x.error_message, x.response_body
             FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS x(delivery_id BIGINT,
                number BIGINT, at BIGINT, response_code BIGINT, latency_ms BIGINT, error TEXT,
                error_message TEXT, response_body TEXT)
             ON CONFLICT (delivery_id, number) DO UPDATE SET at = excluded.at,
                response_code = excluded.response_code, latency_ms = excluded.latency_ms,
                error = excluded.error, error_message = excluded.error_message,
                response_body = excluded.response_body",
            &vals![json(self.attempts)],
        )?;
        c.execute(
            "UPDATE deliveries d SET status = x.status, next_attempt_at = x.next_attempt_at,
                lease_until = NULL, lease = NULL, replay_return = NULL, resume_at = NULL,
                was_exhausted = CASE WHEN x.exhausted = 1 THEN 1 ELSE d.was_exhausted END
             FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb))
                AS x(id BIGINT, status BIGINT, next_attempt_at BIGINT, exhausted BIGINT)
             WHERE d.id = x.id",
            &vals![json(self.deliveries)],
        )?;
        Ok(())
    }
}

/// Records one attempt inside the caller's write: checks the lease, asks `rule` what follows
/// and writes it (the attempt row, the delivery, the endpoint's state and announcements); the
/// endpoint's counters go into the batch's ledger. Returns what it did, and the endpoint when
/// it was disabled.
fn record_in(
    c: &Conn<'_>,
    batch: &mut Batch,
    rec: &mut Recording,
    claim: &Claim,
    outcome: &AttemptOutcome,
    jitter: f64,
    rule: AttemptRule,
) -> Result<(Recorded, Option<EndpointId>), StoreError> {
    // Taken: a second result for the same delivery finds it finished.
    let Some((_, _, facts, fresh)) = rec
        .leased
        .remove(&claim.delivery_id)
        .filter(|(lease, _, _, _)| *lease == claim.lease)
    else {
        return Ok((Recorded::Stale, None));
    };
    let endpoint = &claim.endpoint.0;
    // The run of failures as committed, and as this batch's earlier results left it.
    let state = EndpointState {
        is_active: fresh.is_active,
        consecutive_failures: batch
            .ledger
            .endpoints
            .consecutive_failures(endpoint.id, fresh.consecutive_failures),
    };
    let t = rule(&AttemptFacts {
        delivery: &facts,
        attempt: claim.attempt,
        endpoint,
        state,
        outcome,
        jitter,
    });
    rec.add(c, claim, outcome, &t)?;
    // A leased delivery is pending (`leased_facts` reads only those).
    batch.ledger.blocks.delivery_moved(
        endpoint.id.0,
        claim.delivery_id.0,
        DeliveryStatus::Pending,
        t.status,
    );
    let k = t.counters;
    let last_status = if outcome.is_success() {
        "succeeded"
    } else {
        "failed"
    };
    batch.ledger.endpoints.change(
        endpoint.id,
        EndpointChange {
            succeeded: k.succeeded as i64,
            failed: k.failed as i64,
            pending: -(k.settled as i64),
            streak: Streak::of(state.consecutive_failures, k),
            last: Some((t.finished_at, last_status, outcome.response_code)),
        },
    );
    let mut disabled = None;
    if let Some(reason) = t.disable {
        // The operation's other results for this endpoint were read before: they see it
        // disabled now.
        for (_, of, _, other) in rec.leased.values_mut() {
            if *of == endpoint.id {
                other.is_active = false;
            }
        }
        deactivate(c, batch, endpoint, t.finished_at, reason)?;
        tracing::warn!(
            endpoint_id = %endpoint.id,
            reason = reason.as_str(),
            consecutive = k.consecutive_failures,
            "endpoint disabled"
        );
        disabled = Some(endpoint.id);
    }
    for announcement in t.announce {
        announce(c, batch, endpoint.tenant_id, announcement)?;
    }
    Ok((Recorded::Applied(t.status), disabled))
}

/// The claims for leased rows, each with its endpoint (and signing secrets) and event, read
/// once per batch.
fn claims(
    c: &Conn<'_>,
    rows: Vec<(i64, i64, i64, u32)>,
    lease: i64,
    now: UnixMs,
) -> Result<Vec<Claim>, StoreError> {
    let mut endpoints: HashMap<i64, Arc<(Endpoint, Vec<String>)>> = HashMap::new();
    let mut ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    ids.sort_unstable();
    ids.dedup();
    let events = claimed_events(c, &ids)?;
    let mut claims = Vec::with_capacity(rows.len());
    for (id, event_id, endpoint_id, attempt) in rows {
        let endpoint = match endpoints.get(&endpoint_id) {
            Some(e) => e.clone(),
            None => {
                let e = load_any(c, EndpointId(endpoint_id))?;
                let s = secrets(c, e.id, now)?;
                let shared = Arc::new((e, s));
                endpoints.insert(endpoint_id, shared.clone());
                shared
            }
        };
        // A leased delivery's event stays (retention deletes only events without deliveries).
        let event = events.get(&event_id).cloned().ok_or(StoreError::Corrupt {
            what: "deliveries.event_id",
            detail: format!("names no event: {event_id}"),
        })?;
        claims.push(Claim {
            delivery_id: DeliveryId(id),
            event_id: EventId(event_id),
            attempt,
            lease,
            endpoint,
            event,
        });
    }
    Ok(claims)
}

/// The claim's load with what every process has in flight: attempts whose lease still runs,
/// and those of them started in the last second and tenth (a lease starts its endpoint's
/// timeout plus the margin before it ends); and, for rate-limited endpoints, the attempts
/// every process started in the last second and tenth (`hookd_starts`). This process's own counts stay where they are
/// higher (its finished attempts hold no lease; a result may be recorded before the
/// dispatcher forgets the attempt).
fn with_others_in_flight(c: &Conn<'_>, mut req: ClaimRequest) -> Result<ClaimRequest, StoreError> {
    let leased: Vec<(i64, usize, usize, usize)> = c.query(
        "SELECT d.endpoint_id, count(*),
                count(*) FILTER (WHERE d.lease_until - e.timeout_ms - ?2 > ?1 - 1000),
                count(*) FILTER (WHERE d.lease_until - e.timeout_ms - ?2 > ?1 - 100)
         FROM endpoints e
         JOIN deliveries d ON d.endpoint_id = e.id
             AND d.status = 0 AND d.next_attempt_at > ?1 AND d.lease_until > ?1
         WHERE e.is_active = 1
         GROUP BY d.endpoint_id",
        &vals![req.now, req.lease_margin_ms],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    // Attempts started lately by any process, for endpoints with a rate limit.
    let started: Vec<(i64, usize, usize, usize)> = c.query(
        "SELECT endpoint_id, 0, CAST(sum(n) AS BIGINT),
                CAST(coalesce(sum(n) FILTER (WHERE tenth = CAST(?1 AS BIGINT) / 100), 0) AS BIGINT)
         FROM hookd_starts WHERE tenth > CAST(?1 AS BIGINT) / 100 - 10
         GROUP BY endpoint_id",
        &vals![req.now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    for (endpoint, in_flight, last_second, last_tenth) in leased.into_iter().chain(started) {
        let endpoint = EndpointId(endpoint);
        let load = match req.busy.iter_mut().find(|(id, _)| *id == endpoint) {
            Some((_, load)) => load,
            None => {
                req.busy.push((endpoint, EndpointLoad::default()));
                &mut req.busy.last_mut().expect("just pushed").1
            }
        };
        load.in_flight = load.in_flight.max(in_flight);
        load.started_last_second = load.started_last_second.max(last_second);
        load.started_last_tenth = load.started_last_tenth.max(last_tenth);
    }
    Ok(req)
}

/// Counts the claimed attempts of rate-limited endpoints in `hookd_starts` (in the claim's
/// transaction, under its lock), and forgets tenths older than a second.
fn count_starts(c: &Conn<'_>, claims: &[Claim], now: UnixMs) -> Result<(), StoreError> {
    let mut per_endpoint: HashMap<EndpointId, i64> = HashMap::new();
    for claim in claims {
        if claim.endpoint.0.settings.rate_limit.is_some() {
            *per_endpoint.entry(claim.endpoint.0.id).or_default() += 1;
        }
    }
    for (endpoint, n) in per_endpoint {
        c.execute(
            "INSERT INTO hookd_starts (endpoint_id, tenth, n) VALUES (?1, CAST(?2 AS BIGINT) / 100, ?3)
             ON CONFLICT (endpoint_id, tenth) DO UPDATE SET n = hookd_starts.n + excluded.n",
            &vals![endpoint.0, now, n],
        )?;
    }
    c.execute(
        "DELETE FROM hookd_starts WHERE tenth <= CAST(?1 AS BIGINT) / 100 - 10",
        &vals![now],
    )?;
    Ok(())
}

/// The rate-limited endpoints whose starts this claim may count: each is held (its row, until
/// the claim commits) by one process's claim at a time, so the starts every process counted
/// in `hookd_starts` are exact when it reads them. One that another claim (or a batch writing
/// its counters) holds is skipped this time, never waited for.
fn hold_rate_limited(c: &Conn<'_>) -> Result<Vec<i64>, StoreError> {
    c.query(
        "SELECT id FROM endpoints WHERE is_active = 1 AND rate_limit IS NOT NULL
         ORDER BY id FOR NO KEY UPDATE SKIP LOCKED",
        &[],
        |r| r.get(0),
    )
}

/// [`claim_rows`] in PostgreSQL's words, for a claim that runs beside other processes' claims
/// and writes, and never waits for them: rows another transaction holds are skipped (`SKIP
/// LOCKED`) — a FIFO endpoint's oldest row too, and then nothing of that endpoint is claimed
/// this time (taking the next one would break the order); the outer conditions are checked
/// again on the row as it is when locked. Rate-limited endpoints not in `held` get nothing.
fn claim_rows_postgres(
    c: &Conn<'_>,
    req: &ClaimRequest,
    held: &[i64],
    lease: i64,
) -> Result<Vec<(i64, i64, i64, u32)>, StoreError> {
    c.query(
        "UPDATE deliveries
         SET attempts = attempts + 1,
             lease = ?6,
             lease_until = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id),
             next_attempt_at = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id)
         WHERE status = 0 AND next_attempt_at <= ?1 AND id IN (
             WITH load(endpoint, in_flight, last_second, last_tenth, slots) AS (
                 SELECT CAST(key AS BIGINT), CAST(value ->> 0 AS BIGINT),
                        CAST(value ->> 1 AS BIGINT), CAST(value ->> 2 AS BIGINT),
                        CAST(value ->> 3 AS BIGINT)
                 FROM jsonb_each(CAST(CAST(?2 AS TEXT) AS jsonb))),
             room(endpoint, ordering, room) AS (
                 SELECT e.id, e.ordering, LEAST(
                     LEAST(CASE e.ordering WHEN 'fifo' THEN 1 ELSE CAST(?3 AS BIGINT) END,
                           coalesce(l.slots, CASE WHEN l.endpoint IS NULL THEN CAST(?7 AS BIGINT)
                                                  ELSE CAST(?3 AS BIGINT) END))
                         - coalesce(l.in_flight, 0),
                     coalesce(LEAST(e.rate_limit - coalesce(l.last_second, 0),
                                    (e.rate_limit + 9) / 10 - coalesce(l.last_tenth, 0)),
                              CAST(?3 AS BIGINT)))
                 FROM endpoints e LEFT JOIN load l ON l.endpoint = e.id
                 WHERE e.is_active = 1 AND (e.rate_limit IS NULL OR e.id IN (
                     SELECT CAST(value AS BIGINT)
                     FROM jsonb_array_elements_text(CAST(CAST(?8 AS TEXT) AS jsonb))))),
             cap(n) AS (
                 SELECT LEAST(CAST(?3 AS BIGINT), CAST(?4 AS BIGINT),
                              GREATEST(32, 2 * CAST(?4 AS BIGINT) / GREATEST(count(*), 1)))
                 FROM room WHERE room > 0)
             SELECT id FROM (
                 SELECT d.id AS id, d.next_attempt_at AS due, r.room AS room,
                        row_number() OVER (PARTITION BY r.endpoint
                                           ORDER BY d.next_attempt_at, d.id) AS rn
                 FROM room r
                 CROSS JOIN LATERAL (
                     SELECT x.id, x.next_attempt_at FROM deliveries x
                     WHERE x.endpoint_id = r.endpoint AND x.status = 0 AND x.next_attempt_at <= ?1
                     ORDER BY x.next_attempt_at, x.id
                     LIMIT (SELECT n FROM cap)
                     FOR UPDATE SKIP LOCKED) d
                 WHERE r.room > 0 AND r.ordering = 'none'
                 UNION ALL
                 SELECT d.id, d.next_attempt_at, r.room, 1
                 FROM room r
                 CROSS JOIN LATERAL (
                     SELECT x.id, x.next_attempt_at FROM deliveries x
                     WHERE x.id = (SELECT min(y.id) FROM deliveries y
                                   WHERE y.endpoint_id = r.endpoint AND y.status = 0)
                       AND x.status = 0
                     FOR UPDATE SKIP LOCKED) d
                 WHERE r.room > 0 AND r.ordering = 'fifo' AND d.next_attempt_at <= ?1) candidates
             WHERE rn <= room
             ORDER BY due, id
             LIMIT ?4)
         RETURNING id, event_id, endpoint_id, attempts",
        &vals![
            req.now,
            busy_json(req),
            req.per_endpoint,
            req.limit,
            req.lease_margin_ms,
            lease,
            req.unlisted_slots,
            serde_json::to_string(held).unwrap_or_else(|_| "[]".into())
        ],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

impl Store {
    /// Leases due deliveries (see [`ClaimRequest`]), each with its endpoint and event. Answers
    /// before the lease is committed: a lease lost to a crash or a failed commit only means
    /// the row is claimed again, and its token is never handed out again (the stale attempt's
    /// result is fenced out).
    ///
    /// On PostgreSQL, where several hookd processes may share the database, a claim is a
    /// transaction of its own, beside the other processes' claims: it counts every process's
    /// attempts in flight (exactly for rate-limited endpoints, which one claim at a time holds;
    /// as committed for the others, so two claims at once may each fill an endpoint's
    /// per-endpoint room) and skips rows another transaction holds. Its fencing token carries
    /// the process's id.
    pub async fn claim(&self, req: ClaimRequest) -> Result<Vec<Claim>, StoreError> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        if self.is_postgres() {
            let lease = self.leases.next();
            return self
                .in_transaction(move |c| {
                    let held = hold_rate_limited(c)?;
                    let req = with_others_in_flight(c, req)?;
                    let rows = claim_rows_postgres(c, &req, &held, lease)?;
                    let claims = claims(c, rows, lease, req.now)?;
                    count_starts(c, &claims, req.now)?;
                    Ok(claims)
                })
                .await;
        }
        let lease = self.leases.next();
        self.writer
            .write_eager(move |c, _| {
                let rows = claim_rows(c, &req, lease)?;
                claims(c, rows, lease, req.now)
            })
            .await
    }

    /// Records the outcomes of claimed attempts in one write: each one whose lease still holds
    /// is applied as `rule` decides (see [`crate::model::attempt::AttemptRule`]); the others
    /// are [`Recorded::Stale`]. The retry schedule and disable threshold are the claim's (as
    /// they were when it was attempted); the endpoint's state is read fresh. Endpoints that got
    /// disabled have their pending deliveries settled right after, in chunks, in a task of
    /// their own.
    pub async fn record_attempts(
        &self,
        done: Vec<(Claim, AttemptOutcome)>,
        rule: AttemptRule,
    ) -> Result<Vec<Recorded>, StoreError> {
        let jitters: Vec<f64> = done
            .iter()
            .map(|_| 0.8 + rand::random::<f64>() * 0.4)
            .collect();
        let (recorded, disabled) = self
            .writer
            .write_unguarded(move |c, batch| {
                let mut recorded = Vec::with_capacity(done.len());
                let mut disabled = Vec::new();
                let ids: Vec<i64> = done.iter().map(|(claim, _)| claim.delivery_id.0).collect();
                let mut rec = Recording::start(c, &ids)?;
                for ((claim, outcome), jitter) in done.iter().zip(jitters) {
                    let (r, d) = record_in(c, batch, &mut rec, claim, outcome, jitter, rule)?;
                    recorded.push(r);
                    disabled.extend(d);
                }
                rec.write(c)?;
                Ok((recorded, disabled))
            })
            .await?;
        // Settled apart from this record, so the batch's slots are not held meanwhile.
        for endpoint in disabled {
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(e) = store.settle_disabled(endpoint).await {
                    tracing::warn!(endpoint_id = %endpoint, error = %ErrorChain(&e), "cannot fail a disabled endpoint's pending deliveries yet; housekeeping will");
                }
            });
        }
        Ok(recorded)
    }

    /// Records one claimed attempt's outcome; see [`Store::record_attempts`].
    pub async fn record_attempt(
        &self,
        claim: Claim,
        outcome: AttemptOutcome,
        rule: AttemptRule,
    ) -> Result<Recorded, StoreError> {
        let recorded = self.record_attempts(vec![(claim, outcome)], rule).await?;
        Ok(recorded.into_iter().next().unwrap_or(Recorded::Stale))
    }

    /// One delivery of a tenant with its attempts.
    pub async fn get_delivery(
        &self,
        tenant_id: TenantId,
        id: DeliveryId,
    ) -> Result<DeliveryDetail, StoreError> {
        self.read(move |c| {
            let summary = c
                .query_opt(
                    &format!("{SUMMARY_SELECT} WHERE d.id = ?1 AND ev.tenant_id = ?2"),
                    &vals![id.0, tenant_id.0],
                    summary_row,
                )?
                .ok_or(StoreError::NotFound)?;
            let attempts = c.query(
                "SELECT number, at, response_code, latency_ms, error, error_message,
                        response_body
                     FROM attempts WHERE delivery_id = ?1 ORDER BY number",
                &vals![id.0],
                |r| {
                    let error: Option<String> = r.get(4)?;
                    Ok(AttemptRecord {
                        number: r.get(0)?,
                        outcome: AttemptOutcome {
                            at: r.get(1)?,
                            response_code: r.get(2)?,
                            latency_ms: r.get(3)?,
                            error: match error {
                                Some(e) => Some(
                                    crate::model::ErrorClass::parse(&e)
                                        .ok_or_else(|| corrupt("attempts.error"))?,
                                ),
                                None => None,
                            },
                            error_message: r.get(5)?,
                            response_body: r.get(6)?,
                            retry_after_ms: None,
                        },
                    })
                },
            )?;
            Ok(DeliveryDetail { summary, attempts })
        })
        .await
    }

    /// One page of an endpoint's deliveries, newest first, optionally of one status. The
    /// page is found from the block counts (`store/paging.rs`), so a page deep in a long log
    /// costs about as much as the first.
    pub async fn list_endpoint_deliveries(
        &self,
        tenant_id: TenantId,
        endpoint_id: EndpointId,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>, StoreError> {
        self.read(move |c| {
            load(c, tenant_id, endpoint_id)?;
            let part = status.map(|s| s.code().to_string());
            let (total, seek) = paging::locate(
                c,
                List::Deliveries,
                endpoint_id.0,
                part.as_deref(),
                page.offset(),
            )?;
            let Some(seek) = seek else {
                return Ok(page.page(Vec::new(), total));
            };
            let ids = match status {
                None => {
                    "SELECT id FROM deliveries WHERE endpoint_id = ?1 AND id < ?3
                         ORDER BY id DESC LIMIT ?4 OFFSET ?5"
                }
                Some(_) => {
                    "SELECT id FROM deliveries WHERE endpoint_id = ?1 AND status = ?2
                            AND id < ?3 ORDER BY id DESC LIMIT ?4 OFFSET ?5"
                }
            };
            let rows = c.query(
                &format!("{SUMMARY_SELECT} WHERE d.id IN ({ids}) ORDER BY d.id DESC"),
                &vals![
                    endpoint_id.0,
                    status.map(|s| s.code()),
                    seek.below,
                    page.size,
                    seek.skip
                ],
                summary_row,
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }

    /// How many deliveries are pending in the whole database (for shutdown logs and tests).
    pub async fn pending_total(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_one(
                "SELECT CAST(coalesce(sum(pending), 0) AS BIGINT) FROM endpoints",
                &[],
                |r| r.get(0),
            )?;
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
    use crate::delivery::after_attempt;
    use crate::model::{
        EndpointSettings, EventName, EventPattern, Format, Ordering, SignatureScheme,
    };
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
            filter: None,
            channels: None,
            auth: None,
            client_certificate: None,
            url_sealed: None,
        }
    }

    fn request(now: UnixMs) -> ClaimRequest {
        ClaimRequest {
            now,
            limit: 10,
            per_endpoint: 10,
            unlisted_slots: 10,
            busy: Vec::new(),
            lease_margin_ms: 1000,
        }
    }

    /// Holds the writer inside one batch until the returned sender is used, so that writes
    /// queued meanwhile land together in the next batch.
    async fn hold_writer(
        store: &Store,
    ) -> (
        tokio::task::JoinHandle<Result<(), StoreError>>,
        std::sync::mpsc::Sender<()>,
    ) {
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
        (blocker, release_tx)
    }

    /// Queues a write that fails without a savepoint: its whole batch rolls back.
    fn queue_failing_write(store: &Store) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .writer
                .write_unguarded(|_, _| -> Result<(), StoreError> {
                    Err(StoreError::Invalid("a failing write (simulated)".into()))
                })
                .await
        })
    }

    async fn wait_queued(store: &Store, n: usize) {
        while store.writer.queued() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A write that changed endpoints and then failed is undone; what the fan-out cache
    /// learnt from it must go too, while a failure that changed none leaves the cache as it was.
    #[tokio::test]
    async fn a_failed_write_leaves_nothing_it_undid_in_the_fanout_cache() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, handle) =
            Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
        let tenant = store.create_tenant("t".into()).await.expect("tenant");
        let new = || NewEndpoint {
            settings: settings(),
            secret: crate::signing::generate_secret(),
        };
        store.create_endpoint(tenant.id, new()).await.expect("one");
        let event = || NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
        };
        let published = store
            .publish(tenant.id, vec![event()])
            .await
            .expect("publish");
        assert_eq!(published[0].deliveries, 1);
        // Adds a second endpoint, fans out to it (cached), then fails: all undone.
        let tenant_id = tenant.id;
        let failed = store
            .writer
            .write(move |c, batch| {
                super::super::endpoints::insert(c, batch, tenant_id, &new())?;
                let seen = batch.subscribers.get(c, tenant_id)?;
                assert_eq!(
                    seen.targets("a.b", "{}", &[], crate::fanout::Fanout::Subscribers)
                        .len(),
                    2
                );
                Err::<(), _>(StoreError::Invalid("refused after the fact".into()))
            })
            .await;
        assert!(failed.is_err());
        let published = store
            .publish(tenant.id, vec![event()])
            .await
            .expect("publish");
        assert_eq!(
            published[0].deliveries, 1,
            "the undone endpoint is not a target"
        );
        drop(store);
        tokio::task::spawn_blocking(move || handle.close())
            .await
            .expect("close");
    }

    /// A claim is answered before its batch commits, so it must not see what that batch
    /// wrote: a publish queued ahead of it in a batch that then rolls back (its caller told
    /// 503) is never handed to a worker.
    #[tokio::test]
    async fn a_claim_never_hands_out_what_its_own_batch_rolls_back() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, handle) =
            Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
        let tenant = store.create_tenant("t".into()).await.expect("tenant");
        let new = NewEndpoint {
            settings: settings(),
            secret: crate::signing::generate_secret(),
        };
        store
            .create_endpoint(tenant.id, new)
            .await
            .expect("endpoint");
        let now = now_ms();

        // Hold the writer in one batch while a publish, a claim and a failing write queue
        // behind it, in that order, so all three land in the next batch.
        let (blocker, release_tx) = hold_writer(&store).await;
        let publish = tokio::spawn({
            let store = store.clone();
            let event = NewEvent {
                name: EventName::parse("a.b").expect("name"),
                data: "{}".into(),
                idempotency_key: None,
                channels: Vec::new(),
            };
            async move { store.publish(tenant.id, vec![event]).await }
        });
        wait_queued(&store, 1).await;
        let claim = tokio::spawn({
            let store = store.clone();
            async move { store.claim(request(now + 60_000)).await }
        });
        wait_queued(&store, 2).await;
        let failing = queue_failing_write(&store);
        wait_queued(&store, 3).await;
        release_tx.send(()).expect("release");
        blocker.await.expect("join").expect("blocker committed");
        assert!(failing.await.expect("join").is_err());
        assert!(
            publish.await.expect("join").is_err(),
            "the publish was rolled back with its batch"
        );
        let claimed = claim.await.expect("join").expect("claim answered");
        assert!(
            claimed.is_empty(),
            "the claim handed out {} deliveries its batch rolled back",
            claimed.len()
        );
        let after = store.claim(request(now + 60_000)).await.expect("claim");
        assert!(after.is_empty(), "nothing was published");
        drop(store);
        handle.close();
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
            channels: Vec::new(),
        };
        store
            .publish(tenant.id, vec![event])
            .await
            .expect("publish");
        let now = now_ms();

        // Hold the writer inside one batch while the claim and a failing write queue behind
        // it, so both land in the next batch, in that order.
        let (blocker, release_tx) = hold_writer(&store).await;
        let claim = tokio::spawn({
            let store = store.clone();
            async move { store.claim(request(now)).await }
        });
        wait_queued(&store, 1).await;
        let failing = queue_failing_write(&store);
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
            .record_attempt(rolled_back[0].clone(), ok.clone(), after_attempt)
            .await
            .expect("record");
        assert_eq!(
            stale,
            Recorded::Stale,
            "the rolled-back lease is fenced out"
        );
        let applied = store
            .record_attempt(current[0].clone(), ok, after_attempt)
            .await
            .expect("record");
        assert_eq!(applied, Recorded::Applied(DeliveryStatus::Succeeded));
        drop(store);
        handle.close();
    }

    /// Results recorded together see each other: the second failure of one record operation
    /// disables the endpoint at `disableAfter: 2`, the third does not disable it again, and the
    /// counters hold all three. (Multi-threaded: disabling starts a settling task that holds
    /// the store until it ends, and `close` blocks this thread.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_recorded_together_count_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, handle) =
            Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
        let tenant = store.create_tenant("t".into()).await.expect("tenant");
        let endpoint = store
            .create_endpoint(
                tenant.id,
                NewEndpoint {
                    settings: EndpointSettings {
                        retry_schedule: Vec::new(),
                        disable_after: 2,
                        ..settings()
                    },
                    secret: crate::signing::generate_secret(),
                },
            )
            .await
            .expect("endpoint");
        let events = (0..3)
            .map(|_| NewEvent {
                name: EventName::parse("a.b").expect("name"),
                data: "{}".into(),
                idempotency_key: None,
                channels: Vec::new(),
            })
            .collect();
        store.publish(tenant.id, events).await.expect("publish");
        let now = now_ms();
        let claims = store.claim(request(now)).await.expect("claim");
        assert_eq!(claims.len(), 3);
        let failed = AttemptOutcome {
            at: now,
            response_code: Some(500),
            latency_ms: 1,
            error: Some(crate::model::ErrorClass::HttpStatus),
            error_message: None,
            response_body: None,
            retry_after_ms: None,
        };
        let done = claims.into_iter().map(|c| (c, failed.clone())).collect();
        let recorded = store
            .record_attempts(done, after_attempt)
            .await
            .expect("record");
        assert!(
            recorded
                .iter()
                .all(|r| *r == Recorded::Applied(DeliveryStatus::Failed))
        );
        let read = store
            .get_endpoint(tenant.id, endpoint.id)
            .await
            .expect("endpoint");
        assert!(!read.settings.is_active);
        assert_eq!(
            read.disabled_reason,
            Some(crate::model::DisableReason::ConsecutiveFailures)
        );
        let k = &read.counters;
        assert_eq!((k.failed, k.pending, k.consecutive_failures), (3, 0, 3));
        assert_eq!(k.last_delivery.as_ref().map(|l| l.2), Some(Some(500)));
        drop(store);
        handle.close();
    }
}
