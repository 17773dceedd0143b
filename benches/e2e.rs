//! End-to-end throughput: a real hookd (in-process, temp database, `synchronous=FULL`), a
//! fast local receiver that answers 204, events published in batches of 100 from 4 clients.
//!
//! ```text
//! cargo bench --bench e2e                    # 50,000 events to 1 endpoint
//! HOOKD_BENCH_EVENTS=200000 cargo bench --bench e2e
//! ```
//! Prints a table row and one JSON line per scenario. Only `throughput-1` exists so far.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd::config::{Config, Durability};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

const OPERATOR: &str = "bench-operator-token-000";
const CLIENTS: usize = 4;
const BATCH: usize = 100;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn call(client: &HttpClient, base: &str, path: &str, token: &str, body: Value) -> Value {
    let req = hyper::Request::post(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let res = client.request(req).await.expect("hookd answers");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("json")
}

/// A receiver that answers 204 and counts arrivals.
async fn receiver(arrived: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let arrived = arrived.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let arrived = arrived.clone();
                        async move {
                            req.into_body().collect().await?;
                            arrived.fetch_add(1, Ordering::Relaxed);
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(204)
                                    .body(Full::new(Bytes::new()))
                                    .expect("response"),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::main]
async fn main() {
    let events: usize = std::env::var("HOOKD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let config = Config {
        db: dir.path().join("bench.db"),
        admin_token: Some(OPERATOR.into()),
        allow_http: true,
        allow_private_targets: true,
        durability: Durability::Full,
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hookd::app::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let tenant = call(
        &client,
        &base,
        "/v1/tenants",
        OPERATOR,
        json!({"name": "bench"}),
    )
    .await;
    let key = call(
        &client,
        &base,
        &format!("/v1/tenants/{}/keys", tenant["id"].as_str().expect("id")),
        OPERATOR,
        json!({"name": "bench", "role": "admin"}),
    )
    .await;
    let key = key["key"].as_str().expect("key").to_owned();
    let arrived = Arc::new(AtomicU64::new(0));
    let url = receiver(arrived.clone()).await;
    call(
        &client,
        &base,
        "/v1/endpoints",
        &key,
        json!({"name": "r", "url": url, "events": ["*"]}),
    )
    .await;

    let started = Instant::now();
    let per_client = events / CLIENTS;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let payload = json!({"title": "bench event", "body": "x".repeat(200), "client": c});
            for _ in 0..per_client.div_ceil(BATCH) {
                let batch: Vec<Value> = (0..BATCH)
                    .map(|_| json!({"type": "bench.event", "data": payload}))
                    .collect();
                call(
                    &client,
                    &base,
                    "/v1/events/batch",
                    &key,
                    json!({"events": batch}),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let published = (per_client.div_ceil(BATCH) * BATCH * CLIENTS) as u64;
    let publish_secs = started.elapsed().as_secs_f64();
    while arrived.load(Ordering::Relaxed) < published {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deliver_secs = started.elapsed().as_secs_f64();
    let accepted = published as f64 / publish_secs;
    let delivered = published as f64 / deliver_secs;
    println!("| scenario | events | accepted events/s | deliveries/s (end to end) |");
    println!("|---|---|---|---|");
    println!("| throughput-1 | {published} | {accepted:.0} | {delivered:.0} |");
    println!(
        "{}",
        json!({"scenario": "throughput-1", "events": published, "acceptedPerSec": accepted.round(),
               "deliveredPerSec": delivered.round(), "durability": "full"})
    );
    let _ = stop.send(());
    server.await.expect("join").expect("hookd stops");
}
