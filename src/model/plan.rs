//! Plans: the feature switches and limits an operator sets per tenant, and the decisions
//! they make (is this route on, does one more endpoint fit, do these events fit today).

use super::UnixMs;

/// Milliseconds in a UTC day.
const DAY_MS: i64 = 86_400_000;

/// A feature a plan switches on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Incoming webhooks (`/v1/incoming`, `/hooks/in/…`).
    Incoming,
    /// Integrations (`/v1/integrations`) and the endpoints they made.
    Integrations,
    /// Schedules (`/v1/schedules`) and their runs.
    Schedules,
}

text_enum!(Feature {
    Incoming => "incoming",
    Integrations => "integrations",
    Schedules => "schedules"
});

/// Which features a tenant has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Incoming webhooks.
    pub incoming: bool,
    /// Integrations.
    pub integrations: bool,
    /// Schedules.
    pub schedules: bool,
}

/// A tenant's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Most endpoints (integrations' endpoints included).
    pub endpoints: Option<u64>,
    /// Most events published per UTC day (by the API and incoming webhooks).
    pub events_per_day: Option<u64>,
}

/// A tenant's plan. The default has every feature on and no limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Feature switches.
    pub features: Features,
    /// Limits.
    pub limits: Limits,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            features: Features {
                incoming: true,
                integrations: true,
                schedules: true,
            },
            limits: Limits::default(),
        }
    }
}

/// Why a plan refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlanRefusal {
    /// The feature is off in the tenant's plan.
    #[error("the tenant's plan does not include {}", .0.as_str())]
    FeatureOff(Feature),
    /// The tenant has as many endpoints as its plan allows.
    #[error("the tenant's plan allows {limit} endpoints and it has {limit}; delete one first")]
    Endpoints {
        /// The limit.
        limit: u64,
    },
    /// Publishing would pass the day's events.
    #[error(
        "the tenant's plan allows {limit} events per day (UTC) and {used} were published today; try again in {retry_after}s, when the day ends"
    )]
    EventsPerDay {
        /// The limit.
        limit: u64,
        /// Events published today.
        used: u64,
        /// Seconds until the UTC day ends.
        retry_after: u64,
    },
}

impl Plan {
    /// Whether `feature` is on.
    pub fn allows(&self, feature: Feature) -> bool {
        match feature {
            Feature::Incoming => self.features.incoming,
            Feature::Integrations => self.features.integrations,
            Feature::Schedules => self.features.schedules,
        }
    }

    /// `Ok` when `feature` is on.
    pub fn require(&self, feature: Feature) -> Result<(), PlanRefusal> {
        match self.allows(feature) {
            true => Ok(()),
            false => Err(PlanRefusal::FeatureOff(feature)),
        }
    }

    /// `Ok` when one more endpoint fits beside `existing` ones.
    pub fn endpoint_fits(&self, existing: u64) -> Result<(), PlanRefusal> {
        match self.limits.endpoints {
            Some(limit) if existing >= limit => Err(PlanRefusal::Endpoints { limit }),
            _ => Ok(()),
        }
    }

    /// `Ok` when `adding` events fit beside the `used` ones published on `now`'s UTC day.
    pub fn events_fit(&self, used: u64, adding: u64, now: UnixMs) -> Result<(), PlanRefusal> {
        match self.limits.events_per_day {
            Some(limit) if used.saturating_add(adding) > limit => Err(PlanRefusal::EventsPerDay {
                limit,
                used,
                retry_after: until_day_ends(now),
            }),
            _ => Ok(()),
        }
    }
}

/// A change to a plan: absent fields keep their value; a limit of `Some(None)` removes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanPatch {
    /// Incoming webhooks on or off.
    pub incoming: Option<bool>,
    /// Integrations on or off.
    pub integrations: Option<bool>,
    /// Schedules on or off.
    pub schedules: Option<bool>,
    /// The endpoint limit.
    pub endpoints: Option<Option<u64>>,
    /// The daily event limit.
    pub events_per_day: Option<Option<u64>>,
}

impl PlanPatch {
    /// `plan` with this change applied.
    pub fn apply(&self, mut plan: Plan) -> Plan {
        let f = &mut plan.features;
        f.incoming = self.incoming.unwrap_or(f.incoming);
        f.integrations = self.integrations.unwrap_or(f.integrations);
        f.schedules = self.schedules.unwrap_or(f.schedules);
        let l = &mut plan.limits;
        l.endpoints = self.endpoints.unwrap_or(l.endpoints);
        l.events_per_day = self.events_per_day.unwrap_or(l.events_per_day);
        plan
    }
}

/// The UTC day `now` falls on, as days since the Unix epoch: the key of the daily count.
pub fn utc_day(now: UnixMs) -> i64 {
    now.div_euclid(DAY_MS)
}

/// Whole seconds from `now` until the next UTC midnight (at least 1).
pub fn until_day_ends(now: UnixMs) -> u64 {
    let left = DAY_MS - now.rem_euclid(DAY_MS);
    (left as u64).div_ceil(1000).max(1)
}

/// A tenant's usage of what its plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Its endpoints (integrations' included).
    pub endpoints: u64,
    /// Events it published today (UTC).
    pub events_today: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(endpoints: Option<u64>, events: Option<u64>) -> Plan {
        Plan {
            limits: Limits {
                endpoints,
                events_per_day: events,
            },
            ..Plan::default()
        }
    }

    #[test]
    fn the_default_plan_allows_everything() {
        let plan = Plan::default();
        for f in [Feature::Incoming, Feature::Integrations, Feature::Schedules] {
            assert_eq!(plan.require(f), Ok(()));
        }
        assert_eq!(plan.endpoint_fits(1_000_000), Ok(()));
        assert_eq!(plan.events_fit(u64::MAX, 1, 0), Ok(()));
    }

    #[test]
    fn a_feature_switched_off_is_refused_by_name() {
        let mut plan = Plan::default();
        plan.features.schedules = false;
        let refusal = plan.require(Feature::Schedules).unwrap_err();
        assert_eq!(refusal, PlanRefusal::FeatureOff(Feature::Schedules));
        assert!(refusal.to_string().contains("schedules"));
        assert_eq!(plan.require(Feature::Incoming), Ok(()));
    }

    #[test]
    fn endpoints_fit_up_to_the_limit() {
        let plan = limited(Some(2), None);
        assert_eq!(plan.endpoint_fits(0), Ok(()));
        assert_eq!(plan.endpoint_fits(1), Ok(()));
        assert_eq!(
            plan.endpoint_fits(2),
            Err(PlanRefusal::Endpoints { limit: 2 })
        );
        assert!(limited(Some(0), None).endpoint_fits(0).is_err());
    }

    #[test]
    fn events_fit_up_to_the_days_limit_and_a_batch_fits_whole_or_not_at_all() {
        let plan = limited(None, Some(10));
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(plan.events_fit(9, 1, noon), Ok(()));
        assert_eq!(plan.events_fit(0, 10, noon), Ok(()));
        assert_eq!(
            plan.events_fit(8, 3, noon),
            Err(PlanRefusal::EventsPerDay {
                limit: 10,
                used: 8,
                retry_after: 43_200,
            })
        );
    }

    #[test]
    fn a_patch_changes_what_it_names_and_null_removes_a_limit() {
        let plan = limited(Some(5), Some(100));
        let patch = PlanPatch {
            schedules: Some(false),
            events_per_day: Some(None),
            ..PlanPatch::default()
        };
        let changed = patch.apply(plan);
        assert!(!changed.features.schedules);
        assert!(changed.features.incoming);
        assert_eq!(changed.limits.endpoints, Some(5));
        assert_eq!(changed.limits.events_per_day, None);
        assert_eq!(PlanPatch::default().apply(plan), plan);
    }

    #[test]
    fn the_day_is_the_utc_day_and_retry_after_reaches_midnight() {
        let midnight = 20_000 * DAY_MS;
        assert_eq!(utc_day(midnight - 1), 19_999);
        assert_eq!(utc_day(midnight), 20_000);
        assert_eq!(until_day_ends(midnight), 86_400);
        assert_eq!(until_day_ends(midnight - 1), 1);
        assert_eq!(until_day_ends(midnight - 1500), 2);
        assert_eq!(utc_day(-1), -1);
    }
}
