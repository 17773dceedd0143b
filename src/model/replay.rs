//! Replay rules: what a manual retry of one delivery does, and which missed events a recover
//! window gives an endpoint. The store applies what these return.

use super::delivery::{DeliveryStatus, Replay};
use super::event::OPERATIONAL_PREFIX;
use super::{DeliveryId, Endpoint, EndpointId, EndpointSettings, EventId, UnixMs};

/// What a retry of a delivery does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryPlan {
    /// A pending delivery gets one extra attempt now; if it fails, its schedule resumes where
    /// it was (the extra attempt does not use up a retry).
    ExtraAttempt,
    /// A finished delivery is pending again for one attempt now; if that fails it returns to
    /// this status.
    OneMore(DeliveryStatus),
    /// An extra attempt is already queued: nothing more to do.
    AlreadyQueued,
}

/// Why a retry is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    /// The endpoint is disabled.
    #[error("endpoint {0} is disabled; enable it before retrying its deliveries")]
    EndpointDisabled(EndpointId),
    /// An attempt holds the lease.
    #[error("an attempt of this delivery is in flight; try again when it finishes")]
    InFlight,
}

/// What a retry is decided from, read outside the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryFacts {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its endpoint.
    pub endpoint: EndpointId,
    /// Whether the endpoint is active.
    pub endpoint_active: bool,
    /// The delivery's status.
    pub status: DeliveryStatus,
    /// Whether an attempt holds its lease.
    pub in_flight: bool,
    /// A replay already queued on it.
    pub replay: Option<Replay>,
}

/// A retry decided from [`RetryFacts`]: the store applies it only while the delivery is
/// still as seen (same status, no attempt in flight, no replay queued) and its endpoint
/// still active, and hands it back otherwise, to be decided again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRetry {
    /// What it was decided from.
    pub facts: RetryFacts,
    /// What to do.
    pub plan: RetryPlan,
}

impl RetryFacts {
    /// Decides the retry by [`plan_retry`].
    pub fn plan(self) -> Result<PlannedRetry, RetryRefused> {
        plan_retry(
            self.endpoint,
            self.endpoint_active,
            self.status,
            self.in_flight,
            self.replay,
        )
        .map(|plan| PlannedRetry { facts: self, plan })
    }
}

/// The retry rule, from the delivery's state: its status, whether an attempt is in flight,
/// whether a replay is already queued, and whether its endpoint is active.
pub fn plan_retry(
    endpoint: EndpointId,
    endpoint_active: bool,
    status: DeliveryStatus,
    in_flight: bool,
    replay: Option<Replay>,
) -> Result<RetryPlan, RetryRefused> {
    if !endpoint_active {
        return Err(RetryRefused::EndpointDisabled(endpoint));
    }
    if in_flight {
        return Err(RetryRefused::InFlight);
    }
    Ok(match status {
        DeliveryStatus::Pending if replay.is_some() => RetryPlan::AlreadyQueued,
        DeliveryStatus::Pending => RetryPlan::ExtraAttempt,
        finished => RetryPlan::OneMore(finished),
    })
}

/// An event of a recover window that an endpoint never got a delivery of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedEvent {
    /// The event.
    pub id: EventId,
    /// Its type.
    pub name: String,
    /// The endpoint an operational (`hookd.*`) event is about (its data's `endpointId`).
    pub about: Option<String>,
    /// Its data, as stored JSON text.
    pub data: String,
    /// Its channels.
    pub channels: Vec<String>,
}

/// The deliveries one recover step creates, decided from the endpoint as it was when last
/// changed at `seen_at`: the store applies the plan only while the endpoint is unchanged (its
/// subscriptions, filter and channels are what decided), and never twice for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverPlan {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The endpoint's `updated_at` the plan was decided from.
    pub seen_at: UnixMs,
    /// The events it gets a delivery of, oldest first.
    pub events: Vec<EventId>,
}

/// Which of the `missed` events go to `endpoint` on recover (by [`replays_to`]).
pub fn plan_missed(endpoint: &Endpoint, missed: &[MissedEvent]) -> RecoverPlan {
    RecoverPlan {
        endpoint: endpoint.id,
        seen_at: endpoint.updated_at,
        events: missed
            .iter()
            .filter(|e| {
                replays_to(
                    endpoint.id,
                    &endpoint.settings,
                    &e.name,
                    &e.data,
                    &e.channels,
                    e.about.as_deref(),
                )
            })
            .map(|e| e.id)
            .collect(),
    }
}

/// The part of a recover window `[since, until)` an endpoint can have missed: nothing before
/// it existed. `None` when that leaves nothing.
pub fn recover_window(
    since: UnixMs,
    until: UnixMs,
    endpoint_created_at: UnixMs,
) -> Option<(UnixMs, UnixMs)> {
    let start = since.max(endpoint_created_at);
    (start < until).then_some((start, until))
}

/// Whether a missed event goes to an endpoint on recover: it subscribes to it, the event is on
/// one of the endpoint's channels (if it lists any), its payload filter (if any) accepts
/// `data` (the event's data as JSON text), and it is not an
/// operational event about that endpoint itself (`about`: the event's `endpointId`).
pub fn replays_to(
    endpoint: EndpointId,
    settings: &EndpointSettings,
    name: &str,
    data: &str,
    channels: &[String],
    about: Option<&str>,
) -> bool {
    let about_self =
        name.starts_with(OPERATIONAL_PREFIX) && about.is_some_and(|a| a == endpoint.to_string());
    let passes = settings.filter.as_ref().is_none_or(|filter| {
        serde_json::from_str(data).is_ok_and(|data| filter.passes(name, &data))
    });
    settings.subscribes_to(name)
        && !about_self
        && super::event::channels_meet(settings.channels.as_deref(), channels)
        && passes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventPattern;

    #[test]
    fn a_retry_follows_the_delivery_state() {
        let e = EndpointId(1);
        use DeliveryStatus::*;
        let cases = [
            (true, Pending, false, None, Ok(RetryPlan::ExtraAttempt)),
            (
                true,
                Pending,
                false,
                Some(Replay::Resume(None)),
                Ok(RetryPlan::AlreadyQueued),
            ),
            (true, Failed, false, None, Ok(RetryPlan::OneMore(Failed))),
            (
                true,
                Succeeded,
                false,
                None,
                Ok(RetryPlan::OneMore(Succeeded)),
            ),
            (true, Pending, true, None, Err(RetryRefused::InFlight)),
            (
                false,
                Failed,
                false,
                None,
                Err(RetryRefused::EndpointDisabled(e)),
            ),
        ];
        for (active, status, in_flight, replay, want) in cases {
            assert_eq!(
                plan_retry(e, active, status, in_flight, replay),
                want,
                "{active} {status:?} {in_flight} {replay:?}"
            );
        }
    }

    #[test]
    fn a_recover_window_starts_no_earlier_than_the_endpoint() {
        assert_eq!(recover_window(100, 200, 50), Some((100, 200)));
        assert_eq!(recover_window(100, 200, 150), Some((150, 200)));
        assert_eq!(recover_window(100, 200, 250), None);
        assert_eq!(recover_window(200, 100, 0), None);
    }

    #[test]
    fn missed_events_replay_by_subscription_but_never_about_the_endpoint_itself() {
        let url = url::Url::parse("https://example.com/h").expect("url");
        let all = EndpointSettings::new("e".into(), url.clone(), vec![EventPattern::All]);
        let ops = EndpointSettings::new(
            "o".into(),
            url,
            vec![EventPattern::parse("hookd.*").expect("pattern")],
        );
        let me = EndpointId(7);
        assert!(replays_to(me, &all, "order.paid", "{}", &[], None));
        assert!(!replays_to(
            me,
            &all,
            "hookd.endpoint.disabled",
            "{}",
            &[],
            Some("ep_3")
        ));
        assert!(replays_to(
            me,
            &ops,
            "hookd.endpoint.disabled",
            "{}",
            &[],
            Some("ep_3")
        ));
        assert!(!replays_to(
            me,
            &ops,
            "hookd.endpoint.disabled",
            "{}",
            &[],
            Some("ep_7")
        ));
    }

    #[test]
    fn missed_events_replay_only_when_the_endpoints_filter_accepts_them() {
        let url = url::Url::parse("https://example.com/h").expect("url");
        let mut done = EndpointSettings::new("d".into(), url, vec![EventPattern::All]);
        let filter = serde_json::json!([{"path": "data.status", "op": "eq", "value": "done"}]);
        done.filter = Some(std::sync::Arc::new(
            crate::model::filter::Filter::parse(&filter).expect("filter"),
        ));
        let me = EndpointId(7);
        assert!(replays_to(
            me,
            &done,
            "post.updated",
            r#"{"status":"done"}"#,
            &[],
            None
        ));
        assert!(!replays_to(
            me,
            &done,
            "post.updated",
            r#"{"status":"open"}"#,
            &[],
            None
        ));
    }
}
