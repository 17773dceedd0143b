//! Retention: deletes finished deliveries (their attempts go with them) and then events that
//! have no delivery left, oldest first, in small batches so the writer is never held long.
//! Row ids grow with creation time, so "older than" is found by a binary search on the id.

use std::collections::HashMap;

use super::ledger::Ledger;
use super::{Store, StoreError};
use crate::db::sql::Conn;
use crate::model::counts::EndpointChange;
use crate::model::delivery::Pruned;
use crate::model::{EndpointId, UnixMs};

/// Rows deleted per write operation.
const BATCH: i64 = 1000;

/// The first row id of `table` created at or after `t` (one past the last id when none),
/// by binary search over ids, whose order follows creation time.
fn first_id_since(c: &Conn<'_>, table: &str, t: UnixMs) -> Result<i64, StoreError> {
    let bounds = c.query_opt(&format!("SELECT min(id), max(id) FROM {table}"), &[], |r| {
        Ok((r.get::<Option<i64>>(0)?, r.get::<Option<i64>>(1)?))
    })?;
    let Some((Some(mut lo), Some(max))) = bounds else {
        return Ok(0);
    };
    let mut hi = max + 1;
    let probe = format!("SELECT created_at FROM {table} WHERE id >= ?1 ORDER BY id LIMIT 1");
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match c.query_opt(&probe, &[mid.into()], |r| r.get::<i64>(0))? {
            Some(at) if at < t => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

fn prune_batch(
    c: &Conn<'_>,
    ledger: &mut Ledger,
    succeeded_before: UnixMs,
    failed_before: UnixMs,
) -> Result<Pruned, StoreError> {
    let succeeded_cut = first_id_since(c, "deliveries", succeeded_before)?;
    let failed_cut = first_id_since(c, "deliveries", failed_before)?;
    let removed = c.query(
        "DELETE FROM deliveries WHERE id IN (
             SELECT id FROM deliveries
             WHERE id < ?3
               AND ((status = 1 AND id < ?1) OR (status = 2 AND id < ?2))
             ORDER BY id LIMIT ?4)
         RETURNING endpoint_id, status",
        &[
            succeeded_cut.into(),
            failed_cut.into(),
            succeeded_cut.max(failed_cut).into(),
            BATCH.into(),
        ],
        |r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)),
    )?;
    let mut per_endpoint: HashMap<i64, (i64, i64)> = HashMap::new();
    for (endpoint, status) in &removed {
        let entry = per_endpoint.entry(*endpoint).or_default();
        if *status == 1 {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for (endpoint, (succeeded, failed)) in per_endpoint {
        ledger.endpoints.change(
            EndpointId(endpoint),
            EndpointChange {
                succeeded: -succeeded,
                failed: -failed,
                ..EndpointChange::default()
            },
        );
    }
    let event_cut = first_id_since(c, "events", succeeded_before)?;
    let events = c.execute(
        "DELETE FROM events WHERE id IN (
             SELECT e.id FROM events e
             WHERE e.id < ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
             ORDER BY e.id LIMIT ?2)",
        &[event_cut.into(), BATCH.into()],
    )?;
    if removed.is_empty() && events == 0 {
        // The pass is done: drop the counts of blocks it (or earlier deletes) emptied.
        super::paging::forget_empty_blocks(c)?;
    }
    Ok(Pruned {
        deliveries: removed.len() as u64,
        events: events as u64,
    })
}

impl Store {
    /// Deletes one batch of succeeded deliveries created before `succeeded_before`, failed
    /// ones created before `failed_before`, and events before `succeeded_before` with no
    /// delivery left. Endpoint counters drop with the rows, so stats describe what is kept.
    pub async fn prune(
        &self,
        succeeded_before: UnixMs,
        failed_before: UnixMs,
    ) -> Result<Pruned, StoreError> {
        self.writer
            .write(move |c, batch| {
                prune_batch(c, &mut batch.ledger, succeeded_before, failed_before)
            })
            .await
    }
}
