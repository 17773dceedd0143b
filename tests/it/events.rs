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
    server.stop().await;
}
