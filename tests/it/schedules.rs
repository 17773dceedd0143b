//! Schedules against a real hookd and real receivers: cron and one-time fires, digests,
//! status triggers, the run log, and bad input.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, Tenant, wait_until};

async fn schedule(t: &Tenant, body: Value) -> Value {
    let (status, created) = t.admin.post("/v1/schedules", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn digests(r: &Receiver) -> Vec<Value> {
    r.received()
        .iter()
        .map(|x| x.json())
        .filter(|b| b["event"] == "schedule.digest")
        .collect()
}

/// A server with a tenant whose schedule digests every second to an endpoint that subscribes
/// to nothing else.
async fn every_second() -> (Server, Tenant, Receiver, Value) {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": r.url, "events": ["nothing.subscribed"]}))
        .await;
    let s = schedule(
        &t,
        json!({"scheduleType": "custom_cron", "cronExpression": "* * * * * *", "timezone": "UTC",
               "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
    )
    .await;
    (server, t, r, s)
}

#[tokio::test]
async fn a_seconds_cron_fires_its_digest_and_stops_when_deleted() {
    let (server, t, r, s) = every_second().await;
    assert!(s["nextRunAt"].is_string());
    t.publish("order.paid", json!({"n": 1})).await;
    wait_until("two digests", Duration::from_secs(20), || {
        let r = r.clone();
        async move { digests(&r).len() >= 2 }
    })
    .await;
    let all = digests(&r);
    let with_event = all
        .iter()
        .find(|d| d["data"]["eventCount"] == 1)
        .expect("a digest with the event");
    assert_eq!(
        with_event["data"]["content"]["counts"],
        json!({"order.paid": 1})
    );
    assert_eq!(with_event["data"]["scheduleId"], s["id"]);
    // Only the schedule's own endpoint got it, although it subscribes to nothing of this.
    let id = s["id"].as_str().expect("id");
    let (_, runs) = t.admin.get(&format!("/v1/schedules/{id}/runs")).await;
    assert!(runs["totalElements"].as_u64().expect("runs") >= 2);
    assert_eq!(runs["content"][0]["status"], "delivered");
    assert!(runs["content"][0]["deliveryId"].is_string());

    assert_eq!(
        t.admin.delete(&format!("/v1/schedules/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.admin.get(&format!("/v1/schedules/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin.get(&format!("/v1/schedules/{id}/runs")).await.0,
        StatusCode::NOT_FOUND
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_one_time_schedule_fires_exactly_once_across_a_restart() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let ep = t.endpoint(json!({"url": r.url, "events": ["x.y"]})).await;
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    let s = schedule(
        &t,
        json!({"scheduleType": "one_time", "scheduledAt": at, "timezone": "Europe/Berlin",
               "format": "markdown", "deliveryMethod": "webhook", "endpointId": ep["id"],
               "customSubject": "Launch report", "customMessage": "Hello team"}),
    )
    .await;
    let id = s["id"].as_str().expect("id").to_owned();
    wait_until("the one digest", Duration::from_secs(20), || {
        let r = r.clone();
        async move { digests(&r).len() == 1 }
    })
    .await;
    let content = digests(&r)[0]["data"]["content"]
        .as_str()
        .expect("markdown")
        .to_owned();
    assert!(content.starts_with("# Launch report"), "{content}");
    assert!(content.contains("Hello team"));
    let (_, read) = t.admin.get(&format!("/v1/schedules/{id}")).await;
    assert_eq!(read["status"], "completed");
    assert_eq!(read["nextRunAt"], Value::Null);
    server.assert_list_counts_exact();
    server.stop().await;

    let server = Server::start_in(dir, |_| {}).await;
    let t = t.on(&server);
    // Let the restarted scheduler look (a marker event round trip), then count.
    let marker = t.publish("x.y", json!({})).await;
    wait_until("the marker", Duration::from_secs(20), || {
        let r = r.clone();
        let id = marker["id"].as_str().expect("id").to_owned();
        async move { r.received().iter().any(|x| x.header("webhook-id") == id) }
    })
    .await;
    let (_, runs) = t.admin.get(&format!("/v1/schedules/{id}/runs")).await;
    assert_eq!(runs["totalElements"], 1);
    assert_eq!(digests(&r).len(), 1);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn trigger_renders_the_periods_events_in_each_format() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let ep = t.endpoint(json!({"url": r.url, "events": ["none"]})).await;
    let mut ids = Vec::new();
    for format in ["json", "markdown", "html", "pdf", "docx"] {
        let s = schedule(
            &t,
            json!({"scheduleType": "weekly_digest", "timezone": "America/New_York", "format": format,
                   "deliveryMethod": "webhook", "endpointId": ep["id"], "eventTypes": ["post.*"],
                   "includeChangelog": true}),
        )
        .await;
        ids.push(s["id"].as_str().expect("id").to_owned());
    }
    t.publish("post.created", json!({"title": "Dark <mode>"}))
        .await;
    t.publish("post.created", json!({"title": "Other"})).await;
    t.publish("comment.created", json!({"body": "not covered"}))
        .await;
    for id in &ids {
        let (status, body) = t
            .admin
            .post_empty(&format!("/v1/schedules/{id}/trigger"))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(body["runId"].as_str().expect("run").starts_with("run_"));
    }
    let got = {
        wait_until("five digests", Duration::from_secs(20), || {
            let r = r.clone();
            async move { digests(&r).len() == 5 }
        })
        .await;
        digests(&r)
    };
    let by_format = |f: &str| {
        got.iter()
            .find(|d| d["data"]["format"] == f)
            .expect("digest")
            .clone()
    };
    let j = by_format("json");
    assert_eq!(j["data"]["eventCount"], 2);
    assert_eq!(j["data"]["content"]["counts"], json!({"post.created": 2}));
    assert_eq!(
        j["data"]["content"]["events"]
            .as_array()
            .expect("events")
            .len(),
        2
    );
    assert_eq!(
        j["data"]["content"]["changelog"]
            .as_array()
            .expect("changelog")
            .len(),
        2
    );
    let md = by_format("markdown")["data"]["content"]
        .as_str()
        .expect("md")
        .to_owned();
    assert!(md.contains("| post.created | 2 |"), "{md}");
    assert!(!md.contains("comment.created"));
    let html = by_format("html")["data"]["content"]
        .as_str()
        .expect("html")
        .to_owned();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<td>post.created</td><td>2</td>"));
    assert!(html.contains("Dark &lt;mode&gt;"), "escaped: {html}");
    // The files parse back with independent readers and say the same.
    let file = |f: &str| {
        use base64::Engine;
        let b64 = by_format(f)["data"]["content"]
            .as_str()
            .expect("base64")
            .to_owned();
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    };
    let pdf = lopdf::Document::load_mem(&file("pdf")).expect("a valid PDF");
    let text = pdf.extract_text(&[1]).expect("text");
    assert!(text.contains("post.created: 2"), "{text}");
    assert!(!text.contains("comment.created"));
    let mut docx = zip::ZipArchive::new(std::io::Cursor::new(file("docx"))).expect("a valid DOCX");
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut docx.by_name("word/document.xml").expect("document.xml"),
        &mut xml,
    )
    .expect("xml");
    assert!(xml.contains("post.created: 2"), "{xml}");
    assert!(xml.contains("Dark &lt;mode&gt;"), "escaped in XML");
    // The weekly digest's next run is a Monday 09:00 in New York.
    let (_, s) = t.admin.get(&format!("/v1/schedules/{}", ids[0])).await;
    let next =
        chrono::DateTime::parse_from_rfc3339(s["nextRunAt"].as_str().expect("next")).expect("time");
    let local = next.with_timezone(&chrono_tz::America::New_York);
    assert_eq!(local.format("%a %H:%M").to_string(), "Mon 09:00");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn on_status_change_fires_only_on_its_status() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let ep = t.endpoint(json!({"url": r.url, "events": ["none"]})).await;
    let s = schedule(
        &t,
        json!({"scheduleType": "on_status_change", "triggerStatus": "shipped", "timezone": "UTC",
               "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"],
               "eventTypes": ["post.*"]}),
    )
    .await;
    assert_eq!(s["nextRunAt"], Value::Null);
    let id = s["id"].as_str().expect("id");
    t.publish("post.status_changed", json!({"status": "planned"}))
        .await;
    t.publish("comment.created", json!({"status": "shipped"}))
        .await;
    t.publish(
        "post.status_changed",
        json!({"status": "shipped", "title": "Dark mode"}),
    )
    .await;
    wait_until("one digest", Duration::from_secs(20), || {
        let r = r.clone();
        async move { !digests(&r).is_empty() }
    })
    .await;
    let (_, runs) = t.admin.get(&format!("/v1/schedules/{id}/runs")).await;
    assert_eq!(runs["totalElements"], 1, "only the shipped post fired it");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn bad_schedules_get_422_naming_the_field() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let ep = t
        .endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let base = json!({"scheduleType": "custom_cron", "cronExpression": "0 9 * * 1", "timezone": "UTC",
                      "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("timezone", json!("Mars/Olympus")), "timezone"),
        (
            with("cronExpression", json!("61 * * * *")),
            "cronExpression",
        ),
        (with("cronExpression", json!("* *")), "cronExpression"),
        // February 30th never comes.
        (with("cronExpression", json!("0 0 30 2 *")), "never fires"),
        (with("scheduleType", json!("one_time")), "scheduledAt"),
        (
            with("scheduleType", json!("on_status_change")),
            "triggerStatus",
        ),
        (
            json!({"scheduleType": "one_time", "scheduledAt": "2020-01-01T00:00:00Z", "timezone": "UTC",
                "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
            "past",
        ),
        (with("format", json!("xml")), "format"),
        (with("deliveryMethod", json!("pigeon")), "deliveryMethod"),
        (with("scheduleType", json!("hourly")), "scheduleType"),
        // A field of another type is still checked.
        (with("triggerStatus", json!("")), "triggerStatus"),
    ];
    for (body, needle) in cases {
        let (status, answer) = t.admin.post("/v1/schedules", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{needle}: {answer}"
        );
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // An endpointId that names no endpoint of the tenant is a 404 naming it.
    let (status, answer) = t
        .admin
        .post("/v1/schedules", with("endpointId", json!("ep_999")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("ep_999")
    );
    let (_, list) = t.admin.get("/v1/schedules").await;
    assert_eq!(list["totalElements"], 0);
    // PATCH recomputes nextRunAt and refuses bad values without changing anything.
    let s = schedule(&t, base.clone()).await;
    let path = format!("/v1/schedules/{}", s["id"].as_str().expect("id"));
    let (status, patched) = t
        .admin
        .patch(&path, json!({"cronExpression": "0 9 * * 2"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_ne!(patched["nextRunAt"], s["nextRunAt"]);
    assert_eq!(
        t.admin.patch(&path, json!({"timezone": "Nowhere"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(t.admin.get(&path).await.1["timezone"], "UTC");
    server.assert_list_counts_exact();
    server.stop().await;
}

/// A real SMTP server (mailin) on 127.0.0.1 that keeps every message it receives; it can be
/// told to refuse messages.
#[derive(Clone, Default)]
struct Inbox {
    messages: Arc<std::sync::Mutex<Vec<String>>>,
    current: Vec<u8>,
    refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl mailin_embedded::Handler for Inbox {
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn rcpt(&mut self, _to: &str) -> mailin_embedded::Response {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            mailin_embedded::response::NO_MAILBOX
        } else {
            mailin_embedded::response::OK
        }
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let message = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.messages.lock().expect("inbox").push(message);
        mailin_embedded::response::OK
    }
}

fn smtp_server() -> (u16, Inbox) {
    let inbox = Inbox::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut server = mailin_embedded::Server::new(inbox.clone());
    server.with_name("localhost").with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, inbox)
}

#[tokio::test]
async fn email_digests_arrive_at_a_real_smtp_server_and_failures_are_retried() {
    let (port, inbox) = smtp_server();
    inbox
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let server = Server::start_with(|c| {
        c.smtp = Some(hookd::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: hookd::config::SmtpTls::None,
            from: "hookd@example.test".into(),
            username: None,
            password: None,
        });
        c.email_retry_schedule = vec![Duration::from_millis(200), Duration::from_millis(200)];
    })
    .await;
    let t = server.tenant("acme").await;
    let s = schedule(
        &t,
        json!({"scheduleType": "weekly_digest", "timezone": "UTC", "format": "pdf",
               "deliveryMethod": "email", "recipients": ["ops@example.test", "ceo@example.test"],
               "customSubject": "Weekly report"}),
    )
    .await;
    assert_eq!(
        s["recipients"],
        json!(["ops@example.test", "ceo@example.test"])
    );
    t.publish("post.created", json!({"title": "x"})).await;
    let id = s["id"].as_str().expect("id");
    let (status, _) = t
        .admin
        .post_empty(&format!("/v1/schedules/{id}/trigger"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The first attempt is refused; the run log says so and it is retried.
    let runs_path = format!("/v1/schedules/{id}/runs");
    wait_until(
        "a refused attempt in the run log",
        Duration::from_secs(20),
        || {
            let (api, path) = (t.admin.clone(), runs_path.clone());
            async move {
                let r = api.get(&path).await.1;
                r["content"][0]["emailResult"]
                    .as_str()
                    .is_some_and(|e| e.contains("attempt 1 failed"))
            }
        },
    )
    .await;
    inbox
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until("the digest delivered", Duration::from_secs(20), || {
        let (api, path) = (t.admin.clone(), runs_path.clone());
        async move { api.get(&path).await.1["content"][0]["status"] == "delivered" }
    })
    .await;
    let (_, runs) = t.admin.get(&runs_path).await;
    assert!(
        runs["content"][0]["emailResult"]
            .as_str()
            .expect("result")
            .contains("sent to 2")
    );
    let messages = inbox.messages.lock().expect("inbox").clone();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(m.contains("Subject: Weekly report"), "{m}");
    assert!(m.contains("ops@example.test") && m.contains("ceo@example.test"));
    assert!(
        m.contains("application/pdf") && m.contains("digest.pdf"),
        "{m}"
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn email_schedules_need_recipients_and_smtp() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let base = json!({"scheduleType": "weekly_digest", "timezone": "UTC", "format": "json",
                      "deliveryMethod": "email", "recipients": ["ops@example.test"]});
    let (status, body) = t.admin.post("/v1/schedules", base.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("m")
            .contains("smtp"),
        "{body}"
    );
    for (recipients, needle) in [
        (json!([]), "recipients"),
        (json!(["not-an-address"]), "not-an-address"),
    ] {
        let mut b = base.clone();
        b["recipients"] = recipients;
        let (status, body) = t.admin.post("/v1/schedules", b).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["message"]
                .as_str()
                .expect("m")
                .contains(needle),
            "{body}"
        );
    }
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn an_ad_hoc_webhook_url_is_signed_with_a_secret_returned_once() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let base = json!({"scheduleType": "weekly_digest", "timezone": "UTC", "format": "json",
                      "deliveryMethod": "webhook"});
    let mut bad = base.clone();
    bad["webhookUrl"] = json!("not a url");
    assert_eq!(
        t.admin.post("/v1/schedules", bad).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mut invalid = base.clone();
    invalid["webhookUrl"] = json!(r.url);
    invalid["timezone"] = json!("Nowhere");
    assert_eq!(
        t.admin.post("/v1/schedules", invalid).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, endpoints) = t.admin.get("/v1/endpoints").await;
    assert_eq!(
        endpoints["totalElements"], 0,
        "rejected requests created nothing"
    );

    let mut body = base.clone();
    body["webhookUrl"] = json!(r.url);
    let s = schedule(&t, body).await;
    let secret = s["secret"].as_str().expect("secret once").to_owned();
    assert_eq!(s["webhookUrl"], r.url.as_str());
    let id = s["id"].as_str().expect("id");
    let (_, read) = t.admin.get(&format!("/v1/schedules/{id}")).await;
    assert!(read.get("secret").is_none());
    t.admin
        .post_empty(&format!("/v1/schedules/{id}/trigger"))
        .await;
    let got = r.wait_for(1).await.remove(0);
    assert_eq!(got.json()["event"], "schedule.digest");
    assert!(crate::support::verify_standard(&secret, &got));
    server.assert_list_counts_exact();
    server.stop().await;
}

/// A run reads its period while publishes keep committing: every event lands in exactly one
/// run, whatever the interleaving (periods are bounded by the newest event a run saw).
#[tokio::test]
async fn runs_racing_publishes_count_every_event_exactly_once() {
    let (server, t, _receiver, s) = every_second().await;
    let id = s["id"].as_str().expect("id").to_owned();
    let (publishers, each) = (4, 60);
    let publishing: Vec<_> = (0..publishers)
        .map(|p| {
            let admin = t.admin.clone();
            tokio::spawn(async move {
                for n in 0..each {
                    let (status, body) = admin
                        .post(
                            "/v1/events",
                            json!({"type": "order.paid", "data": {"p": p, "n": n}}),
                        )
                        .await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                }
            })
        })
        .collect();
    let triggering = {
        let admin = t.admin.clone();
        let path = format!("/v1/schedules/{id}/trigger");
        tokio::spawn(async move {
            let mut runs = 0;
            for _ in 0..40 {
                let (status, body) = admin.post(&path, json!({})).await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                runs += 1;
            }
            runs
        })
    };
    for p in publishing {
        p.await.expect("publisher");
    }
    assert_eq!(triggering.await.expect("trigger"), 40);
    // One last run after the publishing stopped takes whatever is left.
    let (status, _) = t
        .admin
        .post(&format!("/v1/schedules/{id}/trigger"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let mut counted = 0;
    let mut page = 0;
    loop {
        let (_, runs) = t
            .admin
            .get(&format!("/v1/schedules/{id}/runs?page={page}&size=100"))
            .await;
        let content = runs["content"].as_array().expect("runs").clone();
        counted += content
            .iter()
            .map(|run| run["eventCount"].as_u64().expect("count"))
            .sum::<u64>();
        if content.len() < 100 {
            break;
        }
        page += 1;
    }
    assert_eq!(counted, publishers * each, "every event in exactly one run");
    server.assert_list_counts_exact();
    server.stop().await;
}

fn instants(list: &Value) -> Vec<chrono::DateTime<chrono::Utc>> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t.as_str().expect("a time"))
                .expect("RFC 3339")
                .to_utc()
        })
        .collect()
}

#[tokio::test]
async fn a_schedule_lists_its_next_three_runs_and_a_cron_is_previewed_before_it_is_saved() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let r = Receiver::ok().await;
    let ep = t.endpoint(json!({"url": r.url, "events": ["x.y"]})).await;

    // Tokyo keeps no summer time: 06:30 there is 21:30 UTC the day before, every day.
    let s = schedule(
        &t,
        json!({"scheduleType": "custom_cron", "cronExpression": "30 6 * * *", "timezone": "Asia/Tokyo",
               "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
    )
    .await;
    let runs = instants(&s["nextRuns"]);
    assert_eq!(runs.len(), 3, "{s}");
    assert_eq!(s["nextRuns"][0], s["nextRunAt"], "{s}");
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.format("%H:%M").to_string(), "21:30", "{s}");
        if i > 0 {
            assert_eq!(*run - runs[i - 1], chrono::Duration::days(1), "{s}");
        }
    }
    let path = format!("/v1/schedules/{}", s["id"].as_str().expect("id"));
    assert_eq!(t.admin.get(&path).await.1["nextRuns"], s["nextRuns"]);
    // A status-triggered schedule never runs on time: no runs listed.
    let on_status = schedule(
        &t,
        json!({"scheduleType": "on_status_change", "triggerStatus": "shipped", "timezone": "UTC",
               "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
    )
    .await;
    assert_eq!(on_status["nextRuns"], json!([]), "{on_status}");

    // A preview, for a viewer too, before anything is saved.
    let viewer = t.admin.with_token(&server.key(&t.id, "viewer").await);
    let (status, preview) = viewer
        .get("/v1/schedules/preview?cronExpression=30%206%20*%20*%20*&timezone=Asia/Tokyo")
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["nextRuns"], s["nextRuns"]);
    assert_eq!(preview["timezone"], "Asia/Tokyo");
    // Refused as creating it would be, each naming what is wrong.
    for (query, says) in [
        (
            "cronExpression=61%20*%20*%20*%20*&timezone=UTC",
            "cronExpression",
        ),
        (
            "cronExpression=0%209%20*%20*%201&timezone=Mars/Base",
            "Mars/Base",
        ),
        ("cronExpression=0%209%20*%20*%201", "timezone is required"),
        ("timezone=UTC", "cronExpression is required"),
        (
            "cronExpression=0%200%2030%202%20*&timezone=UTC",
            "never fires",
        ),
    ] {
        let (status, error) = viewer.get(&format!("/v1/schedules/preview?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {error}");
    }
    server.stop().await;
}
