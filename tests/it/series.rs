//! An endpoint's attempts over time, as charts read them: counted per hour and latency bucket
//! by the commits that record the attempts, served per endpoint and for all endpoints at once.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, wait_until};

#[tokio::test]
async fn the_series_counts_each_attempt_in_its_hour_with_its_latency() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // Fails the first call, accepts the rest: one event is retried once.
    let receiver = Receiver::with(|n, _| {
        if n == 0 {
            (500, vec![], "down".into())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["1s"]}))
        .await;
    let quiet = t
        .endpoint(json!({"url": receiver.url, "events": ["never.sent"]}))
        .await;
    let id = ep["id"].as_str().expect("id").to_owned();
    for n in 0..3 {
        t.publish("order.paid", json!({"n": n})).await;
    }
    let stats = format!("/v1/endpoints/{id}/stats");
    wait_until("three delivered", Duration::from_secs(20), || {
        let (admin, stats) = (t.admin.clone(), stats.clone());
        async move { admin.get(&stats).await.1["succeeded"] == 3 }
    })
    .await;

    let (status, day) = t
        .admin
        .get(&format!("/v1/endpoints/{id}/stats/series"))
        .await;
    assert_eq!(status, StatusCode::OK, "{day}");
    assert_eq!(day["window"], "24h");
    assert_eq!(day["stepSeconds"], 3600);
    let points = day["points"].as_array().expect("points");
    assert_eq!(points.len(), 24);
    let total = |points: &[Value], key: &str| {
        points
            .iter()
            .map(|p| p[key].as_u64().expect("n"))
            .sum::<u64>()
    };
    // Three successes and the one failure, all within the window (the last point, or the
    // one before it when the hour turned meanwhile).
    assert_eq!(total(points, "succeeded"), 3, "{day}");
    assert_eq!(total(points, "failed"), 1, "{day}");
    let busy: Vec<&Value> = points
        .iter()
        .filter(|p| p["succeeded"].as_u64() > Some(0))
        .collect();
    assert!(
        busy.iter()
            .all(|p| p["p50Ms"].is_u64() && p["p99Ms"].is_u64()),
        "{day}"
    );
    assert!(
        points[0]["successRate"].is_null(),
        "an empty step has no rate: {day}"
    );

    let (status, week) = t
        .admin
        .get(&format!("/v1/endpoints/{id}/stats/series?window=7d"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(week["stepSeconds"], 21_600);
    let points = week["points"].as_array().expect("points");
    assert_eq!(points.len(), 28);
    assert_eq!(total(points, "succeeded"), 3);

    // Every endpoint at once, the quiet one with empty points.
    let (status, all) = t.admin.get("/v1/stats/series").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let endpoints = all["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2);
    assert_eq!(endpoints[0]["endpointId"], ep["id"]);
    assert_eq!(
        total(endpoints[0]["points"].as_array().expect("p"), "succeeded"),
        3
    );
    assert_eq!(endpoints[1]["endpointId"], quiet["id"]);
    assert_eq!(
        total(endpoints[1]["points"].as_array().expect("p"), "succeeded"),
        0
    );

    // Bad windows and other tenants' endpoints.
    let (status, body) = t
        .admin
        .get(&format!("/v1/endpoints/{id}/stats/series?window=1y"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("24h or 7d")
    );
    let other = server.tenant("globex").await;
    let (status, _) = other
        .admin
        .get(&format!("/v1/endpoints/{id}/stats/series"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
