//! Retention: old finished deliveries, their attempts and events are deleted; pending ones
//! never are; failed ones are kept longer.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{Receiver, Server, wait_until};

#[tokio::test]
async fn retention_prunes_finished_deliveries_and_keeps_pending_ones() {
    let server = Server::start_with(|c| {
        c.retention = Duration::from_secs(1);
        c.failed_retention = Duration::from_secs(4);
        c.housekeeping_interval = Duration::from_millis(100);
    })
    .await;
    let t = server.tenant("acme").await;
    let ok = Receiver::ok().await;
    let failing = Receiver::status(500).await;
    let ok_ep = t.endpoint(json!({"url": ok.url, "events": ["ok.*"]})).await;
    let failing_ep = t
        .endpoint(json!({"url": failing.url, "events": ["bad.*"], "retrySchedule": [], "disableAfter": 0}))
        .await;
    let pending_ep = t
        .endpoint(json!({"url": failing.url, "events": ["slow.*"], "retrySchedule": ["1h"], "disableAfter": 0}))
        .await;
    let succeeded = t.publish("ok.x", json!({})).await;
    let failed = t.publish("bad.x", json!({})).await;
    let pending = t.publish("slow.x", json!({})).await;
    let path = |e: &serde_json::Value| format!("/v1/events/{}", e["id"].as_str().expect("id"));

    // The succeeded one goes after about a second, with its event.
    wait_until(
        "the succeeded event pruned",
        Duration::from_secs(20),
        || {
            let (api, p) = (t.admin.clone(), path(&succeeded));
            async move { api.get(&p).await.0 == StatusCode::NOT_FOUND }
        },
    )
    .await;
    assert_eq!(
        t.admin.get(&path(&failed)).await.0,
        StatusCode::OK,
        "failed is kept longer"
    );
    let ok_stats = t.stats(ok_ep["id"].as_str().expect("id")).await;
    assert_eq!(ok_stats["succeeded"], 0, "counters follow the rows");
    assert_eq!(ok_stats["totalDeliveries"], 0);

    // The failed one goes later; the pending one stays however old it is.
    wait_until("the failed event pruned", Duration::from_secs(20), || {
        let (api, p) = (t.admin.clone(), path(&failed));
        async move { api.get(&p).await.0 == StatusCode::NOT_FOUND }
    })
    .await;
    assert_eq!(
        t.stats(failing_ep["id"].as_str().expect("id")).await["failed"],
        0
    );
    let (status, kept) = t.admin.get(&path(&pending)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["deliveries"][0]["status"], "pending");
    assert_eq!(
        t.stats(pending_ep["id"].as_str().expect("id")).await["pending"],
        1
    );
    server.assert_list_counts_exact();
    server.stop().await;
}
