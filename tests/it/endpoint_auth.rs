//! Endpoint auth: HTTP Basic, and OAuth2 client credentials against a real token server on
//! 127.0.0.1; credentials are write-only and sealed in the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, Tenant, sqlite_only};

/// Publishes one event and waits for the receiver's `n`-th request (1-based); returns it.
async fn deliver_nth(t: &Tenant, receiver: &Receiver, n: usize) -> crate::support::Received {
    t.publish("a.b", json!({"n": n})).await;
    receiver.wait_for(n).await[n - 1].clone()
}

/// The bytes of the database files (the file and its write-ahead log).
fn database_bytes(server: &Server) -> Vec<u8> {
    let db = server.db_path();
    let mut bytes = std::fs::read(&db).expect("db file");
    let mut wal = db.into_os_string();
    wal.push("-wal");
    bytes.extend(std::fs::read(wal).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn basic_auth_is_sent_never_read_back_and_not_in_the_database_file_in_plain_text() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({
            "url": receiver.url,
            "events": ["*"],
            "headers": {"authorization": "Bearer set-in-headers", "x-team": "core"},
            "auth": {"type": "basic", "username": "hookd", "password": "pa55-word-XYZZY"},
        }))
        .await;
    assert_eq!(ep["authConfigured"], true, "{ep}");
    assert!(!ep.to_string().contains("XYZZY"), "never read back: {ep}");
    let got = deliver_nth(&t, &receiver, 1).await;
    // base64("hookd:pa55-word-XYZZY"), alone: `auth` replaces an authorization header.
    assert_eq!(
        got.header("authorization"),
        "Basic aG9va2Q6cGE1NS13b3JkLVhZWlpZ"
    );
    assert_eq!(got.header("x-team"), "core");
    let id = ep["id"].as_str().expect("id");
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{id}")).await;
    assert_eq!(read["authConfigured"], true);
    assert!(!read.to_string().contains("XYZZY"), "{read}");
    if !sqlite_only("basic_auth_is_sent_never_read_back_and_not_in_the_database_file") {
        let bytes = database_bytes(&server);
        assert!(
            contains(&bytes, "test endpoint"),
            "the endpoint's row is in the bytes read"
        );
        assert!(
            !contains(&bytes, "XYZZY"),
            "the password is sealed in the file"
        );
    }
    // PATCH: a bad auth is refused and changes nothing; null removes it.
    let path = format!("/v1/endpoints/{id}");
    let (status, err) = t
        .admin
        .patch(
            &path,
            json!({"auth": {"type": "basic", "username": "a:b", "password": "p"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("auth.username")
    );
    let got = deliver_nth(&t, &receiver, 2).await;
    assert_eq!(
        got.header("authorization"),
        "Basic aG9va2Q6cGE1NS13b3JkLVhZWlpZ"
    );
    let (status, read) = t.admin.patch(&path, json!({"auth": null})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["authConfigured"], false);
    let got = deliver_nth(&t, &receiver, 3).await;
    assert_eq!(got.header("authorization"), "Bearer set-in-headers");
    server.stop().await;
}

/// A token server issuing `tok-<generation>` (the generation moves when `rotate` is called),
/// with `expires_in` seconds, and the endpoint that accepts only the current token.
struct OAuth {
    token_server: Receiver,
    endpoint: Receiver,
    generation: Arc<AtomicUsize>,
}

impl OAuth {
    async fn start(expires_in: u64) -> Self {
        let generation = Arc::new(AtomicUsize::new(1));
        let issued = generation.clone();
        let token_server = Receiver::with(move |_, _| {
            let token = format!("tok-{}", issued.load(Ordering::SeqCst));
            let body =
                json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in});
            (
                200,
                vec![("content-type", "application/json".into())],
                body.to_string(),
            )
        })
        .await;
        let accepted = generation.clone();
        let endpoint = Receiver::with(move |_, req| {
            let wanted = format!("Bearer tok-{}", accepted.load(Ordering::SeqCst));
            match req.header("authorization") == wanted {
                true => (200, vec![], "ok".into()),
                false => (401, vec![], "token refused".into()),
            }
        })
        .await;
        Self {
            token_server,
            endpoint,
            generation,
        }
    }

    fn auth(&self) -> Value {
        json!({
            "type": "oauth2", "tokenUrl": self.token_server.url,
            "clientId": "hookd-client", "clientSecret": "client-secret-QUUX", "scope": "webhooks.write",
        })
    }
}

#[tokio::test]
async fn oauth2_fetches_a_token_caches_it_and_fetches_a_new_one_once_on_a_401() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let oauth = OAuth::start(3600).await;
    let ep = t
        .endpoint(json!({"url": oauth.endpoint.url, "events": ["*"], "auth": oauth.auth()}))
        .await;
    assert_eq!(ep["authConfigured"], true);
    assert!(!ep.to_string().contains("QUUX"), "{ep}");
    let first = deliver_nth(&t, &oauth.endpoint, 1).await;
    assert_eq!(first.header("authorization"), "Bearer tok-1");
    let fetch = &oauth.token_server.received()[0];
    assert_eq!(
        fetch.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&fetch.body)
        .into_owned()
        .collect();
    for pair in [
        ("grant_type", "client_credentials"),
        ("client_id", "hookd-client"),
        ("client_secret", "client-secret-QUUX"),
        ("scope", "webhooks.write"),
    ] {
        assert!(
            form.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {form:?}"
        );
    }
    // Cached: the next delivery fetches nothing.
    let second = deliver_nth(&t, &oauth.endpoint, 2).await;
    assert_eq!(second.header("authorization"), "Bearer tok-1");
    assert_eq!(oauth.token_server.count(), 1, "the token is cached");
    // The endpoint stops taking tok-1: one 401, one new token, the same attempt succeeds.
    oauth.generation.store(2, Ordering::SeqCst);
    let event = t.publish("a.b", json!({"n": 3})).await;
    let id = event["id"].as_str().expect("id");
    let delivery = t.wait_delivery_status(id, "succeeded").await;
    let got = oauth.endpoint.wait_for(4).await;
    assert_eq!(got[2].header("authorization"), "Bearer tok-1");
    assert_eq!(got[3].header("authorization"), "Bearer tok-2");
    assert_eq!(oauth.token_server.count(), 2);
    assert_eq!(
        delivery["attempts"].as_array().map(Vec::len),
        Some(1),
        "{delivery}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_expired_oauth2_token_is_fetched_again() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // expires_in 0: every token has expired by the next attempt.
    let oauth = OAuth::start(0).await;
    t.endpoint(json!({"url": oauth.endpoint.url, "events": ["*"], "auth": oauth.auth()}))
        .await;
    deliver_nth(&t, &oauth.endpoint, 1).await;
    deliver_nth(&t, &oauth.endpoint, 2).await;
    assert_eq!(oauth.token_server.count(), 2, "one fetch per expired token");
    server.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_the_attempt_with_the_auth_class_and_sends_nothing() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let token_server = Receiver::status(500).await;
    let endpoint = Receiver::ok().await;
    t.endpoint(json!({
        "url": endpoint.url,
        "events": ["*"],
        "retrySchedule": [],
        "auth": {"type": "oauth2", "tokenUrl": token_server.url, "clientId": "c", "clientSecret": "s"},
    }))
    .await;
    let event = t.publish("a.b", json!({})).await;
    let delivery = t
        .wait_delivery_status(event["id"].as_str().expect("id"), "failed")
        .await;
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error"], "auth", "{delivery}");
    let message = attempt["errorMessage"].as_str().expect("message");
    assert!(
        message.contains("token endpoint") && message.contains("500"),
        "{message}"
    );
    assert_eq!(token_server.count(), 1);
    assert_eq!(endpoint.count(), 0, "nothing is sent without a token");
    server.stop().await;
}

#[tokio::test]
async fn bad_auth_bodies_are_refused_by_name() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    for (auth, names) in [
        (json!({"type": "digest"}), "auth"),
        (json!({"type": "basic", "username": "u"}), "password"),
        (
            json!({"type": "oauth2", "tokenUrl": "not a url", "clientId": "c", "clientSecret": "s"}),
            "tokenUrl",
        ),
        (
            json!({"type": "oauth2", "tokenUrl": "http://127.0.0.1:9/t", "clientSecret": "s"}),
            "clientId",
        ),
    ] {
        let (status, err) = t
            .admin
            .post(
                "/v1/endpoints",
                json!({"name": "x", "url": "http://127.0.0.1:9/h", "events": ["*"], "auth": auth}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{auth}: {err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains(names), "{auth}: {message}");
    }
    let (_, page) = t.admin.get("/v1/endpoints").await;
    assert_eq!(page["totalElements"], 0);
    server.stop().await;
}
