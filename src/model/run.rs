//! A schedule run as the firing plans it and the store writes it: the period it covers, what
//! it sends, and an email run's send attempts.

use super::publish::PublishPlan;
use super::schedule::{DigestFormat, RunStatus, Schedule, ScheduleStatus};
use super::{EventId, RunId, UnixMs};

/// One page of the events a run covers, as the digest lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodEvent {
    /// `evt_…`.
    pub id: EventId,
    /// Its type.
    pub name: String,
    /// When it was published.
    pub created_at: UnixMs,
    /// Its `data`, as JSON text.
    pub data: String,
}

/// What a run's period holds: the tenant's events after the previous run's newest one, up to
/// `last_event_id`, filtered by the schedule's coverage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    /// Covered events per type, by type.
    pub counts: Vec<(String, u64)>,
    /// The newest covered events, newest first (at most the number asked for).
    pub newest: Vec<PeriodEvent>,
    /// The newest event id read: the next run starts after it, so an event that commits
    /// after this read is in the next run, never lost, never counted twice.
    pub last_event_id: i64,
}

/// What a run sends.
#[derive(Debug, Clone)]
pub enum RunOutput {
    /// A `schedule.digest` event, planned (as hookd's own, to the schedule's endpoint alone)
    /// by the firing outside the writer; its data gets the run's `runId` when written.
    Webhook {
        /// The digest's plan: one event, to the endpoint or (disabled or gone) to none.
        digest: PublishPlan,
        /// What the run comes to, decided from the plan.
        status: RunStatus,
        /// Why it failed, when it did.
        error: Option<String>,
    },
    /// An email, sent by the mailer after the commit.
    Email {
        /// Its subject.
        subject: String,
        /// The attached document.
        document: Vec<u8>,
    },
}

/// A run to write, with the schedule's state it was built from.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// The schedule as read: the run is written only if it has not changed since.
    pub schedule: Schedule,
    /// Its slot: the fire time it stands for (negative for manual runs).
    pub slot: i64,
    /// When the run started (the end of its period).
    pub started_at: UnixMs,
    /// The period's start.
    pub period_start: UnixMs,
    /// The newest event the run covers.
    pub last_event_id: i64,
    /// Events in the period.
    pub event_count: u64,
    /// The schedule's next fire time and status after a timed run; `None` for a manual run,
    /// which leaves them as they are.
    pub next: Option<(Option<UnixMs>, ScheduleStatus)>,
    /// What it sends.
    pub output: RunOutput,
}

/// How the store's `commit_run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunCommit {
    /// The run is written.
    Written(RunId),
    /// This slot already ran.
    AlreadyRan,
    /// The schedule changed (or ran) since it was read; read it again.
    Changed,
    /// The digest was planned from an older version of the tenant's endpoints: plan it again.
    StaleDigest,
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

/// What follows an email send attempt, as the mailer decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailAfter {
    /// Accepted by the SMTP server; what it answered.
    Sent(String),
    /// Failed; try again at this time.
    RetryAt {
        /// When.
        at: UnixMs,
        /// What the run log shows.
        note: String,
    },
    /// Failed for good (the email retry schedule is used up).
    Failed {
        /// What the run log shows.
        note: String,
        /// The last error.
        error: String,
    },
}
