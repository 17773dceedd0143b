//! Plans: the operator switches a tenant's features and sets its limits; usage is shown and
//! the limits hold (endpoints, events per UTC day, counted exactly across restarts).

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, Tenant, wait_until};

async fn set_plan(server: &Server, tenant: &str, body: Value) -> Value {
    let (status, t) = server
        .operator()
        .patch(&format!("/v1/tenants/{tenant}"), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn tenant_json(server: &Server, tenant: &str) -> Value {
    let (status, t) = server
        .operator()
        .get(&format!("/v1/tenants/{tenant}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

/// Asserts a `403` with this error code.
fn refused((status, err): (StatusCode, Value), code: &str) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], code, "{err}");
}

/// Connects the tenant's webhook integration to `url`.
async fn connect_webhook(t: &Tenant, url: &str) -> (StatusCode, Value) {
    t.admin
        .put("/v1/integrations/webhook", json!({"url": url}))
        .await
}

/// Creates an incoming hook with `action`; answers its id and the path the world calls.
async fn incoming_hook(t: &Tenant, action: Value) -> (String, String) {
    let (status, hook) = t
        .admin
        .post("/v1/incoming", json!({"name": "in", "action": action}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let url = hook["url"].as_str().expect("url");
    let id = hook["id"].as_str().expect("id").to_owned();
    (id, url[url.find("/hooks/in/").expect("path")..].to_owned())
}

fn endpoint_body(n: usize) -> Value {
    json!({"name": format!("e{n}"), "url": format!("http://127.0.0.1:9/{n}"), "events": ["*"]})
}

#[tokio::test]
async fn a_tenant_starts_with_everything_on_and_no_limits_and_shows_its_usage() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    t.publish("a.b", json!({})).await;
    t.publish_batch(vec![
        json!({"type": "a.b", "data": {}}),
        json!({"type": "a.c", "data": {}}),
    ])
    .await;
    let got = tenant_json(&server, &t.id).await;
    assert_eq!(
        got["features"],
        json!({"incoming": true, "integrations": true, "schedules": true})
    );
    assert_eq!(
        got["limits"],
        json!({"endpoints": null, "eventsPerDay": null})
    );
    assert_eq!(got["usage"], json!({"endpoints": 1, "eventsToday": 3}));
    // The tenant sees its own plan and usage, whatever its role.
    let viewer = t.admin.with_token(&server.key(&t.id, "viewer").await);
    let (status, me) = viewer.get("/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "viewer");
    assert_eq!(me["tenantName"], "acme");
    assert_eq!(me["limits"], got["limits"]);
    assert_eq!(me["usage"], got["usage"]);
    let (_, listed) = server.operator().get("/v1/tenants").await;
    assert_eq!(listed["content"][0]["features"], got["features"]);
    server.stop().await;
}

#[tokio::test]
async fn a_bad_plan_change_is_refused_by_name_and_changes_nothing() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    set_plan(&server, &t.id, json!({"limits": {"endpoints": 5}})).await;
    let op = server.operator();
    let path = format!("/v1/tenants/{}", t.id);
    for (body, names) in [
        (json!({"limits": {"endpoints": -1}}), "endpoints"),
        (json!({"limits": {"eventsPerDay": "many"}}), "eventsPerDay"),
        (json!({"features": {"incoming": "yes"}}), "incoming"),
        (json!({"features": {"webhooks": false}}), "webhooks"),
        (json!({"plan": "pro"}), "plan"),
    ] {
        let (status, err) = op.patch(&path, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains(names), "{body}: {message}");
    }
    let got = tenant_json(&server, &t.id).await;
    assert_eq!(got["limits"]["endpoints"], 5);
    assert_eq!(got["features"]["incoming"], true);
    // Only the operator sets plans; a tenant admin cannot raise its own.
    let (status, _) = t
        .admin
        .patch(&path, json!({"limits": {"endpoints": null}}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = op
        .patch("/v1/tenants/tnt_999999", json!({"limits": {}}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // null removes a limit; absent fields keep theirs.
    let changed = set_plan(
        &server,
        &t.id,
        json!({"features": {"schedules": false}, "limits": {"endpoints": null}}),
    )
    .await;
    assert_eq!(changed["limits"]["endpoints"], Value::Null);
    assert_eq!(changed["features"]["schedules"], false);
    assert_eq!(changed["features"]["incoming"], true);
    server.stop().await;
}

#[tokio::test]
async fn features_switched_off_answer_plan_required_until_switched_on() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (hook_id, hook_path) = incoming_hook(&t, json!({"type": "store"})).await;
    set_plan(
        &server,
        &t.id,
        json!({"features": {"incoming": false, "integrations": false, "schedules": false}}),
    )
    .await;
    for path in ["/v1/incoming", "/v1/schedules", "/v1/integrations"] {
        refused(t.admin.get(path).await, "plan_required");
    }
    refused(
        connect_webhook(&t, "http://127.0.0.1:9/x").await,
        "plan_required",
    );
    // The outside world's calls to an incoming hook are refused too, and not logged.
    let world = t.admin.with_token("");
    let (status, _, err) = world
        .raw("POST", &hook_path, Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["error"]["code"], "plan_required");
    // Other routes are untouched.
    assert_eq!(t.admin.get("/v1/endpoints").await.0, StatusCode::OK);
    // A bad token still answers 401, not the plan.
    let (status, _) = t.admin.with_token("hk_1_nope").get("/v1/incoming").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    set_plan(&server, &t.id, json!({"features": {"incoming": true}})).await;
    let (status, _, body) = world
        .raw("POST", &hook_path, Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, requests) = t
        .admin
        .get(&format!("/v1/incoming/{hook_id}/requests"))
        .await;
    assert_eq!(
        requests["totalElements"], 1,
        "only the call made while incoming was on is logged: {requests}"
    );
    assert_eq!(t.admin.get("/v1/schedules").await.0, StatusCode::FORBIDDEN);
    server.stop().await;
}

#[tokio::test]
async fn an_integrations_endpoint_receives_nothing_while_the_plan_has_integrations_off() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let (status, body) = t
        .admin
        .put(
            "/v1/integrations/webhook",
            json!({"url": receiver.url.clone(), "events": ["*"]}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    set_plan(&server, &t.id, json!({"features": {"integrations": false}})).await;
    let off = t.publish("a.b", json!({"n": 1})).await;
    assert_eq!(off["deliveries"], 0, "{off}");
    set_plan(&server, &t.id, json!({"features": {"integrations": true}})).await;
    let on = t.publish("a.b", json!({"n": 2})).await;
    assert_eq!(on["deliveries"], 1, "{on}");
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["data"]["n"], 2);
    server.stop().await;
}

#[tokio::test]
async fn creating_an_endpoint_past_the_limit_answers_quota_exceeded() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    set_plan(&server, &t.id, json!({"limits": {"endpoints": 2}})).await;
    let first = t.endpoint(endpoint_body(1)).await;
    t.endpoint(endpoint_body(2)).await;
    refused(
        t.admin.post("/v1/endpoints", endpoint_body(3)).await,
        "quota_exceeded",
    );
    // Integrations make endpoints too, and count.
    refused(
        connect_webhook(&t, "http://127.0.0.1:9/i").await,
        "quota_exceeded",
    );
    let (_, page) = t.admin.get("/v1/endpoints").await;
    assert_eq!(page["totalElements"], 2, "nothing was created: {page}");
    assert_eq!(tenant_json(&server, &t.id).await["usage"]["endpoints"], 2);
    let id = first["id"].as_str().expect("id");
    assert_eq!(
        t.admin.delete(&format!("/v1/endpoints/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    t.endpoint(endpoint_body(3)).await;
    server.stop().await;
}

/// Publishes one event; answers the status, the `Retry-After` header and the body.
async fn try_publish(t: &Tenant, body: Value) -> (StatusCode, Option<u64>, Value) {
    let (status, headers, value) = t
        .admin
        .raw(
            "POST",
            "/v1/events",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry_after, value)
}

/// Seconds from now to the next UTC midnight.
fn seconds_to_midnight() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    86_400 - now % 86_400
}

#[tokio::test]
async fn publishing_past_the_days_events_answers_429_stores_nothing_and_holds_across_a_restart() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url.clone(), "events": ["*"]}))
        .await;
    set_plan(&server, &t.id, json!({"limits": {"eventsPerDay": 3}})).await;
    let keyed = json!({"type": "a.b", "data": {"n": 1}, "idempotencyKey": "k1"});
    assert_eq!(try_publish(&t, keyed.clone()).await.0, StatusCode::ACCEPTED);
    t.publish("a.b", json!({"n": 2})).await;
    // A batch that does not fit whole is refused whole.
    let (status, body) = t
        .admin
        .post(
            "/v1/events/batch",
            json!({"events": [{"type": "a.b", "data": {}}, {"type": "a.b", "data": {}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    t.publish("a.b", json!({"n": 3})).await;
    let (status, retry_after, body) = try_publish(&t, json!({"type": "a.b", "data": {}})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let retry_after = retry_after.expect("Retry-After");
    let expected = seconds_to_midnight();
    assert!(
        retry_after.abs_diff(expected) <= 5,
        "Retry-After {retry_after}s runs to the end of the UTC day ({expected}s)"
    );
    // Repeating an accepted event (its idempotency key) stores nothing new: still answered.
    let (status, _, again) = try_publish(&t, keyed.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let (_, events) = t.admin.get("/v1/events").await;
    assert_eq!(
        events["totalElements"], 3,
        "refused requests stored nothing"
    );
    receiver.wait_for(3).await;
    assert_eq!(tenant_json(&server, &t.id).await["usage"]["eventsToday"], 3);
    server.assert_list_counts_exact();
    server.stop().await;

    // The count is kept with the events: a restart does not reset it.
    let server = Server::start_in(dir, |_| {}).await;
    let t = t.on(&server);
    let (status, _, body) = try_publish(&t, json!({"type": "a.b", "data": {}})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(tenant_json(&server, &t.id).await["usage"]["eventsToday"], 3);
    // Raising the limit takes effect at once.
    set_plan(&server, &t.id, json!({"limits": {"eventsPerDay": 4}})).await;
    let t_ref = &t;
    wait_until(
        "a publish is accepted under the raised limit",
        std::time::Duration::from_secs(5),
        || async move {
            try_publish(t_ref, json!({"type": "a.b", "data": {}}))
                .await
                .0
                == StatusCode::ACCEPTED
        },
    )
    .await;
    assert_eq!(receiver.wait_for(4).await.len(), 4);
    assert_eq!(tenant_json(&server, &t.id).await["usage"]["eventsToday"], 4);
    server.stop().await;
}

#[tokio::test]
async fn incoming_webhooks_count_towards_the_days_events() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (_, path) = incoming_hook(
        &t,
        json!({"type": "publish", "eventType": "outside.called"}),
    )
    .await;
    let path = path.as_str();
    set_plan(&server, &t.id, json!({"limits": {"eventsPerDay": 1}})).await;
    let world = t.admin.with_token("");
    let (status, _, body) = world
        .raw(
            "POST",
            path,
            Some("application/json"),
            b"{\"a\":1}".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, headers, body) = world
        .raw(
            "POST",
            path,
            Some("application/json"),
            b"{\"a\":2}".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert!(headers.contains_key("retry-after"));
    let (_, events) = t.admin.get("/v1/events").await;
    assert_eq!(events["totalElements"], 1, "{events}");
    server.stop().await;
}

/// An every-second digest schedule of `t` to a receiver of its own; returns the receiver.
async fn digest_every_second(t: &Tenant) -> Receiver {
    let r = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": r.url, "events": ["nothing.subscribed"]}))
        .await;
    let (status, s) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "custom_cron", "cronExpression": "* * * * * *", "timezone": "UTC",
                   "format": "json", "deliveryMethod": "webhook", "endpointId": ep["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    r
}

#[tokio::test]
async fn a_tenants_schedules_wait_while_its_plan_has_them_off() {
    let server = Server::start().await;
    let (off, witness) = (server.tenant("off").await, server.tenant("on").await);
    let (paused, running) = (
        digest_every_second(&off).await,
        digest_every_second(&witness).await,
    );
    paused.wait_for(1).await;
    set_plan(&server, &off.id, json!({"features": {"schedules": false}})).await;
    let before = paused.count();
    // While the witness's schedule runs three more times, the paused one runs at most once
    // more (a run already under way when the plan changed).
    let seen = running.count();
    running.wait_for(seen + 3).await;
    assert!(
        paused.count() <= before + 1,
        "{} runs while off",
        paused.count() - before
    );
    set_plan(&server, &off.id, json!({"features": {"schedules": true}})).await;
    let resumed = paused.count() + 1;
    paused.wait_for(resumed).await;
    server.stop().await;
}
