//! Operating endpoints: rotation, replay, FIFO, rate limits, failure signals, operational
//! events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Received, Receiver, Server, verify_standard, wait_until};

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Waits until the wall clock (ms) has passed `created_at`, so the next event is later.
async fn after(created_at: &Value) {
    let t =
        chrono::DateTime::parse_from_rfc3339(created_at.as_str().expect("time")).expect("rfc3339");
    wait_until(
        "the clock to move on",
        Duration::from_secs(5),
        || async move { chrono::Utc::now().timestamp_millis() > t.timestamp_millis() },
    )
    .await;
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_during_grace_and_only_the_new_after() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["a.*"]}))
        .await;
    let old = ep["secret"].as_str().expect("secret").to_owned();
    let path = format!("/v1/endpoints/{}/secret/rotate", id(&ep));

    let (status, rotated) = t.admin.post(&path, json!({"gracePeriod": "1s"})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    t.publish("a.one", json!({})).await;
    let first = receiver.wait_for(1).await.remove(0);
    assert!(
        verify_standard(&old, &first),
        "old secret verifies during grace"
    );
    assert!(
        verify_standard(&new, &first),
        "new secret verifies during grace"
    );
    assert_eq!(first.header("webhook-signature").split(' ').count(), 2);

    // Once the grace has passed, deliveries carry the new signature only.
    let mut seen = 1;
    wait_until(
        "a delivery signed by the new secret only",
        Duration::from_secs(20),
        || {
            let (t, receiver) = (&t, receiver.clone());
            seen += 1;
            let n = seen;
            async move {
                t.publish("a.more", json!({})).await;
                let last = receiver.wait_for(n).await.pop().expect("delivery");
                last.header("webhook-signature").split(' ').count() == 1
            }
        },
    )
    .await;
    let last = receiver.received().pop().expect("delivery");
    assert!(verify_standard(&new, &last));
    assert!(!verify_standard(&old, &last));

    // A given secret and no grace: the switch is immediate; bad secrets are refused.
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (status, body) = t
        .admin
        .post(&path, json!({"secret": given, "gracePeriod": "0s"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], given);
    let before = receiver.count();
    t.publish("a.last", json!({})).await;
    let got = receiver.wait_for(before + 1).await.pop().expect("delivery");
    assert!(verify_standard(given, &got));
    assert!(!verify_standard(&new, &got));
    for bad in [
        json!({"secret": "nope"}),
        json!({"gracePeriod": "forever"}),
        json!({"gracePeriod": "90d"}),
        json!({"extra": 1}),
    ] {
        let (status, _) = t.admin.post(&path, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn retrying_a_failed_delivery_makes_one_new_attempt() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (receiver, healthy) = Receiver::switchable().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 0}),
        )
        .await;
    let published = t.publish("a.b", json!({})).await;
    let failed = t.wait_delivery_status(&id(&published), "failed").await;
    let dlv = id(&failed);

    // Still failing: the one attempt fails and the delivery is failed again, not retried on.
    let (status, queued) = t
        .admin
        .post_empty(&format!("/v1/deliveries/{dlv}/retry"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["status"], "pending");
    wait_until("the manual attempt", Duration::from_secs(20), || {
        let api = t.admin.clone();
        let path = format!("/v1/deliveries/{dlv}");
        async move {
            let d = api.get(&path).await.1;
            d["status"] == "failed" && d["attempts"].as_array().map(Vec::len) == Some(2)
        }
    })
    .await;

    healthy.store(true, Ordering::SeqCst);
    let (status, _) = t
        .admin
        .post(&format!("/v1/deliveries/{dlv}/retry"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let done = t.wait_delivery_status(&id(&published), "succeeded").await;
    let attempts = done["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2]["responseCode"], 200);
    assert_eq!(receiver.count(), 3);
    let stats = t.stats(&id(&ep)).await;
    assert_eq!(
        (
            stats["succeeded"].as_u64(),
            stats["failed"].as_u64(),
            stats["pending"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );

    let (status, _) = t.admin.post_empty("/v1/deliveries/dlv_999999/retry").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn retrying_a_pending_delivery_keeps_its_schedule() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::status(500).await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["1h", "1h"]}))
        .await;
    let published = t.publish("a.b", json!({})).await;
    let evt = id(&published);
    wait_until("first attempt failed", Duration::from_secs(20), || {
        let api = t.admin.clone();
        let path = format!("/v1/events/{evt}");
        async move {
            api.get(&path).await.1["deliveries"][0]["attemptCount"] == 1
                && receiver_done(&api, &path).await
        }
    })
    .await;
    let (_, event) = t.admin.get(&format!("/v1/events/{evt}")).await;
    let dlv = event["deliveries"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let scheduled = t.admin.get(&format!("/v1/deliveries/{dlv}")).await.1["nextAttemptAt"].clone();
    assert!(scheduled.is_string());

    let (status, _) = t
        .admin
        .post_empty(&format!("/v1/deliveries/{dlv}/retry"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    receiver.wait_for(2).await;
    wait_until(
        "the extra attempt recorded",
        Duration::from_secs(20),
        || {
            let api = t.admin.clone();
            let path = format!("/v1/deliveries/{dlv}");
            async move { api.get(&path).await.1["attempts"].as_array().map(Vec::len) == Some(2) }
        },
    )
    .await;
    let after = t.admin.get(&format!("/v1/deliveries/{dlv}")).await.1;
    assert_eq!(after["status"], "pending");
    assert_eq!(
        after["nextAttemptAt"], scheduled,
        "the schedule is undisturbed"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

/// Whether the first attempt's outcome is recorded (the delivery has a `nextAttemptAt` an
/// hour out rather than a lease).
async fn receiver_done(api: &crate::support::Api, event_path: &str) -> bool {
    let (_, event) = api.get(event_path).await;
    let Some(dlv) = event["deliveries"][0]["id"].as_str() else {
        return false;
    };
    let d = api.get(&format!("/v1/deliveries/{dlv}")).await.1;
    d["attempts"].as_array().map(Vec::len) == Some(1)
}

#[tokio::test]
async fn retry_is_refused_while_the_endpoint_is_disabled() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::status(500).await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": []}))
        .await;
    let published = t.publish("a.b", json!({})).await;
    let failed = t.wait_delivery_status(&id(&published), "failed").await;
    t.admin
        .patch(
            &format!("/v1/endpoints/{}", id(&ep)),
            json!({"isActive": false}),
        )
        .await;
    let (status, body) = t
        .admin
        .post_empty(&format!("/v1/deliveries/{}/retry", id(&failed)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(receiver.count(), 1);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn recover_requeues_exactly_the_window_and_is_idempotent() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (receiver, healthy) = Receiver::switchable().await;
    let ep = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "retrySchedule": [], "disableAfter": 0}),
        )
        .await;
    let ep_id = id(&ep);
    let mut groups: Vec<Vec<Value>> = Vec::new();
    for g in 0..3 {
        let events: Vec<_> = (0..3)
            .map(|i| json!({"type": "w.x", "data": {"g": g, "i": i}}))
            .collect();
        let (_, body) = t
            .admin
            .post("/v1/events/batch", json!({"events": events}))
            .await;
        let published = body["events"].as_array().expect("events").clone();
        after(&published[2]["createdAt"]).await;
        groups.push(published);
    }
    wait_until("all nine failed", Duration::from_secs(20), || {
        let api = t.admin.clone();
        let path = format!("/v1/endpoints/{ep_id}/stats");
        async move { api.get(&path).await.1["failed"] == 9 }
    })
    .await;
    healthy.store(true, Ordering::SeqCst);
    let window = json!({"since": groups[1][0]["createdAt"], "until": groups[2][0]["createdAt"]});
    let path = format!("/v1/endpoints/{ep_id}/recover");
    let (status, body) = t.admin.post(&path, window.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recovered"], 3);
    let (_, again) = t.admin.post(&path, window).await;
    assert_eq!(again["recovered"], 0, "a second call re-queues nothing");
    let got = receiver.wait_for(12).await;
    let replayed: Vec<String> = got[9..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    let mut expected: Vec<String> = groups[1].iter().map(id).collect();
    let mut replayed_sorted = replayed.clone();
    replayed_sorted.sort();
    expected.sort();
    assert_eq!(replayed_sorted, expected);
    wait_until("the window succeeded", Duration::from_secs(20), || {
        let api = t.admin.clone();
        let path = format!("/v1/endpoints/{ep_id}/stats");
        async move {
            let s = api.get(&path).await.1;
            s["succeeded"] == 3 && s["failed"] == 6 && s["pending"] == 0
        }
    })
    .await;
    for bad in [
        json!({}),
        json!({"since": "yesterday"}),
        json!({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
    ] {
        let (status, _) = t.admin.post(&path, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn recover_delivers_what_was_published_while_an_endpoint_was_disabled() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["a.*"]}))
        .await;
    let path = format!("/v1/endpoints/{}", id(&ep));
    let (_, paused) = t.admin.patch(&path, json!({"isActive": false})).await;
    assert_eq!(paused["disabledReason"], "manual");
    let first = t.publish("a.one", json!({})).await;
    assert_eq!(first["deliveries"], 0);
    t.publish("a.two", json!({})).await;
    t.publish("b.other", json!({})).await;
    assert_eq!(
        t.admin.post_empty(&format!("{path}/enable")).await.0,
        StatusCode::OK
    );
    let (_, body) = t
        .admin
        .post(
            &format!("{path}/recover"),
            json!({"since": first["createdAt"]}),
        )
        .await;
    assert_eq!(
        body["recovered"], 2,
        "the two subscribed events, not b.other"
    );
    let got = receiver.wait_for(2).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["event"].as_str().expect("type").to_owned())
        .collect();
    types.sort();
    assert_eq!(types, ["a.one", "a.two"]);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn fifo_delivers_in_publish_order_with_a_retrying_head_holding_the_rest() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // Fails the first attempt of every third event.
    let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let memory = seen.clone();
    let receiver = Receiver::with(move |_, r: &Received| {
        let n = r.json()["data"]["n"].as_u64().expect("n");
        let first_time = memory.lock().expect("seen").insert(n);
        if n % 3 == 2 && first_time {
            (500, vec![], "try again".into())
        } else {
            (200, vec![], "ok".into())
        }
    })
    .await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "ordering": "fifo", "retrySchedule": ["50ms"]})).await;
    let events: Vec<_> = (0..12)
        .map(|n| json!({"type": "seq.item", "data": {"n": n}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    let got = receiver.wait_for(16).await;
    let order: Vec<u64> = got
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().expect("n"))
        .collect();
    let expected: Vec<u64> = (0..12u64)
        .flat_map(|n| if n % 3 == 2 { vec![n, n] } else { vec![n] })
        .collect();
    assert_eq!(order, expected);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn switching_a_live_endpoint_to_fifo_is_safe() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let events: Vec<_> = (0..50)
        .map(|n| json!({"type": "seq.item", "data": {"n": n}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": events.clone()}))
        .await;
    let (status, _) = t
        .admin
        .patch(
            &format!("/v1/endpoints/{}", id(&ep)),
            json!({"ordering": "fifo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    t.admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    let got = receiver.wait_for(100).await;
    // Every event arrives once; the second batch, published under FIFO, arrives in order.
    assert_eq!(got.len(), 100);
    let tail: Vec<u64> = got[got.len() - 50..]
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().expect("n"))
        .collect();
    let mut sorted = tail.clone();
    sorted.sort();
    assert_eq!(tail, sorted);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_rate_limit_spaces_deliveries_to_about_that_many_per_second() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "rateLimit": 20}))
        .await;
    let events: Vec<_> = (0..60)
        .map(|n| json!({"type": "r.x", "data": {"n": n}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    let got = receiver.wait_for(60).await;
    let times: Vec<_> = got.iter().map(|r| r.at).collect();
    // Count-based: no one-second window holds many more than 20 arrivals...
    let busiest = crate::support::busiest_second(&times);
    assert!(busiest <= 24, "{busiest} arrivals in one second");
    // ...so sixty take at least two seconds from first to last.
    let span = times.last().expect("last").duration_since(times[0]);
    assert!(span >= Duration::from_millis(1800), "{span:?}");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn retry_after_delays_the_next_attempt_at_least_that_long() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::with(|n, _| match n {
        0 => (429, vec![("retry-after", "2".into())], "slow down".into()),
        _ => (200, vec![], "ok".into()),
    })
    .await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["100ms", "10s"]}))
        .await;
    t.publish("a.b", json!({})).await;
    let got = receiver.wait_for(2).await;
    let gap = got[1].at.duration_since(got[0].at);
    assert!(gap >= Duration::from_secs(2), "{gap:?}");
    assert!(
        gap < Duration::from_secs(10),
        "{gap:?}: capped by the schedule, not the jittered 10s"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_at_once() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::status(410).await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["50ms", "50ms"]}))
        .await;
    let published = t.publish("a.b", json!({})).await;
    let delivery = t.wait_delivery_status(&id(&published), "failed").await;
    assert_eq!(
        delivery["attempts"].as_array().expect("attempts").len(),
        1,
        "no retries after 410"
    );
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{}", id(&ep))).await;
    assert_eq!(read["isActive"], false);
    assert_eq!(read["disabledReason"], "gone");
    assert_eq!(t.publish("a.b", json!({})).await["deliveries"], 0);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn tls_and_blocked_targets_are_classified() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    let plain = Receiver::ok().await;
    // https:// to a plain-HTTP receiver: the handshake fails.
    let tls_url = plain.url.replace("http://", "https://");
    t.endpoint(json!({"url": tls_url, "events": ["tls.*"], "retrySchedule": []}))
        .await;
    t.endpoint(json!({"url": plain.url, "events": ["blocked.*"], "retrySchedule": []}))
        .await;
    let tls = t.publish("tls.x", json!({})).await;
    let delivery = t.wait_delivery_status(&id(&tls), "failed").await;
    assert_eq!(delivery["attempts"][0]["error"], "tls", "{delivery}");
    server.assert_list_counts_exact();
    server.stop().await;

    // The same endpoints, after a restart that no longer allows loopback targets.
    let server = Server::start_in(dir, |c| c.allow_private_targets = false).await;
    let op = server.operator();
    let (_, keys) = op.get(&format!("/v1/tenants/{}/keys", t.id)).await;
    assert_eq!(keys["totalElements"], 1);
    let t = t.on(&server);
    let blocked = t.publish("blocked.x", json!({})).await;
    let delivery = t.wait_delivery_status(&id(&blocked), "failed").await;
    assert_eq!(
        delivery["attempts"][0]["error"], "blocked_target",
        "{delivery}"
    );
    assert_eq!(plain.count(), 0, "nothing reached the blocked address");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn operational_events_reach_subscribers_and_never_their_subject() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let monitor = Receiver::ok().await;
    t.endpoint(json!({"name": "monitor", "url": monitor.url, "events": ["hookd.*"]}))
        .await;
    let everything = Receiver::ok().await;
    t.endpoint(json!({"name": "everything", "url": everything.url, "events": ["*"]}))
        .await;
    let (subject_rx, healthy) = Receiver::switchable().await;
    let subject = t
        .endpoint(json!({"name": "subject", "url": subject_rx.url, "events": ["work.*", "hookd.*"], "retrySchedule": [], "disableAfter": 1}))
        .await;
    let subject_id = id(&subject);

    t.publish("work.item", json!({})).await;
    let failed_path = format!("/v1/endpoints/{subject_id}/deliveries?status=failed");
    wait_until(
        "the subject's delivery failed",
        Duration::from_secs(20),
        || {
            let (api, path) = (t.admin.clone(), failed_path.clone());
            async move { api.get(&path).await.1["totalElements"] == 1 }
        },
    )
    .await;
    let failed = t.admin.get(&failed_path).await.1["content"][0].clone();
    // exhausted + disabled
    monitor.wait_for(2).await;
    healthy.store(true, Ordering::SeqCst);
    t.admin
        .post_empty(&format!("/v1/endpoints/{subject_id}/enable"))
        .await;
    t.admin
        .post_empty(&format!("/v1/endpoints/{subject_id}/secret/rotate"))
        .await;
    t.admin
        .post_empty(&format!("/v1/deliveries/{}/retry", id(&failed)))
        .await;
    let got = monitor.wait_for(5).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| r.json()["event"].as_str().expect("type").to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "hookd.delivery.exhausted",
            "hookd.delivery.recovered",
            "hookd.endpoint.disabled",
            "hookd.endpoint.enabled",
            "hookd.endpoint.secret_rotated",
        ]
    );
    for r in &got {
        assert_eq!(r.json()["data"]["endpointId"], subject_id.as_str());
    }
    let disabled = got
        .iter()
        .find(|r| r.json()["event"] == "hookd.endpoint.disabled")
        .expect("disabled");
    assert_eq!(disabled.json()["data"]["reason"], "consecutive_failures");
    // The subject got its work item twice (the failure and the retry) and no hookd.* event;
    // `*` does not include operational events.
    let subject_got = subject_rx.received();
    assert!(
        subject_got.iter().all(|r| r.json()["event"] == "work.item"),
        "subject saw an event about itself"
    );
    assert_eq!(subject_got.len(), 2);
    assert!(everything.received().iter().all(|r| {
        !r.json()["event"]
            .as_str()
            .expect("type")
            .starts_with("hookd.")
    }));
    server.assert_list_counts_exact();
    server.stop().await;
}
