//! Schedules and their runs. A run is written in the same transaction as the digest event it
//! publishes and the schedule's next fire time, so a crash or a restart neither skips nor
//! doubles a run (a run row is unique per schedule and slot).

use rusqlite::{Connection, OptionalExtension, params};

use super::publish::{NewEvent, publish_in};
use super::rows::corrupt;
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::fanout::Fanout;
use crate::model::schedule::{
    DIGEST_EVENT, DigestFormat, Schedule, ScheduleKind, ScheduleRun, ScheduleSpec, ScheduleTarget,
};
use crate::model::timing::{CronSpec, parse_zone};
use crate::model::{
    DeliveryId, EndpointId, EventId, EventName, EventPattern, Page, PageRequest, RunId, ScheduleId,
    TenantId, UnixMs, now_ms, rfc3339,
};
use crate::render::{Digest, digest};

/// Most events listed in one digest (all are counted).
const DIGEST_EVENTS: i64 = 100;
/// Most schedules fired in one write.
const FIRE_BATCH: i64 = 20;

/// A change to a schedule, applied inside the write.
pub type SchedulePatch = Box<dyn FnOnce(&mut ScheduleSpec) -> Result<(), String> + Send>;

const COLUMNS: &str = "id, tenant_id, schedule_type, cron_expression, trigger_status, \
     scheduled_at, timezone, format, endpoint_id, event_types, include_changelog, \
     custom_subject, custom_message, status, next_run_at, last_run_at, created_at, updated_at, \
     recipients";

fn schedule_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Schedule> {
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
        Some(json) => Some(
            serde_json::from_str::<Vec<String>>(&json)
                .map_err(|_| corrupt("event_types"))?
                .iter()
                .map(|p| EventPattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| corrupt("event_types"))?,
        ),
        None => None,
    };
    Ok(Schedule {
        id: ScheduleId(r.get(0)?),
        tenant_id: TenantId(r.get(1)?),
        spec: ScheduleSpec {
            kind,
            timezone: parse_zone(&zone).map_err(|_| corrupt("timezone"))?,
            format: DigestFormat::parse(&format).map_err(|_| corrupt("format"))?,
            target: match r.get::<_, Option<i64>>(8)? {
                Some(id) => ScheduleTarget::Endpoint(EndpointId(id)),
                None => {
                    let json: String = r.get(18)?;
                    ScheduleTarget::Email(
                        serde_json::from_str(&json).map_err(|_| corrupt("recipients"))?,
                    )
                }
            },
            event_types,
            include_changelog: r.get::<_, i64>(10)? != 0,
            custom_subject: r.get(11)?,
            custom_message: r.get(12)?,
        },
        status: r.get(13)?,
        next_run_at: r.get(14)?,
        last_run_at: r.get(15)?,
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
    })
}

fn load(c: &Connection, tenant_id: TenantId, id: ScheduleId) -> Result<Schedule, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM schedules WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row(params![id.0, tenant_id.0], schedule_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

fn endpoint_is_tenants(
    c: &Connection,
    tenant_id: TenantId,
    target: &ScheduleTarget,
) -> Result<(), StoreError> {
    let Some(id) = target.endpoint() else {
        return Ok(());
    };
    let owned = c
        .prepare_cached("SELECT 1 FROM endpoints WHERE id = ?1 AND tenant_id = ?2")?
        .exists(params![id.0, tenant_id.0])?;
    if owned {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "endpointId {id} is not an endpoint of this tenant"
        )))
    }
}

/// Writes a spec's columns into the row `id`.
fn write_spec(
    c: &Connection,
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
    c.prepare_cached(
        "UPDATE schedules SET schedule_type = ?2, cron_expression = ?3, trigger_status = ?4,
            scheduled_at = ?5, timezone = ?6, format = ?7, endpoint_id = ?8, event_types = ?9,
            include_changelog = ?10, custom_subject = ?11, custom_message = ?12,
            next_run_at = ?13, updated_at = ?14, recipients = ?15, delivery_method = ?16
         WHERE id = ?1",
    )?
    .execute(params![
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
    ])?;
    Ok(())
}

/// Runs a schedule now for `slot` inside the caller's write: renders the digest of the
/// period since its last run and publishes it to the schedule's endpoint only. Returns the run,
/// or `None` when this slot has already run.
fn run_in(
    c: &Connection,
    batch: &mut Batch,
    schedule: &Schedule,
    slot: i64,
    now: UnixMs,
) -> Result<Option<RunId>, StoreError> {
    let period_start = schedule.last_run_at.unwrap_or(schedule.created_at);
    let spec = &schedule.spec;
    let inserted = c
        .prepare_cached(
            "INSERT INTO schedule_runs (schedule_id, slot, status, started_at, period_start,
                period_end, event_count)
             VALUES (?1, ?2, 'running', ?3, ?4, ?3, 0) ON CONFLICT DO NOTHING",
        )?
        .execute(params![schedule.id.0, slot, now, period_start])?;
    if inserted == 0 {
        return Ok(None);
    }
    let run_id = RunId(c.last_insert_rowid());
    // The next digest's period starts here, whatever this run's delivery comes to.
    c.prepare_cached("UPDATE schedules SET last_run_at = ?2 WHERE id = ?1")?
        .execute(params![schedule.id.0, now])?;
    let mut counts: Vec<(String, u64)> = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT type, count(*) FROM events
             WHERE tenant_id = ?1 AND created_at >= ?2 AND created_at < ?3
             GROUP BY type ORDER BY type",
        )?;
        let mut rows = stmt.query(params![schedule.tenant_id.0, period_start, now])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            if spec.covers(&name) {
                counts.push((name, count(row.get(1)?)));
            }
        }
    }
    let mut events = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT id, type, created_at, data FROM events
             WHERE tenant_id = ?1 AND created_at >= ?2 AND created_at < ?3
             ORDER BY id DESC",
        )?;
        let mut rows = stmt.query(params![schedule.tenant_id.0, period_start, now])?;
        while let Some(row) = rows.next()? {
            let name: String = row.get(1)?;
            if spec.covers(&name) {
                events.push((
                    EventId(row.get(0)?).to_string(),
                    name,
                    rfc3339(row.get(2)?),
                    row.get(3)?,
                ));
                if events.len() as i64 >= DIGEST_EVENTS {
                    break;
                }
            }
        }
    }
    let event_count: u64 = counts.iter().map(|(_, n)| n).sum();
    let document = Digest {
        subject: subject_of(spec),
        message: spec.custom_message.clone(),
        period: (rfc3339(period_start), rfc3339(now)),
        counts,
        events,
        include_changelog: spec.include_changelog,
    };
    let endpoint = match &spec.target {
        ScheduleTarget::Endpoint(id) => *id,
        ScheduleTarget::Email(_) => {
            // Email goes out from the mailer, outside this transaction: the run keeps the
            // document, and the mailer's attempts (retried like deliveries) finish it.
            let bytes = document_bytes(spec.format, &document)?;
            c.prepare_cached(
                "UPDATE schedule_runs SET status = 'sending', event_count = ?2, subject = ?3,
                    document = ?4, next_attempt_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![
                run_id.0,
                event_count as i64,
                subject_of(spec),
                bytes,
                now
            ])?;
            return Ok(Some(run_id));
        }
    };
    let data = serde_json::json!({
        "scheduleId": schedule.id,
        "runId": run_id,
        "periodStart": rfc3339(period_start),
        "periodEnd": rfc3339(now),
        "eventCount": event_count,
        "format": spec.format.as_str(),
        "content": digest(spec.format, &document).map_err(StoreError::Render)?,
    });
    let event = NewEvent {
        name: EventName::parse(DIGEST_EVENT).map_err(StoreError::invalid_name)?,
        data: data.to_string(),
        idempotency_key: None,
    };
    let published = publish_in(
        c,
        batch,
        schedule.tenant_id,
        &[event],
        Fanout::Only(endpoint),
    )?;
    let event_id = published.first().map(|p| p.id.0);
    let delivery: Option<i64> = match event_id {
        Some(e) => c
            .prepare_cached("SELECT id FROM deliveries WHERE event_id = ?1")?
            .query_row([e], |r| r.get(0))
            .optional()?,
        None => None,
    };
    let (status, error) = match delivery {
        Some(_) => ("delivered", None),
        None => (
            "failed",
            Some(format!("endpoint {endpoint} is disabled or gone")),
        ),
    };
    c.prepare_cached(
        "UPDATE schedule_runs SET status = ?2, finished_at = ?3, event_count = ?4,
            delivery_id = ?5, error = ?6
         WHERE id = ?1",
    )?
    .execute(params![
        run_id.0,
        status,
        now,
        event_count as i64,
        delivery,
        error
    ])?;
    Ok(Some(run_id))
}

/// The subject of a schedule's digests.
fn subject_of(spec: &ScheduleSpec) -> String {
    spec.custom_subject
        .clone()
        .unwrap_or_else(|| "hookd digest".into())
}

/// The document as the bytes of an email attachment.
fn document_bytes(format: DigestFormat, d: &Digest) -> Result<Vec<u8>, StoreError> {
    Ok(match format {
        DigestFormat::Pdf => crate::documents::pdf(d),
        DigestFormat::Docx => crate::documents::docx(d).map_err(StoreError::Render)?,
        other => match digest(other, d).map_err(StoreError::Render)? {
            serde_json::Value::String(text) => text.into_bytes(),
            value => serde_json::to_vec_pretty(&value).unwrap_or_default(),
        },
    })
}

impl Store {
    /// Creates a schedule; its first fire time is computed from now.
    pub async fn create_schedule(
        &self,
        tenant_id: TenantId,
        spec: ScheduleSpec,
    ) -> Result<Schedule, StoreError> {
        self.writer
            .write(move |c, _| {
                endpoint_is_tenants(c, tenant_id, &spec.target)?;
                let now = now_ms();
                c.prepare_cached(
                    "INSERT INTO schedules (tenant_id, schedule_type, timezone, format,
                        delivery_method, status, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 'webhook', 'active', ?5, ?5)",
                )?
                .execute(params![
                    tenant_id.0,
                    spec.kind.as_str(),
                    spec.timezone.name(),
                    spec.format.as_str(),
                    now
                ])?;
                let id = c.last_insert_rowid();
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
            let total: i64 = c.query_row(
                "SELECT count(*) FROM schedules WHERE tenant_id = ?1 AND (?2 IS NULL OR endpoint_id = ?2)",
                params![tenant_id.0, endpoint],
                |r| r.get(0),
            )?;
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM schedules WHERE tenant_id = ?1
                       AND (?2 IS NULL OR endpoint_id = ?2)
                     ORDER BY id LIMIT ?3 OFFSET ?4"
                ))?
                .query_map(params![tenant_id.0, endpoint, page.size, page.offset()], schedule_row)?
                .collect::<Result<Vec<_>, _>>()?;
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
            .write(move |c, _| {
                let before = load(c, tenant_id, id)?;
                let mut spec = before.spec.clone();
                patch(&mut spec).map_err(StoreError::Invalid)?;
                endpoint_is_tenants(c, tenant_id, &spec.target)?;
                let now = now_ms();
                let next = if before.status == "completed" {
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
            .write(move |c, _| {
                match c.execute(
                    "DELETE FROM schedules WHERE id = ?1 AND tenant_id = ?2",
                    params![id.0, tenant_id.0],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    /// Runs a schedule now, outside its timing; answers once the run and its digest are
    /// committed.
    pub async fn trigger_schedule(
        &self,
        tenant_id: TenantId,
        id: ScheduleId,
    ) -> Result<RunId, StoreError> {
        self.writer
            .write(move |c, batch| {
                let schedule = load(c, tenant_id, id)?;
                let now = now_ms();
                // Manual runs take negative slots, so they never collide with timed ones.
                let mut slot = -now;
                loop {
                    if let Some(run) = run_in(c, batch, &schedule, slot, now)? {
                        return Ok(run);
                    }
                    slot -= 1;
                }
            })
            .await
    }

    /// Fires schedules due at `now`: each runs once for its slot, however many slots were
    /// missed while hookd was down (catch-up fires once), then moves to its next time after
    /// `now`. A one-time schedule is completed. Returns how many ran.
    pub async fn fire_due_schedules(&self, now: UnixMs) -> Result<usize, StoreError> {
        self.writer
            .write(move |c, batch| {
                let due: Vec<Schedule> = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM schedules
                         WHERE next_run_at IS NOT NULL AND next_run_at <= ?1 AND status = 'active'
                         ORDER BY next_run_at LIMIT ?2"
                    ))?
                    .query_map(params![now, FIRE_BATCH], schedule_row)?
                    .collect::<Result<_, _>>()?;
                let mut ran = 0;
                for schedule in &due {
                    let slot = schedule.next_run_at.unwrap_or(now);
                    if run_in(c, batch, schedule, slot, now)?.is_some() {
                        ran += 1;
                    }
                    let (next, status) = match schedule.spec.kind {
                        ScheduleKind::OneTime(_) => (None, "completed"),
                        _ => (schedule.spec.next_run(now), "active"),
                    };
                    c.prepare_cached(
                        "UPDATE schedules SET next_run_at = ?2, status = ?3 WHERE id = ?1",
                    )?
                    .execute(params![schedule.id.0, next, status])?;
                }
                Ok(ran)
            })
            .await
    }

    /// One page of a schedule's runs, newest first.
    pub async fn list_runs(
        &self,
        tenant_id: TenantId,
        id: ScheduleId,
        page: PageRequest,
    ) -> Result<Page<ScheduleRun>, StoreError> {
        self.read(move |c| {
            load(c, tenant_id, id)?;
            let total: i64 = c.query_row(
                "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?1",
                [id.0],
                |r| r.get(0),
            )?;
            let rows = c
                .prepare_cached(
                    "SELECT id, status, started_at, finished_at, period_start, period_end,
                        event_count, delivery_id, error, email_result
                     FROM schedule_runs WHERE schedule_id = ?1 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
                )?
                .query_map(params![id.0, page.size, page.offset()], |r| {
                    let delivery: Option<i64> = r.get(7)?;
                    Ok(ScheduleRun {
                        id: RunId(r.get(0)?),
                        status: r.get(1)?,
                        started_at: r.get(2)?,
                        finished_at: r.get(3)?,
                        period: (r.get(4)?, r.get(5)?),
                        event_count: count(r.get(6)?),
                        delivery_id: delivery.map(DeliveryId),
                        error: r.get(8)?,
                        email_result: r.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }
}

/// An email run ready to send.
#[derive(Debug, Clone)]
pub struct EmailJob {
    /// The run.
    pub run_id: RunId,
    /// This send attempt's number; recording its result needs it.
    pub attempt: u32,
    /// Where it goes.
    pub recipients: Vec<String>,
    /// The subject.
    pub subject: String,
    /// A message for the email's text part.
    pub message: Option<String>,
    /// The attached document.
    pub document: Vec<u8>,
    /// The document's format.
    pub format: DigestFormat,
}

impl Store {
    /// Leases email runs due for a send attempt (at most `limit`, each for `lease_ms`).
    /// Answers after the lease commits: the attempt number is the fence, and a lease lost to a
    /// rolled-back batch would hand it out again.
    pub async fn claim_email_runs(
        &self,
        now: UnixMs,
        limit: usize,
        lease_ms: i64,
    ) -> Result<Vec<EmailJob>, StoreError> {
        self.writer
            .write(move |c, _| {
                let rows: Vec<(i64, i64, u32, String, Vec<u8>)> = c
                    .prepare_cached(
                        "UPDATE schedule_runs SET attempts = attempts + 1, next_attempt_at = ?1 + ?3
                         WHERE id IN (SELECT id FROM schedule_runs
                                      WHERE status = 'sending' AND next_attempt_at <= ?1
                                      ORDER BY next_attempt_at LIMIT ?2)
                         RETURNING id, schedule_id, attempts, subject, document",
                    )?
                    .query_map(params![now, limit as i64, lease_ms], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let mut jobs = Vec::with_capacity(rows.len());
                for (run, schedule, attempt, subject, document) in rows {
                    let s: Schedule = c
                        .prepare_cached(&format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"))?
                        .query_row([schedule], schedule_row)?;
                    let ScheduleTarget::Email(recipients) = s.spec.target else {
                        continue;
                    };
                    jobs.push(EmailJob {
                        run_id: RunId(run),
                        attempt,
                        recipients,
                        subject,
                        message: s.spec.custom_message,
                        document,
                        format: s.spec.format,
                    });
                }
                Ok(jobs)
            })
            .await
    }

    /// Records a send attempt: done, retried after the schedule's next delay, or failed for
    /// good. A result for an attempt that is no longer current is ignored.
    pub async fn record_email(
        &self,
        job: &EmailJob,
        result: Result<String, String>,
        retry: Vec<std::time::Duration>,
    ) -> Result<(), StoreError> {
        let (run, attempt) = (job.run_id, job.attempt);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        self.writer
            .write(move |c, _| {
                let current = c
                    .prepare_cached("SELECT 1 FROM schedule_runs WHERE id = ?1 AND status = 'sending' AND attempts = ?2")?
                    .exists(params![run.0, attempt])?;
                if !current {
                    return Ok(());
                }
                let now = now_ms();
                match result {
                    Ok(message) => {
                        c.prepare_cached(
                            "UPDATE schedule_runs SET status = 'delivered', finished_at = ?2,
                                next_attempt_at = NULL, email_result = ?3, document = NULL
                             WHERE id = ?1",
                        )?
                        .execute(params![run.0, now, message])?;
                    }
                    Err(error) => {
                        let note = format!("attempt {attempt} failed: {error}");
                        match crate::model::delivery::next_retry_delay(&retry, attempt, jitter, None) {
                            Some(ms) => {
                                c.prepare_cached(
                                    "UPDATE schedule_runs SET next_attempt_at = ?2, email_result = ?3 WHERE id = ?1",
                                )?
                                .execute(params![run.0, now + ms as i64, note])?;
                            }
                            None => {
                                c.prepare_cached(
                                    "UPDATE schedule_runs SET status = 'failed', finished_at = ?2,
                                        next_attempt_at = NULL, email_result = ?3, error = ?4
                                     WHERE id = ?1",
                                )?
                                .execute(params![run.0, now, note, error])?;
                            }
                        }
                    }
                }
                Ok(())
            })
            .await
    }
}
