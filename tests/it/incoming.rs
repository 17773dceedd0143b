//! Incoming webhooks: real senders (this test's HTTP client) calling a real hookd.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, Receiver, Server, Tenant, wait_until};

/// Creates an incoming webhook for `t`; answers it as created (with its `url`).
pub(crate) async fn hook(t: &Tenant, body: Value) -> Value {
    let (status, created) = t.admin.post("/v1/incoming", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// A client with no token, as the outside world calls.
fn world(t: &Tenant) -> Api {
    t.admin.with_token("")
}

async fn send(
    api: &Api,
    url: &str,
    ct: Option<&str>,
    body: &[u8],
) -> (StatusCode, http::HeaderMap, Value) {
    api.raw("POST", url, ct, body.to_vec()).await
}

async fn event_count(t: &Tenant) -> u64 {
    t.admin.get("/v1/events").await.1["totalElements"]
        .as_u64()
        .expect("total")
}

#[tokio::test]
async fn a_publish_hook_fans_the_body_out_like_an_event() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    let other = Receiver::ok().await;
    t.endpoint(json!({"url": a.url, "events": ["github.*"]}))
        .await;
    t.endpoint(json!({"url": b.url, "events": ["*"]})).await;
    t.endpoint(json!({"url": other.url, "events": ["billing.*"]}))
        .await;
    let created = hook(
        &t,
        json!({"name": "GitHub", "action": {"type": "publish", "eventType": "github.push"}}),
    )
    .await;
    let token = created["token"].as_str().expect("token");
    assert!(token.len() >= 22, "at least 128 bits");
    let url = created["url"].as_str().expect("url").to_owned();
    assert_eq!(url, format!("/hooks/in/{token}"));

    let (status, _, answer) = send(
        &world(&t),
        &url,
        Some("application/json"),
        br#"{"ref":"main","n":1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let event_id = answer["eventId"].as_str().expect("event id");
    let got_a = a.wait_for(1).await;
    let got_b = b.wait_for(1).await;
    assert_eq!(got_a[0].json()["event"], "github.push");
    assert_eq!(got_a[0].json()["data"], json!({"ref": "main", "n": 1}));
    assert_eq!(got_b[0].header("webhook-id"), event_id);
    assert_eq!(other.count(), 0);

    // Listed without its token; its log shows the call.
    let (_, list) = t.admin.get("/v1/incoming").await;
    assert_eq!(list["totalElements"], 1);
    assert!(list["content"][0].get("token").is_none());
    let id = created["id"].as_str().expect("id");
    let (_, log) = t.admin.get(&format!("/v1/incoming/{id}/requests")).await;
    assert_eq!(log["totalElements"], 1);
    let entry = &log["content"][0];
    assert_eq!(entry["status"], "accepted");
    assert_eq!(entry["eventId"], event_id);
    assert_eq!(entry["contentType"], "application/json");
    assert_eq!(entry["body"], r#"{"ref":"main","n":1}"#);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn form_bodies_become_json_objects() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    t.endpoint(json!({"url": r.url, "events": ["form.*"]}))
        .await;
    let created = hook(
        &t,
        json!({"name": "form", "action": {"type": "publish", "eventType": "form.submitted"}}),
    )
    .await;
    let url = created["url"].as_str().expect("url");
    let (status, _, _) = send(
        &world(&t),
        url,
        Some("application/x-www-form-urlencoded"),
        b"name=Ada+Lovelace&plan=pro",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = r.wait_for(1).await;
    assert_eq!(
        got[0].json()["data"],
        json!({"name": "Ada Lovelace", "plan": "pro"})
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_store_hook_keeps_calls_without_publishing() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    t.endpoint(json!({"url": r.url, "events": ["*"]})).await;
    let created = hook(&t, json!({"name": "inbox", "action": {"type": "store"}})).await;
    let (status, _, answer) = send(
        &world(&t),
        created["url"].as_str().expect("url"),
        Some("application/json"),
        b"[1,2]",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["eventId"], Value::Null);
    assert_eq!(event_count(&t).await, 0);
    let (_, log) = t
        .admin
        .get(&format!(
            "/v1/incoming/{}/requests",
            created["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(log["content"][0]["body"], "[1,2]");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn both_challenges_are_answered() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let created = hook(
        &t,
        json!({"name": "slack", "action": {"type": "publish", "eventType": "slack.event"}}),
    )
    .await;
    let url = created["url"].as_str().expect("url");
    let (status, headers, body) = world(&t)
        .raw("GET", &format!("{url}?challenge=abc123"), None, Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    assert_eq!(body, "abc123");
    let (status, _, body) = send(
        &world(&t),
        url,
        Some("application/json"),
        br#"{"type":"url_verification","challenge":"xyz","token":"t"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"challenge": "xyz"}));
    assert_eq!(event_count(&t).await, 0, "a handshake publishes nothing");
    server.assert_list_counts_exact();
    server.stop().await;
}

fn standard_signature(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("mac");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

async fn signed(api: &Api, url: &str, headers: &[(&str, String)], body: &[u8]) -> StatusCode {
    api.raw_with_headers("POST", url, headers, body.to_vec())
        .await
        .0
}

#[tokio::test]
async fn signed_hooks_reject_unsigned_bad_and_stale_calls() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let created = hook(
        &t,
        json!({"name": "signed", "action": {"type": "publish", "eventType": "partner.update"},
               "verify": {"scheme": "standard", "secret": secret}}),
    )
    .await;
    let url = created["url"].as_str().expect("url");
    let body = br#"{"ok":true}"#;
    let now = chrono::Utc::now().timestamp();
    let with = |id: &str, ts: i64, sig: String| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sig),
        ]
    };
    let api = world(&t);
    let unsigned = vec![("content-type", "application/json".to_owned())];
    assert_eq!(
        signed(&api, url, &unsigned, body).await,
        StatusCode::UNAUTHORIZED
    );
    let bad = with("msg_1", now, "v1,AAAA".into());
    assert_eq!(
        signed(&api, url, &bad, body).await,
        StatusCode::UNAUTHORIZED
    );
    let stale = with(
        "msg_2",
        now - 600,
        standard_signature(secret, "msg_2", now - 600, body),
    );
    assert_eq!(
        signed(&api, url, &stale, body).await,
        StatusCode::UNAUTHORIZED
    );
    let tampered = with(
        "msg_3",
        now,
        standard_signature(secret, "msg_3", now, b"{}"),
    );
    assert_eq!(
        signed(&api, url, &tampered, body).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(event_count(&t).await, 0);
    let good = with("msg_4", now, standard_signature(secret, "msg_4", now, body));
    assert_eq!(signed(&api, url, &good, body).await, StatusCode::ACCEPTED);
    assert_eq!(event_count(&t).await, 1);
    let (_, log) = t
        .admin
        .get(&format!(
            "/v1/incoming/{}/requests",
            created["id"].as_str().expect("id")
        ))
        .await;
    let statuses: Vec<&str> = log["content"]
        .as_array()
        .expect("log")
        .iter()
        .map(|r| r["status"].as_str().expect("s"))
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "rejected", "rejected", "rejected", "rejected"]
    );
    assert!(
        log["content"][4]["error"]
            .as_str()
            .expect("error")
            .contains("webhook-id")
    );

    // GitHub style.
    let gh = hook(
        &t,
        json!({"name": "gh", "action": {"type": "store"}, "verify": {"scheme": "github", "secret": "gh-secret-123"}}),
    )
    .await;
    let gh_url = gh["url"].as_str().expect("url");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"gh-secret-123").expect("mac");
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let ok = vec![
        ("content-type", "application/json".to_owned()),
        ("x-hub-signature-256", sig),
    ];
    assert_eq!(signed(&api, gh_url, &ok, body).await, StatusCode::ACCEPTED);
    let wrong = vec![
        ("content-type", "application/json".to_owned()),
        ("x-hub-signature-256", "sha256=00".to_owned()),
    ];
    assert_eq!(
        signed(&api, gh_url, &wrong, body).await,
        StatusCode::UNAUTHORIZED
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn bad_calls_are_refused_and_publish_nothing() {
    let server = Server::start_with(|c| c.max_body_bytes = 2048).await;
    let t = server.tenant("acme").await;
    let created = hook(
        &t,
        json!({"name": "h", "action": {"type": "publish", "eventType": "a.b"}}),
    )
    .await;
    let url = created["url"].as_str().expect("url");
    let api = world(&t);
    let (status, _, body) = send(
        &api,
        "/hooks/in/not-a-token",
        Some("application/json"),
        b"{}",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, _) = send(&api, url, Some("application/json"), &vec![b' '; 4096]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = send(&api, url, Some("text/plain"), b"hello").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = send(&api, url, Some("application/json"), b"{oops").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(event_count(&t).await, 0);
    let (_, log) = t
        .admin
        .get(&format!(
            "/v1/incoming/{}/requests",
            created["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(log["totalElements"], 3, "rejected calls are logged");

    for bad in [
        json!({"name": "x", "action": {"type": "forward"}}),
        json!({"name": "x", "action": {"type": "publish"}}),
        json!({"name": "x", "action": {"type": "publish", "eventType": "Bad Name"}}),
        json!({"name": "x", "action": {"type": "store"}, "verify": {"scheme": "md5", "secret": "abcdefgh"}}),
        json!({"name": "x", "action": {"type": "store"}, "verify": {"scheme": "standard", "secret": "short"}}),
    ] {
        assert_eq!(
            t.admin.post("/v1/incoming", bad).await.0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    // A deleted hook's URL is gone.
    let id = created["id"].as_str().expect("id");
    assert_eq!(
        t.admin.delete(&format!("/v1/incoming/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&api, url, Some("application/json"), b"{}").await.0,
        StatusCode::NOT_FOUND
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_noisy_sender_is_rate_limited() {
    let server = Server::start_with(|c| c.incoming_rate_limit = 5).await;
    let t = server.tenant("acme").await;
    let created = hook(&t, json!({"name": "h", "action": {"type": "store"}})).await;
    let url = created["url"].as_str().expect("url");
    let api = world(&t);
    let started = Instant::now();
    let (mut accepted, mut limited) = (0u64, 0u64);
    for _ in 0..20 {
        let (status, headers, _) = send(&api, url, Some("application/json"), b"{}").await;
        match status {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}"),
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert!(
        accepted <= 5 * seconds,
        "{accepted} accepted in under {seconds}s"
    );
    assert!(limited >= 20 - 5 * seconds.min(4), "{limited} limited");
    wait_until(
        "the log holds the accepted calls",
        Duration::from_secs(5),
        || {
            let (api, path) = (
                t.admin.clone(),
                format!(
                    "/v1/incoming/{}/requests",
                    created["id"].as_str().expect("id")
                ),
            );
            async move { api.get(&path).await.1["totalElements"] == accepted }
        },
    )
    .await;
    server.assert_list_counts_exact();
    server.stop().await;
}
