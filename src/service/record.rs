//! Recording attempts: a batch of finished attempts is planned here, outside the writer.
//! Each endpoint's results are planned in order by the delivery engine's rule
//! ([`crate::model::results::plan_endpoint`]) from what each was claimed with and the
//! endpoint's state: as the claim saw it when the plan does not depend on it, read again when
//! it does. The `hookd.*` events they announce are planned from the tenant's audience. The
//! store writes each result only while its lease holds, and each endpoint's results only
//! while what they were planned from holds; what it hands back is planned again from a fresh
//! read. Recording never re-enters publish.

use std::collections::HashMap;

use crate::fanout::Fanout;
use crate::model::attempt::{AttemptRule, EndpointState};
use crate::model::claim::Claim;
use crate::model::publish::Metering;
use crate::model::results::{Finished, StateGuard, plan_endpoint};
use crate::model::results::{Recorded, ResultsPlan};
use crate::model::{AttemptOutcome, EndpointId, now_ms};
use crate::report::ErrorChain;
use crate::store::{Store, StoreError};

/// How many times results are planned before giving up while what they are planned from
/// keeps changing under them (their endpoint failing or disabled by other results, its
/// tenant's endpoints edited, between each read and write).
const PLANS: usize = 8;

/// Records the outcomes of claimed attempts: each one whose lease still holds is applied as
/// `rule` decides (see [`crate::model::attempt::AttemptRule`]); the others are
/// [`Recorded::Stale`]. The retry schedule and disable threshold are the claim's (as they
/// were when it was attempted); the endpoint's state is as committed where it matters.
/// Endpoints that got disabled have their pending deliveries settled right after, in chunks,
/// in a task of their own.
pub async fn record(
    store: &Store,
    done: Vec<(Claim, AttemptOutcome)>,
    rule: AttemptRule,
) -> Result<Vec<Recorded>, StoreError> {
    let jitters: Vec<f64> = done
        .iter()
        .map(|_| 0.8 + rand::random::<f64>() * 0.4)
        .collect();
    let mut recorded = vec![Recorded::Stale; done.len()];
    let mut open: Vec<usize> = (0..done.len()).collect();
    let mut plans = 0;
    while !open.is_empty() {
        if plans == PLANS {
            return Err(StoreError::StalePlan);
        }
        plans += 1;
        let states = if plans == 1 {
            States::Claimed
        } else {
            States::Fresh
        };
        let plan = plan(store, &done, &jitters, &open, rule, states).await?;
        let announcing: Vec<_> = plan
            .iter()
            .filter(|g| g.results.iter().any(|r| !r.announce.is_empty()))
            .map(|g| g.tenant)
            .collect();
        let disabling: HashMap<_, _> = plan
            .iter()
            .flat_map(|g| g.results.iter().map(move |r| (g.endpoint, &r.transition)))
            .filter_map(|(endpoint, t)| {
                t.disable
                    .map(|reason| (endpoint, (reason, t.counters.consecutive_failures)))
            })
            .collect();
        let applied = store.apply_results(plan).await?;
        for (index, r) in applied.recorded {
            recorded[index] = r;
        }
        if !applied.stale.is_empty() {
            // Perhaps planned from a tenant's older endpoints: they are read again.
            for tenant in announcing {
                store.forget_audience(tenant);
            }
        }
        open = applied.stale;
        for endpoint in applied.disabled {
            if let Some((reason, consecutive)) = disabling.get(&endpoint) {
                tracing::warn!(endpoint_id = %endpoint, reason = reason.as_str(), consecutive, "endpoint disabled");
            }
            settle_later(store, endpoint);
        }
    }
    Ok(recorded)
}

/// Where the state an endpoint's results are planned from comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum States {
    /// First as the claim read it (results that do not depend on it need no read of their
    /// own), and read now for endpoints whose results do.
    Claimed,
    /// Read now, for every endpoint (a plan was handed back).
    Fresh,
}

/// Plans the results at `open`: grouped by endpoint, in order, from each endpoint's state
/// (see [`States`]), with their announcements planned from the tenant's audience.
async fn plan(
    store: &Store,
    done: &[(Claim, AttemptOutcome)],
    jitters: &[f64],
    open: &[usize],
    rule: AttemptRule,
    states: States,
) -> Result<ResultsPlan, StoreError> {
    let mut groups: Vec<(EndpointId, Vec<usize>)> = Vec::new();
    for &i in open {
        let endpoint = done[i].0.endpoint.0.id;
        match groups.iter_mut().find(|(id, _)| *id == endpoint) {
            Some((_, members)) => members.push(i),
            None => groups.push((endpoint, vec![i])),
        }
    }
    let group = |(endpoint, members): &(EndpointId, Vec<usize>), state| {
        let finished: Vec<_> = members
            .iter()
            .map(|&i| {
                let (claim, outcome) = &done[i];
                let f = Finished {
                    delivery: &claim.facts,
                    lease: claim.lease,
                    attempt: claim.attempt,
                    endpoint: &claim.endpoint.0,
                    outcome,
                    jitter: jitters[i],
                };
                (i, f)
            })
            .collect();
        let tenant = done[members[0]].0.endpoint.0.tenant_id;
        plan_endpoint((*endpoint, tenant), state, &finished, rule)
    };
    let mut plan: ResultsPlan = match states {
        States::Claimed => groups
            .iter()
            .map(|g| {
                let seen = &done[g.1[0]].0.endpoint.0;
                let state = EndpointState {
                    is_active: seen.settings.is_active,
                    consecutive_failures: seen.counters.consecutive_failures,
                };
                group(g, state)
            })
            .collect(),
        States::Fresh => Vec::new(),
    };
    let depends: Vec<EndpointId> = match states {
        States::Claimed => plan
            .iter()
            .filter(|g| g.guard != StateGuard::Any)
            .map(|g| g.endpoint)
            .collect(),
        States::Fresh => groups.iter().map(|g| g.0).collect(),
    };
    if !depends.is_empty() {
        let read = store.endpoint_states(depends.clone()).await?;
        plan.retain(|g| !depends.contains(&g.endpoint));
        for g in groups.iter().filter(|g| depends.contains(&g.0)) {
            // A deleted endpoint took its deliveries along: its results find no lease.
            let state = read.get(&g.0).copied().unwrap_or(EndpointState {
                is_active: false,
                consecutive_failures: 0,
            });
            plan.push(group(g, state));
        }
    }
    for group in &mut plan {
        let tenant = group.tenant;
        for result in &mut group.results {
            let announcements = std::mem::take(&mut result.transition.announce);
            if announcements.is_empty() {
                continue;
            }
            let audience = store.audience(tenant).await?;
            for a in announcements {
                let event = a.event().map_err(StoreError::invalid_name)?;
                let fanout = Fanout::SubscribersExcept(a.about);
                result.announce.push(audience.plan(
                    tenant,
                    vec![event],
                    fanout,
                    Metering::Internal,
                    now_ms(),
                ));
            }
        }
    }
    Ok(plan)
}

/// Fails a disabled endpoint's pending deliveries (when its reason says so) in a task of its
/// own, so the results' slots are not held meanwhile; housekeeping does it otherwise.
fn settle_later(store: &Store, endpoint: EndpointId) {
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.settle_disabled(endpoint).await {
            tracing::warn!(endpoint_id = %endpoint, error = %ErrorChain(&e), "cannot fail a disabled endpoint's pending deliveries yet; housekeeping will");
        }
    });
}
