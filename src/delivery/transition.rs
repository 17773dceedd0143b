//! What happens after an attempt: the retry, give-up, disable and operational-event rules in
//! one pure function. The store reads the facts under the delivery's lease, calls
//! [`after_attempt`] and writes what it returns; nothing here touches SQL or HTTP.

use crate::model::attempt::{AttemptFacts, CounterChange, Transition};
use crate::model::delivery::{DeliveryStatus, Replay, next_retry_delay};
use crate::model::operational::{self, AttemptNews};
use crate::model::{DisableReason, UnixMs};

/// Where a delivery goes after a failed attempt.
enum AfterFailure {
    /// Retry on the schedule at this time.
    RetryAt(UnixMs),
    /// A manual extra attempt on a pending delivery failed: its schedule resumes here.
    Resume(UnixMs),
    /// A manual retry of a finished delivery failed: back to that status.
    Return(DeliveryStatus),
    /// Failed for good (schedule used up, or `410 Gone`).
    Exhausted,
}

/// The rule: from an attempt's facts to the delivery's and endpoint's next state.
///
/// - 2xx: succeeded; the endpoint's consecutive failures reset; a delivery that had failed for
///   good before announces `hookd.delivery.recovered`.
/// - a failure with retries left: pending again after the schedule's delay (jittered, pushed
///   back by a `Retry-After` but never past the schedule's longest delay).
/// - a failure with the schedule used up, or `410 Gone`: failed for good
///   (`hookd.delivery.exhausted`); the endpoint's consecutive failures grow by one, and it is
///   disabled at `disableAfter` of them (at once for `410`), announcing
///   `hookd.endpoint.disabled`.
/// - a manual replay that fails goes back where it was (pending on its schedule, or its
///   finished status) without using up a retry.
/// - a delivery of a `hookd.*` event never announces anything, so they cannot loop.
pub fn after_attempt(f: &AttemptFacts<'_>) -> Transition {
    let outcome = f.outcome;
    let finished = outcome.at + i64::from(outcome.latency_ms);
    let gone = outcome.response_code == Some(410);
    let success = outcome.is_success();
    let after = (!success).then(|| match (gone, f.delivery.replay) {
        (true, _) => AfterFailure::Exhausted,
        (false, Some(Replay::Resume(at))) => AfterFailure::Resume(at.unwrap_or(finished)),
        (false, Some(Replay::Return(status))) => AfterFailure::Return(status),
        (false, None) => next_retry_delay(
            &f.endpoint.settings.retry_schedule,
            f.attempt.saturating_sub(f.delivery.schedule_offset),
            f.jitter,
            outcome.retry_after_ms,
        )
        .map_or(AfterFailure::Exhausted, |ms| {
            AfterFailure::RetryAt(finished + ms as i64)
        }),
    });
    let (status, next_attempt_at) = match &after {
        None => (DeliveryStatus::Succeeded, None),
        Some(AfterFailure::RetryAt(at) | AfterFailure::Resume(at)) => {
            (DeliveryStatus::Pending, Some(*at))
        }
        Some(AfterFailure::Return(status)) => (*status, None),
        Some(AfterFailure::Exhausted) => (DeliveryStatus::Failed, None),
    };
    let exhausted = matches!(after, Some(AfterFailure::Exhausted));
    let consecutive_failures = if success {
        0
    } else {
        f.state.consecutive_failures + u64::from(exhausted)
    };
    let counters = CounterChange {
        succeeded: u64::from(status == DeliveryStatus::Succeeded),
        failed: u64::from(status == DeliveryStatus::Failed),
        settled: u64::from(status != DeliveryStatus::Pending),
        consecutive_failures,
    };

    let limit = u64::from(f.endpoint.settings.disable_after);
    let disable = match (f.state.is_active && exhausted, gone) {
        (false, _) => None,
        (true, true) => Some(DisableReason::Gone),
        (true, false) if limit > 0 && consecutive_failures >= limit => {
            Some(DisableReason::ConsecutiveFailures)
        }
        (true, false) => None,
    };

    let news = AttemptNews {
        exhausted,
        recovered: success && f.delivery.was_exhausted,
        disabled: disable.map(|reason| (reason, consecutive_failures)),
        at: finished,
    };
    let announce = operational::after_attempt(f.endpoint, f.delivery, f.attempt, outcome, news);
    Transition {
        status,
        next_attempt_at,
        exhausted,
        finished_at: finished,
        counters,
        disable,
        announce,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::attempt::EndpointState;
    use crate::model::delivery::DeliveryFacts;
    use crate::model::endpoint::EndpointCounters;
    use crate::model::operational::{DELIVERY_EXHAUSTED, DELIVERY_RECOVERED, ENDPOINT_DISABLED};
    use crate::model::results::{EndpointResults, Finished, StateGuard, plan_endpoint};
    use crate::model::{
        AttemptOutcome, DeliveryId, Endpoint, EndpointId, EndpointSettings, ErrorClass, EventId,
        EventPattern, Format, Ordering, SignatureScheme, TenantId,
    };

    const AT: i64 = 1_000_000;
    const LATENCY: u32 = 10;
    const DONE: i64 = AT + LATENCY as i64;

    fn endpoint(disable_after: u32, ordering: Ordering) -> Endpoint {
        Endpoint {
            id: EndpointId(7),
            tenant_id: TenantId(1),
            settings: EndpointSettings {
                name: "e".into(),
                url: url::Url::parse("https://example.com/h").expect("url"),
                destination: Default::default(),
                events: vec![EventPattern::All],
                signature_scheme: SignatureScheme::Standard,
                signature_header_name: None,
                format: Format::Json,
                headers: Default::default(),
                retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(60)],
                disable_after,
                timeout_ms: 1000,
                rate_limit: None,
                ordering,
                is_active: true,
                filter: None,
                channels: None,
                auth: None,
                client_certificate: None,
                url_sealed: None,
            },
            created_at: 0,
            updated_at: 0,
            disabled_at: None,
            disabled_reason: None,
            counters: EndpointCounters::default(),
        }
    }

    fn delivery(event_type: &str, replay: Option<Replay>, was_exhausted: bool) -> DeliveryFacts {
        DeliveryFacts {
            id: DeliveryId(3),
            event_id: EventId(2),
            event_type: event_type.into(),
            schedule_offset: 0,
            replay,
            was_exhausted,
        }
    }

    fn answered(code: u16, retry_after_ms: Option<u64>) -> AttemptOutcome {
        AttemptOutcome {
            at: AT,
            response_code: Some(code),
            latency_ms: LATENCY,
            error: (!(200..300).contains(&code)).then_some(ErrorClass::HttpStatus),
            error_message: None,
            response_body: None,
            retry_after_ms,
        }
    }

    struct Case {
        name: &'static str,
        attempt: u32,
        outcome: AttemptOutcome,
        delivery: DeliveryFacts,
        endpoint: Endpoint,
        state: EndpointState,
        jitter: f64,
        // Expected:
        status: DeliveryStatus,
        next_attempt_at: Option<i64>,
        consecutive: u64,
        disable: Option<DisableReason>,
        announce: Vec<&'static str>,
    }

    fn base(name: &'static str) -> Case {
        Case {
            name,
            attempt: 1,
            outcome: answered(200, None),
            delivery: delivery("a.b", None, false),
            endpoint: endpoint(0, Ordering::None),
            state: EndpointState {
                is_active: true,
                consecutive_failures: 2,
            },
            jitter: 1.0,
            status: DeliveryStatus::Succeeded,
            next_attempt_at: None,
            consecutive: 0,
            disable: None,
            announce: vec![],
        }
    }

    fn cases() -> Vec<Case> {
        vec![
            base("2xx succeeds and resets the failure count"),
            Case {
                outcome: answered(500, None),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 1000),
                consecutive: 2,
                ..base("a failure with retries left waits for the schedule's first delay")
            },
            Case {
                attempt: 2,
                outcome: answered(500, None),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 60_000),
                consecutive: 2,
                ..base("the second failure waits for the second delay")
            },
            Case {
                jitter: 0.8,
                outcome: answered(500, None),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 800),
                consecutive: 2,
                ..base("jitter shortens a delay by at most a fifth")
            },
            Case {
                jitter: 3.0,
                outcome: answered(500, None),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 1200),
                consecutive: 2,
                ..base("jitter lengthens a delay by at most a fifth")
            },
            Case {
                attempt: 3,
                outcome: answered(500, None),
                status: DeliveryStatus::Failed,
                consecutive: 3,
                announce: vec![DELIVERY_EXHAUSTED],
                ..base("the schedule used up fails it for good")
            },
            Case {
                attempt: 3,
                outcome: answered(500, None),
                endpoint: endpoint(3, Ordering::None),
                status: DeliveryStatus::Failed,
                consecutive: 3,
                disable: Some(DisableReason::ConsecutiveFailures),
                announce: vec![DELIVERY_EXHAUSTED, ENDPOINT_DISABLED],
                ..base("disableAfter failures in a row disable the endpoint")
            },
            Case {
                attempt: 3,
                outcome: answered(500, None),
                endpoint: endpoint(3, Ordering::None),
                state: EndpointState {
                    is_active: false,
                    consecutive_failures: 5,
                },
                status: DeliveryStatus::Failed,
                consecutive: 6,
                announce: vec![DELIVERY_EXHAUSTED],
                ..base("an endpoint already disabled is not disabled again")
            },
            Case {
                attempt: 3,
                outcome: answered(500, None),
                endpoint: endpoint(0, Ordering::None),
                state: EndpointState {
                    is_active: true,
                    consecutive_failures: 1000,
                },
                status: DeliveryStatus::Failed,
                consecutive: 1001,
                announce: vec![DELIVERY_EXHAUSTED],
                ..base("disableAfter 0 never disables")
            },
            Case {
                outcome: answered(410, None),
                endpoint: endpoint(0, Ordering::None),
                status: DeliveryStatus::Failed,
                consecutive: 3,
                disable: Some(DisableReason::Gone),
                announce: vec![DELIVERY_EXHAUSTED, ENDPOINT_DISABLED],
                ..base("410 Gone fails it at once and disables the endpoint")
            },
            Case {
                outcome: answered(429, Some(30_000)),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 30_000),
                consecutive: 2,
                ..base("429 with Retry-After waits at least that long")
            },
            Case {
                outcome: answered(503, Some(3_600_000)),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(DONE + 60_000),
                consecutive: 2,
                ..base("503 with a long Retry-After is capped at the longest delay")
            },
            Case {
                attempt: 3,
                outcome: answered(500, None),
                endpoint: endpoint(0, Ordering::Fifo),
                status: DeliveryStatus::Failed,
                consecutive: 3,
                announce: vec![DELIVERY_EXHAUSTED],
                ..base("a FIFO head failed for good leaves pending, releasing the next")
            },
            Case {
                delivery: delivery("a.b", Some(Replay::Return(DeliveryStatus::Failed)), true),
                announce: vec![DELIVERY_RECOVERED],
                ..base("a replayed delivery that had failed for good announces its recovery")
            },
            Case {
                delivery: delivery("a.b", Some(Replay::Return(DeliveryStatus::Failed)), true),
                attempt: 4,
                outcome: answered(500, None),
                status: DeliveryStatus::Failed,
                consecutive: 2,
                ..base("a failed replay goes back to failed without counting as new")
            },
            Case {
                delivery: delivery("a.b", Some(Replay::Resume(Some(AT + 5000))), false),
                outcome: answered(500, None),
                status: DeliveryStatus::Pending,
                next_attempt_at: Some(AT + 5000),
                consecutive: 2,
                ..base("a failed extra attempt of a pending delivery resumes its schedule")
            },
            Case {
                delivery: delivery("hookd.delivery.exhausted", None, false),
                attempt: 3,
                outcome: answered(500, None),
                endpoint: endpoint(3, Ordering::None),
                status: DeliveryStatus::Failed,
                consecutive: 3,
                disable: Some(DisableReason::ConsecutiveFailures),
                ..base("a hookd.* delivery never announces anything")
            },
            Case {
                delivery: delivery(
                    "hookd.endpoint.disabled",
                    Some(Replay::Return(DeliveryStatus::Failed)),
                    true,
                ),
                ..base("a hookd.* delivery's recovery is not announced either")
            },
        ]
    }

    #[test]
    fn every_branch_of_the_rule() {
        for case in cases() {
            let facts = AttemptFacts {
                delivery: &case.delivery,
                attempt: case.attempt,
                endpoint: &case.endpoint,
                state: case.state,
                outcome: &case.outcome,
                jitter: case.jitter,
            };
            let t = after_attempt(&facts);
            let name = case.name;
            assert_eq!(t.status, case.status, "{name}: status");
            assert_eq!(t.next_attempt_at, case.next_attempt_at, "{name}: next");
            assert_eq!(t.counters.consecutive_failures, case.consecutive, "{name}");
            assert_eq!(t.disable, case.disable, "{name}: disable");
            let names: Vec<_> = t.announce.iter().map(|a| a.name).collect();
            assert_eq!(names, case.announce, "{name}: announcements");
            assert!(
                t.announce.iter().all(|a| a.about == case.endpoint.id),
                "{name}"
            );
            let returned = matches!(case.delivery.replay, Some(Replay::Return(_)));
            let exhausted = case.status == DeliveryStatus::Failed && !returned;
            assert_eq!(t.exhausted, exhausted, "{name}: exhausted");
            let settled = u64::from(t.status != DeliveryStatus::Pending);
            assert_eq!(t.counters.settled, settled, "{name}: settled");
            assert_eq!(t.finished_at, DONE, "{name}");
        }
    }

    #[test]
    fn a_disable_announcement_says_why_and_how_many_failed() {
        let d = delivery("a.b", None, false);
        let e = endpoint(1, Ordering::None);
        let o = answered(500, None);
        let t = after_attempt(&AttemptFacts {
            delivery: &d,
            attempt: 3,
            endpoint: &e,
            state: EndpointState {
                is_active: true,
                consecutive_failures: 0,
            },
            outcome: &o,
            jitter: 1.0,
        });
        let disabled = t
            .announce
            .iter()
            .find(|a| a.name == ENDPOINT_DISABLED)
            .expect("disabled");
        assert_eq!(disabled.data["reason"], "consecutive_failures");
        assert_eq!(disabled.data["consecutiveFailures"], 1);
        let exhausted = &t.announce[0];
        assert_eq!(exhausted.data["deliveryId"], "dlv_3");
        assert_eq!(exhausted.data["responseCode"], 500);
        assert_eq!(exhausted.data["error"], "http_status");
    }

    /// One endpoint's results planned together, in order, from `state`.
    fn plan(
        endpoint: &Endpoint,
        state: EndpointState,
        results: &[(u32, AttemptOutcome)],
    ) -> EndpointResults<()> {
        let d = delivery("a.b", None, false);
        let finished: Vec<_> = results
            .iter()
            .enumerate()
            .map(|(i, (attempt, outcome))| {
                let f = Finished {
                    delivery: &d,
                    lease: 9,
                    attempt: *attempt,
                    endpoint,
                    outcome,
                    jitter: 1.0,
                };
                (i, f)
            })
            .collect();
        plan_endpoint(
            (endpoint.id, endpoint.tenant_id),
            state,
            &finished,
            after_attempt,
        )
    }

    #[test]
    fn results_planned_together_see_the_run_of_failures_the_earlier_ones_left() {
        let e = endpoint(2, Ordering::None);
        let state = EndpointState {
            is_active: true,
            consecutive_failures: 0,
        };
        // Three failed for good: the second disables it at two, the third finds it disabled.
        let failed = (3, answered(500, None));
        let p = plan(&e, state, &[failed.clone(), failed.clone(), failed]);
        let runs: Vec<_> = p
            .results
            .iter()
            .map(|r| r.transition.counters.consecutive_failures)
            .collect();
        assert_eq!(runs, [1, 2, 3]);
        let disables: Vec<_> = p.results.iter().map(|r| r.transition.disable).collect();
        assert_eq!(
            disables,
            [None, Some(DisableReason::ConsecutiveFailures), None]
        );
        assert_eq!(p.disable, Some((DisableReason::ConsecutiveFailures, DONE)));
        assert_eq!(
            p.guard,
            StateGuard::Exactly(state),
            "it depends on the run as read"
        );
        assert_eq!(
            p.results.iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(
            p.results
                .iter()
                .all(|r| r.lease == 9 && r.announce.is_empty())
        );

        // A success between them starts the run again: nothing is disabled.
        let p = plan(
            &e,
            state,
            &[
                (3, answered(500, None)),
                (1, answered(200, None)),
                (3, answered(500, None)),
            ],
        );
        let runs: Vec<_> = p
            .results
            .iter()
            .map(|r| r.transition.counters.consecutive_failures)
            .collect();
        assert_eq!(runs, [1, 0, 1]);
        assert_eq!(p.disable, None);
        assert_eq!(p.guard, StateGuard::Exactly(state));
    }

    #[test]
    fn results_that_fail_nothing_for_good_depend_on_no_state() {
        let e = endpoint(1, Ordering::None);
        let state = EndpointState {
            is_active: true,
            consecutive_failures: 7,
        };
        // Successes and failures with retries left: the same whatever the run stands at.
        let p = plan(
            &e,
            state,
            &[(1, answered(200, None)), (1, answered(500, None))],
        );
        assert_eq!(p.guard, StateGuard::Any);
        assert_eq!(p.disable, None);
        let statuses: Vec<_> = p.results.iter().map(|r| r.transition.status).collect();
        assert_eq!(
            statuses,
            [DeliveryStatus::Succeeded, DeliveryStatus::Pending]
        );
    }
}
