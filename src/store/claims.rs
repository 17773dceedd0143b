//! Claims: due deliveries leased to this process's workers, each with its endpoint and event,
//! at most as many as there are free slots, paced per endpoint; and the release of leases
//! after a restart.

use std::collections::HashMap;
use std::sync::Arc;

use super::endpoints::{load_any, secrets};
use super::rows::replay_of;
use super::{Store, StoreError};
use crate::db::sql::{Conn, Row, vals};
use crate::model::claim::{Claim, ClaimRequest, ClaimedEvent, EndpointLoad};
use crate::model::delivery::{DeliveryFacts, Replay};
use crate::model::{DeliveryId, Endpoint, EndpointId, EventId, UnixMs, now_ms};

/// A row a claim leased, as its statement returns it.
struct Leased {
    id: i64,
    event_id: i64,
    endpoint_id: i64,
    attempt: u32,
    schedule_offset: u32,
    replay: Option<Replay>,
    was_exhausted: bool,
}

/// What both claim statements return of each row they lease, read by [`Leased::of`].
const LEASED: &str = "RETURNING id, event_id, endpoint_id, attempts, schedule_offset, replay_return, resume_at, was_exhausted";

impl Leased {
    fn of(r: &Row<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.get(0)?,
            event_id: r.get(1)?,
            endpoint_id: r.get(2)?,
            attempt: r.get(3)?,
            schedule_offset: r.get(4)?,
            replay: replay_of(r.get(5)?, r.get(6)?)?,
            was_exhausted: r.get::<i64>(7)? != 0,
        })
    }
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
fn claim_rows(c: &Conn<'_>, req: &ClaimRequest, lease: i64) -> Result<Vec<Leased>, StoreError> {
    let busy = busy_json(req);
    c.query(
        &format!("UPDATE deliveries
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
         {LEASED}"),
        &vals![
            req.now,
            busy,
            req.per_endpoint,
            req.limit,
            req.lease_margin_ms,
            lease,
            req.unlisted_slots
        ],
        Leased::of,
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
    let list = Conn::id_list(ids);
    let rows = c.query(
        &format!(
            "SELECT id, type, data, created_at, traceparent, tracestate FROM events WHERE {}",
            c.in_ids("id", 1)
        ),
        &vals![list],
        |r| {
            let event = ClaimedEvent {
                name: r.get(1)?,
                data: r.get(2)?,
                created_at: r.get(3)?,
                trace: super::rows::trace(r.get(4)?, r.get(5)?)?,
            };
            Ok((r.get::<i64>(0)?, Arc::new(event)))
        },
    )?;
    Ok(rows.into_iter().collect())
}

/// The claims for leased rows, each with its endpoint (and signing secrets) and event, read
/// once per batch.
fn claims(
    c: &Conn<'_>,
    rows: Vec<Leased>,
    lease: i64,
    now: UnixMs,
) -> Result<Vec<Claim>, StoreError> {
    let mut endpoints: HashMap<i64, Arc<(Endpoint, Vec<String>)>> = HashMap::new();
    let mut ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let events = claimed_events(c, &ids)?;
    let mut claims = Vec::with_capacity(rows.len());
    for row in rows {
        let endpoint_id = row.endpoint_id;
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
        let event = events
            .get(&row.event_id)
            .cloned()
            .ok_or(StoreError::Corrupt {
                what: "deliveries.event_id",
                detail: format!("names no event: {}", row.event_id),
            })?;
        let (delivery_id, event_id) = (DeliveryId(row.id), EventId(row.event_id));
        claims.push(Claim {
            delivery_id,
            event_id,
            attempt: row.attempt,
            lease,
            endpoint,
            facts: DeliveryFacts {
                id: delivery_id,
                event_id,
                event_type: event.name.clone(),
                schedule_offset: row.schedule_offset,
                replay: row.replay,
                was_exhausted: row.was_exhausted,
            },
            event,
        });
    }
    Ok(claims)
}

/// The claim's load with what the other live processes have in flight, as each reported it
/// with its latest claim (and heartbeat), added to this process's own; and, for rate-limited
/// endpoints, the attempts every process started in the last second and tenth
/// (`hookd_starts`, exact), where higher than this process's own count.
/// (Attempts in flight are not counted from the deliveries' leases: finding those would take
/// an index on a column every claim changes, and the claim's update could not be HOT.)
fn with_others_in_flight(
    c: &Conn<'_>,
    mut req: ClaimRequest,
    me: i64,
) -> Result<ClaimRequest, StoreError> {
    let alive_since = req.now - super::processes::DEAD_AFTER.as_millis() as i64;
    let others: Vec<(i64, usize)> = c.query(
        "SELECT CAST(f.key AS BIGINT), CAST(sum(CAST(f.value AS BIGINT)) AS BIGINT)
         FROM hookd_processes p, jsonb_each_text(CAST(p.in_flight AS jsonb)) f
         WHERE p.id <> ?1 AND p.beat_at >= ?2
         GROUP BY f.key",
        &vals![me, alive_since],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    for (endpoint, in_flight) in others {
        load_of(&mut req, EndpointId(endpoint)).in_flight += in_flight;
    }
    // Attempts started lately by any process, for endpoints with a rate limit.
    let started: Vec<(i64, usize, usize)> = c.query(
        "SELECT endpoint_id, CAST(sum(n) AS BIGINT),
                CAST(coalesce(sum(n) FILTER (WHERE tenth = CAST(?1 AS BIGINT) / 100), 0) AS BIGINT)
         FROM hookd_starts WHERE tenth > CAST(?1 AS BIGINT) / 100 - 10
         GROUP BY endpoint_id",
        &vals![req.now],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    for (endpoint, last_second, last_tenth) in started {
        let load = load_of(&mut req, EndpointId(endpoint));
        load.started_last_second = load.started_last_second.max(last_second);
        load.started_last_tenth = load.started_last_tenth.max(last_tenth);
    }
    Ok(req)
}

/// The request's load of `endpoint`, added (empty) when it has none.
fn load_of(req: &mut ClaimRequest, endpoint: EndpointId) -> &mut EndpointLoad {
    let at = match req.busy.iter().position(|(id, _)| *id == endpoint) {
        Some(at) => at,
        None => {
            req.busy.push((endpoint, EndpointLoad::default()));
            req.busy.len() - 1
        }
    };
    &mut req.busy[at].1
}

/// This process's attempts in flight per endpoint after a claim, as it reports them to the
/// others' claims: what the request counted, and what it claimed.
pub(super) fn in_flight_report(busy: &[(EndpointId, EndpointLoad)], claims: &[Claim]) -> String {
    let mut counts: std::collections::BTreeMap<i64, usize> = busy
        .iter()
        .filter(|(_, load)| load.in_flight > 0)
        .map(|(id, load)| (id.0, load.in_flight))
        .collect();
    for claim in claims {
        *counts.entry(claim.endpoint.0.id.0).or_default() += 1;
    }
    let report: serde_json::Map<String, serde_json::Value> = counts
        .into_iter()
        .map(|(id, n)| (id.to_string(), n.into()))
        .collect();
    serde_json::Value::Object(report).to_string()
}

/// Counts the claimed attempts of rate-limited endpoints in `hookd_starts` (in the claim's
/// transaction), and forgets the tenths older than a second of the endpoints it holds (`held`):
/// rows no other claim touches meanwhile, so two claims never wait on each other here.
fn count_starts(
    c: &Conn<'_>,
    claims: &[Claim],
    held: &[i64],
    now: UnixMs,
) -> Result<(), StoreError> {
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
    if held.is_empty() {
        return Ok(());
    }
    let held = Conn::id_list(held);
    c.execute(
        &format!(
            "DELETE FROM hookd_starts WHERE {} AND tenth <= CAST(?2 AS BIGINT) / 100 - 10",
            c.in_ids("endpoint_id", 1)
        ),
        &vals![held, now],
    )?;
    Ok(())
}

/// The rate-limited endpoints with due deliveries whose starts this claim may count: each is
/// held (its row, until the claim commits) by one process's claim at a time, so the starts
/// every process counted in `hookd_starts` are exact when it reads them. One that another
/// claim (or a batch writing its counters) holds is skipped this time, never waited for.
fn hold_rate_limited(c: &Conn<'_>, now: UnixMs) -> Result<Vec<i64>, StoreError> {
    c.query(
        "SELECT e.id FROM endpoints e
         WHERE e.is_active = 1 AND e.rate_limit IS NOT NULL AND EXISTS (
             SELECT 1 FROM deliveries d
             WHERE d.endpoint_id = e.id AND d.status = 0 AND d.next_attempt_at <= ?1
               AND (d.lease_until IS NULL OR d.lease_until <= ?1))
         ORDER BY e.id FOR NO KEY UPDATE OF e SKIP LOCKED",
        &vals![now],
        |r| r.get(0),
    )
}

/// [`claim_rows`] in PostgreSQL's words, for a claim that runs beside other processes' claims
/// and writes, and never waits for them: rows another transaction holds are skipped (`SKIP
/// LOCKED`) — a FIFO endpoint's oldest row too, and then nothing of that endpoint is claimed
/// this time (taking the next one would break the order); the outer conditions are checked
/// again on the row as it is when locked. Rate-limited endpoints not in `held` get nothing.
/// A leased row keeps its due time (it is due again when its lease ends, `lease_until`), so
/// the claim changes no indexed column and PostgreSQL updates it in place (HOT, on the room
/// the table's `fillfactor` leaves), writing no index entry.
fn claim_rows_postgres(
    c: &Conn<'_>,
    req: &ClaimRequest,
    held: &[i64],
    lease: i64,
) -> Result<Vec<Leased>, StoreError> {
    c.query(
        &format!(
            "UPDATE deliveries
         SET attempts = attempts + 1,
             lease = ?6,
             lease_until = ?1 + ?5 + (SELECT timeout_ms FROM endpoints e WHERE e.id = endpoint_id)
         WHERE status = 0 AND next_attempt_at <= ?1
             AND (lease_until IS NULL OR lease_until <= ?1) AND id IN (
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
                       AND (x.lease_until IS NULL OR x.lease_until <= ?1)
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
                       AND x.status = 0 AND (x.lease_until IS NULL OR x.lease_until <= ?1)
                     FOR UPDATE SKIP LOCKED) d
                 WHERE r.room > 0 AND r.ordering = 'fifo' AND d.next_attempt_at <= ?1) candidates
             WHERE rn <= room
             ORDER BY due, id
             LIMIT ?4)
         {LEASED}"
        ),
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
        Leased::of,
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
            let me = lease >> super::processes::LEASE_BITS;
            let mut req = req;
            for (_, load) in &mut req.busy {
                load.in_flight += std::mem::take(&mut load.recording);
            }
            let own = req.busy.clone();
            let (claims, report) = self
                .in_transaction(move |c| {
                    let held = hold_rate_limited(c, req.now)?;
                    let req = with_others_in_flight(c, req, me)?;
                    let rows = claim_rows_postgres(c, &req, &held, lease)?;
                    let claims = claims(c, rows, lease, req.now)?;
                    count_starts(c, &claims, &held, req.now)?;
                    // What this process has in flight now, for the other processes' claims:
                    // its own row, which no other process writes.
                    let report = in_flight_report(&own, &claims);
                    c.execute(
                        "UPDATE hookd_processes SET in_flight = ?2 WHERE id = ?1",
                        &vals![me, report],
                    )?;
                    Ok((claims, report))
                })
                .await?;
            if let Ok(mut kept) = self.in_flight.lock() {
                *kept = report;
            }
            return Ok(claims);
        }
        let lease = self.leases.next();
        self.writer
            .write_eager(move |c, _| {
                let rows = claim_rows(c, &req, lease)?;
                claims(c, rows, lease, req.now)
            })
            .await
    }
}
