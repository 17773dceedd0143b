//! CloudEvents 1.0 deliveries (`format: cloudevents` and `cloudevents-binary`), read by the
//! CloudEvents SDK (PyPI `cloudevents`) in a Python receiver on 127.0.0.1. The SDK comes from
//! the venv `.ci/venv` makes (`target/ci-venv`, or `HOOKD_TEST_PYTHON`); without it these tests
//! fail under `CI=true` and are skipped, with a note, elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Received, Server, verify_standard, wait_until};

/// A Python with the CloudEvents SDK; `None` (outside CI) when there is none.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("HOOKD_TEST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python"),
        PathBuf::from,
    );
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import cloudevents.v1.http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_sdk {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} has no CloudEvents SDK: run `bash .ci/venv`",
        python.display()
    );
    eprintln!(
        "skipped: no CloudEvents SDK at {} (bash .ci/venv)",
        python.display()
    );
    None
}

/// The Python receiver: its URL and what it printed for each request.
struct SdkReceiver {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    _child: tokio::process::Child,
}

impl SdkReceiver {
    async fn start(python: &PathBuf) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/py/cloudevents_receiver.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = lines
            .next_line()
            .await
            .expect("read")
            .expect("the receiver prints its port");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value = serde_json::from_str(&line).expect("a JSON line");
                kept.lock().expect("seen").push(value);
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/ce"),
            seen,
            _child: child,
        }
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        wait_until(
            &format!("{n} requests read by the SDK"),
            Duration::from_secs(20),
            || {
                let seen = self.seen.clone();
                async move { seen.lock().expect("seen").len() >= n }
            },
        )
        .await;
        self.seen.lock().expect("seen").clone()
    }
}

/// A request as the receiver saw it, to check its signature.
fn as_received(seen: &Value) -> Received {
    let headers: HashMap<String, String> =
        serde_json::from_value(seen["headers"].clone()).expect("headers");
    let body = base64::engine::general_purpose::STANDARD
        .decode(seen["body"].as_str().expect("body"))
        .expect("base64");
    Received {
        headers,
        body: body.into(),
        path: "/ce".into(),
        at: std::time::Instant::now(),
    }
}

#[tokio::test]
async fn both_cloudevents_modes_are_read_by_the_sdk_and_signed_as_sent() {
    let Some(python) = python() else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = SdkReceiver::start(&python).await;
    let mut secrets = HashMap::new();
    for mode in ["cloudevents", "cloudevents-binary"] {
        let ep = t
            .endpoint(
                json!({"url": format!("{}/{mode}", receiver.url), "events": ["*"], "format": mode}),
            )
            .await;
        assert_eq!(ep["format"], mode, "{ep}");
        secrets.insert(mode, ep["secret"].as_str().expect("secret").to_owned());
    }
    let published = t
        .publish("order.paid", json!({"orderId": 42, "note": "caf\u{e9}"}))
        .await;
    let id = published["id"].as_str().expect("id");

    let seen = receiver.wait_for(2).await;
    let mut modes = Vec::new();
    for s in &seen {
        assert!(s.get("error").is_none(), "the SDK read it: {s}");
        let a = &s["attributes"];
        assert_eq!(a["specversion"], "1.0", "{s}");
        assert_eq!(a["id"], id);
        assert_eq!(a["type"], "order.paid");
        assert_eq!(a["source"], "/v1/events");
        assert!(
            a["time"].as_str().is_some_and(|t| t.starts_with("20")),
            "{s}"
        );
        assert_eq!(
            s["data"],
            json!({"orderId": 42, "note": "caf\u{e9}"}),
            "{s}"
        );
        let mode = s["mode"].as_str().expect("mode").to_owned();
        let format = if mode == "binary" {
            "cloudevents-binary"
        } else {
            "cloudevents"
        };
        let received = as_received(s);
        assert!(
            verify_standard(&secrets[format], &received),
            "the signature covers the body as sent ({mode})"
        );
        if mode == "structured" {
            assert!(
                received
                    .header("content-type")
                    .starts_with("application/cloudevents+json")
            );
            assert_eq!(a["datacontenttype"], "application/json");
        } else {
            assert_eq!(received.header("ce-id"), id);
            assert_eq!(received.json(), json!({"orderId": 42, "note": "caf\u{e9}"}));
        }
        modes.push(mode);
    }
    modes.sort();
    assert_eq!(modes, ["binary", "structured"]);
    server.stop().await;
}
