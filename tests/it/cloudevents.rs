//! CloudEvents 1.0 deliveries (`format: cloudevents` and `cloudevents-binary`), read by the
//! CloudEvents SDK (PyPI `cloudevents`) in a Python receiver on 127.0.0.1. The SDK comes from
//! the venv `.ci/venv` makes (`target/ci-venv`, or `HOOKD_TEST_PYTHON`); without it these tests
//! fail under `CI=true` and are skipped, with a note, elsewhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{PyServer, Received, Server, verify_standard, wait_until};

/// A Python with the CloudEvents SDK; `None` (outside CI) when there is none.
fn python() -> Option<PathBuf> {
    crate::support::python_with("cloudevents.v1.http", "the CloudEvents SDK")
}

/// The Python receiver: its URL and what it printed for each request.
struct SdkReceiver {
    url: String,
    server: PyServer,
}

impl SdkReceiver {
    async fn start(python: &Path) -> Self {
        let server = PyServer::start(python, "cloudevents_receiver.py").await;
        Self {
            url: format!("http://127.0.0.1:{}/ce", server.port),
            server,
        }
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        wait_until(
            &format!("{n} requests read by the SDK"),
            Duration::from_secs(20),
            || {
                let enough = self.server.seen().len() >= n;
                async move { enough }
            },
        )
        .await;
        self.server.seen()
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

/// Sends a CloudEvent made by the SDK in `mode`; answers the status hookd gave.
async fn sdk_send(python: &PathBuf, url: &str, mode: &str, kind: &str, data: Value) -> u16 {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/py/cloudevents_sender.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args([url, mode, kind, &data.to_string()])
        .output()
        .await
        .expect("run the Python sender");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a status")
}

#[tokio::test]
async fn an_incoming_hook_publishes_cloudevents_of_either_mode_with_their_type() {
    let Some(python) = python() else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = crate::support::Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["shop.*"]}))
        .await;
    let hook = crate::incoming::hook(
        &t,
        json!({"name": "shop", "action": {"type": "publish", "eventType": "shop.unknown"}}),
    )
    .await;
    let url = format!("{}{}", server.base, hook["url"].as_str().expect("url"));
    for (mode, kind) in [
        ("structured", "shop.order_paid"),
        ("binary", "shop.order_shipped"),
    ] {
        let status = sdk_send(&python, &url, mode, kind, json!({"mode": mode})).await;
        assert_eq!(status, 202, "{mode}");
    }
    // A type hookd does not take is refused, and logged as such.
    let status = sdk_send(&python, &url, "structured", "Shop.Order-Paid", json!({})).await;
    assert_eq!(status, 422);
    // A store hook keeps any CloudEvent: it publishes nothing, so the type is not read.
    let store =
        crate::incoming::hook(&t, json!({"name": "kept", "action": {"type": "store"}})).await;
    let kept = format!("{}{}", server.base, store["url"].as_str().expect("url"));
    let status = sdk_send(&python, &kept, "binary", "Shop.Order-Paid", json!({})).await;
    assert_eq!(status, 202);

    let got = receiver.wait_for(2).await;
    let mut seen: Vec<(String, Value)> = got
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["event"].as_str().expect("event").to_owned(),
                body["data"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("shop.order_paid".to_owned(), json!({"mode": "structured"})),
            ("shop.order_shipped".to_owned(), json!({"mode": "binary"})),
        ]
    );
    let id = hook["id"].as_str().expect("id");
    let (_, log) = t.admin.get(&format!("/v1/incoming/{id}/requests")).await;
    assert_eq!(log["totalElements"], 3, "{log}");
    let refused = &log["content"][0];
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("Shop.Order-Paid")),
        "{refused}"
    );
    server.stop().await;
}
