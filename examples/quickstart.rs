//! hookd's main job on a fresh machine, in one command:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//! Starts hookd on a temporary database and a local receiver that verifies signatures,
//! creates a tenant, an admin key and an endpoint through the API, publishes events (one by
//! one and in a batch), prints each verified delivery as it arrives, then the endpoint's stats.

#[path = "support/verify.rs"]
mod verify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hookd::config::Config;
use hookd::model::SignatureScheme;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const OPERATOR: &str = "quickstart-operator-token";

struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let response = self.client.request(request).await.expect("hookd answers");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path} -> {status}: {value}");
        value
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = Config {
        db: dir.path().join("hookd.db"),
        admin_token: Some(OPERATOR.into()),
        allow_http: true,
        allow_private_targets: true,
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hookd = tokio::spawn(hookd::app::run(config, listener, async {
        let _ = stopped.await;
    }));
    let api = Api {
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    println!("1. hookd is running on a temporary database");

    let tenant = api
        .call(
            "POST",
            "/v1/tenants",
            OPERATOR,
            Some(json!({"name": "Acme"})),
        )
        .await;
    let tenant_id = tenant["id"].as_str().expect("id");
    let key = api
        .call(
            "POST",
            &format!("/v1/tenants/{tenant_id}/keys"),
            OPERATOR,
            Some(json!({"name": "quickstart", "role": "admin"})),
        )
        .await;
    let key = key["key"].as_str().expect("key").to_owned();
    println!("2. created tenant {tenant_id} and an admin API key");

    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver_url = verify::url(receiver.local_addr().expect("addr"));
    let endpoint = api
        .call(
            "POST",
            "/v1/endpoints",
            &key,
            Some(json!({
                "name": "Local receiver",
                "url": receiver_url,
                "events": ["project.*"],
            })),
        )
        .await;
    let endpoint_id = endpoint["id"].as_str().expect("id").to_owned();
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    println!("3. endpoint {endpoint_id} -> {receiver_url}, subscribed to project.*");

    let arrived: Arc<Mutex<usize>> = Arc::default();
    let counter = arrived.clone();
    tokio::spawn(verify::serve(
        receiver,
        SignatureScheme::Standard,
        secret,
        Arc::new(move |d| {
            *counter.lock().expect("counter") += 1;
            println!(
                "   receiver verified {} ({}): {}",
                d.id, d.body["event"], d.body["data"]
            );
        }),
    ));

    for (i, name) in ["Apollo", "Gemini", "Mercury"].iter().enumerate() {
        api.call(
            "POST",
            "/v1/events",
            &key,
            Some(json!({
                "type": "project.created", "data": {"name": name, "n": i},
            })),
        )
        .await;
    }
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"type": "project.updated", "data": {"n": i}}))
        .collect();
    api.call(
        "POST",
        "/v1/events/batch",
        &key,
        Some(json!({"events": batch})),
    )
    .await;
    api.call(
        "POST",
        "/v1/events",
        &key,
        Some(json!({"type": "billing.paid", "data": {}})),
    )
    .await;
    println!("4. published 9 events (1 not subscribed); waiting for the 8 deliveries");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while *arrived.lock().expect("counter") < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not arrive in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = api
        .call(
            "GET",
            &format!("/v1/endpoints/{endpoint_id}/stats"),
            &key,
            None,
        )
        .await;
    println!(
        "5. endpoint stats: {}",
        serde_json::to_string_pretty(&stats).expect("json")
    );
    let _ = stop.send(());
    hookd.await.expect("join").expect("hookd stops cleanly");
    println!("done: every delivery arrived signed and verified.");
}
