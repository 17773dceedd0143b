//! The ledger: every derived count a write batch changes — the long lists' block counts
//! ([`BlockCounts`]), the endpoints' counters ([`EndpointCounts`]) and the tenants' daily usage
//! ([`DailyUsage`]) — gathered from the batch's operations and written by [`Ledger::write`]
//! alone, once, just before the commit.
//!
//! These rows are shared: every process's batches change the same endpoint and the same
//! tenant's counts. Written last, in one order (endpoints, then blocks, then usage, each by
//! key), they are held only from the end of a batch to its commit, and two processes' batches
//! never wait on each other in a cycle. Each change is relative (`n = n + k`), so batches that
//! commit in any order leave the exact sum.

use super::StoreError;
use super::paging::BlockCounts;
use super::usage::{DailyUsage, write_usage};
use crate::db::sql::{Conn, vals};
use crate::model::EndpointId;
use crate::model::counts::{EndpointChange, StagedCounts};
use crate::model::series::Tally;

/// What a batch changes in `list_blocks`, `endpoints` and `tenant_usage`.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The long lists' block counts.
    pub blocks: BlockCounts,
    /// The endpoints' delivery counters.
    pub endpoints: EndpointCounts,
    /// Attempts per endpoint, hour and latency bucket.
    pub hours: HourCounts,
    /// Events published per tenant and day.
    pub usage: DailyUsage,
}

impl Ledger {
    /// The operation that staged the latest changes succeeded: keep them for the commit.
    pub fn keep_staged(&mut self) {
        self.blocks.keep_staged();
        self.endpoints.0.keep_staged();
        self.hours.keep_staged();
        self.usage.keep_staged();
    }

    /// The operation that staged the latest changes was undone: forget them.
    pub fn drop_staged(&mut self) {
        self.blocks.drop_staged();
        self.endpoints.0.drop_staged();
        self.hours.drop_staged();
        self.usage.drop_staged();
    }

    /// Writes the kept changes, inside the batch's transaction, in the one order every batch
    /// uses, and forgets them.
    pub fn write(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        self.endpoints.write(c)?;
        write_hours(c, &mut self.hours)?;
        self.blocks.write(c)?;
        write_usage(c, &mut self.usage)
    }
}

/// Attempts per (endpoint, hour, latency bucket) as a batch records them.
pub(crate) type HourCounts = StagedCounts<(i64, i64, i64), Tally>;

/// Writes a batch's attempt counts per hour, after the endpoints' counters (so each
/// endpoint's row is held first, as every batch holds it), in key order; counts of an endpoint
/// deleted meanwhile are dropped with it.
fn write_hours(c: &Conn<'_>, hours: &mut HourCounts) -> Result<(), StoreError> {
    let kept = hours.take_kept();
    if kept.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = kept
        .iter()
        .map(|((e, h, b), t)| serde_json::json!([e, h, b, t.succeeded, t.failed]))
        .collect();
    let rows = serde_json::Value::Array(rows).to_string();
    let sql = if c.is_postgres() {
        "INSERT INTO endpoint_hours (endpoint_id, hour, bucket, succeeded, failed)
         SELECT CAST(x.value ->> 0 AS BIGINT), CAST(x.value ->> 1 AS BIGINT),
                CAST(x.value ->> 2 AS BIGINT), CAST(x.value ->> 3 AS BIGINT),
                CAST(x.value ->> 4 AS BIGINT)
         FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) WITH ORDINALITY AS x(value, n)
         JOIN endpoints e ON e.id = CAST(x.value ->> 0 AS BIGINT)
         ORDER BY x.n
         ON CONFLICT (endpoint_id, hour, bucket) DO UPDATE SET
             succeeded = endpoint_hours.succeeded + excluded.succeeded,
             failed = endpoint_hours.failed + excluded.failed"
    } else {
        "INSERT INTO endpoint_hours (endpoint_id, hour, bucket, succeeded, failed)
         SELECT x.value ->> 0, x.value ->> 1, x.value ->> 2, x.value ->> 3, x.value ->> 4
         FROM json_each(?1) AS x
         JOIN endpoints e ON e.id = x.value ->> 0
         WHERE true
         ON CONFLICT (endpoint_id, hour, bucket) DO UPDATE SET
             succeeded = endpoint_hours.succeeded + excluded.succeeded,
             failed = endpoint_hours.failed + excluded.failed"
    };
    c.execute(sql, &vals![rows])?;
    Ok(())
}

/// The endpoints' counters (`succeeded`, `failed`, `pending`, `consecutive_failures` and the
/// latest result) as a batch changes them.
#[derive(Debug, Default)]
pub(crate) struct EndpointCounts(StagedCounts<EndpointId, EndpointChange>);

impl EndpointCounts {
    /// Folds `change` into the endpoint's.
    pub fn change(&mut self, endpoint: EndpointId, change: EndpointChange) {
        self.0.add(endpoint, change);
    }

    /// `n` deliveries were added to the endpoint, pending.
    pub fn pending_added(&mut self, endpoint: EndpointId, n: i64) {
        self.change(
            endpoint,
            EndpointChange {
                pending: n,
                ..EndpointChange::default()
            },
        );
    }

    /// The endpoint's run of consecutive failures as this batch leaves it, from the run
    /// `committed` before it.
    pub fn consecutive_failures(&self, endpoint: EndpointId, committed: u64) -> u64 {
        self.0
            .peek(&endpoint)
            .and_then(|c| c.streak)
            .map_or(committed, |s| s.after(committed))
    }

    fn write(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        for (endpoint, k) in self.0.take_kept() {
            let (reset, failures) = match k.streak {
                None => (0, 0),
                Some(s) if s.reset => (1, s.failures),
                Some(s) => (2, s.failures),
            };
            let (at, status, code) = match k.last {
                Some((at, status, code)) => (Some(at), Some(status), code),
                None => (None, None, None),
            };
            c.execute(
                "UPDATE endpoints SET
                    succeeded = succeeded + ?2, failed = failed + ?3, pending = pending + ?4,
                    consecutive_failures = CASE CAST(?5 AS BIGINT)
                        WHEN 1 THEN CAST(?6 AS BIGINT)
                        WHEN 2 THEN consecutive_failures + CAST(?6 AS BIGINT)
                        ELSE consecutive_failures END,
                    last_response_code = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?9 AS BIGINT) ELSE last_response_code END,
                    last_delivery_status = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?8 AS TEXT) ELSE last_delivery_status END,
                    last_delivery_at = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?7 AS BIGINT) ELSE last_delivery_at END
                 WHERE id = ?1",
                &vals![
                    endpoint.0,
                    k.succeeded,
                    k.failed,
                    k.pending,
                    reset,
                    failures as i64,
                    at,
                    status,
                    code
                ],
            )?;
        }
        Ok(())
    }
}
