//! `/metrics` by endpoint and by tenant, with bounded cardinality: only the busiest endpoints
//! and the tenants with the deepest queues get series of their own, the rest are summed as
//! `other`, and nothing is lost in the sum.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, Server, wait_until};

/// Every sample of `name` whose labels hold each of `labels`, with its value.
fn samples(text: &str, name: &str, labels: &[&str]) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Scrapes until `done` holds of the text, and once more (for what only grows, as much).
async fn scrape_until(server: &Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    wait_until(what, Duration::from_secs(20), || async {
        done(&server.metrics_text().await)
    })
    .await;
    server.metrics_text().await
}

fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    samples(text, name, labels).iter().map(|(_, v)| v).sum()
}

async fn publish_n(t: &crate::support::Tenant, event_type: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"type": event_type, "data": {"i": i}}))
        .collect();
    t.publish_batch(events).await;
}

#[tokio::test]
async fn only_the_busiest_endpoints_have_series_and_the_rest_are_summed_as_other() {
    let server = Server::start_with(|c| c.metrics_top = 1).await;
    let t = server.tenant("acme").await;
    let busy_receiver = Receiver::ok().await;
    let quiet_receiver = Receiver::ok().await;
    let busy = t
        .endpoint(json!({"url": busy_receiver.url, "events": ["busy.*"]}))
        .await;
    let quiet = t
        .endpoint(json!({"url": quiet_receiver.url, "events": ["quiet.*"]}))
        .await;
    let (busy_id, quiet_id) = (
        busy["id"].as_str().expect("id"),
        quiet["id"].as_str().expect("id"),
    );
    publish_n(&t, "busy.x", 6).await;
    publish_n(&t, "quiet.x", 1).await;
    busy_receiver.wait_for(6).await;
    quiet_receiver.wait_for(1).await;
    // Every attempt is counted somewhere, once the results are in.
    let text = scrape_until(&server, "7 attempts counted", |text| {
        sum(text, "hookd_delivery_attempts_total", &[]) == 7.0
    })
    .await;
    assert_eq!(
        sum(&text, "hookd_endpoint_attempts_total", &[]),
        7.0,
        "{text}"
    );
    // Help texts hold no double quote: OpenMetrics allows none unescaped there.
    for help in text.lines().filter(|l| l.starts_with("# HELP")) {
        assert!(!help.contains('"'), "{help}");
    }
    // Those scrapes ranked them: from now on the busy endpoint has the one series of its own
    // (it stays the busier whatever the scrapes in between: 4 new attempts against 1).
    publish_n(&t, "busy.x", 4).await;
    publish_n(&t, "quiet.x", 1).await;
    busy_receiver.wait_for(10).await;
    quiet_receiver.wait_for(2).await;
    let text = scrape_until(&server, "12 attempts counted", |text| {
        sum(text, "hookd_endpoint_attempts_total", &[]) == 12.0
    })
    .await;
    let own = samples(
        &text,
        "hookd_endpoint_attempts_total",
        &[&format!("endpoint=\"{busy_id}\"")],
    );
    assert_eq!(own.len(), 1, "{text}");
    assert!(
        own[0].0.contains(&format!("tenant=\"{}\"", t.id)),
        "{own:?}"
    );
    assert!(own[0].0.contains("result=\"success\""), "{own:?}");
    assert!(own[0].1 >= 4.0, "{own:?}");
    assert!(
        !text.contains(quiet_id),
        "the quiet endpoint has no series: {text}"
    );
    let other = sum(
        &text,
        "hookd_endpoint_attempts_total",
        &["endpoint=\"other\"", "tenant=\"other\""],
    );
    assert!(other >= 1.0, "{text}");
    assert_eq!(
        sum(&text, "hookd_endpoint_attempts_total", &[]),
        sum(&text, "hookd_delivery_attempts_total", &[]),
        "the per-endpoint series and other add up to every attempt"
    );
    server.stop().await;
}

#[tokio::test]
async fn each_tenants_queue_depth_and_oldest_pending_age_are_exported() {
    let server = Server::start_with(|c| c.metrics_top = 1).await;
    let quiet = server.tenant("acme").await;
    let backed_up = server.tenant("beta").await;
    let ok = Receiver::ok().await;
    quiet
        .endpoint(json!({"url": ok.url, "events": ["*"]}))
        .await;
    let held = Arc::new(AtomicBool::new(true));
    let slow = Receiver::held(held.clone()).await;
    backed_up
        .endpoint(json!({"url": slow.url, "events": ["*"]}))
        .await;
    quiet.publish("a.b", json!({})).await;
    ok.wait_for(1).await;
    publish_n(&backed_up, "a.b", 3).await;
    let beta = format!("tenant=\"{}\"", backed_up.id);
    wait_until(
        "beta's backlog and its age",
        Duration::from_secs(20),
        || async {
            let text = server.metrics_text().await;
            sum(&text, "hookd_tenant_pending", &[&beta]) == 3.0
                && sum(&text, "hookd_tenant_oldest_pending_age_seconds", &[&beta]) > 0.0
        },
    )
    .await;
    let text = server.metrics_text().await;
    // Only the deepest queue has a series; acme's empty one is summed into other.
    let acme = format!("tenant=\"{}\"", quiet.id);
    assert!(
        samples(&text, "hookd_tenant_pending", &[&acme]).is_empty(),
        "{text}"
    );
    assert_eq!(
        sum(&text, "hookd_tenant_pending", &["tenant=\"other\""]),
        0.0,
        "{text}"
    );
    assert_eq!(
        sum(
            &text,
            "hookd_tenant_oldest_pending_age_seconds",
            &["tenant=\"other\""]
        ),
        0.0
    );
    held.store(false, Ordering::SeqCst);
    slow.wait_for(3).await;
    wait_until(
        "beta's backlog drained",
        Duration::from_secs(20),
        || async {
            let text = server.metrics_text().await;
            sum(&text, "hookd_tenant_pending", &[]) == 0.0
                && sum(&text, "hookd_tenant_oldest_pending_age_seconds", &[]) == 0.0
        },
    )
    .await;
    server.stop().await;
}
