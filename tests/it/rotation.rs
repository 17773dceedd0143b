//! Secret rotation as receivers see it: at most two secrets sign at once, GitHub's header holds
//! one value, and `oldSecretExpiresAt` is when the previous secret stops signing.

use std::time::Duration;

use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Received, Receiver, Server, Tenant, verify_github, verify_standard};

/// Rotates `endpoint`'s secret to `secret` (or a generated one) with `grace`; the answer.
async fn rotate(t: &Tenant, endpoint: &str, secret: Option<&str>, grace: &str) -> Value {
    let mut body = json!({"gracePeriod": grace});
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    let (status, answer) = t
        .admin
        .post(&format!("/v1/endpoints/{endpoint}/secret/rotate"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Publishes one event and returns its delivery as the receiver got it.
async fn deliver(t: &Tenant, receiver: &Receiver) -> Received {
    let before = receiver.count();
    t.publish("a.b", json!({"n": before})).await;
    receiver.wait_for(before + 1).await.remove(before)
}

/// Publishes until `done` holds for a delivery (each one is checked), for up to 20 s.
async fn deliver_until(t: &Tenant, receiver: &Receiver, done: impl Fn(&Received) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if done(&deliver(t, receiver).await) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_second_rotation_ends_every_older_secret_at_once() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let id = endpoint["id"].as_str().expect("id");
    let s0 = endpoint["secret"].as_str().expect("secret").to_owned();
    let s1 = rotate(&t, id, None, "1h").await["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let second = rotate(&t, id, None, "1s").await;
    let s2 = second["secret"].as_str().expect("secret").to_owned();
    let expires = chrono::DateTime::parse_from_rfc3339(
        second["oldSecretExpiresAt"].as_str().expect("expiry"),
    )
    .expect("a time")
    .with_timezone(&chrono::Utc);
    assert!(expires - chrono::Utc::now() <= chrono::Duration::seconds(1));
    // The answer's end is the one the old secret was given (and announced), to the millisecond.
    let (_, announced) = t
        .admin
        .get("/v1/events?type=hookd.endpoint.secret_rotated")
        .await;
    assert_eq!(
        announced["content"][0]["data"]["oldSecretExpiresAt"], second["oldSecretExpiresAt"],
        "{announced}"
    );
    let got = deliver(&t, &receiver).await;
    assert!(verify_standard(&s2, &got), "the current secret signs");
    assert!(
        !verify_standard(&s0, &got),
        "the oldest secret no longer signs"
    );
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    // Once `oldSecretExpiresAt` has passed, the current secret alone.
    deliver_until(&t, &receiver, |r| !verify_standard(&s1, r)).await;
    assert!(chrono::Utc::now() >= expires, "S1 stopped before its time");
    let got = deliver(&t, &receiver).await;
    assert!(verify_standard(&s2, &got));
    assert_eq!(got.header("webhook-signature").split(' ').count(), 1);
    server.stop().await;
}

#[tokio::test]
async fn github_rotation_sends_one_signature_made_with_the_previous_secret_until_grace_ends() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let (old, new) = ("the-first-secret-1234", "the-second-secret-5678");
    let endpoint = t
        .endpoint(
            json!({"url": receiver.url, "events": ["*"], "signatureScheme": "github",
                         "secret": old}),
        )
        .await;
    let id = endpoint["id"].as_str().expect("id");
    rotate(&t, id, Some(new), "2s").await;
    // Receivers that have not switched keep verifying; GitHub's header holds one value.
    let got = deliver(&t, &receiver).await;
    let header = got.header("x-hub-signature-256");
    assert!(verify_github(old, header, &got.body), "{header}");
    assert!(!header.contains(' ') && !header.contains(','), "{header}");
    // From the end of the grace period, the new secret.
    deliver_until(&t, &receiver, |r| {
        verify_github(new, r.header("x-hub-signature-256"), &r.body)
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_standard_secret_without_base64_padding_is_taken() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let b64 = base64::engine::general_purpose::STANDARD;
    let padded = format!("whsec_{}", b64.encode([7u8; 25]));
    assert!(padded.ends_with('='));
    let unpadded = padded.trim_end_matches('=').to_owned();
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "secret": unpadded}))
        .await;
    let id = endpoint["id"].as_str().expect("id");
    let got = deliver(&t, &receiver).await;
    assert!(verify_standard(&padded, &got), "signed with the same key");
    // And as a rotation's new secret.
    let rotated = rotate(&t, id, Some(&unpadded), "0s").await;
    assert_eq!(rotated["secret"], unpadded.as_str());
    server.stop().await;
}
