//! Endpoint and event-type routes: create, read, change, delete, paging, the test send.

use http::StatusCode;
use serde_json::json;

use crate::support::{Receiver, Server, verify_standard};

#[tokio::test]
async fn an_endpoint_is_created_with_defaults_and_its_secret_is_shown_once() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let ep = t
        .endpoint(json!({"url": "http://127.0.0.1:9/hook", "events": ["project.*"]}))
        .await;
    let secret = ep["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"));
    assert_eq!(ep["isActive"], true);
    assert_eq!(ep["signatureScheme"], "standard");
    assert_eq!(ep["signatureHeaderName"], "webhook-signature");
    assert_eq!(ep["format"], "json");
    assert_eq!(ep["retrySchedule"], json!(["1m", "5m", "30m", "2h", "1d"]));
    assert_eq!(ep["disableAfter"], 5);
    assert_eq!(ep["timeoutMs"], 10000);
    assert_eq!(ep["rateLimit"], json!(null));
    assert_eq!(ep["ordering"], "none");
    assert_eq!(ep["disabledAt"], json!(null));
    assert!(ep["id"].as_str().expect("id").starts_with("ep_"));

    let (status, read) = t
        .admin
        .get(&format!("/v1/endpoints/{}", ep["id"].as_str().expect("id")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        read.get("secret").is_none(),
        "secret must not be readable: {read}"
    );
    assert_eq!(read["url"], "http://127.0.0.1:9/hook");
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_delete_removes() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let ep = t
        .endpoint(json!({"url": "http://127.0.0.1:9/hook", "events": ["a.b"], "headers": {"x-team": "core"}}))
        .await;
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().expect("id"));
    let (status, patched) = t
        .admin
        .patch(
            &path,
            json!({"name": "renamed", "retrySchedule": ["250ms", "10s"], "rateLimit": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["retrySchedule"], json!(["250ms", "10s"]));
    assert_eq!(patched["rateLimit"], 5);
    assert_eq!(patched["events"], json!(["a.b"]));
    assert_eq!(patched["headers"], json!({"x-team": "core"}));
    let (_, cleared) = t.admin.patch(&path, json!({"rateLimit": null})).await;
    assert_eq!(cleared["rateLimit"], json!(null));

    let (status, body) = t.admin.patch(&path, json!({"secret": "whsec_abc"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    assert_eq!(t.admin.delete(&path).await.0, StatusCode::NO_CONTENT);
    assert_eq!(t.admin.get(&path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(t.admin.delete(&path).await.0, StatusCode::NOT_FOUND);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn lists_page_with_totals() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    for i in 0..7 {
        t.endpoint(
            json!({"name": format!("ep{i}"), "url": "http://127.0.0.1:9/h", "events": ["*"]}),
        )
        .await;
    }
    let (status, page) = t.admin.get("/v1/endpoints?page=1&size=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["totalElements"], 7);
    assert_eq!(page["totalPages"], 3);
    assert_eq!(page["size"], 3);
    assert_eq!(page["number"], 1);
    let names: Vec<&str> = page["content"]
        .as_array()
        .expect("content")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["ep3", "ep4", "ep5"]);
    let (_, last) = t.admin.get("/v1/endpoints?page=2&size=3").await;
    assert_eq!(last["content"].as_array().expect("content").len(), 1);
    let (_, past) = t.admin.get("/v1/endpoints?page=9&size=3").await;
    assert_eq!(past["content"].as_array().expect("content").len(), 0);
    let (_, default) = t.admin.get("/v1/endpoints").await;
    assert_eq!(default["size"], 20);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn event_types_are_registered_listed_and_deleted() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (status, created) = t
        .admin
        .post(
            "/v1/event-types",
            json!({"name": "project.created", "category": "project", "description": "A project was created"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = t
        .admin
        .post("/v1/event-types", json!({"name": "project.created"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = t
        .admin
        .post("/v1/event-types", json!({"name": "Bad Name"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, list) = t.admin.get("/v1/event-types").await;
    assert_eq!(list["totalElements"], 1);
    assert_eq!(list["content"][0]["category"], "project");
    assert_eq!(
        t.admin.delete("/v1/event-types/project.created").await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.admin.delete("/v1/event-types/project.created").await.0,
        StatusCode::NOT_FOUND
    );
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn test_send_delivers_a_signed_sample_synchronously() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let ep = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let id = ep["id"].as_str().expect("id");
    let (status, result) = t
        .admin
        .post_empty(&format!("/v1/endpoints/{id}/test"))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["delivered"], true);
    assert_eq!(result["responseCode"], 200);
    assert_eq!(result["error"], json!(null));
    assert!(result["latencyMs"].is_number());
    // Synchronous: the receiver has it by the time the call returns.
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["event"], "webhook.test");
    assert!(verify_standard(
        ep["secret"].as_str().expect("secret"),
        &got[0]
    ));

    let failing = Receiver::status(500).await;
    let ep2 = t
        .endpoint(json!({"url": failing.url, "events": ["*"]}))
        .await;
    let (status, result) = t
        .admin
        .post(
            &format!("/v1/endpoints/{}/test", ep2["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["delivered"], false);
    assert_eq!(result["responseCode"], 500);
    assert_eq!(result["error"], "http_status");
    // A test send is not an event: nothing was stored.
    let (_, events) = t.admin.get("/v1/events").await;
    assert_eq!(events["totalElements"], 0);
    server.assert_list_counts_exact();
    server.stop().await;
}

#[tokio::test]
async fn a_filtered_endpoint_receives_only_events_whose_payload_meets_its_conditions() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let filtered = Receiver::ok().await;
    let all = Receiver::ok().await;
    let ep = t
        .endpoint(
            json!({"url": filtered.url, "events": ["post.*"], "filter": [
                {"path": "data.status", "op": "in", "value": ["done", "shipped"]},
                {"path": "data.votes", "op": "gte", "value": 10},
            ]}),
        )
        .await;
    assert_eq!(ep["filter"][1]["op"], "gte", "{ep}");
    t.endpoint(json!({"url": all.url, "events": ["post.*"]}))
        .await;
    // The publish answer counts only the endpoints whose filters matched.
    let passing = t
        .publish("post.updated", json!({"status": "done", "votes": 12}))
        .await;
    assert_eq!(passing["deliveries"], 2, "{passing}");
    let failing = t
        .publish("post.updated", json!({"status": "done", "votes": 3}))
        .await;
    assert_eq!(failing["deliveries"], 1, "{failing}");
    let missing = t.publish("post.updated", json!({"votes": 30})).await;
    assert_eq!(missing["deliveries"], 1, "{missing}");
    all.wait_for(3).await;
    let got = filtered.wait_for(1).await;
    assert_eq!(got[0].json()["id"], passing["id"]);
    // Clearing the filter delivers everything it subscribes to.
    let id = ep["id"].as_str().expect("id");
    let (status, cleared) = t
        .admin
        .patch(&format!("/v1/endpoints/{id}"), json!({"filter": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(cleared["filter"].is_null());
    let later = t.publish("post.updated", json!({"status": "open"})).await;
    assert_eq!(later["deliveries"], 2);
    filtered.wait_for(2).await;
    // A bad filter is refused naming its part, and changes nothing.
    for (filter, named) in [
        (
            json!([{"path": "data.x", "op": "like", "value": 1}]),
            "filter[0].op",
        ),
        (
            json!([{"path": "meta.x", "op": "eq", "value": 1}]),
            "filter[0].path",
        ),
        (
            json!([{"path": "data.x", "op": "eq", "value": 1}, {"path": "data.y", "op": "gt", "value": [1]}]),
            "filter[1].value",
        ),
        (json!({"path": "data.x"}), "filter must be a list"),
    ] {
        let (status, body) = t
            .admin
            .patch(&format!("/v1/endpoints/{id}"), json!({"filter": filter}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(named), "{message}");
    }
    let (_, read) = t.admin.get(&format!("/v1/endpoints/{id}")).await;
    assert!(read["filter"].is_null(), "{read}");
    server.stop().await;
}

#[tokio::test]
async fn an_endpoint_with_channels_receives_only_events_on_one_of_them() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let board = Receiver::ok().await;
    let everything = Receiver::ok().await;
    let ep = t
        .endpoint(
            json!({"url": board.url, "events": ["post.*"], "channels": ["board.42", "board.7"]}),
        )
        .await;
    assert_eq!(ep["channels"], json!(["board.42", "board.7"]));
    t.endpoint(json!({"url": everything.url, "events": ["post.*"]}))
        .await;
    let publish = |channels: serde_json::Value| {
        let admin = t.admin.clone();
        async move {
            let (status, body) = admin
                .post(
                    "/v1/events",
                    json!({"type": "post.created", "data": {}, "channels": channels}),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            body
        }
    };
    let on_board = publish(json!(["board.42"])).await;
    assert_eq!(on_board["deliveries"], 2);
    let elsewhere = publish(json!(["board.1"])).await;
    assert_eq!(elsewhere["deliveries"], 1);
    let nowhere = publish(json!([])).await;
    assert_eq!(
        nowhere["deliveries"], 1,
        "an event on no channel skips listening endpoints"
    );
    everything.wait_for(3).await;
    let got = board.wait_for(1).await;
    assert_eq!(got[0].json()["id"], on_board["id"]);
    let (_, read) = t
        .admin
        .get(&format!(
            "/v1/events/{}",
            on_board["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(read["channels"], json!(["board.42"]), "{read}");
    // Bad channels are refused, naming them.
    for channels in [
        json!(["has space"]),
        json!([""]),
        json!((0..11).map(|i| format!("c{i}")).collect::<Vec<_>>()),
    ] {
        let (status, body) = t
            .admin
            .post(
                "/v1/events",
                json!({"type": "post.created", "data": {}, "channels": channels}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(
            message.starts_with("channels[0]: ") || message == "channels: at most 10",
            "{message}"
        );
    }
    let id = ep["id"].as_str().expect("id");
    let (status, body) = t
        .admin
        .patch(
            &format!("/v1/endpoints/{id}"),
            json!({"channels": ["no/slash"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Listening to no channel again: every subscribed event.
    let (status, body) = t
        .admin
        .patch(&format!("/v1/endpoints/{id}"), json!({"channels": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(publish(json!(["board.1"])).await["deliveries"], 2);
    board.wait_for(2).await;
    server.stop().await;
}
