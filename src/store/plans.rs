//! Plans: each tenant's feature switches and limits, columns of `tenants`.

use crate::db::sql::{Conn, Row, vals};

use super::{Store, StoreError, count};
use crate::model::TenantId;
use crate::model::plan::{Features, Limits, Plan, PlanPatch};

/// The plan columns of `tenants`, in the order [`plan_row`] reads them.
pub(super) const PLAN_COLUMNS: &str = "feature_incoming, feature_integrations, feature_schedules,
    limit_endpoints, limit_events_per_day";

/// Reads a plan from [`PLAN_COLUMNS`] starting at column `at`.
pub(super) fn plan_row(r: &Row<'_>, at: usize) -> Result<Plan, StoreError> {
    let limit = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(r.get::<Option<i64>>(at + i)?.map(count))
    };
    Ok(Plan {
        features: Features {
            incoming: r.get::<i64>(at)? != 0,
            integrations: r.get::<i64>(at + 1)? != 0,
            schedules: r.get::<i64>(at + 2)? != 0,
        },
        limits: Limits {
            endpoints: limit(3)?,
            events_per_day: limit(4)?,
        },
    })
}

/// A tenant's plan; `NotFound` when there is no such tenant.
pub(super) fn read_plan(c: &Conn<'_>, tenant_id: TenantId) -> Result<Plan, StoreError> {
    c.query_opt(
        &format!("SELECT {PLAN_COLUMNS} FROM tenants WHERE id = ?1"),
        &vals![tenant_id.0],
        |r| plan_row(r, 0),
    )?
    .ok_or(StoreError::NotFound)
}

impl Store {
    /// A tenant's plan.
    pub async fn plan(&self, tenant_id: TenantId) -> Result<Plan, StoreError> {
        self.read(move |c| read_plan(c, tenant_id)).await
    }

    /// Changes a tenant's plan; answers the plan as it now is.
    pub async fn set_plan(
        &self,
        tenant_id: TenantId,
        patch: PlanPatch,
    ) -> Result<Plan, StoreError> {
        self.writer
            .write(move |c, batch| {
                let plan = patch.apply(read_plan(c, tenant_id)?);
                let f = plan.features;
                let l = plan.limits;
                let limit = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
                batch.subscribers.forget(c, tenant_id)?;
                c.execute(
                    "UPDATE tenants SET feature_incoming = ?2, feature_integrations = ?3,
                        feature_schedules = ?4, limit_endpoints = ?5, limit_events_per_day = ?6
                     WHERE id = ?1",
                    &vals![
                        tenant_id.0,
                        i64::from(f.incoming),
                        i64::from(f.integrations),
                        i64::from(f.schedules),
                        limit(l.endpoints),
                        limit(l.events_per_day)
                    ],
                )?;
                Ok(plan)
            })
            .await
    }
}
