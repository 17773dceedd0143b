//! W3C Trace Context: a publisher's `traceparent` is kept with its event and reaches the
//! receiver on every attempt, in the same trace with a span of the attempt's own.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, Tenant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PUBLISHER_SPAN: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PUBLISHER_SPAN}-01")
}

/// The four fields of a received `traceparent`.
fn fields(received: &str) -> Vec<String> {
    let parts: Vec<String> = received.split('-').map(str::to_owned).collect();
    assert_eq!(parts.len(), 4, "a version-00 traceparent: {received}");
    parts
}

/// An event as the API reads it back, from its publish answer.
async fn read_back(t: &Tenant, published: &Value) -> Value {
    let id = published["id"].as_str().expect("id");
    t.admin.get(&format!("/v1/events/{id}")).await.1
}

async fn publish_traced(t: &Tenant, path: &str, body: Value, headers: &[(&str, &str)]) -> Value {
    let (status, answer) = t.admin.post_with_headers(path, body, headers).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

#[tokio::test]
async fn a_publishers_trace_reaches_the_receiver_with_a_span_of_its_own_per_attempt() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    // The first attempt fails, so the event is attempted twice.
    let receiver = Receiver::with(|n, _| match n {
        0 => (500, vec![], "down".into()),
        _ => (200, vec![], "ok".into()),
    })
    .await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["50ms"]}))
        .await;
    let parent = traceparent();
    let published = publish_traced(
        &t,
        "/v1/events",
        json!({"type": "order.paid", "data": {"n": 1}}),
        &[("traceparent", &parent), ("tracestate", TRACESTATE)],
    )
    .await;
    let event_id = published["id"].as_str().expect("id");

    let got = receiver.wait_for(2).await;
    let spans: Vec<String> = got
        .iter()
        .map(|r| {
            let f = fields(r.header("traceparent"));
            assert_eq!(f[0], "00", "version");
            assert_eq!(f[1], TRACE_ID, "the event's trace");
            assert_eq!(f[3], "01", "the publisher's flags (sampled)");
            assert_eq!(r.header("tracestate"), TRACESTATE, "passed on as it came");
            f[2].clone()
        })
        .collect();
    assert_ne!(spans[0], spans[1], "each attempt is a span of its own");
    for span in &spans {
        assert_ne!(
            span, PUBLISHER_SPAN,
            "the attempt's span, not the publisher's"
        );
        assert_ne!(span, &"0".repeat(16));
    }

    // The event keeps its trace context, and the delivery log shows each attempt's trace.
    let event = read_back(&t, &published).await;
    assert_eq!(event["traceparent"], parent.as_str(), "{event}");
    assert_eq!(event["tracestate"], TRACESTATE);
    let delivery = t.wait_delivery_status(event_id, "succeeded").await;
    let attempts = delivery["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{delivery}");
    assert!(
        attempts.iter().all(|a| a["traceId"] == TRACE_ID),
        "{delivery}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_shares_the_requests_trace_and_an_event_without_one_sends_none() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    // A later version is read as version 00; its trace goes on.
    let later = format!("01-{TRACE_ID}-{PUBLISHER_SPAN}-00-more");
    let events = json!({"events": [{"type": "a.one", "data": {}}, {"type": "a.two", "data": {}}]});
    publish_traced(&t, "/v1/events/batch", events, &[("traceparent", &later)]).await;
    let got = receiver.wait_for(2).await;
    for r in &got {
        let f = fields(r.header("traceparent"));
        assert_eq!(
            (f[0].as_str(), f[1].as_str(), f[3].as_str()),
            ("00", TRACE_ID, "00")
        );
        assert_eq!(r.header("tracestate"), "", "none was sent");
    }

    let untraced = t.publish("a.three", json!({})).await;
    let got = receiver.wait_for(3).await;
    let third = got
        .iter()
        .find(|r| r.header("webhook-id") == untraced["id"].as_str().expect("id"))
        .expect("the untraced event arrived");
    assert!(
        !third.headers.contains_key("traceparent"),
        "no trace, no traceparent (tracing is off): {:?}",
        third.headers
    );
    assert_eq!(read_back(&t, &untraced).await["traceparent"], Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_traceparent_is_refused_and_publishes_nothing_and_an_all_zero_one_is_none() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let malformed = [
        format!("00-{}-{PUBLISHER_SPAN}-01", TRACE_ID.to_uppercase()),
        format!("ff-{TRACE_ID}-{PUBLISHER_SPAN}-01"),
        format!("00-{TRACE_ID}-{PUBLISHER_SPAN}-01-extra"),
        "not a traceparent".to_owned(),
    ];
    for bad in &malformed {
        for (path, body) in [
            ("/v1/events", json!({"type": "a.b", "data": {}})),
            (
                "/v1/events/batch",
                json!({"events": [{"type": "a.b", "data": {}}]}),
            ),
        ] {
            let (status, answer) = t
                .admin
                .post_with_headers(path, body, &[("traceparent", bad)])
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {answer}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("traceparent")),
                "{answer}"
            );
        }
    }
    let (_, list) = t.admin.get("/v1/events").await;
    assert_eq!(list["totalElements"], 0, "a refused publish stores nothing");
    // An all-zero id is no trace at all (W3C): the event is taken without one.
    let zero = format!("00-{}-{PUBLISHER_SPAN}-01", "0".repeat(32));
    let published = publish_traced(
        &t,
        "/v1/events",
        json!({"type": "a.b", "data": {}}),
        &[("traceparent", &zero)],
    )
    .await;
    let event = read_back(&t, &published).await;
    assert_eq!(event["traceparent"], Value::Null, "{event}");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn an_incoming_webhooks_trace_goes_on_to_the_receivers_and_a_malformed_one_is_ignored() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let hook = crate::incoming::hook(
        &t,
        json!({"name": "CI", "action": {"type": "publish", "eventType": "ci.done"}}),
    )
    .await;
    let url = hook["url"].as_str().expect("url");
    let world = t.admin.with_token("");
    let parent = traceparent();
    for sent in [parent.as_str(), "garbage"] {
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("traceparent", sent.to_owned()),
        ];
        let (status, _, answer) = world
            .raw_with_headers("POST", url, &headers, br#"{"ok":true}"#.to_vec())
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}: {answer}");
    }
    let got = receiver.wait_for(2).await;
    let traced: Vec<_> = got
        .iter()
        .filter(|r| r.headers.contains_key("traceparent"))
        .collect();
    assert_eq!(traced.len(), 1, "only the well-formed trace goes on");
    assert_eq!(fields(traced[0].header("traceparent"))[1], TRACE_ID);
    server.stop().await;
}
