//! Schedules: digests sent on a cron, once, weekly, or when an event reaches a status.
//!
//! - timing (standard cron translated for the `cron` crate, IANA zones, DST) is
//!   [`crate::model::timing`], because a schedule is only valid if its timing parses;
//! - [`firing`]: one run — its period read from the read pool, its digest rendered outside the
//!   writer, committed in one short write (the timer below and the API's trigger use it);
//! - [`digest`]: what a digest holds and its text forms; [`documents`]: PDF and DOCX files;
//! - [`mail`]: the mailer that sends email runs over SMTP, with retries.
//!
//! This file is the timer: it only decides when to look for due schedules.

pub mod digest;
pub mod documents;
pub mod firing;
pub mod mail;

use std::future::Future;
use std::time::Duration;

use crate::model::now_ms;
use crate::model::run::RunCommit;
use crate::report::ErrorChain;
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;
use firing::{FireError, Slot, fire_traced};

/// Most schedules read per look.
const FIRE_BATCH: usize = 20;
/// Most looks per tick, so a schedule that keeps changing cannot hold the timer.
const MAX_ROUNDS: usize = 50;

/// Looks for due schedules every `interval` until `shutdown` resolves; each run is a span
/// when `telemetry` is on.
pub async fn run(
    store: Store,
    telemetry: Telemetry,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        if !store.leads() {
            continue;
        }
        if let Err(e) = fire_due(&store, &telemetry).await {
            tracing::warn!(error = %ErrorChain(&e), "firing schedules failed; will try again");
        }
    }
}

/// Fires everything due now, in batches; returns how many runs it made. Each due schedule
/// runs once for its slot, however many slots were missed while hookd was down.
pub async fn fire_due(store: &Store, telemetry: &Telemetry) -> Result<usize, FireError> {
    let mut total = 0;
    for _ in 0..MAX_ROUNDS {
        let now = now_ms();
        let due = store.due_schedules(now, FIRE_BATCH).await?;
        if due.is_empty() {
            break;
        }
        let mut moved = 0;
        for schedule in due {
            let slot = Slot::Timed(schedule.next_run_at.unwrap_or(now));
            let fired = fire_traced(store, schedule, slot, now, telemetry, None).await;
            match fired {
                Ok(RunCommit::Written(_)) => {
                    total += 1;
                    moved += 1;
                }
                Ok(RunCommit::AlreadyRan) => moved += 1,
                // Changed since it was read: the next round reads it again.
                Ok(RunCommit::Changed | RunCommit::StaleDigest)
                | Err(FireError::Store(StoreError::NotFound)) => {}
                Err(FireError::Store(e)) => return Err(FireError::Store(e)),
                // One schedule's digest failing must not hold back the others.
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "a schedule run failed; it stays due");
                }
            }
        }
        if moved == 0 {
            break;
        }
    }
    Ok(total)
}
