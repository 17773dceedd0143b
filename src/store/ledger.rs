//! The ledger: every derived count a write batch changes — the long lists' block counts
//! ([`BlockCounts`]), the endpoints' counters ([`EndpointCounts`]) and the tenants' daily usage
//! ([`DailyUsage`]) — gathered from the batch's operations and written by [`Ledger::write`]
//! alone, once, just before the commit.
//!
//! On PostgreSQL every process adds to rows of its own (`writer`, its process id): an
//! endpoint's counters in `endpoint_counts`, and its own rows of list blocks, hours and usage.
//! Reads add the rows up; [`fold_counts`] folds a gone process's rows into the shared ones. So
//! two processes' batches never wait on each other's counts; the one shared row a batch may
//! write is an endpoint's, when its run of failures changes, written first and by key. Each
//! change is relative (`n = n + k`), so batches that commit in any order leave the exact sum.
//! SQLite's one writer counts on the endpoints' rows and as writer 0.

use super::StoreError;
use super::paging::BlockCounts;
use super::rows::endpoint_counters;
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
    /// uses, and forgets them. `writer` is the PostgreSQL process whose rows of the endpoints'
    /// counters the batch adds to (`None` on SQLite: the endpoints' rows themselves).
    pub fn write(&mut self, c: &Conn<'_>, writer: Option<i64>) -> Result<(), StoreError> {
        self.endpoints.write(c, writer)?;
        // The shared counts' rows of this process (writer 0: SQLite's one writer).
        let writer = writer.unwrap_or(0);
        write_hours(c, &mut self.hours, writer)?;
        self.blocks.write(c, writer)?;
        write_usage(c, &mut self.usage, writer)
    }
}

/// Attempts per (endpoint, hour, latency bucket) as a batch records them.
pub(crate) type HourCounts = StagedCounts<(i64, i64, i64), Tally>;

/// Writes a batch's attempt counts per hour to `writer`'s rows, after the endpoints' counters,
/// in key order; counts of an endpoint deleted meanwhile are dropped with it.
fn write_hours(c: &Conn<'_>, hours: &mut HourCounts, writer: i64) -> Result<(), StoreError> {
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
        "INSERT INTO endpoint_hours (endpoint_id, hour, bucket, succeeded, failed, writer)
         SELECT CAST(x.value ->> 0 AS BIGINT), CAST(x.value ->> 1 AS BIGINT),
                CAST(x.value ->> 2 AS BIGINT), CAST(x.value ->> 3 AS BIGINT),
                CAST(x.value ->> 4 AS BIGINT), ?2
         FROM jsonb_array_elements(CAST(CAST(?1 AS TEXT) AS jsonb)) WITH ORDINALITY AS x(value, n)
         JOIN endpoints e ON e.id = CAST(x.value ->> 0 AS BIGINT)
         ORDER BY x.n
         ON CONFLICT (endpoint_id, hour, bucket, writer) DO UPDATE SET
             succeeded = endpoint_hours.succeeded + excluded.succeeded,
             failed = endpoint_hours.failed + excluded.failed"
    } else {
        "INSERT INTO endpoint_hours (endpoint_id, hour, bucket, succeeded, failed, writer)
         SELECT x.value ->> 0, x.value ->> 1, x.value ->> 2, x.value ->> 3, x.value ->> 4, ?2
         FROM json_each(?1) AS x
         JOIN endpoints e ON e.id = x.value ->> 0
         WHERE true
         ON CONFLICT (endpoint_id, hour, bucket, writer) DO UPDATE SET
             succeeded = endpoint_hours.succeeded + excluded.succeeded,
             failed = endpoint_hours.failed + excluded.failed"
    };
    c.execute(sql, &vals![rows, writer])?;
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

    fn write(&mut self, c: &Conn<'_>, writer: Option<i64>) -> Result<(), StoreError> {
        for (endpoint, k) in self.0.take_kept() {
            match writer {
                None => write_endpoint_row(c, endpoint, &k)?,
                Some(writer) => write_process_row(c, endpoint, writer, &k)?,
            }
        }
        Ok(())
    }
}

/// The streak's part of an endpoint's change, as the statements take it: whether it sets the
/// run of failures (1) or adds to it (2), or leaves it (0); and the failures.
fn streak_of(k: &EndpointChange) -> (i64, i64) {
    match k.streak {
        None => (0, 0),
        Some(s) if s.reset => (1, s.failures as i64),
        Some(s) => (2, s.failures as i64),
    }
}

/// The latest result's part of an endpoint's change: when, its status, its response code.
fn last_of(k: &EndpointChange) -> (Option<i64>, Option<&'static str>, Option<u16>) {
    match k.last {
        Some((at, status, code)) => (Some(at), Some(status), code),
        None => (None, None, None),
    }
}

/// Adds an endpoint's change to its own row (SQLite: one writer, so nothing waits on it).
fn write_endpoint_row(
    c: &Conn<'_>,
    endpoint: EndpointId,
    k: &EndpointChange,
) -> Result<(), StoreError> {
    let (reset, failures) = streak_of(k);
    let (at, status, code) = last_of(k);
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
            failures,
            at,
            status,
            code
        ],
    )?;
    Ok(())
}

/// Adds an endpoint's change to this process's row of its counters (PostgreSQL): processes
/// recording results for the same endpoint then never wait on each other. The endpoint's own
/// row is written only when its run of failures changes (a success on an endpoint with no
/// failures matches no row, so it is not even locked); a row for an endpoint deleted meanwhile
/// is not made.
fn write_process_row(
    c: &Conn<'_>,
    endpoint: EndpointId,
    writer: i64,
    k: &EndpointChange,
) -> Result<(), StoreError> {
    let (at, status, code) = last_of(k);
    if k.succeeded != 0 || k.failed != 0 || k.pending != 0 || at.is_some() {
        c.execute(
            "INSERT INTO endpoint_counts (endpoint_id, writer, succeeded, failed, pending,
                 last_delivery_at, last_delivery_status, last_response_code)
             SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM endpoints WHERE id = ?1
             ON CONFLICT (endpoint_id, writer) DO UPDATE SET
                 succeeded = endpoint_counts.succeeded + excluded.succeeded,
                 failed = endpoint_counts.failed + excluded.failed,
                 pending = endpoint_counts.pending + excluded.pending,
                 last_response_code = CASE WHEN excluded.last_delivery_at IS NOT NULL
                     AND (endpoint_counts.last_delivery_at IS NULL
                          OR endpoint_counts.last_delivery_at <= excluded.last_delivery_at)
                     THEN excluded.last_response_code ELSE endpoint_counts.last_response_code END,
                 last_delivery_status = CASE WHEN excluded.last_delivery_at IS NOT NULL
                     AND (endpoint_counts.last_delivery_at IS NULL
                          OR endpoint_counts.last_delivery_at <= excluded.last_delivery_at)
                     THEN excluded.last_delivery_status
                     ELSE endpoint_counts.last_delivery_status END,
                 last_delivery_at = CASE WHEN excluded.last_delivery_at IS NOT NULL
                     AND (endpoint_counts.last_delivery_at IS NULL
                          OR endpoint_counts.last_delivery_at <= excluded.last_delivery_at)
                     THEN excluded.last_delivery_at ELSE endpoint_counts.last_delivery_at END",
            &vals![
                endpoint.0,
                writer,
                k.succeeded,
                k.failed,
                k.pending,
                at,
                status,
                code
            ],
        )?;
    }
    match streak_of(k) {
        (0, _) | (2, 0) => {}
        (1, failures) => {
            c.execute(
                "UPDATE endpoints SET consecutive_failures = ?2
                 WHERE id = ?1 AND consecutive_failures <> ?2",
                &vals![endpoint.0, failures],
            )?;
        }
        (_, failures) => {
            c.execute(
                "UPDATE endpoints SET consecutive_failures = consecutive_failures + ?2
                 WHERE id = ?1",
                &vals![endpoint.0, failures],
            )?;
        }
    }
    Ok(())
}

/// The counts with a row per writer, as (table, key columns, counted columns): a gone
/// process's rows fold into writer 0's.
const BY_WRITER: &[(&str, &str, &[&str])] = &[
    ("list_blocks", "list, owner, part, block", &["n"]),
    (
        "endpoint_hours",
        "endpoint_id, hour, bucket",
        &["succeeded", "failed"],
    ),
    ("tenant_usage", "tenant_id, day", &["events"]),
];

/// Folds the rows of processes that are gone into the rows they count for: the endpoints' own
/// (`endpoint_counts`), writer 0's (list blocks, hours, usage). Every count reads the same
/// before and after. On PostgreSQL the gone are those a beat noted (`hookd_gone_writers`),
/// so nothing is read when no process went; on SQLite, every row of a writer but 0 (only
/// `hookd copy` makes them, and folds them before its commit). Returns the rows folded.
pub(super) fn fold_counts(c: &Conn<'_>) -> Result<usize, StoreError> {
    let gone = if c.is_postgres() {
        let ids: Vec<i64> = c.query("SELECT id FROM hookd_gone_writers", &[], |r| r.get(0))?;
        if ids.is_empty() {
            return Ok(0);
        }
        Some(serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into()))
    } else {
        None
    };
    let mut folded = fold_endpoint_counts(c, gone.as_deref())?;
    for (table, keys, counted) in BY_WRITER {
        folded += fold_by_writer(c, gone.as_deref(), table, keys, counted)?;
    }
    if let Some(ids) = &gone {
        c.execute(
            &format!("DELETE FROM hookd_gone_writers WHERE id IN ({GONE})"),
            &vals![ids],
        )?;
    }
    Ok(folded)
}

/// The writers a PostgreSQL fold takes, from `?1` (a JSON array of their ids).
const GONE: &str =
    "SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb))";

/// Folds one table's rows of the `gone` writers (PostgreSQL, JSON ids; SQLite: every writer
/// but 0) into writer 0's.
fn fold_by_writer(
    c: &Conn<'_>,
    gone: Option<&str>,
    table: &str,
    keys: &str,
    counted: &[&str],
) -> Result<usize, StoreError> {
    let sums: Vec<String> = counted
        .iter()
        .map(|col| format!("CAST(sum({col}) AS BIGINT)"))
        .collect();
    let adds: Vec<String> = counted
        .iter()
        .map(|col| format!("{col} = {table}.{col} + excluded.{col}"))
        .collect();
    let (cols, sums, adds) = (counted.join(", "), sums.join(", "), adds.join(", "));
    if let Some(ids) = gone {
        // The rows deleted are exactly the rows added (writer 0's are never among them).
        let moved = c.query(
            &format!(
                "WITH gone AS (
                     DELETE FROM {table} WHERE writer IN ({GONE}) RETURNING *
                 ), folded AS (
                     INSERT INTO {table} ({keys}, {cols}, writer)
                     SELECT {keys}, {sums}, 0 FROM gone GROUP BY {keys}
                     ON CONFLICT ({keys}, writer) DO UPDATE SET {adds}
                 )
                 SELECT count(*) FROM gone"
            ),
            &vals![ids],
            |r| r.get::<i64>(0),
        )?;
        return Ok(moved.iter().sum::<i64>() as usize);
    }
    c.execute(
        &format!(
            "INSERT INTO {table} ({keys}, {cols}, writer)
             SELECT {keys}, {sums}, 0 FROM {table} WHERE writer <> 0 GROUP BY {keys}
             ON CONFLICT ({keys}, writer) DO UPDATE SET {adds}"
        ),
        &[],
    )?;
    c.execute(&format!("DELETE FROM {table} WHERE writer <> 0"), &[])
}

/// Folds the endpoints' counter rows of gone processes into the endpoints' own rows.
fn fold_endpoint_counts(c: &Conn<'_>, gone: Option<&str>) -> Result<usize, StoreError> {
    if let Some(ids) = gone {
        // The rows deleted are exactly the rows added: a process still writing one makes the
        // delete wait for its commit (and its next write makes a new row).
        let folded = c.query(
            &format!(
                "WITH gone AS (
                 DELETE FROM endpoint_counts WHERE writer IN ({GONE}) RETURNING *
             ), sums AS (
                 SELECT endpoint_id, CAST(sum(succeeded) AS BIGINT) AS succeeded,
                        CAST(sum(failed) AS BIGINT) AS failed,
                        CAST(sum(pending) AS BIGINT) AS pending, count(*) AS n
                 FROM gone GROUP BY endpoint_id
             ), lasts AS (
                 SELECT DISTINCT ON (endpoint_id) endpoint_id, last_delivery_at,
                        last_delivery_status, last_response_code
                 FROM gone WHERE last_delivery_at IS NOT NULL
                 ORDER BY endpoint_id, last_delivery_at DESC
             )
             UPDATE endpoints e SET
                 succeeded = e.succeeded + s.succeeded, failed = e.failed + s.failed,
                 pending = e.pending + s.pending,
                 last_response_code = CASE WHEN l.last_delivery_at >= coalesce(e.last_delivery_at, -1)
                     THEN l.last_response_code ELSE e.last_response_code END,
                 last_delivery_status = CASE WHEN l.last_delivery_at >= coalesce(e.last_delivery_at, -1)
                     THEN l.last_delivery_status ELSE e.last_delivery_status END,
                 last_delivery_at = CASE WHEN l.last_delivery_at >= coalesce(e.last_delivery_at, -1)
                     THEN l.last_delivery_at ELSE e.last_delivery_at END
             FROM sums s LEFT JOIN lasts l ON l.endpoint_id = s.endpoint_id
             WHERE e.id = s.endpoint_id
             RETURNING s.n"
            ),
            &vals![ids],
            |r| r.get::<i64>(0),
        )?;
        return Ok(folded.iter().sum::<i64>() as usize);
    }
    // SQLite's one writer: the counters as they read, written to the endpoints' rows.
    c.execute(
        concat!(
            "UPDATE endpoints SET (succeeded, failed, pending, consecutive_failures,
                 last_delivery_at, last_delivery_status, last_response_code) = (SELECT ",
            endpoint_counters!(),
            ") WHERE id IN (SELECT endpoint_id FROM endpoint_counts)"
        ),
        &[],
    )?;
    c.execute("DELETE FROM endpoint_counts", &[])
}
