//! Schedules: their rows, and which are due. Their runs are in `runs.rs`.

use crate::db::sql::{Conn, Row, vals};

use super::endpoints::insert as insert_endpoint;
use super::rows::{corrupt, patterns};
use super::{Store, StoreError, count};
use crate::model::endpoint::NewEndpoint;
use crate::model::schedule::SchedulePatch;
use crate::model::schedule::{
    DigestFormat, Schedule, ScheduleKind, ScheduleSpec, ScheduleStatus, ScheduleTarget,
};
use crate::model::timing::{CronSpec, parse_zone};
use crate::model::{EndpointId, Page, PageRequest, ScheduleId, TenantId, UnixMs, now_ms};

/// The columns [`schedule_row`] reads.
pub(super) const COLUMNS: &str = "id, tenant_id, schedule_type, cron_expression, trigger_status, \
     scheduled_at, timezone, format, endpoint_id, event_types, include_changelog, \
     custom_subject, custom_message, status, next_run_at, last_run_at, created_at, updated_at, \
     recipients, last_event_id";

/// Reads one schedule row selected with [`COLUMNS`].
pub(super) fn schedule_row(r: &Row<'_>) -> Result<Schedule, StoreError> {
    let kind: String = r.get(2)?;
    let kind = match kind.as_str() {
        "weekly_digest" => ScheduleKind::WeeklyDigest,
        "on_status_change" => ScheduleKind::OnStatusChange(r.get(4)?),
        "custom_cron" => {
            let expr: String = r.get(3)?;
            let spec = CronSpec::parse(&expr).map_err(|_| corrupt("cron"))?;
            ScheduleKind::CustomCron(expr, spec)
        }
        "one_time" => ScheduleKind::OneTime(r.get(5)?),
        _ => return Err(corrupt("schedule_type")),
    };
    let zone: String = r.get(6)?;
    let format: String = r.get(7)?;
    let event_types: Option<String> = r.get(9)?;
    let event_types = match event_types {
        Some(json) => {
            Some(patterns(&json, "schedules.event_types").map_err(|_| corrupt("event_types"))?)
        }
        None => None,
    };
    Ok(Schedule {
        id: ScheduleId(r.get(0)?),
        tenant_id: TenantId(r.get(1)?),
        spec: ScheduleSpec {
            kind,
            timezone: parse_zone(&zone).map_err(|_| corrupt("timezone"))?,
            format: DigestFormat::parse(&format).map_err(|_| corrupt("format"))?,
            target: match r.get::<Option<i64>>(8)? {
                Some(id) => ScheduleTarget::Endpoint(EndpointId(id)),
                None => {
                    let json: String = r.get(18)?;
                    ScheduleTarget::Email(
                        serde_json::from_str(&json).map_err(|_| corrupt("recipients"))?,
                    )
                }
            },
            event_types,
            include_changelog: r.get::<i64>(10)? != 0,
            custom_subject: r.get(11)?,
            custom_message: r.get(12)?,
        },
        status: ScheduleStatus::parse(&r.get::<String>(13)?)
            .ok_or_else(|| corrupt("schedules.status"))?,
        next_run_at: r.get(14)?,
        last_run_at: r.get(15)?,
        last_event_id: r.get(19)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

/// Loads one schedule of a tenant, inside a read or a write.
pub(super) fn load(
    c: &Conn<'_>,
    tenant_id: TenantId,
    id: ScheduleId,
) -> Result<Schedule, StoreError> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1 AND tenant_id = ?2"),
        &vals![id.0, tenant_id.0],
        schedule_row,
    )?
    .ok_or(StoreError::NotFound)
}

fn endpoint_is_tenants(
    c: &Conn<'_>,
    tenant_id: TenantId,
    target: &ScheduleTarget,
) -> Result<(), StoreError> {
    let Some(id) = target.endpoint() else {
        return Ok(());
    };
    let owned = c.exists(
        "SELECT 1 FROM endpoints WHERE id = ?1 AND tenant_id = ?2",
        &vals![id.0, tenant_id.0],
    )?;
    if owned {
        Ok(())
    } else {
        Err(StoreError::Missing(format!(
            "endpointId {id}: no such endpoint in this tenant"
        )))
    }
}

/// Writes a spec's columns into the row `id`.
fn write_spec(
    c: &Conn<'_>,
    id: i64,
    spec: &ScheduleSpec,
    next: Option<UnixMs>,
    now: UnixMs,
) -> Result<(), StoreError> {
    let (cron, status, at) = match &spec.kind {
        ScheduleKind::CustomCron(expr, _) => (Some(expr.as_str()), None, None),
        ScheduleKind::OnStatusChange(s) => (None, Some(s.as_str()), None),
        ScheduleKind::OneTime(at) => (None, None, Some(*at)),
        ScheduleKind::WeeklyDigest => (None, None, None),
    };
    let event_types = spec.event_types.as_ref().map(|p| {
        serde_json::to_string(&p.iter().map(ToString::to_string).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into())
    });
    c.execute(
        "UPDATE schedules SET schedule_type = ?2, cron_expression = ?3, trigger_status = ?4,
            scheduled_at = ?5, timezone = ?6, format = ?7, endpoint_id = ?8, event_types = ?9,
            include_changelog = ?10, custom_subject = ?11, custom_message = ?12,
            next_run_at = ?13, updated_at = ?14, recipients = ?15, delivery_method = ?16
         WHERE id = ?1",
        &vals![
            id,
            spec.kind.as_str(),
            cron,
            status,
            at,
            spec.timezone.name(),
            spec.format.as_str(),
            spec.target.endpoint().map(|e| e.0),
            event_types,
            spec.include_changelog,
            spec.custom_subject,
            spec.custom_message,
            next,
            now,
            match &spec.target {
                ScheduleTarget::Email(to) => serde_json::to_string(to).ok(),
                ScheduleTarget::Endpoint(_) => None,
            },
            match spec.target {
                ScheduleTarget::Email(_) => "email",
                ScheduleTarget::Endpoint(_) => "webhook",
            },
        ],
    )?;
    Ok(())
}

/// The newest event id of a tenant, through the `(tenant_id, id)` index.
pub(super) fn newest_event(c: &Conn<'_>, tenant_id: TenantId) -> Result<i64, StoreError> {
    c.query_one(
        "SELECT coalesce(max(id), 0) FROM events WHERE tenant_id = ?1",
        &vals![tenant_id.0],
        |r| r.get(0),
    )
}

impl Store {
    /// Creates a schedule; its first fire time is computed from now. With `endpoint`, the
    /// schedule's own endpoint (an ad-hoc `webhookUrl`) is created in the same write and the
    /// schedule targets it.
    pub async fn create_schedule(
        &self,
        tenant_id: TenantId,
        spec: ScheduleSpec,
        endpoint: Option<NewEndpoint>,
    ) -> Result<Schedule, StoreError> {
        self.writer
            .write(move |c, batch| {
                // A status-triggered schedule is part of what publishes are planned from.
                batch.subscribers.forget(c, tenant_id)?;
                let mut spec = spec;
                if let Some(new) = &endpoint {
                    let id = insert_endpoint(c, batch, tenant_id, new)?;
                    spec.target = ScheduleTarget::Endpoint(id);
                }
                endpoint_is_tenants(c, tenant_id, &spec.target)?;
                let now = now_ms();
                let id = c.insert(
                    "INSERT INTO schedules (tenant_id, schedule_type, timezone, format,
                        delivery_method, status, created_at, updated_at, last_event_id)
                     VALUES (?1, ?2, ?3, ?4, 'webhook', ?5, ?6, ?6, ?7)",
                    &vals![
                        tenant_id.0,
                        spec.kind.as_str(),
                        spec.timezone.name(),
                        spec.format.as_str(),
                        ScheduleStatus::Active.as_str(),
                        now,
                        newest_event(c, tenant_id)?
                    ],
                )?;
                write_spec(c, id, &spec, spec.next_run(now), now)?;
                load(c, tenant_id, ScheduleId(id))
            })
            .await
    }

    /// One schedule.
    pub async fn get_schedule(
        &self,
        tenant_id: TenantId,
        id: ScheduleId,
    ) -> Result<Schedule, StoreError> {
        self.read(move |c| load(c, tenant_id, id)).await
    }

    /// One page of a tenant's schedules, optionally those of one endpoint.
    pub async fn list_schedules(
        &self,
        tenant_id: TenantId,
        endpoint: Option<EndpointId>,
        page: PageRequest,
    ) -> Result<Page<Schedule>, StoreError> {
        self.read(move |c| {
            let endpoint = endpoint.map(|e| e.0);
            let total: i64 = c.query_one("SELECT count(*) FROM schedules WHERE tenant_id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR endpoint_id = ?2)", &vals![tenant_id.0, endpoint], |r| r.get(0))?;
            let rows = c
                .query(&format!(
                    "SELECT {COLUMNS} FROM schedules WHERE tenant_id = ?1
                       AND (CAST(?2 AS BIGINT) IS NULL OR endpoint_id = ?2)
                     ORDER BY id LIMIT ?3 OFFSET ?4"
                ), &vals![tenant_id.0, endpoint, page.size, page.offset()], schedule_row)?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }

    /// Changes a schedule and recomputes its next fire time.
    pub async fn update_schedule(
        &self,
        tenant_id: TenantId,
        id: ScheduleId,
        patch: SchedulePatch,
    ) -> Result<Schedule, StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.scrub = true;
                batch.subscribers.forget(c, tenant_id)?;
                let before = load(c, tenant_id, id)?;
                let mut spec = before.spec.clone();
                patch(&mut spec).map_err(StoreError::Invalid)?;
                endpoint_is_tenants(c, tenant_id, &spec.target)?;
                let now = now_ms();
                let next = if before.status == ScheduleStatus::Completed {
                    None
                } else {
                    spec.next_run(now)
                };
                write_spec(c, id.0, &spec, next, now)?;
                load(c, tenant_id, id)
            })
            .await
    }

    /// Deletes a schedule with its runs.
    pub async fn delete_schedule(
        &self,
        tenant_id: TenantId,
        id: ScheduleId,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.scrub = true;
                batch.subscribers.forget(c, tenant_id)?;
                match c.execute(
                    "DELETE FROM schedules WHERE id = ?1 AND tenant_id = ?2",
                    &vals![id.0, tenant_id.0],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    /// Schedules due at `now` (at most `limit`, earliest first), of tenants whose plan has
    /// schedules on (a tenant's due schedules wait while it is off).
    pub async fn due_schedules(
        &self,
        now: UnixMs,
        limit: usize,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.read(move |c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM schedules
                 WHERE next_run_at IS NOT NULL AND next_run_at <= ?1 AND status = ?2
                   AND tenant_id IN (SELECT id FROM tenants WHERE feature_schedules = 1)
                 ORDER BY next_run_at LIMIT ?3"
                ),
                &vals![now, ScheduleStatus::Active.as_str(), limit as i64],
                schedule_row,
            )
        })
        .await
    }
}
