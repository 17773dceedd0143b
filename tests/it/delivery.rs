//! Deliveries end to end: signatures, retries, exhaustion, auto-disable, stats and the log.

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{
    Receiver, Server, verify_ed25519, verify_github, verify_standard, wait_until,
};

#[tokio::test]
async fn a_delivery_carries_the_event_and_a_standard_signature_that_verifies() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["project.*"], "headers": {"x-env": "test"}}),
        )
        .await;
    let secret = ep["secret"].as_str().expect("secret");
    let published = t
        .publish("project.created", json!({"name": "Apollo", "n": 1}))
        .await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert!(
        verify_standard(secret, r),
        "signature must verify: {:?}",
        r.headers
    );
    assert!(!verify_standard(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        r
    ));
    assert_eq!(
        r.header("webhook-id"),
        published["id"].as_str().expect("id")
    );
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("hookd/"));
    assert_eq!(r.header("x-env"), "test");
    let ts: i64 = r.header("webhook-timestamp").parse().expect("timestamp");
    let now = chrono::Utc::now().timestamp();
    assert!((now - ts).abs() < 60);
    let body = r.json();
    assert_eq!(body["id"], published["id"]);
    assert_eq!(body["event"], "project.created");
    assert_eq!(body["timestamp"], published["createdAt"]);
    assert_eq!(body["data"], json!({"name": "Apollo", "n": 1}));
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn github_scheme_signs_the_body_with_the_secret_text() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "signatureScheme": "github",
                         "secret": "my-github-secret"}),
        )
        .await;
    assert_eq!(ep["signatureHeaderName"], "x-hub-signature-256");
    let generated = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "signatureScheme": "github",
                         "signatureHeaderName": "x-signature"}),
        )
        .await;
    t.publish("a.b", json!({"x": 1})).await;
    let got = receiver.wait_for(2).await;
    let by_custom = got
        .iter()
        .find(|r| !r.header("x-signature").is_empty())
        .expect("custom header");
    let by_default = got
        .iter()
        .find(|r| !r.header("x-hub-signature-256").is_empty())
        .expect("default header");
    assert!(verify_github(
        "my-github-secret",
        by_default.header("x-hub-signature-256"),
        &by_default.body
    ));
    let generated_secret = generated["secret"].as_str().expect("secret");
    assert!(generated_secret.starts_with("whsec_"));
    assert!(verify_github(
        generated_secret,
        by_custom.header("x-signature"),
        &by_custom.body
    ));
    assert!(!by_default.header("webhook-id").is_empty());
    assert!(!by_default.header("webhook-timestamp").is_empty());
    assert!(
        by_custom.header("x-hub-signature-256").is_empty(),
        "the header is renamed, not added"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn retries_keep_the_webhook_id_and_succeed_after_failures() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::with(|n, _| match n {
        0 | 1 => (500, vec![], format!("failure {n}")),
        _ => (200, vec![], "fine".into()),
    })
    .await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["100ms", "100ms", "100ms"]}))
        .await;
    let published = t.publish("a.b", json!({})).await;
    let id = published["id"].as_str().expect("id");
    let delivery = t.wait_delivery_status(id, "succeeded").await;
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.header("webhook-id") == id));
    assert!(
        got.iter()
            .all(|r| verify_standard(ep["secret"].as_str().expect("secret"), r))
    );
    let attempts = delivery["attempts"].as_array().expect("attempts");
    let codes: Vec<_> = attempts.iter().map(|a| a["responseCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(500), json!(200)]);
    assert_eq!(attempts[0]["number"], 1);
    assert_eq!(attempts[0]["error"], "http_status");
    assert_eq!(attempts[0]["responseBody"], "failure 0");
    assert_eq!(attempts[2]["error"], json!(null));
    assert_eq!(delivery["nextAttemptAt"], json!(null));
    let stats = t.stats(ep["id"].as_str().expect("id")).await;
    assert_eq!(stats["succeeded"], 1);
    assert_eq!(stats["failed"], 0);
    assert_eq!(stats["consecutiveFailures"], 0);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_delivery_fails_for_good_when_its_retries_are_used_up() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::status(503).await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["50ms", "50ms"], "disableAfter": 0}))
        .await;
    let published = t.publish("a.b", json!({})).await;
    let delivery = t
        .wait_delivery_status(published["id"].as_str().expect("id"), "failed")
        .await;
    assert_eq!(delivery["attempts"].as_array().expect("attempts").len(), 3);
    assert_eq!(receiver.count(), 3);
    let stats = t.stats(ep["id"].as_str().expect("id")).await;
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["pending"], 0);
    assert_eq!(stats["successRate"], 0.0);
    assert_eq!(stats["lastDelivery"]["status"], "failed");
    assert_eq!(stats["lastDelivery"]["responseCode"], 503);
    let (_, read) = t
        .admin
        .get(&format!("/v1/endpoints/{}", ep["id"].as_str().expect("id")))
        .await;
    assert_eq!(read["isActive"], true, "disableAfter 0 never disables");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn consecutive_failures_disable_an_endpoint_until_it_is_enabled() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (receiver, healthy) = Receiver::switchable().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 2}),
        )
        .await;
    let ep_id = ep["id"].as_str().expect("id");
    t.publish("a.b", json!({})).await;
    t.publish("a.b", json!({})).await;
    wait_until("endpoint disabled", Duration::from_secs(20), || {
        let t = t.admin.clone();
        let path = format!("/v1/endpoints/{ep_id}");
        async move { t.get(&path).await.1["isActive"] == false }
    })
    .await;
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{ep_id}")).await;
    assert_eq!(read["disabledReason"], "consecutive_failures");
    assert!(read["disabledAt"].is_string());
    let stats = t.stats(ep_id).await;
    assert_eq!(stats["consecutiveFailures"], 2);
    assert_eq!(stats["disabledReason"], "consecutive_failures");

    // Disabled: new events do not fan out to it, nothing more arrives.
    let while_disabled = t.publish("a.b", json!({})).await;
    assert_eq!(while_disabled["deliveries"], 0);
    assert_eq!(receiver.count(), 2);

    healthy.store(true, Ordering::SeqCst);
    let (status, enabled) = t
        .admin
        .post_empty(&format!("/v1/endpoints/{ep_id}/enable"))
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["isActive"], true);
    assert_eq!(enabled["disabledReason"], json!(null));
    assert_eq!(t.stats(ep_id).await["consecutiveFailures"], 0);
    let after = t.publish("a.b", json!({})).await;
    assert_eq!(after["deliveries"], 1);
    t.wait_delivery_status(after["id"].as_str().expect("id"), "succeeded")
        .await;
    assert_eq!(receiver.count(), 3);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn disabling_fails_the_endpoints_pending_deliveries() {
    let server = Server::start_with(|c| c.max_in_flight_per_endpoint = 1).await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::with(|_, _| (500, vec![], "down".into())).await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 1}),
        )
        .await;
    let ep_id = ep["id"].as_str().expect("id");
    let events: Vec<_> = (0..5)
        .map(|n| json!({"type": "a.b", "data": {"n": n}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    wait_until(
        "endpoint disabled with nothing pending",
        Duration::from_secs(20),
        || {
            let t = t.admin.clone();
            let path = format!("/v1/endpoints/{ep_id}/stats");
            async move {
                let stats = t.get(&path).await.1;
                stats["disabledReason"] == "consecutive_failures" && stats["pending"] == 0
            }
        },
    )
    .await;
    let stats = t.stats(ep_id).await;
    assert_eq!(stats["failed"], 5);
    assert_eq!(stats["totalDeliveries"], 5);
    // One at a time: the first failure disabled it; at most one more attempt was under way.
    assert!(receiver.count() <= 2, "{} attempts", receiver.count());
    let (_, log) = t
        .admin
        .get(&format!("/v1/endpoints/{ep_id}/deliveries"))
        .await;
    assert!(
        log["content"]
            .as_array()
            .expect("content")
            .iter()
            .all(|d| d["status"] == "failed")
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn stats_and_the_delivery_log_count_every_outcome() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // Every third request fails; no retries, never disabled.
    let receiver = Receiver::with(|_, r| {
        let n = r.json()["data"]["n"].as_u64().unwrap_or(0);
        if n % 3 == 2 {
            (500, vec![], "no".into())
        } else {
            (204, vec![], String::new())
        }
    })
    .await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 0}),
        )
        .await;
    let ep_id = ep["id"].as_str().expect("id");
    let events: Vec<_> = (0..9)
        .map(|n| json!({"type": "a.b", "data": {"n": n}}))
        .collect();
    let (status, _) = t
        .admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_until("all nine finished", Duration::from_secs(20), || {
        let t = t.admin.clone();
        let path = format!("/v1/endpoints/{ep_id}/stats");
        async move { t.get(&path).await.1["pending"] == 0 }
    })
    .await;
    let stats = t.stats(ep_id).await;
    assert_eq!(stats["succeeded"], 6);
    assert_eq!(stats["failed"], 3);
    assert_eq!(stats["totalDeliveries"], 9);
    assert_eq!(stats["successRate"], 66.67);

    let (_, page) = t
        .admin
        .get(&format!("/v1/endpoints/{ep_id}/deliveries?size=4&page=0"))
        .await;
    assert_eq!(page["totalElements"], 9);
    assert_eq!(page["totalPages"], 3);
    let ids: Vec<&str> = page["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_by_key(|id| std::cmp::Reverse(id[4..].parse::<u64>().expect("number")));
    assert_eq!(ids, sorted, "newest first");
    let (_, failed) = t
        .admin
        .get(&format!("/v1/endpoints/{ep_id}/deliveries?status=failed"))
        .await;
    assert_eq!(failed["totalElements"], 3);
    assert!(
        failed["content"]
            .as_array()
            .expect("content")
            .iter()
            .all(|d| d["status"] == "failed")
    );
    let (status, _) = t
        .admin
        .get(&format!("/v1/endpoints/{ep_id}/deliveries?status=bogus"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn failures_are_classified_in_the_attempt_log() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let slow = Receiver::slow(Duration::from_secs(3)).await;
    let redirect = Receiver::with(|_, _| {
        (
            302,
            vec![("location", "http://127.0.0.1:9/x".into())],
            String::new(),
        )
    })
    .await;
    // A port nothing listens on: bind one, then drop it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", l.local_addr().expect("addr"))
    };
    let huge = Receiver::with(|_, _| (500, vec![], "x".repeat(200_000))).await;
    let cases = [
        (huge.url.clone(), 10000, "body_too_large"),
        (slow.url.clone(), 200, "timeout"),
        (redirect.url.clone(), 10000, "http_status"),
        (closed, 10000, "connect"),
    ];
    for (url, timeout, class) in cases {
        let ep = t
            .endpoint(json!({"url": url, "events": [format!("case.{class}")], "retrySchedule": [], "timeoutMs": timeout}))
            .await;
        let published = t.publish(&format!("case.{class}"), json!({})).await;
        let delivery = t
            .wait_delivery_status(published["id"].as_str().expect("id"), "failed")
            .await;
        assert_eq!(delivery["attempts"][0]["error"], class, "{delivery}");
        if class == "connect" {
            // The operator reads what happened and where.
            let message = delivery["attempts"][0]["errorMessage"]
                .as_str()
                .expect("message");
            let port = url.split(':').nth(2).and_then(|p| p.split('/').next());
            assert!(message.contains("refused"), "{message}");
            assert!(
                message.contains(&format!("127.0.0.1:{}", port.expect("port"))),
                "{message}"
            );
        }
        if class == "body_too_large" {
            let kept = delivery["attempts"][0]["responseBody"]
                .as_str()
                .expect("body");
            assert_eq!(kept.len(), 4096, "the first 4 KiB are kept");
        }
        assert_eq!(delivery["endpointId"], ep["id"]);
    }
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_the_others() {
    let server = Server::start_with(|c| {
        c.max_in_flight = 8;
        c.max_in_flight_per_endpoint = 2;
    })
    .await;
    let t = server.tenant("acme").await;
    let slow = Receiver::slow(Duration::from_secs(30)).await;
    let fast = Receiver::ok().await;
    t.endpoint(json!({"url": slow.url, "events": ["slow.*"], "timeoutMs": 60000}))
        .await;
    t.endpoint(json!({"url": fast.url, "events": ["fast.*"]}))
        .await;
    let slow_batch: Vec<_> = (0..20)
        .map(|_| json!({"type": "slow.x", "data": {}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": slow_batch}))
        .await;
    let fast_batch: Vec<_> = (0..50)
        .map(|_| json!({"type": "fast.x", "data": {}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": fast_batch}))
        .await;
    // All fifty reach the fast endpoint while the slow one holds its two slots for 30 s.
    fast.wait_for(50).await;
    assert_eq!(
        slow.count(),
        0,
        "the slow receiver has answered nothing yet"
    );
    // hookd still answers: stop must not wait for the slow attempts beyond its grace.
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_events_and_attempts_for_the_operator() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let ok = Receiver::ok().await;
    let bad = Receiver::status(500).await;
    t.endpoint(json!({"url": ok.url, "events": ["*"]})).await;
    t.endpoint(json!({"url": bad.url, "events": ["*"], "retrySchedule": []}))
        .await;
    t.publish("a.b", json!({})).await;
    ok.wait_for(1).await;
    bad.wait_for(1).await;
    let op = server.operator();
    wait_until("both outcomes counted", Duration::from_secs(20), || {
        let server = &server;
        async move {
            let text = server.metrics_text().await;
            text.contains("result=\"http_status\"")
                && text.contains("result=\"success\"")
                && text.contains("hookd_deliveries_pending 0")
        }
    })
    .await;
    let text = server.metrics_text().await;
    assert!(text.contains("hookd_events_published_total 1"), "{text}");
    assert!(
        text.contains("hookd_delivery_attempts_total{result=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hookd_delivery_attempts_total{result=\"http_status\"} 1"),
        "{text}"
    );
    assert!(text.contains("hookd_deliveries_pending 0"), "{text}");
    // The statements run on the database: counted per process (this one runs many servers),
    // so they only have to grow with a publish.
    let statements = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("hookd_db_statements_total "))
            .and_then(|n| n.trim().parse().ok())
            .expect("hookd_db_statements_total")
    };
    let before = statements(&text);
    assert!(before > 0, "{text}");
    t.publish("a.b", json!({})).await;
    assert!(statements(&server.metrics_text().await) > before);
    // Plain text by default (curl, generated clients); OpenMetrics for a scraper that asks.
    let (_, headers, _) = op.raw("GET", "/metrics", None, Vec::new()).await;
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/plain")
    );
    let (_, headers, _) = op
        .raw_with_headers(
            "GET",
            "/metrics",
            &[
                ("authorization", format!("Bearer {}", crate::support::ADMIN)),
                (
                    "accept",
                    "application/openmetrics-text;version=1.0.0,text/plain;q=0.5".to_owned(),
                ),
            ],
            Vec::new(),
        )
        .await;
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("application/openmetrics-text")
    );
    assert_eq!(t.admin.get("/metrics").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        op.with_token("").get("/metrics").await.0,
        StatusCode::UNAUTHORIZED
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn endpoints_that_never_answer_do_not_starve_a_healthy_one() {
    // A small pool makes the point quickly: six silent endpoints could hold 6 × 16 slots of 32.
    let server = Server::start_with(|c| {
        c.max_in_flight = 32;
        c.max_in_flight_per_endpoint = 16;
    })
    .await;
    let t = server.tenant("acme").await;
    let mut silent = Vec::new();
    for _ in 0..6 {
        let r = Receiver::slow(Duration::from_secs(3600)).await;
        t.endpoint(json!({"url": r.url, "events": ["*"], "timeoutMs": 60000}))
            .await;
        silent.push(r);
    }
    let healthy = Receiver::ok().await;
    t.endpoint(json!({"url": healthy.url, "events": ["*"]}))
        .await;
    for batch in 0..3 {
        let events: Vec<_> = (0..100)
            .map(|n| json!({"type": "load.test", "data": {"n": batch * 100 + n}}))
            .collect();
        t.publish_batch(events).await;
    }
    // Every healthy delivery arrives while the silent endpoints still hold their requests
    // (their timeout is a minute; the wait is at most 20 s).
    let got = healthy.wait_for(300).await;
    assert_eq!(got.len(), 300);
    assert!(
        silent.iter().all(|r| r.count() == 0),
        "no silent endpoint answered"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

/// A raw TCP receiver: reads one request head and body, then does `then` with the socket.
async fn raw_receiver(then: fn(tokio::net::TcpStream) -> ()) -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Read until the request's body has come (the head, then Content-Length bytes).
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                then(stream);
            });
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn a_response_cut_short_after_its_200_is_incomplete_not_delivered() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let url = raw_receiver(|stream| {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nabc")
                .await;
            let _ = stream.shutdown().await;
        });
    })
    .await;
    t.endpoint(json!({"url": url, "events": ["*"], "retrySchedule": ["1h"]}))
        .await;
    let event = t.publish("a.b", json!({})).await;
    let id = event["id"].as_str().expect("id");
    let delivery = wait_for_attempt(&t, id).await;
    assert_eq!(delivery["status"], "pending", "{delivery}");
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error"], "incomplete", "{delivery}");
    assert_eq!(attempt["responseCode"], 200, "{delivery}");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_reset_after_the_request_was_sent_is_incomplete_not_connect() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let url = raw_receiver(|stream| {
        // Linger 0: closing sends a reset instead of a clean end.
        let _ = stream.set_zero_linger();
        drop(stream);
    })
    .await;
    t.endpoint(json!({"url": url, "events": ["*"], "retrySchedule": ["1h"]}))
        .await;
    let event = t.publish("a.b", json!({})).await;
    let id = event["id"].as_str().expect("id");
    let delivery = wait_for_attempt(&t, id).await;
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error"], "incomplete", "{delivery}");
    assert_eq!(
        attempt["responseCode"],
        serde_json::Value::Null,
        "{delivery}"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

/// Waits until the first delivery of an event has an attempt; returns that delivery.
async fn wait_for_attempt(t: &crate::support::Tenant, event_id: &str) -> serde_json::Value {
    let found = std::sync::Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
    let path = format!("/v1/events/{event_id}");
    wait_until("an attempt is recorded", Duration::from_secs(20), || {
        let (admin, path, found) = (t.admin.clone(), path.clone(), found.clone());
        async move {
            let (_, event) = admin.get(&path).await;
            let Some(delivery) = event["deliveries"][0]["id"].as_str() else {
                return false;
            };
            let (_, d) = admin.get(&format!("/v1/deliveries/{delivery}")).await;
            let done = d["attempts"].as_array().is_some_and(|a| !a.is_empty());
            if done {
                *found.lock().expect("lock") = d;
            }
            done
        }
    })
    .await;
    found.lock().expect("lock").clone()
}

#[tokio::test]
async fn ed25519_endpoints_sign_with_a_key_receivers_verify_by_its_public_half() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "signatureScheme": "ed25519"}))
        .await;
    assert!(
        ep["secret"].as_str().expect("secret").starts_with("whsk_"),
        "{ep}"
    );
    let first_key = ep["publicKey"].as_str().expect("publicKey").to_owned();
    assert!(first_key.starts_with("whpk_"));
    let id = ep["id"].as_str().expect("id");
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(
        read["publicKey"],
        first_key.as_str(),
        "readable at any time"
    );
    let (_, listed) = t.admin.get("/v1/endpoints").await;
    assert_eq!(
        listed["content"][0]["publicKey"],
        first_key.as_str(),
        "and in the list"
    );
    assert!(read.get("secret").is_none());
    t.publish("a.b", json!({"n": 1})).await;
    let got = receiver.wait_for(1).await;
    assert!(got[0].header("webhook-signature").starts_with("v1a,"));
    assert!(verify_ed25519(&first_key, &got[0]));
    // Rotation: during the grace period a delivery carries both keys' signatures.
    let (status, rotated) = t
        .admin
        .post(&format!("/v1/endpoints/{id}/secret/rotate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        rotated["secret"]
            .as_str()
            .expect("secret")
            .starts_with("whsk_")
    );
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{id}")).await;
    let second_key = read["publicKey"].as_str().expect("publicKey").to_owned();
    assert_ne!(second_key, first_key);
    t.publish("a.b", json!({"n": 2})).await;
    let got = receiver.wait_for(2).await;
    assert!(
        verify_ed25519(&second_key, &got[1]),
        "signed with the new key"
    );
    assert!(
        verify_ed25519(&first_key, &got[1]),
        "and the old one during grace"
    );
    assert!(
        !verify_ed25519(&second_key, &got[0]),
        "the first delivery knew only the old key"
    );
    // A given secret must be a whsk_ seed; a scheme switch that the secret does not fit is refused.
    let (status, body) = t
        .admin
        .post(
            "/v1/endpoints",
            json!({"name": "x", "url": receiver.url, "events": ["*"], "signatureScheme": "ed25519", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = t
        .admin
        .patch(
            &format!("/v1/endpoints/{id}"),
            json!({"signatureScheme": "standard"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn the_log_is_filtered_by_event_type_and_time_and_pages_through_the_matches() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["order.*"]}))
        .await;
    let id = ep["id"].as_str().expect("id").to_owned();
    for n in 0..3 {
        t.publish("order.paid", json!({"n": n})).await;
    }
    for n in 0..2 {
        t.publish("order.shipped", json!({"n": n})).await;
    }
    receiver.wait_for(5).await;
    let log = format!("/v1/endpoints/{id}/deliveries");
    // The receiver answered all five; wait until hookd has recorded them as succeeded too.
    wait_until("five succeeded deliveries", Duration::from_secs(20), || {
        let (admin, log) = (t.admin.clone(), log.clone());
        async move {
            let (_, page) = admin.get(&format!("{log}?status=succeeded")).await;
            page["totalElements"] == 5
        }
    })
    .await;
    let (_, all) = t.admin.get(&format!("{log}?size=100")).await;
    let all = all["content"].as_array().expect("content").clone();
    assert_eq!(all.len(), 5);

    let list = |query: String| {
        let (admin, log) = (t.admin.clone(), log.clone());
        async move {
            let (status, page) = admin.get(&format!("{log}?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page
        }
    };
    let shipped = list("eventType=order.shipped".into()).await;
    assert_eq!(shipped["totalElements"], 2, "{shipped}");
    for d in shipped["content"].as_array().expect("content") {
        assert_eq!(d["eventType"], "order.shipped");
    }
    // Status and type together, paged two at a time.
    let paid = list("eventType=order.paid&status=succeeded&size=2".into()).await;
    assert_eq!(paid["totalElements"], 3, "{paid}");
    assert_eq!(paid["totalPages"], 2, "{paid}");
    assert_eq!(paid["content"].as_array().expect("content").len(), 2);
    let last = list("eventType=order.paid&status=succeeded&size=2&page=1".into()).await;
    assert_eq!(last["content"].as_array().expect("content").len(), 1);
    assert_eq!(
        list("eventType=order.refunded".into()).await["totalElements"],
        0
    );

    // Time: since is inclusive, until exclusive, both on when the delivery was created.
    let created = |d: &serde_json::Value| d["createdAt"].as_str().expect("time").to_owned();
    let middle = created(&all[2]);
    let at_or_after = all.iter().filter(|d| created(d) >= middle).count();
    let since = list(format!("since={middle}")).await;
    assert_eq!(since["totalElements"], at_or_after, "{since}");
    let until = list(format!("until={middle}")).await;
    assert_eq!(until["totalElements"], 5 - at_or_after, "{until}");
    let later = list("since=2999-01-01T00:00:00Z".into()).await;
    assert_eq!(later["totalElements"], 0);

    // Bad filters are refused, naming what is wrong.
    for (query, says) in [
        (
            "since=yesterday",
            "since 'yesterday' is not an RFC 3339 instant",
        ),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("until=", "until '' is not an RFC 3339 instant"),
        (
            "since=2026-12-05T10:00:00Z&until=2026-12-05T09:00:00Z",
            "since must be before until",
        ),
        ("status=lost&eventType=order.paid", "status must be one of"),
    ] {
        let (status, error) = t.admin.get(&format!("{log}?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(says)),
            "{query}: {error}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_delivery_shows_the_request_its_attempts_send_with_secrets_named_not_shown() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["order.*"], "headers": {"x-env": "test"},
            "auth": {"type": "basic", "username": "shop", "password": "pw-never-shown"}}),
        )
        .await;
    t.publish("order.paid", json!({"orderId": 42, "note": "é"}))
        .await;
    receiver.wait_for(1).await;
    let got = receiver.received()[0].clone();
    let (_, log) = t
        .admin
        .get(&format!(
            "/v1/endpoints/{}/deliveries",
            ep["id"].as_str().expect("id")
        ))
        .await;
    let id = log["content"][0]["id"].as_str().expect("delivery id");
    let (status, detail) = t.admin.get(&format!("/v1/deliveries/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let request = &detail["request"];
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], receiver.url);
    // The body is the one the receiver got, byte for byte.
    assert_eq!(
        request["body"].as_str().map(str::as_bytes),
        Some(got.body.as_ref())
    );
    // Every header shown was sent; what is made per attempt or secret is named only.
    let headers: Vec<(String, String)> =
        serde_json::from_value(request["headers"].clone()).expect("pairs");
    for (name, shown) in &headers {
        let sent = got.header(name);
        assert!(!sent.is_empty(), "{name} was not sent: {:?}", got.headers);
        if shown.starts_with('(') {
            assert_ne!(sent, shown, "{name}");
        } else {
            assert_eq!(sent, shown, "{name}");
        }
    }
    let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-env",
        "authorization",
    ] {
        assert!(names.contains(&name), "{name} not shown: {names:?}");
    }
    let text = detail.to_string();
    assert!(!text.contains("pw-never-shown"), "{text}");
    assert!(!text.contains(got.header("webhook-signature")), "{text}");
    server.stop().await;
}
