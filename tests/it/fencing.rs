//! Leases and fencing, driven through the store with a clock the test controls.

use hookd::config::Durability;
use hookd::delivery::after_attempt;
use hookd::model::claim::{ClaimRequest, EndpointLoad};
use hookd::model::endpoint::NewEndpoint;
use hookd::model::publish::NewEvent;
use hookd::model::results::Recorded;
use hookd::model::{EndpointSettings, EventName, EventPattern, Format, Ordering, SignatureScheme};
use hookd::service::record::record;
use hookd::store::Store;

use crate::support::{ok_outcome, open_store};

fn settings(timeout_ms: u32) -> EndpointSettings {
    EndpointSettings {
        name: "e".into(),
        url: url::Url::parse("http://127.0.0.1:9/h").expect("url"),
        destination: Default::default(),
        events: vec![EventPattern::All],
        signature_scheme: SignatureScheme::Standard,
        signature_header_name: None,
        format: Format::Json,
        headers: Default::default(),
        retry_schedule: vec![std::time::Duration::from_secs(60)],
        disable_after: 0,
        timeout_ms,
        rate_limit: None,
        ordering: Ordering::None,
        is_active: true,
        filter: None,
        channels: None,
        auth: None,
        client_certificate: None,
        url_sealed: None,
    }
}

/// Records claimed attempts as delivered, so they are no longer in flight (on PostgreSQL a
/// claim counts the attempts in flight from the database, whatever the request says).
async fn finish(store: &Store, claims: Vec<hookd::model::claim::Claim>) {
    let done = claims
        .into_iter()
        .map(|c| (c, ok_outcome(hookd::model::now_ms())))
        .collect();
    record(store, done, after_attempt).await.expect("record");
}

/// Records one claimed attempt as delivered at `now`; answers what that did.
async fn record_ok(store: &Store, claim: hookd::model::claim::Claim, now: i64) -> Recorded {
    let done = vec![(claim, ok_outcome(now))];
    record(store, done, after_attempt).await.expect("record")[0]
}

fn claim_at(now: i64, limit: usize) -> ClaimRequest {
    ClaimRequest {
        now,
        limit,
        per_endpoint: 10,
        unlisted_slots: 10,
        busy: Vec::new(),
        lease_margin_ms: 1000,
    }
}

#[tokio::test]
async fn fenced_attempts_ignore_stale_workers() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = open_store(dir.path(), Durability::Full).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    store
        .create_endpoint(
            tenant.id,
            NewEndpoint {
                settings: settings(1000),
                secret: hookd::signing::generate_secret(),
            },
        )
        .await
        .expect("endpoint");
    let event = NewEvent {
        name: EventName::parse("a.b").expect("name"),
        data: "{}".into(),
        idempotency_key: None,
        channels: Vec::new(),
        trace: None,
    };
    hookd::service::publish::publish(&store, tenant.id, vec![event])
        .await
        .expect("publish");
    let now = hookd::model::now_ms();

    let first = store.claim(claim_at(now, 10)).await.expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Leased: not claimable again before the lease (timeout 1s + margin 1s) runs out.
    assert!(
        store
            .claim(claim_at(now + 1500, 10))
            .await
            .expect("claim")
            .is_empty()
    );
    // The worker hangs; its lease expires and another claim takes the row as attempt 2.
    let second = store.claim(claim_at(now + 2500, 10)).await.expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].delivery_id, first[0].delivery_id);

    // The stale worker's result is refused; the current holder's is recorded.
    let stale = record_ok(&store, first[0].clone(), now).await;
    assert_eq!(stale, Recorded::Stale);
    let current = record_ok(&store, second[0].clone(), now).await;
    assert!(matches!(
        current,
        Recorded::Applied(hookd::model::DeliveryStatus::Succeeded)
    ));
    // Finished: even the right attempt number cannot record twice.
    let again = record_ok(&store, second[0].clone(), now).await;
    assert_eq!(again, Recorded::Stale);
    let detail = store
        .get_delivery(tenant.id, first[0].delivery_id)
        .await
        .expect("delivery");
    assert_eq!(
        detail.attempts.len(),
        1,
        "only the fenced-in attempt is logged"
    );
    assert_eq!(detail.attempts[0].number, 2);
    drop(store);
    handle.close();
}

#[tokio::test]
async fn a_claim_never_takes_more_than_the_free_slots_or_the_endpoint_cap() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = open_store(dir.path(), Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let mut endpoints = Vec::new();
    for _ in 0..2 {
        let e = store
            .create_endpoint(
                tenant.id,
                NewEndpoint {
                    settings: settings(1000),
                    secret: hookd::signing::generate_secret(),
                },
            )
            .await
            .expect("endpoint");
        endpoints.push(e.id);
    }
    let events: Vec<NewEvent> = (0..20)
        .map(|_| NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        })
        .collect();
    hookd::service::publish::publish(&store, tenant.id, events)
        .await
        .expect("publish");
    let now = hookd::model::now_ms();
    let first = store.claim(claim_at(now, 7)).await.expect("claim");
    assert_eq!(first.len(), 7);
    finish(&store, first).await;
    // Per endpoint at most 3, with endpoint 0 already running 2 of them.
    let req = ClaimRequest {
        per_endpoint: 3,
        unlisted_slots: 3,
        busy: vec![(
            endpoints[0],
            EndpointLoad {
                in_flight: 2,
                recording: 0,
                started_last_second: 2,
                started_last_tenth: 2,
                slots: None,
            },
        )],
        ..claim_at(now, 100)
    };
    let claims = store.claim(req).await.expect("claim");
    let to_first = claims
        .iter()
        .filter(|c| c.endpoint.0.id == endpoints[0])
        .count();
    let to_second = claims
        .iter()
        .filter(|c| c.endpoint.0.id == endpoints[1])
        .count();
    assert_eq!((to_first, to_second), (1, 3));
    drop(store);
    handle.close();
}

#[tokio::test]
async fn a_second_hookd_on_the_same_file_is_refused() {
    if crate::support::sqlite_only("a_second_hookd_on_the_same_file_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("h.db");
    let (store, handle) = Store::open(&path, Durability::Full).expect("first open");
    let err = Store::open(&path, Durability::Full)
        .err()
        .expect("second open refused");
    assert!(err.to_string().contains("another hookd"), "{err}");
    drop(store);
    handle.close();
    let (again, handle) = Store::open(&path, Durability::Full).expect("free again after close");
    drop(again);
    handle.close();
}

#[tokio::test]
async fn a_claim_paces_a_rate_limit_to_a_tenth_of_it_per_100_ms() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = open_store(dir.path(), Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let endpoint = store
        .create_endpoint(
            tenant.id,
            NewEndpoint {
                settings: EndpointSettings {
                    rate_limit: Some(20),
                    ..settings(1000)
                },
                secret: hookd::signing::generate_secret(),
            },
        )
        .await
        .expect("endpoint");
    let events: Vec<NewEvent> = (0..10)
        .map(|_| NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        })
        .collect();
    hookd::service::publish::publish(&store, tenant.id, events)
        .await
        .expect("publish");
    let now = hookd::model::now_ms();
    // A limit of 20/s allows ceil(20/10) = 2 starts per 100 ms; 2 already started in this tenth.
    let paced = ClaimRequest {
        busy: vec![(
            endpoint.id,
            EndpointLoad {
                in_flight: 0,
                recording: 0,
                started_last_second: 2,
                started_last_tenth: 2,
                slots: None,
            },
        )],
        ..claim_at(now, 100)
    };
    assert!(
        store.claim(paced).await.expect("claim").is_empty(),
        "the tenth's budget is used up"
    );
    // One start in this tenth leaves room for exactly one more.
    let one_left = ClaimRequest {
        busy: vec![(
            endpoint.id,
            EndpointLoad {
                in_flight: 0,
                recording: 0,
                started_last_second: 5,
                started_last_tenth: 1,
                slots: None,
            },
        )],
        ..claim_at(now, 100)
    };
    let one = store.claim(one_left).await.expect("claim");
    assert_eq!(one.len(), 1);
    finish(&store, one).await;
    // In the next tenth, two starts are allowed again.
    assert_eq!(
        store
            .claim(claim_at(now + 100, 100))
            .await
            .expect("claim")
            .len(),
        2
    );
    drop(store);
    handle.close();
}
