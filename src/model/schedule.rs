//! Schedules: what fires when, and what a run sends.

use super::Invalid;
use chrono_tz::Tz;

use super::timing::CronSpec;
use super::{EndpointId, EventPattern, RunId, ScheduleId, TenantId, UnixMs};

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum ScheduleKind {
    /// Mondays at 09:00 in the schedule's zone.
    WeeklyDigest,
    /// When a published event's `data.status` equals this.
    OnStatusChange(String),
    /// On a cron expression (kept as given, with its parsed form).
    CustomCron(String, CronSpec),
    /// Once, at this instant.
    OneTime(UnixMs),
}

impl ScheduleKind {
    /// The API name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::WeeklyDigest => "weekly_digest",
            Self::OnStatusChange(_) => "on_status_change",
            Self::CustomCron(..) => "custom_cron",
            Self::OneTime(_) => "one_time",
        }
    }
}

/// The document a run renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestFormat {
    /// A JSON object.
    Json,
    /// Markdown text.
    Markdown,
    /// An HTML page.
    Html,
    /// A PDF file (base64 in the digest event).
    Pdf,
    /// A DOCX file (base64 in the digest event).
    Docx,
}

impl DigestFormat {
    /// The file name and MIME type of the document when attached to an email.
    pub fn attachment(self) -> (&'static str, &'static str) {
        match self {
            Self::Json => ("digest.json", "application/json"),
            Self::Markdown => ("digest.md", "text/markdown; charset=utf-8"),
            Self::Html => ("digest.html", "text/html; charset=utf-8"),
            Self::Pdf => ("digest.pdf", "application/pdf"),
            Self::Docx => (
                "digest.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
        }
    }
}

impl DigestFormat {
    /// Parses the API name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "json" => Ok(Self::Json),
            "markdown" => Ok(Self::Markdown),
            "html" => Ok(Self::Html),
            "pdf" => Ok(Self::Pdf),
            "docx" => Ok(Self::Docx),
            _ => Err(
                format!("format must be one of json, markdown, html, pdf, docx (not '{s}')").into(),
            ),
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Markdown => "markdown",
            Self::Html => "html",
            Self::Pdf => "pdf",
            Self::Docx => "docx",
        }
    }
}

/// Where a schedule's digest goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleTarget {
    /// As event `schedule.digest` to this endpoint only (no fan-out), through the outbox.
    Endpoint(EndpointId),
    /// By email to these addresses, the document attached.
    Email(Vec<String>),
}

impl ScheduleTarget {
    /// The endpoint, for webhook delivery.
    pub fn endpoint(&self) -> Option<EndpointId> {
        match self {
            Self::Endpoint(id) => Some(*id),
            Self::Email(_) => None,
        }
    }
}

/// Everything a schedule is set to do, each part valid.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// When it fires.
    pub kind: ScheduleKind,
    /// The IANA zone its times are read in.
    pub timezone: Tz,
    /// The digest's format.
    pub format: DigestFormat,
    /// Where the digest goes.
    pub target: ScheduleTarget,
    /// Which events the digest covers (all but digests when `None`).
    pub event_types: Option<Vec<EventPattern>>,
    /// Whether the digest carries the changelog section.
    pub include_changelog: bool,
    /// The digest's subject.
    pub custom_subject: Option<String>,
    /// A message printed at the top of the digest.
    pub custom_message: Option<String>,
}

impl ScheduleSpec {
    /// The first fire time after `after`, if the schedule fires on time at all.
    pub fn next_run(&self, after: UnixMs) -> Option<UnixMs> {
        let after_utc = chrono::DateTime::from_timestamp_millis(after)?;
        match &self.kind {
            ScheduleKind::WeeklyDigest => CronSpec::parse("0 9 * * 1")
                .ok()?
                .next_after(self.timezone, after_utc)
                .map(|t| t.timestamp_millis()),
            ScheduleKind::CustomCron(_, spec) => spec
                .next_after(self.timezone, after_utc)
                .map(|t| t.timestamp_millis()),
            ScheduleKind::OneTime(at) => Some(*at),
            ScheduleKind::OnStatusChange(_) => None,
        }
    }

    /// The next `n` fire times from `first` (the schedule's stored next run): `first`, then
    /// each next slot after the one before. A one-time schedule has one; a status-triggered
    /// one has none.
    pub fn upcoming(&self, first: Option<UnixMs>, n: usize) -> Vec<UnixMs> {
        std::iter::successors(first, |t| match self.kind {
            ScheduleKind::OneTime(_) | ScheduleKind::OnStatusChange(_) => None,
            _ => self.next_run(*t),
        })
        .take(n)
        .collect()
    }

    /// Where a timed run leaves the schedule: its next fire time after `now` (a missed slot
    /// is caught up by one run, never one per slot) and its status (a one-time schedule is
    /// completed).
    pub fn after_run(&self, now: UnixMs) -> (Option<UnixMs>, ScheduleStatus) {
        match self.kind {
            ScheduleKind::OneTime(_) => (None, ScheduleStatus::Completed),
            _ => (self.next_run(now), ScheduleStatus::Active),
        }
    }

    /// Whether the digest covers events of this type (never digests themselves, never
    /// hookd's operational events).
    pub fn covers(&self, name: &str) -> bool {
        covers(self.event_types.as_deref(), name)
    }
}

/// Whether a digest over `patterns` (all events when `None`) covers events of this type:
/// never digests themselves, never hookd's operational events.
pub fn covers(patterns: Option<&[EventPattern]>, name: &str) -> bool {
    if name == DIGEST_EVENT || name.starts_with(super::event::OPERATIONAL_PREFIX) {
        return false;
    }
    patterns.is_none_or(|patterns| patterns.iter().any(|p| p.matches(name)))
}

/// The status an event reports, which `on_status_change` schedules wait for: its data's
/// top-level `status` string. Digests report none.
pub fn reported_status(name: &str, data: &str) -> Option<String> {
    if name == DIGEST_EVENT || !data.contains("\"status\"") {
        return None;
    }
    let data: serde_json::Value = serde_json::from_str(data).ok()?;
    data.get("status")?.as_str().map(str::to_owned)
}

/// Whether a schedule still fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleStatus {
    /// It fires when due.
    Active,
    /// A one-time schedule that has run; it never fires again.
    Completed,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// An email run whose message is being sent (retried on the email schedule).
    Sending,
    /// The digest was handed over: queued as a delivery, or accepted by the SMTP server.
    Delivered,
    /// The digest could not be handed over (the endpoint is disabled or gone, or every email
    /// attempt failed).
    Failed,
}

text_enum!(ScheduleStatus { Active => "active", Completed => "completed" });
text_enum!(RunStatus { Sending => "sending", Delivered => "delivered", Failed => "failed" });

/// The event type a run delivers.
pub const DIGEST_EVENT: &str = "schedule.digest";

/// What a webhook run comes to, from the endpoints its digest was planned to: delivered when
/// it goes to the schedule's endpoint, failed (saying why) when it goes nowhere because the
/// endpoint is disabled or gone.
pub fn digest_outcome(endpoint: EndpointId, targets: &[EndpointId]) -> (RunStatus, Option<String>) {
    if targets.contains(&endpoint) {
        (RunStatus::Delivered, None)
    } else {
        (
            RunStatus::Failed,
            Some(format!("endpoint {endpoint} is disabled or gone")),
        )
    }
}

/// A digest's `data` (a JSON object's text, without `runId`) with the run's id added as
/// `runId`, known once the run's row is written. Spliced in before the closing brace rather
/// than parsed: this runs inside the store's write, and `content` may be a whole document.
/// Text that is not an object comes back as it is.
pub fn digest_data_of_run(data: &str, run: RunId) -> String {
    let field = format!("\"runId\":{}", serde_json::json!(run));
    // Of JSON texts only an object ends with `}`.
    match data.trim_end().strip_suffix('}') {
        Some(open) if open.trim_end().ends_with('{') => format!("{open}{field}}}"),
        Some(fields) => format!("{fields},{field}}}"),
        None => data.to_owned(),
    }
}

/// A stored schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its id.
    pub id: ScheduleId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// What it does.
    pub spec: ScheduleSpec,
    /// Active, or completed once a one-time schedule has run.
    pub status: ScheduleStatus,
    /// When it fires next.
    pub next_run_at: Option<UnixMs>,
    /// When it last ran (the start of the next digest's period).
    pub last_run_at: Option<UnixMs>,
    /// The newest event the last run saw: the next run covers the tenant's events after it.
    pub last_event_id: i64,
    /// When it was created.
    pub created_at: UnixMs,
    /// When it last changed.
    pub updated_at: UnixMs,
}

/// One run, as logged.
#[derive(Debug, Clone)]
pub struct ScheduleRun {
    /// Its id.
    pub id: RunId,
    /// Where the run stands.
    pub status: RunStatus,
    /// When it started.
    pub started_at: UnixMs,
    /// When it finished.
    pub finished_at: Option<UnixMs>,
    /// The digest's period.
    pub period: (UnixMs, UnixMs),
    /// Events in the period.
    pub event_count: u64,
    /// For email: what the last send attempt came to.
    pub email_result: Option<String>,
    /// The delivery that carries the digest.
    pub delivery_id: Option<super::DeliveryId>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A change to a schedule, applied inside the write.
pub type SchedulePatch = Box<dyn FnOnce(&mut ScheduleSpec) -> Result<(), Invalid> + Send>;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ScheduleKind) -> ScheduleSpec {
        ScheduleSpec {
            kind,
            timezone: chrono_tz::UTC,
            format: DigestFormat::Json,
            target: ScheduleTarget::Endpoint(EndpointId(1)),
            event_types: None,
            include_changelog: false,
            custom_subject: None,
            custom_message: None,
        }
    }

    // 2026-11-30T10:00:00Z, a Monday.
    const NOW: UnixMs = 1_796_032_800_000;
    const HOUR: UnixMs = 3_600_000;

    #[test]
    fn upcoming_runs_follow_the_first_slot_by_slot() {
        let paris = |kind| ScheduleSpec {
            timezone: chrono_tz::Europe::Paris,
            ..spec(kind)
        };
        let weekdays = CronSpec::parse("0 9 * * 1-5").expect("cron");
        // Friday 2026-12-04 08:00 UTC is 09:00 in Paris; then Monday and Tuesday.
        let friday = 1_796_371_200_000;
        let day = 24 * HOUR;
        let cases = [
            (
                "a cron",
                paris(ScheduleKind::CustomCron("0 9 * * 1-5".into(), weekdays)),
                Some(friday),
                vec![friday, friday + 3 * day, friday + 4 * day],
            ),
            (
                "the weekly digest: Mondays at 09:00 in its zone",
                paris(ScheduleKind::WeeklyDigest),
                Some(friday + 3 * day),
                vec![friday + 3 * day, friday + 10 * day, friday + 17 * day],
            ),
            (
                "one time: that time only",
                spec(ScheduleKind::OneTime(NOW + HOUR)),
                Some(NOW + HOUR),
                vec![NOW + HOUR],
            ),
            (
                "on a status: never on time",
                spec(ScheduleKind::OnStatusChange("shipped".into())),
                None,
                vec![],
            ),
        ];
        for (name, spec, first, want) in cases {
            assert_eq!(spec.upcoming(first, 3), want, "{name}");
        }
    }

    #[test]
    fn after_a_run_each_kind_moves_on_as_it_should() {
        let hourly = CronSpec::parse("0 * * * *").expect("cron");
        let cases = [
            (
                "a cron moves to its next slot after now, once, however many were missed",
                spec(ScheduleKind::CustomCron("0 * * * *".into(), hourly)),
                (Some(NOW + HOUR), ScheduleStatus::Active),
            ),
            (
                "a one-time schedule is completed",
                spec(ScheduleKind::OneTime(NOW - HOUR)),
                (None, ScheduleStatus::Completed),
            ),
            (
                "a status trigger waits for the next matching event",
                spec(ScheduleKind::OnStatusChange("done".into())),
                (None, ScheduleStatus::Active),
            ),
            (
                "a weekly digest goes to next Monday 09:00",
                spec(ScheduleKind::WeeklyDigest),
                (Some(NOW + 7 * 24 * HOUR - HOUR), ScheduleStatus::Active),
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(spec.after_run(NOW), want, "{what}");
        }
    }

    #[test]
    fn digests_cover_neither_digests_nor_operational_events() {
        let all = spec(ScheduleKind::WeeklyDigest);
        assert!(all.covers("order.paid"));
        assert!(!all.covers(DIGEST_EVENT));
        assert!(!all.covers("hookd.endpoint.disabled"));
        assert_eq!(
            reported_status("post.status_changed", r#"{"status":"done"}"#),
            Some("done".into())
        );
        assert_eq!(reported_status(DIGEST_EVENT, r#"{"status":"done"}"#), None);
        assert_eq!(reported_status("post.created", r#"{"title":"x"}"#), None);
    }

    #[test]
    fn a_digest_is_delivered_only_when_planned_to_its_endpoint() {
        let (ep, other) = (EndpointId(7), EndpointId(8));
        assert_eq!(digest_outcome(ep, &[ep]), (RunStatus::Delivered, None));
        let (status, why) = digest_outcome(ep, &[]);
        assert_eq!(status, RunStatus::Failed);
        assert_eq!(why.as_deref(), Some("endpoint ep_7 is disabled or gone"));
        assert_eq!(digest_outcome(ep, &[other]).0, RunStatus::Failed);
    }

    #[test]
    fn a_digest_gets_its_run_id_beside_its_fields() {
        let data = digest_data_of_run(r#"{"scheduleId":"sch_1","eventCount":2}"#, RunId(5));
        let v: serde_json::Value = serde_json::from_str(&data).expect("json");
        assert_eq!(v["runId"], serde_json::json!(RunId(5)));
        assert_eq!(v["eventCount"], 2);
        assert_eq!(digest_data_of_run("[1]", RunId(5)), "[1]");
        let only: serde_json::Value =
            serde_json::from_str(&digest_data_of_run("{ }", RunId(5))).expect("json");
        assert_eq!(only, serde_json::json!({"runId": RunId(5)}));
    }
}
