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
    // (10 s + 30 s here) before it is tried again.
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
        most <= 2,
        "{busiest} was POSTed {most} times ({} POSTs for {} events)",
        received.len(),
        posts.len()
    );
    signal(&hookd.child, "-TERM");
    let _ = hookd.child.wait();
}
