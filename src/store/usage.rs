//! Usage: the events each tenant published per UTC day (`tenant_usage`), counted in the commit
//! that publishes them so the count is exact across restarts, and checked against the plan
//! without counting rows.

use super::tenants::tenant_exists;
use crate::db::sql::{Conn, vals};

use super::{Store, StoreError, count};
use crate::model::counts::StagedCounts;
use crate::model::plan::Usage;
use crate::model::plan::utc_day;
use crate::model::{TenantId, UnixMs, now_ms};

/// Events published per (tenant, UTC day) by a batch's operations.
pub(crate) type DailyUsage = StagedCounts<(i64, i64)>;

/// How many endpoints a tenant has (integrations' included).
pub(super) fn endpoint_count(c: &Conn<'_>, tenant_id: TenantId) -> Result<u64, StoreError> {
    let n: i64 = c.query_one(
        "SELECT count(*) FROM endpoints WHERE tenant_id = ?1",
        &vals![tenant_id.0],
        |r| r.get(0),
    )?;
    Ok(count(n))
}

/// The events a tenant published on `day` (UTC days since the epoch), as committed.
pub(super) fn events_on(c: &Conn<'_>, tenant_id: TenantId, day: i64) -> Result<u64, StoreError> {
    // Each process's row of the day, added up.
    let n: Option<i64> = c.query_one(
        "SELECT CAST(sum(events) AS BIGINT) FROM tenant_usage WHERE tenant_id = ?1 AND day = ?2",
        &vals![tenant_id.0, day],
        |r| r.get(0),
    )?;
    Ok(count(n.unwrap_or(0)))
}

/// Writes a batch's counted events to `writer`'s rows, inside its transaction.
pub(super) fn write_usage(
    c: &Conn<'_>,
    usage: &mut DailyUsage,
    writer: i64,
) -> Result<(), StoreError> {
    for ((tenant, day), n) in usage.take_kept() {
        c.execute(
            "INSERT INTO tenant_usage (tenant_id, day, events, writer) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, day, writer)
             DO UPDATE SET events = tenant_usage.events + excluded.events",
            &vals![tenant, day, n, writer],
        )?;
    }
    Ok(())
}

/// Days of daily event counts kept (today's is the one plans use; older ones are history).
const USAGE_DAYS_KEPT: i64 = 90;

impl Store {
    /// Deletes daily event counts older than [`USAGE_DAYS_KEPT`] days before `now`'s day;
    /// returns how many.
    pub async fn prune_old_usage(&self, now: UnixMs) -> Result<usize, StoreError> {
        let before = utc_day(now) - USAGE_DAYS_KEPT;
        self.writer
            .write(move |c, _| c.execute("DELETE FROM tenant_usage WHERE day < ?1", &vals![before]))
            .await
    }

    /// A tenant's usage of what plans limit.
    pub async fn usage(&self, tenant_id: TenantId) -> Result<Usage, StoreError> {
        self.read(move |c| {
            if !tenant_exists(c, tenant_id)? {
                return Err(StoreError::NotFound);
            }
            Ok(Usage {
                endpoints: endpoint_count(c, tenant_id)?,
                events_today: events_on(c, tenant_id, utc_day(now_ms()))?,
            })
        })
        .await
    }
}
