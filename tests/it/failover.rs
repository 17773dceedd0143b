//! Several hookd processes on one PostgreSQL database: one killed with `-9` mid-burst has its
//! deliveries made by the others within seconds, not when its leases would have ended.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::postgres::{Postgres, connect};
use crate::process::{signal, spawn, tenant_key, wait_health};
use crate::support::{Api, Receiver, wait_until};

#[tokio::test]
async fn a_process_killed_mid_burst_has_its_deliveries_made_by_the_others_within_10_s() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("failover").await;
    let db = PathBuf::from(&url);
    let token = "failover-operator-token-0123456789";
    let victim = spawn(&db, Some(token));
    wait_health(&victim.base).await;
    let key = tenant_key(&Api::new(&victim.base, token)).await;
    let api = Api::new(&victim.base, &key);
    let hold = Arc::new(AtomicBool::new(true));
    let receiver = Receiver::held(hold.clone()).await;
    // A long timeout: the victim's leases would last over 30 s.
    let (status, endpoint) = api
        .post(
            "/v1/endpoints",
            json!({"name": "e", "url": receiver.url, "events": ["*"], "timeoutMs": 30000}),
        )
        .await;
    assert_eq!(status, http::StatusCode::CREATED, "{endpoint}");
    let events: Vec<_> = (0..30)
        .map(|n| json!({"type": "burst.item", "data": {"n": n}}))
        .collect();
    let (status, _) = api
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED);
    // The victim has attempts in flight, held by the receiver.
    let client = connect(&url).await;
    let leased = || async {
        client
            .query_one(
                "SELECT count(*) FROM deliveries WHERE status = 0 AND lease_until IS NOT NULL",
                &[],
            )
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    wait_until(
        "the victim's attempts in flight",
        Duration::from_secs(10),
        || async { leased().await > 0 },
    )
    .await;
    let others = [spawn(&db, Some(token)), spawn(&db, Some(token))];
    for other in &others {
        wait_health(&other.base).await;
    }
    signal(&victim.child, "-KILL");
    let killed = Instant::now();
    hold.store(false, Ordering::SeqCst);
    // Every event is delivered, as hookd records it, within 10 s of the kill.
    let survivor = Api::new(&others[0].base, &key);
    let path = format!(
        "/v1/endpoints/{}/stats",
        endpoint["id"].as_str().expect("id")
    );
    wait_until("every delivery made", Duration::from_secs(10), || async {
        survivor.get(&path).await.1["succeeded"] == 30
    })
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(leased().await, 0);
    // The victim is gone from the processes' table; the two others beat.
    let processes: i64 = client
        .query_one("SELECT count(*) FROM hookd_processes", &[])
        .await
        .expect("processes")
        .get(0);
    assert_eq!(processes, 2);
}
