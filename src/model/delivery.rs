//! Deliveries: one event to one endpoint, and the outcome of one attempt.
//!
//! States and their transitions:
//! - `Pending` → `Succeeded` when an attempt answers 2xx;
//! - `Pending` → `Pending` after a failed attempt with retries left (`next_attempt_at` moves);
//! - `Pending` → `Failed` when the retries are used up, or the endpoint is disabled by failures;
//! - `Failed` → `Pending` only by an explicit replay (retry or recover).
//!
//! A claim leases a pending row (its `next_attempt_at` moves to the lease's end and its
//! attempt number goes up); only the holder of that attempt number can record a result.

use super::{DeliveryId, EndpointId, EventId, TenantId, UnixMs};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted under a lease).
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Retries used up, or the endpoint was disabled.
    Failed,
}

impl DeliveryStatus {
    /// The stored integer.
    pub fn code(self) -> i64 {
        match self {
            Self::Pending => 0,
            Self::Succeeded => 1,
            Self::Failed => 2,
        }
    }

    /// From the stored integer; `None` for a code hookd never writes.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Pending),
            1 => Some(Self::Succeeded),
            2 => Some(Self::Failed),
            _ => None,
        }
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// No complete answer within `timeoutMs`.
    Timeout,
    /// The TCP connection failed.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// An answer that was not 2xx (redirects included).
    HttpStatus,
    /// The response body was larger than hookd reads.
    BodyTooLarge,
    /// The connection broke after the request was sent, before a complete answer (reset,
    /// closed, or a body cut short of its declared length).
    Incomplete,
    /// The target resolved to an address hookd may not call.
    BlockedTarget,
    /// The endpoint's credentials could not be used: its OAuth2 token endpoint failed or
    /// answered no token, or its stored credentials cannot be opened.
    Auth,
    /// A broker took the message and refused it (an error reply, a negative acknowledgement):
    /// it was not stored.
    BrokerRefused,
}

impl ErrorClass {
    /// Parses the API name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Timeout,
            Self::Connect,
            Self::Dns,
            Self::Tls,
            Self::HttpStatus,
            Self::BodyTooLarge,
            Self::Incomplete,
            Self::BlockedTarget,
            Self::Auth,
            Self::BrokerRefused,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::HttpStatus => "http_status",
            Self::BodyTooLarge => "body_too_large",
            Self::Incomplete => "incomplete",
            Self::BlockedTarget => "blocked_target",
            Self::Auth => "auth",
            Self::BrokerRefused => "broker_refused",
        }
    }
}

/// What one HTTP attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// When the attempt started.
    pub at: UnixMs,
    /// The response status, when one came.
    pub response_code: Option<u16>,
    /// Milliseconds from start to the end of the response (or the error).
    pub latency_ms: u32,
    /// Why it failed; `None` for a 2xx.
    pub error: Option<ErrorClass>,
    /// A sentence about the failure, for the log.
    pub error_message: Option<String>,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: Option<String>,
    /// A `Retry-After` the endpoint asked for, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl AttemptOutcome {
    /// Whether the attempt succeeded.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the target answered: an HTTP status, or a broker's acknowledgement or refusal
    /// (not a timeout, nor a connection that failed or broke).
    pub fn answered(&self) -> bool {
        self.response_code.is_some() || matches!(self.error, None | Some(ErrorClass::BrokerRefused))
    }
}

/// Which of an endpoint's deliveries a list shows: every part given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of events of this exact type.
    pub event_type: Option<String>,
    /// Only deliveries created at or after this instant.
    pub since: Option<UnixMs>,
    /// Only deliveries created before this instant.
    pub until: Option<UnixMs>,
}

impl DeliveryFilter {
    /// Whether the list is narrowed beyond its status, which the block counts do not cover.
    pub fn beyond_status(&self) -> bool {
        self.event_type.is_some() || self.since.is_some() || self.until.is_some()
    }
}

/// One delivery as listed.
#[derive(Debug, Clone)]
pub struct DeliverySummary {
    /// The delivery.
    pub id: DeliveryId,
    /// Its event.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// Its endpoint.
    pub endpoint_id: EndpointId,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt goes, while pending.
    pub next_attempt_at: Option<UnixMs>,
    /// When it was created.
    pub created_at: UnixMs,
}

/// One attempt as logged.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub number: u32,
    /// The outcome.
    pub outcome: AttemptOutcome,
}

/// A delivery with its attempts, oldest first.
#[derive(Debug, Clone)]
pub struct DeliveryDetail {
    /// The delivery.
    pub summary: DeliverySummary,
    /// Its attempts.
    pub attempts: Vec<AttemptRecord>,
    /// Its event's `data` (stored JSON text) and publishing time: what its body is made of.
    pub event_data: String,
    /// When its event was published.
    pub event_created_at: UnixMs,
    /// Its event's trace: each attempt was a span of it.
    pub event_trace: Option<super::trace::TraceContext>,
}

/// An extra attempt asked for by hand (a retry), and where the delivery goes if it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// A pending delivery's extra attempt: its retry schedule resumes at this time.
    Resume(Option<UnixMs>),
    /// A finished delivery's one more attempt: back to this status.
    Return(DeliveryStatus),
}

/// What is stored of a delivery when one of its attempts comes back (read under its lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFacts {
    /// The delivery.
    pub id: DeliveryId,
    /// Its event.
    pub event_id: EventId,
    /// Its event's type.
    pub event_type: String,
    /// Attempts that do not count against the retry schedule (manual retries, and those
    /// before a recover).
    pub schedule_offset: u32,
    /// Set while the attempt is a manual replay.
    pub replay: Option<Replay>,
    /// Whether it has failed for good before (a success then is a recovery).
    pub was_exhausted: bool,
}

/// When the next attempt goes, after failed attempt number `attempt` (1-based): the
/// schedule's delay with `jitter` (a factor in 0.8..=1.2), pushed back to a `Retry-After`
/// the endpoint asked for but never past the schedule's longest delay. `None` when the
/// schedule is used up.
pub fn next_retry_delay(
    schedule: &[std::time::Duration],
    attempt: u32,
    jitter: f64,
    retry_after_ms: Option<u64>,
) -> Option<u64> {
    let base = schedule.get(attempt.checked_sub(1)? as usize)?.as_millis() as u64;
    let jittered = (base as f64 * jitter.clamp(0.8, 1.2)) as u64;
    let longest = schedule.iter().max().map_or(0, |d| d.as_millis() as u64);
    Some(match retry_after_ms {
        Some(asked) => jittered.max(asked.min(longest)),
        None => jittered,
    })
}

/// What one pruning pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Deliveries deleted (with their attempts).
    pub deliveries: u64,
    /// Events deleted.
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_broker_acknowledgement_or_refusal_is_an_answer_a_lost_connection_is_not() {
        let outcome = |response_code, error| AttemptOutcome {
            at: 0,
            response_code,
            latency_ms: 0,
            error,
            error_message: None,
            response_body: None,
            retry_after_ms: None,
        };
        assert!(outcome(Some(500), Some(ErrorClass::HttpStatus)).answered());
        assert!(outcome(None, None).answered());
        assert!(outcome(None, Some(ErrorClass::BrokerRefused)).answered());
        assert!(!outcome(None, Some(ErrorClass::Connect)).answered());
        assert!(!outcome(None, Some(ErrorClass::Timeout)).answered());
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let s = [Duration::from_secs(1), Duration::from_secs(10)];
        assert_eq!(next_retry_delay(&s, 1, 1.0, None), Some(1000));
        assert_eq!(next_retry_delay(&s, 2, 1.0, None), Some(10_000));
        assert_eq!(next_retry_delay(&s, 3, 1.0, None), None);
        assert_eq!(next_retry_delay(&[], 1, 1.0, None), None);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let s = [Duration::from_secs(10)];
        assert_eq!(next_retry_delay(&s, 1, 0.8, None), Some(8000));
        assert_eq!(next_retry_delay(&s, 1, 1.2, None), Some(12_000));
        assert_eq!(next_retry_delay(&s, 1, 5.0, None), Some(12_000));
    }

    #[test]
    fn retry_after_pushes_back_but_is_capped_at_the_longest_delay() {
        let s = [Duration::from_secs(1), Duration::from_secs(60)];
        assert_eq!(next_retry_delay(&s, 1, 1.0, Some(30_000)), Some(30_000));
        assert_eq!(next_retry_delay(&s, 1, 1.0, Some(600_000)), Some(60_000));
        assert_eq!(next_retry_delay(&s, 1, 1.0, Some(10)), Some(1000));
    }
}

/// A tenant's queue, as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantQueue {
    /// The tenant.
    pub tenant: TenantId,
    /// Its deliveries waiting for an attempt.
    pub pending: u64,
    /// When its oldest pending delivery was made; `None` when none is pending.
    pub oldest_created_at: Option<UnixMs>,
}
