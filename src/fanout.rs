//! Fan-out: which of a tenant's endpoints get a delivery of an event. A tenant's active
//! endpoints, their patterns and payload filters are compiled once into [`Subscribers`] (the
//! store caches them per tenant and forgets them when an endpoint changes), so a publish
//! parses no subscription; an event's data is parsed once, and only when a subscribed
//! endpoint has a filter.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::model::event::channels_meet;
use crate::model::filter::Filter;
use crate::model::{EndpointId, EventPattern};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
