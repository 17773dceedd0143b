//! Deliveries: the fenced recording of each attempt's outcome, and the delivery log. (The
//! claim that leases due rows to workers is `claims`.)

use std::collections::HashMap;

use super::sql::{Conn, vals};

use super::claims::Claim;
use super::endpoints::{deactivate, load};
use super::paging::{self, List};
use super::publish::announce;
use super::rows::{SUMMARY_SELECT, corrupt, replay_of, summary_row};
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::attempt::{AttemptFacts, AttemptRule, EndpointState, Transition};
use crate::model::counts::EndpointChange;
use crate::model::delivery::DeliveryFacts;
use crate::model::series::{Tally, bucket, hour_of};
use crate::model::{
    AttemptOutcome, AttemptRecord, DeliveryDetail, DeliveryFilter, DeliveryId, DeliveryStatus,
    DeliverySummary, EndpointId, EventId, Page, PageRequest, TenantId,
};
use crate::report::ErrorChain;

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The attempt was recorded; the delivery now has this status.
    Applied(DeliveryStatus),
    /// The lease had passed to another attempt (or the delivery finished): nothing written.
    Stale,
}

/// A pending delivery's lease, endpoint and facts, with its endpoint's state as committed.
type Leased = (i64, EndpointId, DeliveryFacts, EndpointState);

/// The pending deliveries among `ids`, each with its lease, facts and endpoint's state, read
/// in one statement (one round trip on PostgreSQL for a whole batch of results).
fn leased_facts(c: &Conn<'_>, ids: &[i64]) -> Result<HashMap<DeliveryId, Leased>, StoreError> {
    let list = Conn::id_list(ids);
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
    batch.ledger.endpoints.change(
        endpoint.id,
        EndpointChange::of_result(state.consecutive_failures, &t, outcome),
    );
    let at = (
        endpoint.id.0,
        hour_of(outcome.at),
        bucket(outcome.latency_ms) as i64,
    );
    batch.ledger.hours.add(at, Tally::one(outcome.is_success()));
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

impl Store {
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
            let (event_data, event_created_at) = c.query_one(
                "SELECT data, created_at FROM events WHERE id = ?1",
                &vals![summary.event_id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(DeliveryDetail {
                summary,
                attempts,
                event_data,
                event_created_at,
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
