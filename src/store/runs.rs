//! Schedule runs: a run's period read from the read pool (the tenant's events after the last
//! run's newest one, through the `(tenant_id, id)` index), the run written with its digest event
//! and the schedule's next time in one short write, the run log, and email runs' sends.

use crate::db::sql::vals;

use super::paging::{self, List};
use super::publish::write_plan;
use super::rows::corrupt;
use super::schedules::{COLUMNS, load, newest_event, schedule_row};
use super::{Store, StoreError, count};
use crate::model::run::{EmailAfter, EmailJob, NewRun, Period, PeriodEvent, RunCommit, RunOutput};
use crate::model::schedule::{
    RunStatus, Schedule, ScheduleRun, ScheduleStatus, ScheduleTarget, digest_data_of_run,
};
use crate::model::{
    DeliveryId, EventId, Page, PageRequest, RunId, ScheduleId, TenantId, UnixMs, now_ms,
};

impl Store {
    /// Reads a run's period from the read pool: the tenant's events after `after_event_id`
    /// that `covers` accepts, counted by type, with the `listed` newest of them.
    pub async fn period(
        &self,
        tenant_id: TenantId,
        after_event_id: i64,
        listed: usize,
        covers: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<Period, StoreError> {
        self.read(move |c| {
            let last = newest_event(c, tenant_id)?.max(after_event_id);
            let mut counts: Vec<(String, u64)> = Vec::new();
            c.query_each(
                "SELECT type, count(*) FROM events
                 WHERE tenant_id = ?1 AND id > ?2 AND id <= ?3
                 GROUP BY type ORDER BY type",
                &vals![tenant_id.0, after_event_id, last],
                |row| {
                    let name: String = row.get(0)?;
                    if covers(&name) {
                        counts.push((name, count(row.get(1)?)));
                    }
                    Ok(true)
                },
            )?;
            let mut newest = Vec::new();
            if !counts.is_empty() && listed > 0 {
                c.query_each(
                    "SELECT id, type, created_at, data FROM events
                     WHERE tenant_id = ?1 AND id > ?2 AND id <= ?3
                     ORDER BY id DESC",
                    &vals![tenant_id.0, after_event_id, last],
                    |row| {
                        let name: String = row.get(1)?;
                        if covers(&name) {
                            newest.push(PeriodEvent {
                                id: EventId(row.get(0)?),
                                name,
                                created_at: row.get(2)?,
                                data: row.get(3)?,
                            });
                        }
                        Ok(newest.len() < listed)
                    },
                )?;
            }
            Ok(Period {
                counts,
                newest,
                last_event_id: last,
            })
        })
        .await
    }

    /// Writes a run in one short write: the run row (unique per schedule and slot), the
    /// schedule's last run and, for a timed run, its next fire time; then the digest's plan
    /// with the run's id in its data, or the email document for the mailer. Nothing is written
    /// when the schedule changed or ran since `run.schedule` was read, or when the digest was
    /// planned from an older version of the tenant's endpoints.
    pub async fn commit_run(&self, run: NewRun) -> Result<RunCommit, StoreError> {
        self.writer
            .write(move |c, batch| {
                let schedule = &run.schedule;
                let current: Option<(i64, i64)> = c.query_opt(
                    "SELECT updated_at, last_event_id FROM schedules WHERE id = ?1",
                    &vals![schedule.id.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let Some((updated_at, last_event_id)) = current else {
                    return Err(StoreError::NotFound);
                };
                if (updated_at, last_event_id) != (schedule.updated_at, schedule.last_event_id) {
                    return Ok(RunCommit::Changed);
                }
                if let RunOutput::Webhook { digest, .. } = &run.output
                    && batch.subscribers.version(c, digest.tenant)? != digest.version
                {
                    return Ok(RunCommit::StaleDigest);
                }
                let inserted: Option<i64> = c.query_opt(
                    "INSERT INTO schedule_runs (schedule_id, slot, status, started_at,
                            period_start, period_end, event_count)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6) ON CONFLICT DO NOTHING
                         RETURNING id",
                    &vals![
                        schedule.id.0,
                        run.slot,
                        RunStatus::Sending.as_str(),
                        run.started_at,
                        run.period_start,
                        run.event_count as i64
                    ],
                    |r| r.get(0),
                )?;
                let set_next = |next: Option<(Option<UnixMs>, ScheduleStatus)>| {
                    if let Some((next_run_at, status)) = next {
                        c.execute(
                            "UPDATE schedules SET next_run_at = ?2, status = ?3 WHERE id = ?1",
                            &vals![schedule.id.0, next_run_at, status.as_str()],
                        )?;
                    }
                    Ok::<_, StoreError>(())
                };
                let Some(run_id) = inserted else {
                    // The slot ran before: a timed run still moves on to the next time.
                    set_next(run.next)?;
                    return Ok(RunCommit::AlreadyRan);
                };
                let run_id = RunId(run_id);
                // The next digest's period starts here, whatever this run's delivery comes to.
                c.execute(
                    "UPDATE schedules SET last_run_at = ?2, last_event_id = ?3 WHERE id = ?1",
                    &vals![schedule.id.0, run.started_at, run.last_event_id],
                )?;
                set_next(run.next)?;
                match run.output {
                    RunOutput::Email { subject, document } => {
                        c.execute(
                            "UPDATE schedule_runs SET subject = ?2, document = ?3,
                                next_attempt_at = ?4
                             WHERE id = ?1",
                            &vals![run_id.0, subject, document, run.started_at],
                        )?;
                    }
                    RunOutput::Webhook {
                        mut digest,
                        status,
                        error,
                    } => {
                        for planned in &mut digest.events {
                            planned.event.data = digest_data_of_run(&planned.event.data, run_id);
                        }
                        let published = write_plan(c, batch, &digest)?;
                        let delivery: Option<i64> = match published.first() {
                            Some(p) if p.deliveries > 0 => c.query_opt(
                                "SELECT id FROM deliveries WHERE event_id = ?1",
                                &vals![p.id.0],
                                |r| r.get(0),
                            )?,
                            _ => None,
                        };
                        c.execute(
                            "UPDATE schedule_runs SET status = ?2, finished_at = ?3,
                                delivery_id = ?4, error = ?5
                             WHERE id = ?1",
                            &vals![run_id.0, status.as_str(), run.started_at, delivery, error],
                        )?;
                    }
                }
                Ok(RunCommit::Written(run_id))
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
            let (total, seek) = paging::locate(c, List::ScheduleRuns, id.0, None, page.offset())?;
            let Some(seek) = seek else {
                return Ok(page.page(Vec::new(), total));
            };
            let rows = c.query(
                "SELECT id, status, started_at, finished_at, period_start, period_end,
                        event_count, delivery_id, error, email_result
                     FROM schedule_runs WHERE schedule_id = ?1 AND id < ?2
                     ORDER BY id DESC LIMIT ?3 OFFSET ?4",
                &vals![id.0, seek.below, page.size, seek.skip],
                |r| {
                    let delivery: Option<i64> = r.get(7)?;
                    Ok(ScheduleRun {
                        id: RunId(r.get(0)?),
                        status: RunStatus::parse(&r.get::<String>(1)?)
                            .ok_or_else(|| corrupt("schedule_runs.status"))?,
                        started_at: r.get(2)?,
                        finished_at: r.get(3)?,
                        period: (r.get(4)?, r.get(5)?),
                        event_count: count(r.get(6)?),
                        delivery_id: delivery.map(DeliveryId),
                        error: r.get(8)?,
                        email_result: r.get(9)?,
                    })
                },
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }
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
                let rows: Vec<(i64, i64, u32, String, Vec<u8>)> = c.query(
                    "UPDATE schedule_runs SET attempts = attempts + 1, next_attempt_at = ?1 + ?3
                         WHERE id IN (SELECT id FROM schedule_runs
                                      WHERE status = 'sending' AND next_attempt_at <= ?1
                                      ORDER BY next_attempt_at LIMIT ?2)
                         RETURNING id, schedule_id, attempts, subject, document",
                    &vals![now, limit as i64, lease_ms],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )?;
                let mut jobs = Vec::with_capacity(rows.len());
                for (run, schedule, attempt, subject, document) in rows {
                    let s: Schedule = c.query_one(
                        &format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"),
                        &vals![schedule],
                        schedule_row,
                    )?;
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

    /// Records a send attempt as the mailer decided it. A result for an attempt that is no
    /// longer current is ignored.
    pub async fn record_email(&self, job: &EmailJob, after: EmailAfter) -> Result<(), StoreError> {
        let (run, attempt) = (job.run_id, job.attempt);
        self.writer
            .write(move |c, _| {
                let current = c.exists(
                    "SELECT 1 FROM schedule_runs
                     WHERE id = ?1 AND status = 'sending' AND attempts = ?2",
                    &vals![run.0, attempt],
                )?;
                if !current {
                    return Ok(());
                }
                let now = now_ms();
                match after {
                    EmailAfter::Sent(message) => {
                        c.execute(
                            "UPDATE schedule_runs SET status = ?2, finished_at = ?3,
                                next_attempt_at = NULL, email_result = ?4, document = NULL
                             WHERE id = ?1",
                            &vals![run.0, RunStatus::Delivered.as_str(), now, message],
                        )?;
                    }
                    EmailAfter::RetryAt { at, note } => {
                        c.execute(
                            "UPDATE schedule_runs SET next_attempt_at = ?2, email_result = ?3
                             WHERE id = ?1",
                            &vals![run.0, at, note],
                        )?;
                    }
                    EmailAfter::Failed { note, error } => {
                        c.execute(
                            "UPDATE schedule_runs SET status = ?2, finished_at = ?3,
                                next_attempt_at = NULL, email_result = ?4, error = ?5
                             WHERE id = ?1",
                            &vals![run.0, RunStatus::Failed.as_str(), now, note, error],
                        )?;
                    }
                }
                Ok(())
            })
            .await
    }
}
