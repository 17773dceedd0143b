//! Fan-out: which of a tenant's endpoints get a delivery of an event. A tenant's active
//! endpoints and their patterns are compiled once into [`Subscribers`] (the store caches them
//! per tenant and forgets them when an endpoint changes), so a publish parses nothing.

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

/// A tenant's active endpoints with their compiled subscriptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscribers {
    endpoints: Vec<(EndpointId, Vec<EventPattern>)>,
}

impl Subscribers {
    /// Compiles the subscriptions of a tenant's active endpoints.
    pub fn new(active: Vec<(EndpointId, Vec<EventPattern>)>) -> Self {
        Self { endpoints: active }
    }

    /// The endpoints an event of type `name` goes to, in endpoint order.
    pub fn targets(&self, name: &str, fanout: Fanout) -> Vec<EndpointId> {
        let subscribed = |patterns: &[EventPattern]| patterns.iter().any(|p| p.matches(name));
        self.endpoints
            .iter()
            .filter(|(id, patterns)| match fanout {
                Fanout::Subscribers => subscribed(patterns),
                Fanout::SubscribersExcept(e) => *id != e && subscribed(patterns),
                Fanout::Only(e) => *id == e,
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> EventPattern {
        EventPattern::parse(p).expect("pattern")
    }

    fn tenant() -> Subscribers {
        Subscribers::new(vec![
            (EndpointId(1), vec![pattern("*")]),
            (EndpointId(2), vec![pattern("project.*")]),
            (
                EndpointId(3),
                vec![pattern("project.created"), pattern("hookd.*")],
            ),
            (EndpointId(4), vec![pattern("vote.cast")]),
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
            assert_eq!(ids(t.targets(name, fanout)), want, "{name} {fanout:?}");
        }
    }

    #[test]
    fn only_reaches_nothing_when_the_endpoint_is_not_active() {
        assert!(
            tenant()
                .targets("a.b", Fanout::Only(EndpointId(9)))
                .is_empty()
        );
        assert!(
            Subscribers::default()
                .targets("a.b", Fanout::Subscribers)
                .is_empty()
        );
    }
}
