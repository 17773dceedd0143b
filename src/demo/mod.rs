//! `hookd demo` shows hookd working on a fresh machine, from the same build as `hookd serve`:
//! hookd on a temporary database, a local receiver that verifies every signature, a tenant, an
//! admin key and an endpoint made through the API, events published one by one and in a batch,
//! each verified delivery printed as it arrives, then the endpoint's stats. `hookd receive`
//! runs the verifying receiver alone, for trying hookd with your own calls.

pub mod receiver;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::app::AppError;
use crate::config::Config;
use crate::model::SignatureScheme;

const OPERATOR: &str = "demo-operator-token-0000";
/// How long the demo waits for its deliveries.
const PATIENCE: Duration = Duration::from_secs(30);

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The temporary directory could not be made.
    #[error("cannot prepare a temporary database")]
    Io(#[from] std::io::Error),
    /// hookd did not answer a call.
    #[error("hookd did not answer {call}")]
    Http {
        /// The call.
        call: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// hookd answered a call with an error.
    #[error("{call} answered {status}: {body}")]
    Api {
        /// The call.
        call: String,
        /// Its status.
        status: u16,
        /// Its body.
        body: String,
    },
    /// The receiver could not start.
    #[error("the receiver cannot verify with the endpoint's secret")]
    Receiver(#[from] crate::signing::SigningError),
    /// hookd itself failed.
    #[error("hookd stopped")]
    App(#[from] AppError),
    /// The deliveries did not all arrive in time.
    #[error("only {arrived} of {expected} deliveries arrived within {PATIENCE:?}")]
    Missing {
        /// How many arrived.
        arrived: usize,
        /// How many were expected.
        expected: usize,
    },
}

struct Api {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value, DemoError> {
        let call = format!("{method} {path}");
        let http = |e: Box<dyn std::error::Error + Send + Sync>| DemoError::Http {
            call: call.clone(),
            source: e,
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| http(Box::new(e)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| http(Box::new(e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http(Box::new(e)))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(DemoError::Api {
                call,
                status: status.as_u16(),
                body: value.to_string(),
            });
        }
        Ok(value)
    }
}

/// Runs the demo and removes its temporary database afterwards.
pub async fn run() -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("hookd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(dir: &std::path::Path) -> Result<(), DemoError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = Config {
        db: dir.join("hookd.db"),
        admin_token: Some(OPERATOR.into()),
        allow_http: true,
        allow_private_targets: true,
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let hookd = tokio::spawn(crate::app::run(config, listener, async {
        let _ = stopped.await;
    }));
    let api = Api {
        base,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let shown = show(&api).await;
    let _ = stop.send(());
    if let Ok(stopped) = hookd.await {
        stopped?;
    }
    shown
}

async fn show(api: &Api) -> Result<(), DemoError> {
    println!("1. hookd is running on a temporary database");
    let tenant = api
        .call(
            "POST",
            "/v1/tenants",
            OPERATOR,
            Some(json!({"name": "Acme"})),
        )
        .await?;
    let tenant_id = tenant["id"].as_str().unwrap_or_default().to_owned();
    let key = api
        .call(
            "POST",
            &format!("/v1/tenants/{tenant_id}/keys"),
            OPERATOR,
            Some(json!({"name": "demo", "role": "admin"})),
        )
        .await?;
    let key = key["key"].as_str().unwrap_or_default().to_owned();
    println!("2. created tenant {tenant_id} and an admin API key");

    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_url = receiver::url(receiver.local_addr()?);
    let endpoint = api
        .call(
            "POST",
            "/v1/endpoints",
            &key,
            Some(json!({"name": "Local receiver", "url": receiver_url, "events": ["project.*"]})),
        )
        .await?;
    let endpoint_id = endpoint["id"].as_str().unwrap_or_default().to_owned();
    let secret = endpoint["secret"].as_str().unwrap_or_default().to_owned();
    println!("3. endpoint {endpoint_id} -> {receiver_url}, subscribed to project.*");

    let arrived: Arc<Mutex<usize>> = Arc::default();
    let counter = arrived.clone();
    crate::signing::check_secret(SignatureScheme::Standard, &secret)?;
    tokio::spawn(receiver::serve(
        receiver,
        SignatureScheme::Standard,
        secret,
        Arc::new(move |d| {
            if let Ok(mut n) = counter.lock() {
                *n += 1;
            }
            println!(
                "   receiver verified {} ({}): {}",
                d.id, d.body["event"], d.body["data"]
            );
        }),
    ));

    for (i, name) in ["Apollo", "Gemini", "Mercury"].iter().enumerate() {
        let event = json!({"type": "project.created", "data": {"name": name, "n": i}});
        api.call("POST", "/v1/events", &key, Some(event)).await?;
    }
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"type": "project.updated", "data": {"n": i}}))
        .collect();
    let batch = json!({"events": batch});
    api.call("POST", "/v1/events/batch", &key, Some(batch))
        .await?;
    let unsubscribed = json!({"type": "billing.paid", "data": {}});
    api.call("POST", "/v1/events", &key, Some(unsubscribed))
        .await?;
    println!("4. published 9 events (1 not subscribed); waiting for the 8 deliveries");

    let expected = 8;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let count = || arrived.lock().map_or(0, |n| *n);
    while count() < expected {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Missing {
                arrived: count(),
                expected,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The receiver has answered; hookd records each answer just after it. Wait for that.
    let stats_path = format!("/v1/endpoints/{endpoint_id}/stats");
    let stats = loop {
        let stats = api.call("GET", &stats_path, &key, None).await?;
        if stats["succeeded"].as_u64() == Some(expected as u64) {
            break stats;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Missing {
                arrived: stats["succeeded"].as_u64().unwrap_or(0) as usize,
                expected,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "5. endpoint stats: {}",
        serde_json::to_string_pretty(&stats).unwrap_or_default()
    );
    println!("done: every delivery arrived signed and verified.");
    Ok(())
}
