//! The claim and the recording of results, against a real database file.

use std::time::Duration;

use super::*;
use crate::config::Durability;
use crate::delivery::after_attempt;
use crate::model::claim::ClaimRequest;
use crate::model::endpoint::NewEndpoint;
use crate::model::publish::NewEvent;
use crate::model::{EndpointSettings, EventName, EventPattern, Format, Ordering, SignatureScheme};
use crate::model::{UnixMs, now_ms};
use crate::service::record::record;

fn settings() -> EndpointSettings {
    EndpointSettings {
        name: "e".into(),
        url: url::Url::parse("http://127.0.0.1:9/h").expect("url"),
        destination: Default::default(),
        events: vec![EventPattern::All],
        signature_scheme: SignatureScheme::Standard,
        signature_header_name: None,
        format: Format::Json,
        headers: Default::default(),
        retry_schedule: vec![Duration::from_secs(60)],
        disable_after: 0,
        timeout_ms: 1000,
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

fn request(now: UnixMs) -> ClaimRequest {
    ClaimRequest {
        now,
        limit: 10,
        per_endpoint: 10,
        unlisted_slots: 10,
        busy: Vec::new(),
        lease_margin_ms: 1000,
    }
}

/// Holds the writer inside one batch until the returned sender is used, so that writes
/// queued meanwhile land together in the next batch.
async fn hold_writer(
    store: &Store,
) -> (
    tokio::task::JoinHandle<Result<(), StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let blocker = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .writer
                .write(move |_, _| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv())
        .await
        .expect("join")
        .expect("blocker started");
    (blocker, release_tx)
}

/// Queues a write that fails without a savepoint: its whole batch rolls back.
fn queue_failing_write(store: &Store) -> tokio::task::JoinHandle<Result<(), StoreError>> {
    let store = store.clone();
    tokio::spawn(async move {
        store
            .writer
            .write_unguarded(|_, _| -> Result<(), StoreError> {
                Err(StoreError::Invalid("a failing write (simulated)".into()))
            })
            .await
    })
}

async fn wait_queued(store: &Store, n: usize) {
    while store.writer.queued() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A write that changed endpoints and then failed is undone; what the fan-out cache
/// learnt from it must go too, while a failure that changed none leaves the cache as it was.
#[tokio::test]
async fn a_failed_write_leaves_nothing_it_undid_in_the_fanout_cache() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let new = || NewEndpoint {
        settings: settings(),
        secret: crate::signing::generate_secret(),
    };
    store.create_endpoint(tenant.id, new()).await.expect("one");
    let event = || NewEvent {
        name: EventName::parse("a.b").expect("name"),
        data: "{}".into(),
        idempotency_key: None,
        channels: Vec::new(),
        trace: None,
    };
    let published = crate::service::publish::publish(&store, tenant.id, vec![event()])
        .await
        .expect("publish");
    assert_eq!(published[0].deliveries, 1);
    // Adds a second endpoint, fans out to it (cached), then fails: all undone.
    let tenant_id = tenant.id;
    let failed = store
        .writer
        .write(move |c, batch| {
            super::super::endpoints::insert(c, batch, tenant_id, &new())?;
            let seen = batch.subscribers.audience(c, tenant_id)?;
            assert_eq!(
                seen.subscribers
                    .targets("a.b", "{}", &[], crate::fanout::Fanout::Subscribers)
                    .len(),
                2
            );
            Err::<(), _>(StoreError::Invalid("refused after the fact".into()))
        })
        .await;
    assert!(failed.is_err());
    let published = crate::service::publish::publish(&store, tenant.id, vec![event()])
        .await
        .expect("publish");
    assert_eq!(
        published[0].deliveries, 1,
        "the undone endpoint is not a target"
    );
    drop(store);
    tokio::task::spawn_blocking(move || handle.close())
        .await
        .expect("close");
}

/// A claim is answered before its batch commits, so it must not see what that batch
/// wrote: a publish queued ahead of it in a batch that then rolls back (its caller told
/// 503) is never handed to a worker.
#[tokio::test]
async fn a_claim_never_hands_out_what_its_own_batch_rolls_back() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let new = NewEndpoint {
        settings: settings(),
        secret: crate::signing::generate_secret(),
    };
    store
        .create_endpoint(tenant.id, new)
        .await
        .expect("endpoint");
    let now = now_ms();

    // Hold the writer in one batch while a publish, a claim and a failing write queue
    // behind it, in that order, so all three land in the next batch.
    let (blocker, release_tx) = hold_writer(&store).await;
    let publish = tokio::spawn({
        let store = store.clone();
        let event = NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        };
        async move { crate::service::publish::publish(&store, tenant.id, vec![event]).await }
    });
    wait_queued(&store, 1).await;
    let claim = tokio::spawn({
        let store = store.clone();
        async move { store.claim(request(now + 60_000)).await }
    });
    wait_queued(&store, 2).await;
    let failing = queue_failing_write(&store);
    wait_queued(&store, 3).await;
    release_tx.send(()).expect("release");
    blocker.await.expect("join").expect("blocker committed");
    assert!(failing.await.expect("join").is_err());
    assert!(
        publish.await.expect("join").is_err(),
        "the publish was rolled back with its batch"
    );
    let claimed = claim.await.expect("join").expect("claim answered");
    assert!(
        claimed.is_empty(),
        "the claim handed out {} deliveries its batch rolled back",
        claimed.len()
    );
    let after = store.claim(request(now + 60_000)).await.expect("claim");
    assert!(after.is_empty(), "nothing was published");
    drop(store);
    handle.close();
}

/// A claim is answered before its batch commits. When that batch rolls back, the lease
/// it handed out must still never be handed out again.
#[tokio::test]
async fn a_lease_from_a_rolled_back_batch_is_never_handed_out_again() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    store
        .create_endpoint(
            tenant.id,
            NewEndpoint {
                settings: settings(),
                secret: crate::signing::generate_secret(),
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
    crate::service::publish::publish(&store, tenant.id, vec![event])
        .await
        .expect("publish");
    let now = now_ms();

    // Hold the writer inside one batch while the claim and a failing write queue behind
    // it, so both land in the next batch, in that order.
    let (blocker, release_tx) = hold_writer(&store).await;
    let claim = tokio::spawn({
        let store = store.clone();
        async move { store.claim(request(now)).await }
    });
    wait_queued(&store, 1).await;
    let failing = queue_failing_write(&store);
    wait_queued(&store, 2).await;
    release_tx.send(()).expect("release");
    blocker.await.expect("join").expect("blocker committed");
    let rolled_back = claim.await.expect("join").expect("claim answered");
    assert_eq!(rolled_back.len(), 1);
    assert!(
        failing.await.expect("join").is_err(),
        "its batch rolled back"
    );

    // The lease was lost with the batch: the row is claimable again, under a new lease.
    let current = store.claim(request(now)).await.expect("claim");
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].delivery_id, rolled_back[0].delivery_id);

    let ok = AttemptOutcome {
        at: now,
        response_code: Some(200),
        latency_ms: 1,
        error: None,
        error_message: None,
        response_body: None,
        retry_after_ms: None,
    };
    let stale = record(
        &store,
        vec![(rolled_back[0].clone(), ok.clone())],
        after_attempt,
    )
    .await
    .expect("record");
    assert_eq!(
        stale,
        [Recorded::Stale],
        "the rolled-back lease is fenced out"
    );
    let applied = record(&store, vec![(current[0].clone(), ok)], after_attempt)
        .await
        .expect("record");
    assert_eq!(applied, [Recorded::Applied(DeliveryStatus::Succeeded)]);
    drop(store);
    handle.close();
}

/// Results recorded together see each other: the second failure of one record operation
/// disables the endpoint at `disableAfter: 2`, the third does not disable it again, and the
/// counters hold all three. (Multi-threaded: disabling starts a settling task that holds
/// the store until it ends, and `close` blocks this thread.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_recorded_together_count_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = Store::open(&dir.path().join("h.db"), Durability::Normal).expect("open");
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let endpoint = store
        .create_endpoint(
            tenant.id,
            NewEndpoint {
                settings: EndpointSettings {
                    retry_schedule: Vec::new(),
                    disable_after: 2,
                    ..settings()
                },
                secret: crate::signing::generate_secret(),
            },
        )
        .await
        .expect("endpoint");
    let events = (0..3)
        .map(|_| NewEvent {
            name: EventName::parse("a.b").expect("name"),
            data: "{}".into(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        })
        .collect();
    crate::service::publish::publish(&store, tenant.id, events)
        .await
        .expect("publish");
    let now = now_ms();
    let claims = store.claim(request(now)).await.expect("claim");
    assert_eq!(claims.len(), 3);
    let failed = AttemptOutcome {
        at: now,
        response_code: Some(500),
        latency_ms: 1,
        error: Some(crate::model::ErrorClass::HttpStatus),
        error_message: None,
        response_body: None,
        retry_after_ms: None,
    };
    let done = claims.into_iter().map(|c| (c, failed.clone())).collect();
    let recorded = record(&store, done, after_attempt).await.expect("record");
    assert!(
        recorded
            .iter()
            .all(|r| *r == Recorded::Applied(DeliveryStatus::Failed))
    );
    let read = store
        .get_endpoint(tenant.id, endpoint.id)
        .await
        .expect("endpoint");
    assert!(!read.settings.is_active);
    assert_eq!(
        read.disabled_reason,
        Some(crate::model::DisableReason::ConsecutiveFailures)
    );
    let k = &read.counters;
    assert_eq!((k.failed, k.pending, k.consecutive_failures), (3, 0, 3));
    assert_eq!(k.last_delivery.as_ref().map(|l| l.2), Some(Some(500)));
    drop(store);
    handle.close();
}
