//! Reading an endpoint's attempts over time (`endpoint_hours`, counted by the ledger), and
//! forgetting the hours no chart shows.

use std::collections::BTreeMap;

use crate::db::sql::vals;

use super::endpoints::load;
use super::{Store, StoreError, tenants::tenant_exists};
use crate::model::series::{HOURS_KEPT, Point, Tally, Window, hour_of, series};
use crate::model::{EndpointId, TenantId, UnixMs};

/// Rows as the series reads them: endpoint, hour, bucket, tally.
type HourRow = (i64, i64, usize, Tally);

fn hour_row(r: &crate::db::sql::Row<'_>) -> Result<HourRow, StoreError> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        usize::try_from(r.get::<i64>(2)?).unwrap_or(usize::MAX),
        Tally {
            succeeded: r.get(3)?,
            failed: r.get(4)?,
        },
    ))
}

/// Folds rows of several endpoints into a series each.
fn per_endpoint(window: Window, now: UnixMs, rows: Vec<HourRow>) -> BTreeMap<i64, Vec<Point>> {
    let mut by: BTreeMap<i64, Vec<(i64, usize, Tally)>> = BTreeMap::new();
    for (endpoint, hour, b, tally) in rows {
        by.entry(endpoint).or_default().push((hour, b, tally));
    }
    by.into_iter()
        .map(|(e, rows)| (e, series(window, now, &rows)))
        .collect()
}

impl Store {
    /// One endpoint's attempts over `window` up to `now`: a point per step, oldest first.
    pub async fn endpoint_series(
        &self,
        tenant_id: TenantId,
        endpoint_id: EndpointId,
        window: Window,
        now: UnixMs,
    ) -> Result<Vec<Point>, StoreError> {
        self.read(move |c| {
            load(c, tenant_id, endpoint_id)?;
            let rows = c.query(
                "SELECT endpoint_id, hour, bucket, CAST(sum(succeeded) AS BIGINT),
                        CAST(sum(failed) AS BIGINT)
                 FROM endpoint_hours
                 WHERE endpoint_id = ?1 AND hour >= ?2
                 GROUP BY endpoint_id, hour, bucket",
                &vals![endpoint_id.0, window.first_hour(now)],
                hour_row,
            )?;
            let mut all = per_endpoint(window, now, rows);
            Ok(all
                .remove(&endpoint_id.0)
                .unwrap_or_else(|| series(window, now, &[])))
        })
        .await
    }

    /// Every endpoint of a tenant with its attempts over `window` (one read for a list of
    /// sparklines); endpoints without attempts have a series of empty points.
    pub async fn tenant_series(
        &self,
        tenant_id: TenantId,
        window: Window,
        now: UnixMs,
    ) -> Result<Vec<(EndpointId, Vec<Point>)>, StoreError> {
        self.read(move |c| {
            if !tenant_exists(c, tenant_id)? {
                return Err(StoreError::NotFound);
            }
            let endpoints: Vec<i64> = c.query(
                "SELECT id FROM endpoints WHERE tenant_id = ?1 ORDER BY id",
                &vals![tenant_id.0],
                |r| r.get(0),
            )?;
            let rows = c.query(
                "SELECT h.endpoint_id, h.hour, h.bucket, CAST(sum(h.succeeded) AS BIGINT),
                        CAST(sum(h.failed) AS BIGINT)
                 FROM endpoints e JOIN endpoint_hours h ON h.endpoint_id = e.id
                 WHERE e.tenant_id = ?1 AND h.hour >= ?2
                 GROUP BY h.endpoint_id, h.hour, h.bucket",
                &vals![tenant_id.0, window.first_hour(now)],
                hour_row,
            )?;
            let mut all = per_endpoint(window, now, rows);
            Ok(endpoints
                .into_iter()
                .map(|e| {
                    let points = all.remove(&e).unwrap_or_else(|| series(window, now, &[]));
                    (EndpointId(e), points)
                })
                .collect())
        })
        .await
    }

    /// Deletes attempt counts of hours older than [`HOURS_KEPT`] before `now`; returns how
    /// many rows.
    pub async fn prune_old_hours(&self, now: UnixMs) -> Result<usize, StoreError> {
        let before = hour_of(now) - HOURS_KEPT;
        self.writer
            .write(move |c, _| {
                c.execute("DELETE FROM endpoint_hours WHERE hour < ?1", &vals![before])
            })
            .await
    }
}
