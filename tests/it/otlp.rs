//! OpenTelemetry export: hookd's spans reach a real OTLP/HTTP receiver on 127.0.0.1 that
//! decodes the protobuf with the protocol's own messages (PyPI `opentelemetry-proto`, in a
//! Python receiver), chained from the publish request to each attempt; a collector that does
//! not answer, or is not there, holds up no delivery and its lost spans are counted.

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{PyServer, Receiver, Server, Tenant, python_with, wait_until};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PUBLISHER_SPAN: &str = "00f067aa0ba902b7";

/// The Python OTLP receiver and the spans it decoded.
struct Collector(PyServer);

impl Collector {
    fn settings(&self) -> hookd::config::OtlpSettings {
        hookd::config::OtlpSettings {
            endpoint: format!("http://127.0.0.1:{}/v1/traces", self.0.port),
            headers: vec![("api-key".into(), "collector-key".into())],
            service_name: "hookd-under-test".into(),
            resource: vec![("deployment.environment".into(), "test".into())],
            queue: 2048,
        }
    }

    /// Waits until `enough` holds of the spans decoded so far, and returns them.
    async fn wait(&self, what: &str, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        wait_until(what, Duration::from_secs(30), || {
            let done = enough(&self.0.seen());
            async move { done }
        })
        .await;
        let spans = self.0.seen();
        assert!(
            spans.iter().all(|s| s.get("error").is_none()),
            "every export decodes: {spans:?}"
        );
        spans
    }
}

/// A hookd exporting to a Python OTLP receiver; `None` (outside CI) without the package.
async fn traced_server() -> Option<(Collector, Server)> {
    let python = python_with(
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
        "opentelemetry-proto",
    )?;
    let collector = Collector(PyServer::start(&python, "otlp_receiver.py").await);
    let settings = collector.settings();
    let server = Server::start_with(|c| c.otlp = Some(settings)).await;
    Some((collector, server))
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

/// The span id in a received `traceparent`.
fn span_of(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

async fn publish_with(t: &Tenant, headers: &[(&str, &str)]) -> Value {
    let (status, answer) = t
        .admin
        .post_with_headers(
            "/v1/events",
            json!({"type": "order.paid", "data": {"n": 1}}),
            headers,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

#[tokio::test]
async fn spans_chain_from_the_publish_request_to_each_attempt_at_a_real_otlp_receiver() {
    let Some((collector, server)) = traced_server().await else {
        return;
    };
    let t = server.tenant("acme").await;
    // The first attempt fails, so the event is attempted twice.
    let receiver = Receiver::with(|n, _| match n {
        0 => (500, vec![], "down".into()),
        _ => (200, vec![], "ok".into()),
    })
    .await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"], "retrySchedule": ["50ms"]}))
        .await;
    let parent = format!("00-{TRACE_ID}-{PUBLISHER_SPAN}-01");
    let published = publish_with(&t, &[("traceparent", &parent)]).await;
    let event_id = published["id"].as_str().expect("id");
    let got = receiver.wait_for(2).await;

    let spans = collector
        .wait("the request, fan-out, commit and both attempts", |s| {
            named(s, "hookd.attempt").len() >= 2 && !named(s, "POST /v1/events").is_empty()
        })
        .await;
    // The request joins the publisher's trace under the publisher's span.
    let requests = named(&spans, "POST /v1/events");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let request = requests[0];
    assert_eq!(request["traceId"], TRACE_ID);
    assert_eq!(request["parentSpanId"], PUBLISHER_SPAN);
    assert_eq!(request["kind"], 2, "a server span");
    // OTLP's span flags: the parent is remote (bits 8 and 9 set), sampled (bit 0).
    assert_eq!(request["flags"].as_i64().map(|f| f & 0x301), Some(0x301));
    assert_eq!(request["attributes"]["http.route"], "/v1/events");
    assert_eq!(request["attributes"]["http.response.status_code"], 202);
    let request_span = request["spanId"].as_str().expect("span id");
    // The fan-out and the commit are its children.
    for step in ["hookd.fanout", "hookd.commit"] {
        let found = named(&spans, step);
        assert_eq!(found.len(), 1, "{step}: {spans:?}");
        assert_eq!(found[0]["traceId"], TRACE_ID, "{step}");
        assert_eq!(found[0]["parentSpanId"], request_span, "{step}");
        assert_eq!(
            found[0]["flags"].as_i64().map(|f| f & 0x300),
            Some(0x100),
            "{step}"
        );
    }
    assert_eq!(
        named(&spans, "hookd.fanout")[0]["attributes"]["hookd.deliveries"],
        1
    );
    assert_eq!(
        named(&spans, "hookd.commit")[0]["attributes"]["hookd.commit.outcome"],
        "committed"
    );
    // Each attempt is a client span under the request, and the span the receiver was told of.
    let mut attempts = named(&spans, "hookd.attempt");
    attempts.sort_by_key(|a| a["attributes"]["hookd.attempt"].as_i64());
    let sent: Vec<(String, String)> = got
        .iter()
        .map(|r| span_of(r.header("traceparent")))
        .collect();
    for (i, attempt) in attempts.iter().enumerate() {
        let a = &attempt["attributes"];
        assert_eq!(attempt["traceId"], TRACE_ID);
        assert_eq!(attempt["parentSpanId"], request_span);
        assert_eq!(attempt["kind"], 3, "a client span");
        assert_eq!(a["hookd.attempt"], i as i64 + 1);
        assert_eq!(a["hookd.event.id"], event_id);
        assert_eq!(a["hookd.event.type"], "order.paid");
        assert_eq!(a["hookd.endpoint.id"], ep["id"]);
        assert_eq!(a["hookd.tenant.id"], t.id);
        assert_eq!(
            sent[i],
            (
                TRACE_ID.to_owned(),
                attempt["spanId"].as_str().expect("id").to_owned()
            ),
            "attempt {} told the receiver its own span",
            i + 1
        );
    }
    let (first, second) = (&attempts[0]["attributes"], &attempts[1]["attributes"]);
    assert_eq!(first["http.response.status_code"], 500);
    assert_eq!(first["error.type"], "http_status");
    assert_eq!(attempts[0]["status"], 2, "the failed attempt is an error");
    assert_eq!(second["http.response.status_code"], 200);
    assert!(second.get("error.type").is_none(), "{second}");
    // The resource and the collector's header, as configured.
    assert_eq!(request["resource"]["service.name"], "hookd-under-test");
    assert_eq!(request["resource"]["deployment.environment"], "test");
    assert_eq!(request["scope"], "hookd");
    assert_eq!(request["headers"]["api-key"], "collector-key");
    // The event keeps the request's span as its parent.
    let (_, read) = t.admin.get(&format!("/v1/events/{event_id}")).await;
    assert_eq!(
        read["traceparent"],
        format!("00-{TRACE_ID}-{request_span}-01")
    );
    server.stop().await;
}

#[tokio::test]
async fn an_event_published_without_a_trace_starts_one_and_each_schedule_run_is_a_span() {
    let Some((collector, server)) = traced_server().await else {
        return;
    };
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["order.paid"]}))
        .await;
    let published = publish_with(&t, &[]).await;
    let got = receiver.wait_for(1).await;
    let (trace, attempt_span) = span_of(got[0].header("traceparent"));
    let spans = collector
        .wait("the request and the attempt", |s| {
            !named(s, "hookd.attempt").is_empty() && !named(s, "POST /v1/events").is_empty()
        })
        .await;
    let request = named(&spans, "POST /v1/events")[0];
    assert_eq!(request["parentSpanId"], "", "the first span of a new trace");
    assert_eq!(request["traceId"], trace);
    let attempt = named(&spans, "hookd.attempt")[0];
    assert_eq!(attempt["spanId"], attempt_span);
    assert_eq!(attempt["parentSpanId"], request["spanId"]);
    let (_, read) = t
        .admin
        .get(&format!(
            "/v1/events/{}",
            published["id"].as_str().expect("id")
        ))
        .await;
    let kept = read["traceparent"].as_str().expect("a trace was started");
    assert_eq!(span_of(kept).0, trace);

    // A timed schedule run is a span of its own, as is its digest's attempt.
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let (status, schedule) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "one_time", "scheduledAt": at, "timezone": "UTC",
                   "format": "markdown", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schedule}");
    let spans = collector
        .wait("the schedule run", |s| {
            !named(s, "hookd.schedule.run").is_empty()
        })
        .await;
    let run = named(&spans, "hookd.schedule.run")[0];
    assert_eq!(run["attributes"]["hookd.schedule.id"], schedule["id"]);
    assert_eq!(run["attributes"]["hookd.schedule.outcome"], "ran");
    assert_eq!(run["attributes"]["hookd.tenant.id"], t.id);
    assert_eq!(run["parentSpanId"], "");
    // Its digest's attempt joins the run's trace, under the run.
    let spans = collector
        .wait("the digest's attempt", |s| {
            named(s, "hookd.attempt")
                .iter()
                .any(|a| a["attributes"]["hookd.event.type"] == "schedule.digest")
        })
        .await;
    let digest = named(&spans, "hookd.attempt")
        .into_iter()
        .find(|a| a["attributes"]["hookd.event.type"] == "schedule.digest")
        .expect("the digest's attempt");
    assert_eq!(digest["traceId"], run["traceId"]);
    assert_eq!(digest["parentSpanId"], run["spanId"]);
    // A run triggered by hand is a span under its API request.
    let (status, weekly) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "custom_cron", "cronExpression": "0 9 * * 1", "timezone": "UTC",
                   "format": "markdown", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{weekly}");
    let weekly_id = weekly["id"].as_str().expect("id");
    let (status, _) = t
        .admin
        .post_empty(&format!("/v1/schedules/{weekly_id}/trigger"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let spans = collector
        .wait("the triggered run", |s| {
            named(s, "hookd.schedule.run").len() >= 2
                && !named(s, "POST /v1/schedules/{id}/trigger").is_empty()
        })
        .await;
    let request = named(&spans, "POST /v1/schedules/{id}/trigger")[0];
    let triggered = named(&spans, "hookd.schedule.run")
        .into_iter()
        .find(|r| r["attributes"]["hookd.schedule.id"] == weekly_id)
        .expect("the triggered run's span");
    assert_eq!(triggered["parentSpanId"], request["spanId"]);
    assert_eq!(triggered["traceId"], request["traceId"]);
    server.stop().await;
}

/// A collector that takes connections and never answers.
async fn silent_collector() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

async fn metric(server: &Server, name: &str) -> u64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test]
async fn a_collector_that_does_not_answer_or_is_not_there_holds_up_no_delivery() {
    let (silent, _held) = silent_collector().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for (port, counter) in [
        (silent, "hookd_otlp_spans_dropped_total"),
        (closed, "hookd_otlp_spans_failed_total"),
    ] {
        let server = Server::start_with(|c| {
            c.otlp = Some(hookd::config::OtlpSettings {
                endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
                headers: Vec::new(),
                service_name: "hookd".into(),
                resource: Vec::new(),
                queue: 4,
            });
        })
        .await;
        let t = server.tenant("acme").await;
        let receiver = Receiver::ok().await;
        t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
            .await;
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"type": "order.paid", "data": {"i": i}}))
            .collect();
        t.publish_batch(events).await;
        // Every delivery arrives, whatever the collector does.
        receiver.wait_for(50).await;
        wait_until(
            &format!("{counter} counts the lost spans"),
            Duration::from_secs(30),
            || async { metric(&server, counter).await > 0 },
        )
        .await;
        assert_eq!(metric(&server, "hookd_otlp_spans_exported_total").await, 0);
        server.stop().await;
    }
}
