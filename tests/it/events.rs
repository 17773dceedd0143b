//! Publishing: fan-out, batches, idempotency, and reading events back.

use http::StatusCode;
use serde_json::json;

use crate::support::{Receiver, Server};

#[tokio::test]
async fn publish_fans_out_to_every_matching_active_endpoint() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let url = "http://127.0.0.1:9/h";
    t.endpoint(json!({"url": url, "events": ["project.created"]}))
        .await;
    t.endpoint(json!({"url": url, "events": ["project.*"]}))
        .await;
    t.endpoint(json!({"url": url, "events": ["*"]})).await;
    t.endpoint(json!({"url": url, "events": ["comment.*"]}))
        .await;
    t.endpoint(json!({"url": url, "events": ["hookd.*"]})).await;
    t.endpoint(json!({"url": url, "events": ["*"], "isActive": false}))
        .await;

    assert_eq!(
        t.publish("project.created", json!({})).await["deliveries"],
        3
    );
    assert_eq!(t.publish("project.a.b", json!({})).await["deliveries"], 2);
    assert_eq!(
        t.publish("comment.created", json!({})).await["deliveries"],
        2
    );
    assert_eq!(t.publish("other", json!({})).await["deliveries"], 1);
    assert_eq!(
        t.publish("hookd.endpoint.disabled", json!({})).await["deliveries"],
        1
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_batch_is_published_whole_or_not_at_all() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let events: Vec<_> = (0..100)
        .map(|i| json!({"type": "item.created", "data": {"n": i}}))
        .collect();
    let body = t.publish_batch(events).await;
    let published = body["events"].as_array().expect("events");
    assert_eq!(published.len(), 100);
    assert!(published.iter().all(|e| e["deliveries"] == 1));

    let (status, body) = t
        .admin
        .post(
            "/v1/events/batch",
            json!({"events": [{"type": "ok.one", "data": {}}, {"type": "Not Valid", "data": {}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("events[1]"),
        "{body}"
    );
    let (_, list) = t.admin.get("/v1/events").await;
    assert_eq!(
        list["totalElements"], 100,
        "the rejected batch stored nothing"
    );

    let too_many: Vec<_> = (0..1001)
        .map(|_| json!({"type": "a.b", "data": {}}))
        .collect();
    let (status, _) = t
        .admin
        .post("/v1/events/batch", json!({"events": too_many}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for empty in [json!({"events": []}), json!({})] {
        let (status, _) = t.admin.post("/v1/events/batch", empty).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_answers_the_first_event_and_creates_nothing() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let event = json!({"type": "order.paid", "data": {"n": 1}, "idempotencyKey": "order-1"});
    let (s1, first) = t.admin.post("/v1/events", event.clone()).await;
    let (s2, second) = t.admin.post("/v1/events", event).await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first, second);
    // In a batch too, and against itself.
    let (_, batch) = t
        .admin
        .post(
            "/v1/events/batch",
            json!({"events": [
                {"type": "order.paid", "data": {}, "idempotencyKey": "order-1"},
                {"type": "order.paid", "data": {}, "idempotencyKey": "order-2"},
                {"type": "order.paid", "data": {}, "idempotencyKey": "order-2"},
            ]}),
        )
        .await;
    assert_eq!(batch["events"][0]["id"], first["id"]);
    assert_eq!(batch["events"][1]["id"], batch["events"][2]["id"]);
    let (_, list) = t.admin.get("/v1/events").await;
    assert_eq!(list["totalElements"], 2);
    receiver.wait_for(2).await;
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn events_are_listed_newest_first_and_read_with_their_deliveries() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["a.*"]}))
        .await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    t.publish("a.one", json!({"k": "v"})).await;
    let last = t.publish("b.two", json!({"k": 2})).await;
    let (_, list) = t.admin.get("/v1/events?size=1").await;
    assert_eq!(list["totalElements"], 2);
    assert_eq!(list["content"][0]["type"], "b.two");
    let (_, filtered) = t.admin.get("/v1/events?type=a.one").await;
    assert_eq!(filtered["totalElements"], 1);
    assert_eq!(filtered["content"][0]["data"], json!({"k": "v"}));
    let (status, detail) = t
        .admin
        .get(&format!("/v1/events/{}", last["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["data"], json!({"k": 2}));
    assert_eq!(detail["deliveryCount"], 1);
    assert_eq!(
        detail["deliveries"].as_array().expect("deliveries").len(),
        1
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

/// Every item of a list, read page by page with `size`; checks each page's totals.
async fn read_all(api: &crate::support::Api, path: &str, size: u32) -> (Vec<String>, u64) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut ids = Vec::new();
    let mut total = None;
    for number in 0u32.. {
        let (status, page) = api
            .get(&format!("{path}{sep}page={number}&size={size}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let t = page["totalElements"].as_u64().expect("total");
        assert_eq!(*total.get_or_insert(t), t, "the total holds on every page");
        let content = page["content"].as_array().expect("content");
        if content.is_empty() {
            assert_eq!(
                u64::from(number),
                t.div_ceil(u64::from(size)),
                "pages end where totalPages says"
            );
            break;
        }
        ids.extend(
            content
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
    }
    (ids, total.unwrap_or(0))
}

#[tokio::test]
async fn pages_of_long_lists_are_exact_slices_across_id_blocks() {
    if crate::support::sqlite_only("pages_of_long_lists_are_exact_slices_across_id_blocks") {
        return;
    }
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let endpoint_id = endpoint["id"].as_str().expect("id").to_owned();
    let db = server.db_path();
    server.assert_list_counts_exact();
    server.stop().await;
    // Rows whose ids spread over several blocks of 65,536, in a file as a hookd before block
    // counts left it: the upgrade counts them.
    let rows: Vec<i64> = (0..300).map(|i| 1 + i * 1_009).collect();
    {
        let c = rusqlite::Connection::open(&db).expect("open");
        let tenant: i64 = t.id.trim_start_matches("tnt_").parse().expect("tenant");
        let ep: i64 = endpoint_id
            .trim_start_matches("ep_")
            .parse()
            .expect("endpoint");
        for &id in &rows {
            let kind = if id % 3 == 0 { "a.x" } else { "b.y" };
            c.execute(
                "INSERT INTO events (id, tenant_id, type, data, deliveries, created_at)
                 VALUES (?1, ?2, ?3, '{}', 1, 0)",
                rusqlite::params![id, tenant, kind],
            )
            .expect("event");
            c.execute(
                "INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, created_at)
                 VALUES (?1, ?1, ?2, ?3, 1, 0)",
                rusqlite::params![id, ep, if id % 2 == 0 { 2 } else { 1 }],
            )
            .expect("delivery");
        }
        c.execute_batch(
            "DROP TABLE endpoint_counts; DROP TABLE endpoint_hours;
             ALTER TABLE endpoints DROP COLUMN url_sealed; ALTER TABLE endpoints DROP COLUMN destination;
             ALTER TABLE endpoints DROP COLUMN auth;
             ALTER TABLE endpoints DROP COLUMN client_certificate;
             DROP TABLE tenant_usage;
             ALTER TABLE tenants DROP COLUMN feature_incoming;
             ALTER TABLE tenants DROP COLUMN feature_integrations;
             ALTER TABLE tenants DROP COLUMN feature_schedules;
             ALTER TABLE tenants DROP COLUMN limit_endpoints;
             ALTER TABLE tenants DROP COLUMN limit_events_per_day;
             ALTER TABLE endpoints DROP COLUMN filter;
             ALTER TABLE endpoints DROP COLUMN channels; ALTER TABLE events DROP COLUMN channels;
             ALTER TABLE events DROP COLUMN traceparent; ALTER TABLE events DROP COLUMN tracestate;
             DROP TABLE list_blocks; DROP TABLE portal_links;
             DROP TRIGGER deliveries_uncounted; DROP TRIGGER events_uncounted;
             DROP TRIGGER incoming_requests_counted; DROP TRIGGER incoming_requests_uncounted;
             DROP TRIGGER schedule_runs_counted; DROP TRIGGER schedule_runs_uncounted;
             DROP INDEX schedule_runs_by_schedule;
             CREATE INDEX deliveries_leased ON deliveries(lease_until)
                 WHERE lease_until IS NOT NULL;
             PRAGMA user_version = 4;",
        )
        .expect("as before block counts");
    }
    let server = Server::start_in(dir, |_| {}).await;
    let newest_first = |keep: &dyn Fn(i64) -> bool, prefix: &str| -> Vec<String> {
        rows.iter()
            .rev()
            .filter(|id| keep(**id))
            .map(|id| format!("{prefix}{id}"))
            .collect()
    };
    let api = t.admin.with_base(&server.base);
    let (events, total) = read_all(&api, "/v1/events", 7).await;
    assert_eq!(total, 300);
    assert_eq!(events, newest_first(&|_| true, "evt_"));
    let (typed, total) = read_all(&api, "/v1/events?type=a.x", 9).await;
    assert_eq!(typed, newest_first(&|id| id % 3 == 0, "evt_"));
    assert_eq!(total, typed.len() as u64);
    let log = format!("/v1/endpoints/{endpoint_id}/deliveries");
    let (all, total) = read_all(&api, &log, 11).await;
    assert_eq!(total, 300);
    assert_eq!(all, newest_first(&|_| true, "dlv_"));
    let (failed, total) = read_all(&api, &format!("{log}?status=failed"), 13).await;
    assert_eq!(failed, newest_first(&|id| id % 2 == 0, "dlv_"));
    assert_eq!(total, 150);
    server.assert_list_counts_exact();
    server.stop().await;
}
