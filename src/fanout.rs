//! Fan-out: which of a tenant's endpoints get a delivery of an event. A tenant's active
//! endpoints, their patterns and payload filters are compiled once into [`Subscribers`] (the
//! store caches them per tenant and forgets them when an endpoint changes), so a publish
//! parses no subscription; an event's data is parsed once, and only when a subscribed
//! endpoint has a filter.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::model::event::{channels_meet, repeats_since};
use crate::model::filter::Filter;
use crate::model::plan::Plan;
use crate::model::publish::{Metering, NewEvent, PlannedEvent, PublishPlan};
use crate::model::schedule::{covers, reported_status};
use crate::model::{EndpointId, EventPattern, ScheduleId, TenantId, UnixMs};

/// Which endpoints a publish delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// Every active endpoint subscribed to the event's type.
    Subscribers,
    /// Every subscriber but this one (the subject of an operational event).
    SubscribersExcept(EndpointId),
    /// This endpoint alone, if active, whatever it subscribes to (a schedule's own target).
    Only(EndpointId),
}

/// One active endpoint's subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The event names and patterns it subscribes to.
    pub patterns: Vec<EventPattern>,
    /// The conditions an event's payload must meet, if any.
    pub filter: Option<Arc<Filter>>,
    /// The channels it listens to (`None`: any).
    pub channels: Option<Vec<String>>,
}

/// A tenant's active endpoints with their compiled subscriptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscribers {
    endpoints: Vec<Subscription>,
}

impl Subscribers {
    /// Compiles the subscriptions of a tenant's active endpoints.
    pub fn new(active: Vec<Subscription>) -> Self {
        Self { endpoints: active }
    }

    /// The endpoints an event of type `name` with `data` (JSON text) on `channels` goes to, in
    /// endpoint order. `data` is parsed at most once, for the first subscribed endpoint with
    /// a filter; data that does not parse passes no filter.
    pub fn targets(
        &self,
        name: &str,
        data: &str,
        channels: &[String],
        fanout: Fanout,
    ) -> Vec<EndpointId> {
        let parsed: OnceLock<Option<Value>> = OnceLock::new();
        let passes = |filter: &Option<Arc<Filter>>| match filter {
            None => true,
            Some(filter) => parsed
                .get_or_init(|| serde_json::from_str(data).ok())
                .as_ref()
                .is_some_and(|data| filter.passes(name, data)),
        };
        let subscribed = |s: &Subscription| {
            s.patterns.iter().any(|p| p.matches(name))
                && channels_meet(s.channels.as_deref(), channels)
                && passes(&s.filter)
        };
        self.endpoints
            .iter()
            .filter(|s| match fanout {
                Fanout::Subscribers => subscribed(s),
                Fanout::SubscribersExcept(e) => s.endpoint != e && subscribed(s),
                Fanout::Only(e) => s.endpoint == e,
            })
            .map(|s| s.endpoint)
            .collect()
    }
}

/// An `on_status_change` schedule as a publish sees it: the status it waits for and the event
/// types it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTrigger {
    /// The schedule.
    pub schedule: ScheduleId,
    /// The `data.status` it waits for.
    pub status: String,
    /// The event types it covers (`None`: all but digests and `hookd.*`).
    pub events: Option<Vec<EventPattern>>,
}

/// What a publish is planned from: one tenant's active subscriptions, plan and active
/// `on_status_change` schedules, as of one version of them (see [`PublishPlan::version`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    /// The tenant's version these were read at.
    pub version: i64,
    /// Its active endpoints' subscriptions.
    pub subscribers: Subscribers,
    /// Its plan.
    pub plan: Plan,
    /// Its active `on_status_change` schedules.
    pub triggers: Vec<StatusTrigger>,
}

impl Audience {
    /// The plan for publishing `events` at `now`: each event's targets, the quota they count
    /// against, the idempotency window and the schedules they make due.
    pub fn plan(
        &self,
        tenant: TenantId,
        events: Vec<NewEvent>,
        fanout: Fanout,
        metering: Metering,
        now: UnixMs,
    ) -> PublishPlan {
        let mut wake_schedules = Vec::new();
        let events = events
            .into_iter()
            .map(|event| {
                let name = event.name.as_str();
                if !self.triggers.is_empty()
                    && let Some(status) = reported_status(name, &event.data)
                {
                    let due = self
                        .triggers
                        .iter()
                        .filter(|t| t.status == status && covers(t.events.as_deref(), name));
                    for t in due {
                        if !wake_schedules.contains(&t.schedule) {
                            wake_schedules.push(t.schedule);
                        }
                    }
                }
                let targets = self
                    .subscribers
                    .targets(name, &event.data, &event.channels, fanout);
                PlannedEvent { event, targets }
            })
            .collect();
        PublishPlan {
            tenant,
            version: self.version,
            at: now,
            events,
            quota: (metering == Metering::Counted).then_some(self.plan),
            repeats_since: repeats_since(now),
            wake_schedules,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::IDEMPOTENCY_WINDOW_MS;

    fn pattern(p: &str) -> EventPattern {
        EventPattern::parse(p).expect("pattern")
    }

    fn sub(id: i64, patterns: &[&str], filter: Option<Value>) -> Subscription {
        Subscription {
            endpoint: EndpointId(id),
            patterns: patterns.iter().map(|p| pattern(p)).collect(),
            filter: filter.map(|f| Arc::new(Filter::parse(&f).expect("filter"))),
            channels: None,
        }
    }

    fn tenant() -> Subscribers {
        Subscribers::new(vec![
            sub(1, &["*"], None),
            sub(2, &["project.*"], None),
            sub(3, &["project.created", "hookd.*"], None),
            sub(4, &["vote.cast"], None),
        ])
    }

    #[test]
    fn each_fanout_reaches_exactly_its_endpoints() {
        let ids = |v: Vec<EndpointId>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        let t = tenant();
        let cases: [(&str, Fanout, Vec<i64>); 8] = [
            ("project.created", Fanout::Subscribers, vec![1, 2, 3]),
            ("project.deleted", Fanout::Subscribers, vec![1, 2]),
            ("vote.cast", Fanout::Subscribers, vec![1, 4]),
            ("other.thing", Fanout::Subscribers, vec![1]),
            // `*` never matches hookd's own events; only an explicit pattern does.
            ("hookd.endpoint.disabled", Fanout::Subscribers, vec![3]),
            (
                "hookd.endpoint.disabled",
                Fanout::SubscribersExcept(EndpointId(3)),
                vec![],
            ),
            (
                "project.created",
                Fanout::SubscribersExcept(EndpointId(2)),
                vec![1, 3],
            ),
            // A schedule's target gets its digest whatever it subscribes to.
            ("schedule.digest", Fanout::Only(EndpointId(4)), vec![4]),
        ];
        for (name, fanout, want) in cases {
            assert_eq!(
                ids(t.targets(name, "{}", &[], fanout)),
                want,
                "{name} {fanout:?}"
            );
        }
    }

    #[test]
    fn only_reaches_nothing_when_the_endpoint_is_not_active() {
        assert!(
            tenant()
                .targets("a.b", "{}", &[], Fanout::Only(EndpointId(9)))
                .is_empty()
        );
        assert!(
            Subscribers::default()
                .targets("a.b", "{}", &[], Fanout::Subscribers)
                .is_empty()
        );
    }

    #[test]
    fn a_filtered_endpoint_gets_only_the_events_its_conditions_accept() {
        let done = serde_json::json!([{"path": "data.status", "op": "eq", "value": "done"}]);
        let t = Subscribers::new(vec![
            sub(1, &["post.*"], None),
            sub(2, &["post.*"], Some(done)),
        ]);
        let ids = |v: Vec<EndpointId>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        let to = |data: &str| ids(t.targets("post.updated", data, &[], Fanout::Subscribers));
        assert_eq!(to(r#"{"status": "done"}"#), [1, 2]);
        assert_eq!(to(r#"{"status": "open"}"#), [1]);
        assert_eq!(
            to("not json"),
            [1],
            "data that does not parse passes no filter"
        );
    }

    #[test]
    fn an_endpoint_with_channels_gets_only_events_on_one_of_them() {
        let mut board = sub(2, &["*"], None);
        board.channels = Some(vec!["board.42".into(), "board.7".into()]);
        let t = Subscribers::new(vec![sub(1, &["*"], None), board]);
        let ids = |v: Vec<EndpointId>| v.into_iter().map(|e| e.0).collect::<Vec<_>>();
        let on = |channels: &[&str]| {
            let channels: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
            ids(t.targets("post.created", "{}", &channels, Fanout::Subscribers))
        };
        assert_eq!(on(&["board.42"]), [1, 2]);
        assert_eq!(on(&["board.1", "board.7"]), [1, 2]);
        assert_eq!(on(&["board.1"]), [1]);
        assert_eq!(
            on(&[]),
            [1],
            "an event on no channel skips endpoints that listen to some"
        );
    }

    fn new_event(name: &str, data: &str) -> NewEvent {
        NewEvent {
            name: crate::model::EventName::parse(name).expect("name"),
            data: data.into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        }
    }

    fn audience() -> Audience {
        let trigger = |id: i64, status: &str, events: Option<&[&str]>| StatusTrigger {
            schedule: ScheduleId(id),
            status: status.into(),
            events: events.map(|e| e.iter().map(|p| pattern(p)).collect()),
        };
        Audience {
            version: 7,
            subscribers: tenant(),
            plan: Plan::default(),
            triggers: vec![
                trigger(10, "shipped", None),
                trigger(11, "shipped", Some(&["post.*"])),
                trigger(12, "planned", None),
            ],
        }
    }

    #[test]
    fn a_plan_carries_each_events_targets_and_the_version_it_was_computed_from() {
        let now = 1_000_000_000;
        let events = vec![
            new_event("project.created", "{}"),
            new_event("vote.cast", "{}"),
        ];
        let plan = audience().plan(
            TenantId(3),
            events,
            Fanout::Subscribers,
            Metering::Counted,
            now,
        );
        assert_eq!((plan.tenant, plan.version, plan.at), (TenantId(3), 7, now));
        let targets: Vec<Vec<i64>> = plan
            .events
            .iter()
            .map(|p| p.targets.iter().map(|e| e.0).collect())
            .collect();
        assert_eq!(targets, [vec![1, 2, 3], vec![1, 4]]);
        assert_eq!(
            plan.quota,
            Some(Plan::default()),
            "counted against the plan"
        );
        // A key first used exactly one window ago no longer holds; a millisecond later it does.
        assert_eq!(plan.repeats_since, now - IDEMPOTENCY_WINDOW_MS + 1);
        let internal = audience().plan(
            TenantId(3),
            vec![new_event("a.b", "{}")],
            Fanout::SubscribersExcept(EndpointId(1)),
            Metering::Internal,
            now,
        );
        assert_eq!(internal.quota, None, "hookd's own events are not counted");
        assert!(internal.events[0].targets.is_empty());
    }

    #[test]
    fn a_plan_wakes_the_status_schedules_its_events_report_once_each() {
        let wakes = |events: &[(&str, &str)]| -> Vec<i64> {
            let events = events.iter().map(|(n, d)| new_event(n, d)).collect();
            audience()
                .plan(
                    TenantId(1),
                    events,
                    Fanout::Subscribers,
                    Metering::Counted,
                    0,
                )
                .wake_schedules
                .iter()
                .map(|s| s.0)
                .collect()
        };
        type Events<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Events, Vec<i64>); 6] = [
            (
                &[("post.updated", r#"{"status": "shipped"}"#)],
                vec![10, 11],
            ),
            (&[("vote.cast", r#"{"status": "shipped"}"#)], vec![10]),
            (&[("post.updated", r#"{"status": "planned"}"#)], vec![12]),
            (&[("post.updated", r#"{"state": "shipped"}"#)], vec![]),
            // Never hookd's own events.
            (
                &[("hookd.endpoint.disabled", r#"{"status": "shipped"}"#)],
                vec![],
            ),
            (
                &[
                    ("post.updated", r#"{"status": "shipped"}"#),
                    ("post.created", r#"{"status": "shipped"}"#),
                ],
                vec![10, 11],
            ),
        ];
        for (events, want) in cases {
            assert_eq!(wakes(events), want, "{events:?}");
        }
    }
}
