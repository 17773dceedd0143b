//! Criterion benches for the store's hot pieces, on a real SQLite file (`synchronous=FULL`):
//! publishing with fan-out, and a claim + ack cycle.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hookd::config::Durability;
use hookd::model::claim::ClaimRequest;
use hookd::model::endpoint::NewEndpoint;
use hookd::model::publish::NewEvent;
use hookd::model::{
    AttemptOutcome, EndpointSettings, EventName, EventPattern, Format, Ordering, SignatureScheme,
    TenantId, now_ms,
};
use hookd::store::Store;

fn settings() -> EndpointSettings {
    EndpointSettings {
        name: "bench".into(),
        url: url::Url::parse("http://127.0.0.1:9/h").expect("url"),
        destination: Default::default(),
        events: vec![EventPattern::All],
        signature_scheme: SignatureScheme::Standard,
        signature_header_name: None,
        format: Format::Json,
        headers: Default::default(),
        retry_schedule: vec![Duration::from_secs(60)],
        disable_after: 0,
        timeout_ms: 10_000,
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

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent {
            name: EventName::parse("bench.event").expect("name"),
            data: format!("{{\"i\":{i},\"body\":\"{}\"}}", "x".repeat(200)),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        })
        .collect()
}

async fn setup(endpoints: usize) -> (tempfile::TempDir, Store, TenantId) {
    let dir = tempfile::tempdir().expect("dir");
    let (store, _handle) = Store::open(&dir.path().join("b.db"), Durability::Full).expect("open");
    let tenant = store.create_tenant("bench".into()).await.expect("tenant");
    for _ in 0..endpoints {
        let new = NewEndpoint {
            settings: settings(),
            secret: hookd::signing::generate_secret(),
        };
        store
            .create_endpoint(tenant.id, new)
            .await
            .expect("endpoint");
    }
    (dir, store, tenant.id)
}

fn ok() -> AttemptOutcome {
    AttemptOutcome {
        at: now_ms(),
        response_code: Some(204),
        latency_ms: 1,
        error: None,
        error_message: None,
        response_body: None,
        retry_after_ms: None,
    }
}

fn store_benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (_dir, store, tenant) = rt.block_on(setup(10));
    c.bench_function(
        "publish 100 events x 10 endpoints (1000 deliveries, one commit)",
        |b| {
            b.iter(|| {
                rt.block_on(hookd::service::publish::publish(
                    &store,
                    tenant,
                    events(100),
                ))
                .expect("publish")
            })
        },
    );

    let (_dir2, store2, tenant2) = rt.block_on(setup(1));
    c.bench_function("claim 100 + ack 100 (group-committed)", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    hookd::service::publish::publish(&store2, tenant2, events(100))
                        .await
                        .expect("publish");
                    let started = std::time::Instant::now();
                    let request = ClaimRequest {
                        now: now_ms(),
                        limit: 100,
                        per_endpoint: 100,
                        unlisted_slots: 100,
                        busy: Vec::new(),
                        lease_margin_ms: 30_000,
                    };
                    let claims = store2.claim(request).await.expect("claim");
                    assert_eq!(claims.len(), 100);
                    let done = claims.into_iter().map(|claim| (claim, ok())).collect();
                    hookd::service::record::record(&store2, done, hookd::delivery::after_attempt)
                        .await
                        .expect("ack");
                    total += started.elapsed();
                }
                total
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = store_benches
}
criterion_main!(benches);
