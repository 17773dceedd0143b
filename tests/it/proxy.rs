//! `--proxy`: every delivery goes through an HTTP proxy — a small one on 127.0.0.1 made here
//! that records what passes (`CONNECT host:port` for https, the absolute-form request line for
//! http) — and the target policy still holds.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use hookd::config::ProxySetting;

use crate::support::{Receiver, Server};
use crate::tls::{receiver_behind_internal_ca, server_trusting, wait_count};

/// A forwarding and tunnelling HTTP proxy that logs the first line of every request it gets,
/// and, when it has a `Proxy-Authorization` to ask for, answers 407 to requests without it.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn start() -> Self {
        Self::start_asking(None).await
    }

    async fn start_asking(authorization: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, log.clone(), authorization));
            }
        });
        Self { url, seen }
    }

    /// The `--proxy` setting for it, with `credentials` (`user:password@`) when given.
    fn setting(&self, credentials: &str) -> ProxySetting {
        let url = self
            .url
            .replacen("http://", &format!("http://{credentials}"), 1);
        ProxySetting::parse(&url).expect("proxy url")
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("log").clone()
    }
}

/// Reads one request head: `CONNECT` opens a tunnel; an absolute-form request is forwarded
/// to its host in origin form; either way the bytes then flow both ways.
async fn relay(
    mut client: TcpStream,
    log: Arc<Mutex<Vec<String>>>,
    authorization: Option<&'static str>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let line = text.lines().next().unwrap_or("").to_owned();
    log.lock().expect("log").push(line.clone());
    if let Some(wanted) = authorization {
        let given = text.lines().find_map(|l| {
            l.strip_prefix("proxy-authorization: ")
                .or(l.strip_prefix("Proxy-Authorization: "))
        });
        if given != Some(wanted) {
            log.lock().expect("log").push(format!("407 for {line}"));
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    } else {
        let Ok(uri) = target.parse::<http::Uri>() else {
            return;
        };
        let Some(authority) = uri.authority().map(|a| a.to_string()) else {
            return;
        };
        let Ok(mut upstream) = TcpStream::connect(authority).await else {
            return;
        };
        let origin = uri.path_and_query().map_or("/", |p| p.as_str());
        // As a proxy does, it keeps its own header to itself.
        let rewritten: String = text
            .replacen(target, origin, 1)
            .split_inclusive("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("proxy-authorization:"))
            .collect();
        if upstream.write_all(rewritten.as_bytes()).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

#[tokio::test]
async fn http_deliveries_are_forwarded_through_the_proxy() {
    let proxy = Proxy::start().await;
    let setting = proxy.setting("");
    let server = Server::start_with(|c| c.proxy = Some(setting)).await;
    let t = server.tenant("acme").await;
    // Each answer closes its connection: every request passes the proxy's head again.
    let receiver =
        Receiver::with(|_, _| (200, vec![("connection", "close".into())], "ok".into())).await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    for n in 0..3 {
        t.publish("a.b", json!({"n": n})).await;
    }
    let got = receiver.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let forwarded: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|line| *line == format!("POST {} HTTP/1.1", receiver.url))
        .collect();
    assert_eq!(
        forwarded.len(),
        3,
        "every delivery passed the proxy: {:?}",
        proxy.seen()
    );
    server.stop().await;
}

#[tokio::test]
async fn https_deliveries_tunnel_through_the_proxy_with_connect() {
    let ca = receiver_behind_internal_ca(false).await;
    let proxy = Proxy::start().await;
    let setting = proxy.setting("");
    let (server, _dir) = server_trusting(&ca, |c| c.proxy = Some(setting)).await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": ca.url, "events": ["*"]})).await;
    t.publish("a.b", json!({})).await;
    t.publish("a.b", json!({})).await;
    wait_count(&ca, 2).await;
    let authority = ca
        .url
        .trim_start_matches("https://")
        .trim_end_matches("/hook");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|line| *line == format!("CONNECT {authority} HTTP/1.1")),
        "only tunnels to the receiver: {seen:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_target_policy_still_holds_behind_the_proxy() {
    let proxy = Proxy::start().await;
    let setting = proxy.setting("");
    let receiver = Receiver::ok().await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    // Saved while private targets were allowed, then served by a hookd that refuses them.
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": by_name, "events": ["*"], "retrySchedule": []}))
        .await;
    server.stop().await;
    let server = Server::start_in(dir, |c| {
        c.allow_private_targets = false;
        c.proxy = Some(setting);
    })
    .await;
    let t = t.on(&server);
    let event = t.publish("a.b", json!({})).await;
    let delivery = t
        .wait_delivery_status(event["id"].as_str().expect("id"), "failed")
        .await;
    assert_eq!(
        delivery["attempts"][0]["error"], "blocked_target",
        "{delivery}"
    );
    assert!(
        proxy.seen().is_empty(),
        "nothing reached the proxy: {:?}",
        proxy.seen()
    );
    assert_eq!(receiver.count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_proxy_that_asks_for_credentials_gets_them_on_tunnels_and_forwarded_requests() {
    // base64("hookd:p@ss word")
    let proxy = Proxy::start_asking(Some("Basic aG9va2Q6cEBzcyB3b3Jk")).await;
    let ca = receiver_behind_internal_ca(false).await;
    let setting = proxy.setting("hookd:p%40ss%20word@");
    assert_eq!(
        setting.to_string(),
        format!("{}/ (with credentials)", proxy.url)
    );
    let (server, _dir) = server_trusting(&ca, |c| c.proxy = Some(setting)).await;
    let t = server.tenant("acme").await;
    let plain =
        Receiver::with(|_, _| (200, vec![("connection", "close".into())], "ok".into())).await;
    t.endpoint(json!({"url": ca.url, "events": ["tls.*"]}))
        .await;
    t.endpoint(json!({"url": plain.url, "events": ["plain.*"]}))
        .await;
    t.publish("tls.sent", json!({})).await;
    t.publish("plain.sent", json!({})).await;
    wait_count(&ca, 1).await;
    plain.wait_for(1).await;
    let seen = proxy.seen();
    assert!(seen.iter().any(|l| l.starts_with("CONNECT")), "{seen:?}");
    assert!(
        seen.iter().any(|l| l.starts_with("POST http://")),
        "{seen:?}"
    );
    assert!(seen.iter().all(|l| !l.starts_with("407")), "{seen:?}");
    server.stop().await;
    // Wrong credentials: refused by the proxy, nothing delivered.
    let (server, _dir) =
        server_trusting(&ca, |c| c.proxy = Some(proxy.setting("hookd:wrong@"))).await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": plain.url, "events": ["*"], "retrySchedule": []}))
        .await;
    let event = t.publish("a.b", json!({})).await;
    t.wait_delivery_status(event["id"].as_str().expect("id"), "failed")
        .await;
    assert!(proxy.seen().iter().any(|l| l.starts_with("407")));
    assert_eq!(plain.count(), 1);
    server.stop().await;
}
