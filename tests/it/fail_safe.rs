//! Failing safe: a disk that fills up, clients that send slowly, a shutdown that must end.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::process::{signal, spawn_on_small_disk, tenant_key, wait_health};
use crate::support::{ADMIN, Api, Receiver, wait_until};

/// What publishers saw: the tags of events answered 202, and of those refused.
#[derive(Default)]
struct Outcomes {
    accepted: HashSet<String>,
    refused: HashSet<String>,
}

/// Publishes events tagged `{client}-{n}` (one per request, or `batch` per request) until
/// `stop` is set, noting each tag as accepted or refused.
fn publisher(
    api: Api,
    client: &'static str,
    batch: usize,
    outcomes: Arc<Mutex<Outcomes>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let filler = "f".repeat(1500);
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let tags: Vec<String> = (0..batch).map(|i| format!("{client}-{}", n + i)).collect();
            n += batch;
            let events: Vec<Value> = tags
                .iter()
                .map(|tag| json!({"type": "disk.fill", "data": {"tag": tag, "filler": filler}}))
                .collect();
            let (status, body) = if batch == 1 {
                api.post("/v1/events", events[0].clone()).await
            } else {
                api.post("/v1/events/batch", json!({"events": events}))
                    .await
            };
            let mut seen = outcomes.lock().expect("outcomes");
            match status {
                StatusCode::ACCEPTED => seen.accepted.extend(tags),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
                    seen.refused.extend(tags);
                }
                other => panic!("unexpected answer {other}: {body}"),
            }
        }
    })
}

#[tokio::test]
async fn a_full_disk_never_delivers_a_refused_event_nor_resends_in_a_loop() {
    let dir = tempfile::tempdir().expect("dir");
    let mut hookd = spawn_on_small_disk(&dir.path().join("hookd.db"), ADMIN, 3 * 1024);
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let admin = op.with_token(&tenant_key(&op).await);
    let receiver = Receiver::ok().await;
    let (status, body) = admin
        .post(
            "/v1/endpoints",
            json!({"name": "r", "url": receiver.url, "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let started = std::time::Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publishers = [
        publisher(admin.clone(), "a", 1, outcomes.clone(), stop.clone()),
        publisher(admin.clone(), "b", 1, outcomes.clone(), stop.clone()),
        publisher(admin.clone(), "c", 20, outcomes.clone(), stop.clone()),
    ];
    // Publish until the disk has refused a good many, then a little longer.
    wait_until(
        "the full disk refused 6000 events",
        Duration::from_secs(120),
        || {
            let outcomes = outcomes.clone();
            async move { outcomes.lock().expect("outcomes").refused.len() >= 6000 }
        },
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in publishers {
        p.await.expect("publisher");
    }
    let (accepted, refused) = {
        let seen = outcomes.lock().expect("outcomes");
        (seen.accepted.clone(), seen.refused.clone())
    };
    assert!(!accepted.is_empty(), "some events were accepted");

    // Every accepted event reaches the receiver (the disk refuses its record, not its POST).
    let tag_of = |r: &crate::support::Received| r.json()["data"]["tag"].as_str().map(str::to_owned);
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(60),
        || {
            let got: HashSet<String> = receiver.received().iter().filter_map(tag_of).collect();
            let done = accepted.is_subset(&got);
            async move { done }
        },
    )
    .await;

    let received = receiver.received();
    let delivered_refused: Vec<String> = received
        .iter()
        .filter_map(tag_of)
        .filter(|tag| refused.contains(tag))
        .collect();
    assert!(
        delivered_refused.is_empty(),
        "{} POSTs carried events answered 503 (of {} refused), e.g. {:?}",
        delivered_refused.len(),
        refused.len(),
        delivered_refused.iter().take(5).collect::<Vec<_>>()
    );
    // One id, one event: an id never carries two different payloads.
    let mut payloads: HashMap<String, HashSet<String>> = HashMap::new();
    for r in &received {
        payloads
            .entry(r.header("webhook-id").to_owned())
            .or_default()
            .extend(tag_of(r));
    }
    let shared: Vec<_> = payloads.iter().filter(|(_, tags)| tags.len() > 1).collect();
    assert!(
        shared.is_empty(),
        "ids sent with different events: {shared:?}"
    );
    // No re-send storm: an attempt whose outcome could not be written waits for its lease
    // (10 s + 30 s here) before it is tried again, so one id is POSTed at most once per lease
    // that passed (twice when the test is quick; more on a slow machine, never a loop).
    let lease = Duration::from_secs(40);
    let allowed = 2.max(1 + started.elapsed().as_secs().div_ceil(lease.as_secs())) as usize;
    let mut posts: HashMap<&str, usize> = HashMap::new();
    for r in &received {
        *posts.entry(r.header("webhook-id")).or_default() += 1;
    }
    let (busiest, most) = posts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(id, n)| (id.to_string(), *n))
        .expect("posts");
    assert!(
        most <= allowed,
        "{busiest} was POSTed {most} times in {:?} ({} POSTs for {} events)",
        started.elapsed(),
        received.len(),
        posts.len()
    );
    signal(&hookd.child, "-TERM");
    let _ = hookd.child.wait();
}

/// `hookd serve` (the real binary) with these `hookd.toml` lines.
fn spawn_configured(dir: &std::path::Path, toml: &str) -> crate::process::Hookd {
    let config = dir.join("hookd.toml");
    std::fs::write(&config, toml).expect("write config");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.env("HOOKD_CONFIG", &config);
    crate::process::spawn_with(cmd, &dir.join("hookd.db"), Some(ADMIN))
}

/// A raw connection to `base` that has sent `head` (and whatever else the test writes).
async fn send_head(base: &str, head: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("send head");
    stream
}

/// Reads until the connection closes (or `within` passes, which fails the test); returns
/// what was read and how long it took.
async fn read_to_close(stream: &mut tokio::net::TcpStream, within: Duration) -> (String, Duration) {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the connection stayed open {within:?}; read so far: {}",
                String::from_utf8_lossy(&answer)
            )
        })
        .expect("read");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn head(path: &str, token: &str, framing: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: hookd\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    )
}

#[tokio::test]
async fn slow_or_endless_bodies_are_refused_in_bounded_time_and_roles_before_bodies() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("dir");
    let mut hookd = spawn_configured(dir.path(), "body_read_timeout = \"1s\"\n");
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let admin_key = tenant_key(&op).await;
    let admin = op.with_token(&admin_key);
    let (_, viewer) = admin
        .post("/v1/keys", json!({"name": "v", "role": "viewer"}))
        .await;
    let viewer = viewer["key"].as_str().expect("viewer key").to_owned();
    let (_, hook) = admin
        .post(
            "/v1/incoming",
            json!({"name": "in", "action": {"type": "store"}}),
        )
        .await;

    // A viewer may not publish: told at once from the head, before any body byte.
    let mut s = send_head(
        &hookd.base,
        &head("/v1/events", &viewer, "Content-Length: 100000"),
    )
    .await;
    let (answer, took) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(took < Duration::from_secs(1), "403 took {took:?}");

    // A stated size over the limit: 413 at once.
    let mut s = send_head(
        &hookd.base,
        &head("/v1/events", &admin_key, "Content-Length: 5000000"),
    )
    .await;
    let (answer, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A body that trickles: 408 once the body time is up, and the connection is closed.
    let mut trickle = send_head(
        &hookd.base,
        &head("/v1/events", &admin_key, "Content-Length: 100000"),
    )
    .await;
    trickle.write_all(b"{").await.expect("a byte");
    let (answer, took) = read_to_close(&mut trickle, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(took >= Duration::from_millis(900), "408 after {took:?}");

    // A chunk that claims 2^64-1 bytes: the same, on the API and on an incoming hook.
    let hook_path = hook["url"]
        .as_str()
        .and_then(|u| u.find("/hooks/in/").map(|i| u[i..].to_owned()))
        .expect("hook url");
    for path in ["/v1/events/batch", hook_path.as_str()] {
        let mut endless = send_head(
            &hookd.base,
            &head(path, &admin_key, "Transfer-Encoding: chunked"),
        )
        .await;
        endless
            .write_all(b"ffffffffffffffff\r\nab")
            .await
            .expect("chunk");
        let (answer, _) = read_to_close(&mut endless, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 413"),
            "{path}: {answer}"
        );
    }
    // Nothing of any of them was stored, and the server still answers.
    let (status, events) = admin.get("/v1/events").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events["totalElements"], 0, "{events}");
    signal(&hookd.child, "-TERM");
    let _ = hookd.child.wait();
}

#[tokio::test]
async fn sigterm_ends_hookd_within_the_drain_time_despite_a_half_sent_body() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("dir");
    let mut hookd = spawn_configured(
        dir.path(),
        "body_read_timeout = \"10m\"\nshutdown_grace = \"1s\"\n",
    );
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let key = tenant_key(&op).await;
    let mut half = send_head(
        &hookd.base,
        &head("/v1/events", &key, "Content-Length: 100000"),
    )
    .await;
    half.write_all(b"{\"type\":").await.expect("half a body");
    // The request is being read when the signal comes.
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    signal(&hookd.child, "-TERM");
    let mut child = std::mem::replace(
        &mut hookd.child,
        std::process::Command::new("true").spawn().expect("true"),
    );
    let status = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .expect("join")
    .expect("hookd exited within 30 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit took {:?}",
        started.elapsed()
    );
    drop(half);
}

/// Whether any of the database's files (`hookd.db`, its `-wal`) holds `needle`.
fn on_disk(db: &std::path::Path, needle: &str) -> Vec<String> {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let path = format!("{}{suffix}", db.display());
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
                .then_some(path)
        })
        .collect()
}

#[tokio::test]
async fn a_deleted_tenants_secrets_leave_the_disk_and_the_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("hookd.db");
    let mut hookd = crate::process::spawn(&db, Some(ADMIN));
    wait_health(&hookd.base).await;
    for file in ["hookd.db", "hookd.db-wal", "hookd.db-shm", "hookd.db.lock"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .expect(file)
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is {:o}", mode & 0o777);
    }
    let op = Api::new(&hookd.base, ADMIN);
    let (_, tenant) = op.post("/v1/tenants", json!({"name": "gone"})).await;
    let tenant_id = tenant["id"].as_str().expect("id").to_owned();
    let (_, key) = op
        .post(
            &format!("/v1/tenants/{tenant_id}/keys"),
            json!({"name": "k", "role": "admin"}),
        )
        .await;
    let admin = op.with_token(key["key"].as_str().expect("key"));
    let header_value = "hdr-value-7f3a9c1e5b2d";
    let (status, endpoint) = admin
        .post(
            "/v1/endpoints",
            json!({"name": "e", "url": "http://127.0.0.1:9/h", "events": ["*"],
                   "headers": {"X-Api-Key": header_value}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let verify_secret = "whsec_aW5jb21pbmctdmVyaWZ5LXNlY3JldC0xMjM0NTY3OA==";
    let (status, hook) = admin
        .post(
            "/v1/incoming",
            json!({"name": "in", "action": {"type": "store"},
                   "verify": {"scheme": "standard", "secret": verify_secret}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    // Rotated with a grace period: the old secret is stored a second time.
    let (status, _) = admin
        .post(
            &format!(
                "/v1/endpoints/{}/secret/rotate",
                endpoint["id"].as_str().expect("id")
            ),
            json!({"gracePeriod": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let secrets = [secret.as_str(), verify_secret, header_value];
    wait_until("the secrets written", Duration::from_secs(10), || {
        let found = secrets[..2].iter().all(|s| !on_disk(&db, s).is_empty());
        async move { found }
    })
    .await;
    // A header value is sealed: never on disk as it was given, yet read back as given.
    assert_eq!(on_disk(&db, header_value), Vec::<String>::new());
    let (_, read) = admin
        .get(&format!(
            "/v1/endpoints/{}",
            endpoint["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(read["headers"]["x-api-key"], header_value, "{read}");

    let (status, _) = op.delete(&format!("/v1/tenants/{tenant_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for s in secrets {
        assert_eq!(on_disk(&db, s), Vec::<String>::new(), "{s} stays on disk");
    }
    // Killed now, nothing was left for a clean stop to remove.
    signal(&hookd.child, "-KILL");
    let _ = hookd.child.wait();
    for s in secrets {
        assert_eq!(on_disk(&db, s), Vec::<String>::new(), "{s} after kill -9");
    }
}

#[tokio::test]
async fn a_slack_webhook_url_is_sealed_at_rest_yet_delivered_to_and_shown_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("hookd.db");
    let mut hookd = crate::process::spawn(&db, Some(ADMIN));
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let admin = op.with_token(&tenant_key(&op).await);
    let receiver = Receiver::ok().await;
    let token = "slacktoken9f8e7d6c5b4a";
    let url = format!(
        "{}/services/T0001/B0001/{token}",
        receiver.url.trim_end_matches("/hook")
    );
    // Through the integration route and as a plain endpoint with format slack.
    let (status, body) = admin
        .put("/v1/integrations/slack", json!({"url": url}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, endpoint) = admin
        .post(
            "/v1/endpoints",
            json!({"name": "slack-marker-4c1d", "url": url, "events": ["*"], "format": "slack"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    assert_eq!(endpoint["url"], url.as_str(), "shown whole");
    let id = endpoint["id"].as_str().expect("id").to_owned();
    let (_, listed) = admin.get("/v1/integrations").await;
    assert_eq!(
        listed["integrations"]["slack"]["url"],
        url.as_str(),
        "{listed}"
    );
    // Delivered to the whole URL.
    let (status, _) = admin
        .post("/v1/events", json!({"type": "a.b", "data": {"n": 1}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].path, format!("/services/T0001/B0001/{token}"));
    // The token is never in the database's files.
    wait_until("the endpoint written out", Duration::from_secs(10), || {
        let written = !on_disk(&db, "slack-marker-4c1d").is_empty();
        async move { written }
    })
    .await;
    assert_eq!(on_disk(&db, token), Vec::<String>::new());
    // A format that makes the URL no secret opens it again; the URL still works.
    let (status, patched) = admin
        .patch(&format!("/v1/endpoints/{id}"), json!({"format": "json"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["url"], url.as_str());
    signal(&hookd.child, "-TERM");
    let _ = hookd.child.wait();
}
