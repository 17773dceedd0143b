//! Deliveries: the fenced writing of results planned outside (each attempt's row, its
//! delivery's next state, what they change), and the delivery log. (The claim that leases
//! due rows to workers is `claims`; the results are planned by [`crate::service::record`].)

use std::collections::{HashMap, HashSet};

use crate::db::sql::{Conn, vals};

use super::batch::Batch;
use super::endpoints::{deactivate, load};
use super::paging::{self, List};
use super::publish::write_plan;
use super::rows::{SUMMARY_SELECT, corrupt, summary_row};
use super::{Store, StoreError, count};
use crate::model::attempt::EndpointState;
use crate::model::publish::PublishPlan;
use crate::model::results::{EndpointResults, PlannedResult, StateGuard};
use crate::model::results::{Recorded, ResultsApplied, ResultsPlan};
use crate::model::series::{Tally, bucket, hour_of};
use crate::model::{
    AttemptOutcome, AttemptRecord, DeliveryDetail, DeliveryFilter, DeliveryId, DeliveryStatus,
    DeliverySummary, EndpointId, Page, PageRequest, TenantId, TenantQueue,
};

/// A result's delivery row as written: pending with the claim's lease, or nothing is written.
const FINISH: &str = "UPDATE deliveries SET status = ?2, next_attempt_at = ?3, lease_until = NULL,
        lease = NULL, replay_return = NULL, resume_at = NULL,
        was_exhausted = CASE WHEN ?4 = 1 THEN 1 ELSE was_exhausted END
     WHERE id = ?1 AND lease = ?5 AND status = 0";

/// A result's attempt row (a result for an attempt number already logged replaces it).
const ATTEMPT: &str = "INSERT INTO attempts (delivery_id, number, at, response_code, latency_ms,
        error, error_message, response_body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (delivery_id, number) DO UPDATE SET at = excluded.at,
        response_code = excluded.response_code, latency_ms = excluded.latency_ms,
        error = excluded.error, error_message = excluded.error_message,
        response_body = excluded.response_body";

/// Whether what an endpoint's results were planned from still holds in this batch: the
/// tenant's endpoints their announcements were planned for, and, when the guard asks, the
/// endpoint's state (its run of failures as this batch left it) and the leases of its
/// results. A result whose lease has passed is taken out as stale either way.
fn holds(
    c: &Conn<'_>,
    batch: &mut Batch,
    group: &mut EndpointResults<PublishPlan>,
    out: &mut ResultsApplied,
) -> Result<bool, StoreError> {
    for plan in group.results.iter().flat_map(|r| &r.announce) {
        if batch.subscribers.version(c, plan.tenant)? != plan.version {
            return Ok(false);
        }
    }
    let StateGuard::Exactly(read) = group.guard else {
        return Ok(true);
    };
    let id = group.endpoint;
    let state = c.query_opt(
        "SELECT is_active, consecutive_failures FROM endpoints WHERE id = ?1",
        &vals![id.0],
        |r| Ok((r.get::<i64>(0)? != 0, count(r.get(1)?))),
    )?;
    let ids: Vec<i64> = group.results.iter().map(|r| r.delivery.0).collect();
    // `status <= 0`: found by id, never through the due index (see `write_rows`).
    let leases: HashMap<i64, i64> = c
        .query(
            &format!(
                "SELECT id, lease FROM deliveries
                 WHERE {} AND status <= 0 AND lease IS NOT NULL",
                c.in_ids("id", 1)
            ),
            &vals![Conn::id_list(&ids)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .into_iter()
        .collect();
    let (held, passed): (Vec<_>, Vec<_>) = std::mem::take(&mut group.results)
        .into_iter()
        .partition(|r| leases.get(&r.delivery.0) == Some(&r.lease));
    out.recorded
        .extend(passed.iter().map(|r| (r.index, Recorded::Stale)));
    group.results = held;
    let Some((is_active, committed)) = state else {
        // The endpoint is gone, and its deliveries with it: nothing is left to write.
        group.disable = None;
        return Ok(true);
    };
    let now = EndpointState {
        is_active,
        consecutive_failures: batch.ledger.endpoints.consecutive_failures(id, committed),
    };
    Ok(now == read && passed.is_empty())
}

/// Writes the delivery and attempt rows of `results` (each only while its lease holds) and
/// answers which were written. On SQLite each row is a statement of its own (no round trip);
/// on PostgreSQL the deliveries are one statement and the attempts another, for the batch.
fn write_rows(
    c: &Conn<'_>,
    results: &[&PlannedResult<PublishPlan>],
) -> Result<HashSet<i64>, StoreError> {
    let mut written = HashSet::with_capacity(results.len());
    if results.is_empty() {
        return Ok(written);
    }
    if !c.is_postgres() {
        for r in results {
            let (t, o) = (&r.transition, &r.outcome);
            let id = r.delivery.0;
            let n = c.execute(
                FINISH,
                &vals![id, t.status.code(), t.next_attempt_at, t.exhausted, r.lease],
            )?;
            if n == 0 {
                continue;
            }
            c.execute(
                ATTEMPT,
                &vals![
                    id,
                    r.attempt,
                    o.at,
                    o.response_code,
                    o.latency_ms,
                    o.error.map(|e| e.as_str()),
                    o.error_message,
                    o.response_body,
                ],
            )?;
            written.insert(id);
        }
        return Ok(written);
    }
    let json = |rows: Vec<serde_json::Value>| serde_json::Value::Array(rows).to_string();
    let deliveries = results
        .iter()
        .map(|r| {
            let t = &r.transition;
            serde_json::json!({
                "id": r.delivery.0, "lease": r.lease, "status": t.status.code(),
                "next_attempt_at": t.next_attempt_at, "exhausted": i64::from(t.exhausted),
            })
        })
        .collect();
    // `status <= 0` is `status = 0` (a status is 0, 1 or 2) written so that the planner finds
    // the rows by their ids, never through the due index: statistics taken while little was
    // pending make that index look tiny during a backlog, and a plan through it read the whole
    // backlog for every batch (9.6 ms for one result at 78,000 pending, where by id is 0.2 ms).
    written.extend(c.query(
        "UPDATE deliveries d SET status = x.status, next_attempt_at = x.next_attempt_at,
            lease_until = NULL, lease = NULL, replay_return = NULL, resume_at = NULL,
            was_exhausted = CASE WHEN x.exhausted = 1 THEN 1 ELSE d.was_exhausted END
         FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS x(id BIGINT, lease BIGINT,
            status BIGINT, next_attempt_at BIGINT, exhausted BIGINT)
         WHERE d.id = x.id AND d.lease = x.lease AND d.status <= 0
         RETURNING d.id",
        &vals![json(deliveries)],
        |r| r.get::<i64>(0),
    )?);
    let attempts: Vec<_> = results
        .iter()
        .filter(|r| written.contains(&r.delivery.0))
        .map(|r| {
            let o = &r.outcome;
            serde_json::json!({
                "delivery_id": r.delivery.0, "number": r.attempt, "at": o.at,
                "response_code": o.response_code, "latency_ms": o.latency_ms,
                "error": o.error.map(|e| e.as_str()),
                "error_message": o.error_message, "response_body": o.response_body,
            })
        })
        .collect();
    if !attempts.is_empty() {
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
            &vals![json(attempts)],
        )?;
    }
    Ok(written)
}

/// Writes a plan of results inside the caller's write: an endpoint whose plan no longer
/// holds is handed back whole; of the rest, each result whose lease still holds is written
/// with what it changes (the ledger's counts, its announcements), and the endpoints the plan
/// disables are disabled last.
fn write_results(
    c: &Conn<'_>,
    batch: &mut Batch,
    plan: ResultsPlan,
) -> Result<ResultsApplied, StoreError> {
    // The lease checks and updates read among the pending deliveries: planned for their ids.
    c.plan_each_execution()?;
    let mut out = ResultsApplied::default();
    let mut writing = Vec::with_capacity(plan.len());
    for mut group in plan {
        if holds(c, batch, &mut group, &mut out)? {
            writing.push(group);
        } else {
            out.stale.extend(group.results.iter().map(|r| r.index));
        }
    }
    let results: Vec<_> = writing.iter().flat_map(|g| &g.results).collect();
    let written = write_rows(c, &results)?;
    for group in &writing {
        let endpoint = group.endpoint;
        for r in &group.results {
            if !written.contains(&r.delivery.0) {
                out.recorded.push((r.index, Recorded::Stale));
                continue;
            }
            let (t, o) = (&r.transition, &r.outcome);
            // A leased delivery is pending (the write above took only those).
            let ledger = &mut batch.ledger;
            ledger.blocks.delivery_moved(
                endpoint.0,
                r.delivery.0,
                DeliveryStatus::Pending,
                t.status,
            );
            ledger.endpoints.change(endpoint, r.change);
            let hour = (endpoint.0, hour_of(o.at), bucket(o.latency_ms) as i64);
            ledger.hours.add(hour, Tally::one(o.is_success()));
            for plan in &r.announce {
                write_plan(c, batch, plan)?;
            }
            out.recorded.push((r.index, Recorded::Applied(t.status)));
        }
        if let Some((reason, at)) = group.disable {
            deactivate(c, batch, endpoint, group.tenant, at, reason)?;
            out.disabled.push(endpoint);
        }
    }
    Ok(out)
}

impl Store {
    /// Each endpoint's state as committed (for planning results), those that exist.
    pub async fn endpoint_states(
        &self,
        ids: Vec<EndpointId>,
    ) -> Result<HashMap<EndpointId, EndpointState>, StoreError> {
        self.read(move |c| {
            let list: Vec<i64> = ids.iter().map(|id| id.0).collect();
            let rows = c.query(
                &format!(
                    "SELECT id, is_active, consecutive_failures FROM endpoints WHERE {}",
                    c.in_ids("id", 1)
                ),
                &vals![Conn::id_list(&list)],
                |r| {
                    let state = EndpointState {
                        is_active: r.get::<i64>(1)? != 0,
                        consecutive_failures: count(r.get(2)?),
                    };
                    Ok((EndpointId(r.get(0)?), state))
                },
            )?;
            Ok(rows.into_iter().collect())
        })
        .await
    }

    /// Writes results planned outside ([`crate::service::record`]) in one write, as far as
    /// what they were planned from still holds (see [`ResultsApplied`]).
    pub async fn apply_results(&self, plan: ResultsPlan) -> Result<ResultsApplied, StoreError> {
        self.writer
            .write_unguarded(move |c, batch| write_results(c, batch, plan))
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
            let (event_data, event_created_at, event_trace) = c.query_one(
                "SELECT data, created_at, traceparent, tracestate FROM events WHERE id = ?1",
                &vals![summary.event_id.0],
                |r| {
                    let trace = super::rows::trace(r.get(2)?, r.get(3)?)?;
                    Ok((r.get(0)?, r.get(1)?, trace))
                },
            )?;
            Ok(DeliveryDetail {
                summary,
                attempts,
                event_data,
                event_created_at,
                event_trace,
            })
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
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>, StoreError> {
        self.read(move |c| {
            load(c, tenant_id, endpoint_id)?;
            if filter.beyond_status() {
                return filtered_deliveries(c, endpoint_id, &filter, page);
            }
            let status = filter.status;
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

    /// Each tenant's queue: its pending deliveries (from the ledger) and when its oldest
    /// pending one was made (read per endpoint from the status index, oldest by id).
    pub async fn queues(&self) -> Result<Vec<TenantQueue>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT e.tenant_id,
                        CAST(sum(e.pending + coalesce((SELECT sum(k.pending) FROM endpoint_counts k
                                                       WHERE k.endpoint_id = e.id), 0)) AS BIGINT),
                        min((SELECT d.created_at FROM deliveries d
                             WHERE d.endpoint_id = e.id AND d.status = 0 ORDER BY d.id LIMIT 1))
                 FROM endpoints e GROUP BY e.tenant_id",
                &[],
                |r| {
                    Ok(TenantQueue {
                        tenant: TenantId(r.get(0)?),
                        pending: count(r.get(1)?),
                        oldest_created_at: r.get(2)?,
                    })
                },
            )
        })
        .await
    }

    /// How many deliveries are pending in the whole database (for shutdown logs and tests).
    pub async fn pending_total(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c.query_one(
                "SELECT CAST(coalesce((SELECT sum(pending) FROM endpoints), 0)
                     + coalesce((SELECT sum(pending) FROM endpoint_counts), 0) AS BIGINT)",
                &[],
                |r| r.get(0),
            )?;
            Ok(count(n))
        })
        .await
    }
}

#[cfg(test)]
mod tests;

/// An endpoint's deliveries narrowed by event type or time (and maybe status): the block
/// counts cover statuses only, so this list counts its matches, within the endpoint's log
/// (which retention bounds).
fn filtered_deliveries(
    c: &Conn<'_>,
    endpoint_id: EndpointId,
    filter: &DeliveryFilter,
    page: PageRequest,
) -> Result<Page<DeliverySummary>, StoreError> {
    const MATCHES: &str = "d.endpoint_id = ?1
        AND (CAST(?2 AS BIGINT) IS NULL OR d.status = CAST(?2 AS BIGINT))
        AND (CAST(?3 AS TEXT) IS NULL OR ev.type = CAST(?3 AS TEXT))
        AND (CAST(?4 AS BIGINT) IS NULL OR d.created_at >= CAST(?4 AS BIGINT))
        AND (CAST(?5 AS BIGINT) IS NULL OR d.created_at < CAST(?5 AS BIGINT))";
    let status = filter.status.map(|s| s.code());
    let event_type = filter.event_type.as_deref();
    let offset = page.offset();
    let params = vals![
        endpoint_id.0,
        status,
        event_type,
        filter.since,
        filter.until,
        page.size,
        offset
    ];
    let total: i64 = c.query_one(
        &format!(
            "SELECT CAST(count(*) AS BIGINT) FROM deliveries d JOIN events ev ON ev.id = d.event_id
             WHERE {MATCHES}"
        ),
        &params[..5], // the filter only: the count takes no page
        |r| r.get(0),
    )?;
    let rows = c.query(
        &format!("{SUMMARY_SELECT} WHERE {MATCHES} ORDER BY d.id DESC LIMIT ?6 OFFSET ?7"),
        &params,
        summary_row,
    )?;
    Ok(page.page(rows, count(total)))
}
