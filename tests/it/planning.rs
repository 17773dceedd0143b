//! Publish plans: computed outside the store from a tenant's audience, refused by the store
//! when the tenant changed since, and computed again by the publish service.

use hookd::config::Durability;
use hookd::fanout::Fanout;
use hookd::model::endpoint::NewEndpoint;
use hookd::model::publish::{Applied, Metering, NewEvent, PublishPlan};
use hookd::model::{EndpointSettings, EventName, EventPattern, TenantId, now_ms};
use hookd::store::Store;

use crate::support::open_store;

fn endpoint(n: u16) -> NewEndpoint {
    NewEndpoint {
        settings: EndpointSettings::new(
            format!("e{n}"),
            url::Url::parse(&format!("http://127.0.0.1:9/{n}")).expect("url"),
            vec![EventPattern::All],
        ),
        secret: hookd::signing::generate_secret(),
    }
}

fn event() -> NewEvent {
    NewEvent {
        name: EventName::parse("a.b").expect("name"),
        data: "{}".into(),
        idempotency_key: None,
        channels: Vec::new(),
        trace: None,
    }
}

/// A plan for one `a.b` event, from the tenant's audience as the store gives it now.
async fn plan_one(store: &Store, tenant: TenantId) -> PublishPlan {
    let audience = store.audience(tenant).await.expect("audience");
    audience.plan(
        tenant,
        vec![event()],
        Fanout::Subscribers,
        Metering::Counted,
        now_ms(),
    )
}

#[tokio::test]
async fn a_plan_made_before_an_endpoint_was_added_is_refused_and_planned_again_with_it() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = open_store(dir.path(), Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let first = store
        .create_endpoint(tenant.id, endpoint(1))
        .await
        .expect("first");
    let plan = plan_one(&store, tenant.id).await;
    assert_eq!(
        plan.events[0].targets,
        [first.id],
        "planned for the one endpoint"
    );

    let second = store
        .create_endpoint(tenant.id, endpoint(2))
        .await
        .expect("second");
    let Applied::Stale(plan) = store.apply_publish(plan).await.expect("apply") else {
        panic!("a plan made before the endpoint was added must be refused");
    };
    let events = store
        .list_events(
            tenant.id,
            None,
            hookd::model::PageRequest {
                number: 0,
                size: 10,
            },
        )
        .await
        .expect("events");
    assert_eq!(events.total_elements, 0, "a refused plan writes nothing");
    let usage = store.usage(tenant.id).await.expect("usage");
    assert_eq!(usage.events_today, 0, "and counts nothing");

    let published = hookd::service::publish::publish(&store, tenant.id, plan.into_events())
        .await
        .expect("publish");
    assert_eq!(published[0].deliveries, 2, "planned again: both endpoints");
    let detail = store
        .get_event(tenant.id, published[0].id)
        .await
        .expect("event");
    let to: Vec<_> = detail.deliveries.iter().map(|d| d.endpoint_id).collect();
    assert_eq!(to, [first.id, second.id]);
    drop(store);
    handle.close();
}

#[tokio::test]
async fn a_plan_made_before_a_plan_change_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = open_store(dir.path(), Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    store
        .create_endpoint(tenant.id, endpoint(1))
        .await
        .expect("endpoint");
    let plan = plan_one(&store, tenant.id).await;
    let limit = hookd::model::plan::PlanPatch {
        events_per_day: Some(Some(0)),
        ..Default::default()
    };
    store.set_plan(tenant.id, limit).await.expect("plan");
    assert!(
        matches!(store.apply_publish(plan).await, Ok(Applied::Stale(_))),
        "planned against the old quota: refused"
    );
    let refused = hookd::service::publish::publish(&store, tenant.id, vec![event()]).await;
    assert!(
        matches!(refused, Err(hookd::store::StoreError::Plan(_))),
        "planned again, the new quota refuses it: {refused:?}"
    );
    drop(store);
    handle.close();
}

/// A store in `dir` with a tenant and one endpoint (to 127.0.0.1:9, subscribed to all).
async fn one_endpoint(
    dir: &std::path::Path,
) -> (
    Store,
    hookd::store::StoreHandle,
    TenantId,
    hookd::model::Endpoint,
) {
    let (store, handle) = open_store(dir, Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let ep = store
        .create_endpoint(tenant.id, endpoint(1))
        .await
        .expect("endpoint");
    (store, handle, tenant.id, ep)
}

/// Pauses the endpoint (a change to the tenant's endpoints).
async fn pause(store: &Store, tenant: TenantId, endpoint: hookd::model::EndpointId) {
    store
        .update_endpoint(
            tenant,
            endpoint,
            Box::new(|s| {
                s.is_active = false;
                Ok(())
            }),
        )
        .await
        .expect("pause");
}

#[tokio::test]
async fn a_retry_decided_before_its_delivery_or_endpoint_changed_is_handed_back() {
    use hookd::model::replay::RetryPlan;
    use hookd::model::{DeliveryFilter, PageRequest};
    use hookd::store::StoreError;

    let dir = tempfile::tempdir().expect("dir");
    let (store, _handle, tenant, ep) = one_endpoint(dir.path()).await;
    hookd::service::publish::publish(&store, tenant, vec![event(), event()])
        .await
        .expect("publish");
    let log = store
        .list_endpoint_deliveries(
            tenant,
            ep.id,
            DeliveryFilter::default(),
            PageRequest {
                number: 0,
                size: 10,
            },
        )
        .await
        .expect("log");
    let (id, other) = (log.content[0].id, log.content[1].id);

    // Decided for a pending delivery with nothing queued: one extra attempt. Applied once,
    // the same decision is stale: an extra attempt is queued now.
    let planned = store
        .retry_facts(tenant, id)
        .await
        .expect("facts")
        .plan()
        .expect("plan");
    assert_eq!(planned.plan, RetryPlan::ExtraAttempt);
    assert!(matches!(
        store.apply_retry(planned).await,
        Ok(Applied::Done(_))
    ));
    assert!(matches!(
        store.apply_retry(planned).await,
        Ok(Applied::Stale(_))
    ));
    // Decided again, it sees the queued attempt and does nothing more.
    let again = hookd::service::replay::retry(&store, tenant, id)
        .await
        .expect("retry");
    assert_eq!(again.id, id);

    // A decision made while the endpoint was active is refused once it is paused; decided
    // again, the retry is refused with the reason.
    let fresh = store
        .retry_facts(tenant, other)
        .await
        .expect("facts")
        .plan()
        .expect("plan");
    assert_eq!(fresh.plan, RetryPlan::ExtraAttempt);
    pause(&store, tenant, ep.id).await;
    assert!(matches!(
        store.apply_retry(fresh).await,
        Ok(Applied::Stale(_))
    ));
    let refused = hookd::service::replay::retry(&store, tenant, other).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("disabled")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_recover_step_decided_before_its_endpoint_changed_is_handed_back_and_never_doubles() {
    use hookd::model::replay::{plan_missed, recover_window};
    use hookd::model::{EventId, UnixMs};

    let dir = tempfile::tempdir().expect("dir");
    let (store, _handle, tenant, ep) = one_endpoint(dir.path()).await;
    // Paused, the endpoint gets no deliveries: both events are missed.
    let pause = |active: bool| -> hookd::model::endpoint::EndpointPatch {
        Box::new(move |s| {
            s.is_active = active;
            Ok(())
        })
    };
    store
        .update_endpoint(tenant, ep.id, pause(false))
        .await
        .expect("pause");
    hookd::service::publish::publish(&store, tenant, vec![event(), event()])
        .await
        .expect("publish");
    let missed_now = |seen: hookd::model::Endpoint| {
        let store = &store;
        async move {
            let window = recover_window(0, UnixMs::MAX, seen.created_at).expect("window");
            let missed = store
                .missed_events(tenant, ep.id, window, EventId(0))
                .await
                .expect("missed");
            plan_missed(&seen, &missed)
        }
    };
    let seen = store.get_endpoint(tenant, ep.id).await.expect("seen");
    let plan = missed_now(seen.clone()).await;
    assert_eq!(plan.events.len(), 2, "{plan:?}");

    // The endpoint changes after the plan was made (a later millisecond): refused.
    while now_ms() <= seen.updated_at {
        tokio::task::yield_now().await;
    }
    store
        .update_endpoint(tenant, ep.id, pause(true))
        .await
        .expect("resume");
    assert!(matches!(
        store.apply_recover(tenant, plan).await,
        Ok(Applied::Stale(_))
    ));
    // Decided again, it applies; the same decision once more creates nothing twice.
    let seen = store.get_endpoint(tenant, ep.id).await.expect("seen");
    let plan = missed_now(seen).await;
    assert!(matches!(
        store.apply_recover(tenant, plan.clone()).await,
        Ok(Applied::Done(2))
    ));
    assert!(matches!(
        store.apply_recover(tenant, plan).await,
        Ok(Applied::Done(0))
    ));
    // The service finds nothing left to recover.
    let again = hookd::service::replay::recover(&store, tenant, ep.id, 0, UnixMs::MAX)
        .await
        .expect("recover");
    assert_eq!(again, 0);
}

#[tokio::test]
async fn a_digest_planned_before_its_endpoint_was_paused_is_handed_back_and_planned_again() {
    use hookd::model::PageRequest;
    use hookd::model::run::{NewRun, RunCommit, RunOutput};
    use hookd::model::schedule::{
        DIGEST_EVENT, DigestFormat, RunStatus, ScheduleKind, ScheduleSpec, ScheduleTarget,
    };
    use hookd::schedule::firing::{Slot, fire};

    let dir = tempfile::tempdir().expect("dir");
    let (store, handle, tenant, ep) = one_endpoint(dir.path()).await;
    let now = now_ms();
    let spec = ScheduleSpec {
        kind: ScheduleKind::OneTime(now + 3_600_000),
        timezone: chrono_tz::UTC,
        format: DigestFormat::Json,
        target: ScheduleTarget::Endpoint(ep.id),
        event_types: None,
        include_changelog: false,
        custom_subject: None,
        custom_message: None,
    };
    let schedule = store
        .create_schedule(tenant, spec, None)
        .await
        .expect("schedule");
    let schedule_id = schedule.id;
    let runs = |store: Store| async move {
        store
            .list_runs(
                tenant,
                schedule_id,
                PageRequest {
                    number: 0,
                    size: 10,
                },
            )
            .await
            .expect("runs")
            .content
    };

    // A digest planned to the endpoint; then the endpoint changes.
    let audience = store.audience(tenant).await.expect("audience");
    let digest = audience.plan(
        tenant,
        vec![NewEvent {
            name: EventName::parse(DIGEST_EVENT).expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        }],
        Fanout::Only(ep.id),
        Metering::Internal,
        now,
    );
    assert_eq!(digest.events[0].targets, [ep.id]);
    pause(&store, tenant, ep.id).await;
    let run = NewRun {
        schedule: schedule.clone(),
        slot: -now,
        started_at: now,
        period_start: now,
        last_event_id: 0,
        event_count: 0,
        next: None,
        output: RunOutput::Webhook {
            digest,
            status: RunStatus::Delivered,
            error: None,
        },
    };
    assert_eq!(
        store.commit_run(run).await.expect("commit"),
        RunCommit::StaleDigest
    );
    assert!(runs(store.clone()).await.is_empty(), "nothing written");

    // Fired again, the digest is planned from the tenant as it is now: to no endpoint (it is
    // paused), so the run is logged as failed, saying why.
    let fired = fire(&store, schedule, Slot::Manual, now_ms(), None)
        .await
        .expect("fire");
    assert!(matches!(fired, RunCommit::Written(_)), "{fired:?}");
    let logged = runs(store.clone()).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].status, RunStatus::Failed);
    assert_eq!(logged[0].delivery_id, None);
    assert_eq!(
        logged[0].error.as_deref(),
        Some(format!("endpoint {} is disabled or gone", ep.id).as_str())
    );
    drop(store);
    handle.close();
}

#[tokio::test]
async fn results_planned_before_their_endpoint_changed_are_handed_back_and_planned_again() {
    use hookd::delivery::after_attempt;
    use hookd::model::claim::ClaimRequest;
    use hookd::model::results::Recorded;
    use hookd::model::results::{Finished, plan_endpoint};
    use hookd::model::{AttemptOutcome, DeliveryStatus, DisableReason, ErrorClass};

    let dir = tempfile::tempdir().expect("dir");
    let (store, _handle, tenant, ep) = one_endpoint(dir.path()).await;
    // No retries, disabled at the first failure for good.
    store
        .update_endpoint(
            tenant,
            ep.id,
            Box::new(|s| {
                s.retry_schedule = Vec::new();
                s.disable_after = 1;
                Ok(())
            }),
        )
        .await
        .expect("update");
    hookd::service::publish::publish(&store, tenant, vec![event()])
        .await
        .expect("publish");
    let now = now_ms();
    let mut claims = store
        .claim(ClaimRequest {
            now,
            limit: 10,
            per_endpoint: 10,
            unlisted_slots: 10,
            busy: Vec::new(),
            lease_margin_ms: 30_000,
        })
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    let claim = claims.remove(0);
    let failed = AttemptOutcome {
        at: now,
        response_code: Some(500),
        latency_ms: 1,
        error: Some(ErrorClass::HttpStatus),
        error_message: None,
        response_body: None,
        retry_after_ms: None,
    };

    // Planned from the endpoint as read (active, no failures): failed for good, it disables
    // the endpoint and announces it.
    let states = store.endpoint_states(vec![ep.id]).await.expect("states");
    let finished = Finished {
        delivery: &claim.facts,
        lease: claim.lease,
        attempt: claim.attempt,
        endpoint: &claim.endpoint.0,
        outcome: &failed,
        jitter: 1.0,
    };
    let group = plan_endpoint(
        (ep.id, tenant),
        states[&ep.id],
        &[(0, finished)],
        after_attempt,
    );
    assert_eq!(
        group.disable.map(|d| d.0),
        Some(DisableReason::ConsecutiveFailures)
    );

    // Paused meanwhile: the plan is handed back and nothing is written.
    pause(&store, tenant, ep.id).await;
    let applied = store.apply_results(vec![group]).await.expect("apply");
    assert_eq!(applied.stale, [0]);
    assert!(applied.recorded.is_empty() && applied.disabled.is_empty());
    let detail = store
        .get_delivery(tenant, claim.delivery_id)
        .await
        .expect("delivery");
    assert_eq!(detail.summary.status, DeliveryStatus::Pending);
    assert!(detail.attempts.is_empty(), "no attempt row was written");

    // Planned again by the service from the paused endpoint: failed, and it stays paused
    // rather than disabled for failures.
    let recorded = hookd::service::record::record(&store, vec![(claim, failed)], after_attempt)
        .await
        .expect("record");
    assert_eq!(recorded, [Recorded::Applied(DeliveryStatus::Failed)]);
    let read = store.get_endpoint(tenant, ep.id).await.expect("endpoint");
    assert!(!read.settings.is_active);
    assert_ne!(
        read.disabled_reason,
        Some(DisableReason::ConsecutiveFailures)
    );
    assert_eq!(
        (read.counters.failed, read.counters.consecutive_failures),
        (1, 1)
    );
}
