//! Slack, Discord and webhook integrations, against local receivers that check each
//! platform's documented message shape and limits.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server};

fn chars(v: &Value) -> usize {
    v.as_str().expect("string").chars().count()
}

/// Slack incoming-webhook schema: `text` and at most 50 blocks, header text ≤ 150, section
/// text ≤ 3000, at most 10 fields per section.
fn assert_slack(body: &Value) {
    assert!(chars(&body["text"]) <= 3000);
    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for b in blocks {
        match b["type"].as_str().expect("type") {
            "header" => {
                assert_eq!(b["text"]["type"], "plain_text");
                assert!(chars(&b["text"]["text"]) <= 150);
            }
            "section" => {
                if let Some(text) = b.get("text") {
                    assert!(chars(&text["text"]) <= 3000);
                }
                if let Some(fields) = b.get("fields") {
                    assert!(fields.as_array().expect("fields").len() <= 10);
                }
            }
            "context" => assert!(b["elements"].is_array()),
            other => panic!("unexpected block type {other}"),
        }
    }
}

/// Discord webhook schema: `content` ≤ 2000; embeds with title ≤ 256, description ≤ 4096,
/// ≤ 25 fields (name ≤ 256, value ≤ 1024).
fn assert_discord(body: &Value) {
    assert!(chars(&body["content"]) <= 2000);
    let embeds = body["embeds"].as_array().expect("embeds");
    assert!(embeds.len() <= 10);
    for e in embeds {
        assert!(chars(&e["title"]) <= 256);
        assert!(chars(&e["description"]) <= 4096);
        let fields = e["fields"].as_array().expect("fields");
        assert!(fields.len() <= 25);
        for f in fields {
            assert!(chars(&f["name"]) <= 256 && chars(&f["value"]) <= 1024);
        }
        assert!(e["timestamp"].is_string());
    }
}

#[tokio::test]
async fn slack_and_discord_integrations_get_readable_messages_within_limits() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let slack = Receiver::ok().await;
    let discord = Receiver::ok().await;
    let (status, body) = t
        .admin
        .put(
            "/v1/integrations/slack",
            json!({"url": slack.url, "events": ["post.*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert!(body.get("secret").is_none());
    let (status, _) = t
        .admin
        .put("/v1/integrations/discord", json!({"url": discord.url}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let long = "Ünïcödé ".repeat(1000);
    t.publish(
        "post.created",
        json!({"title": "Dark mode", "body": long, "author": "ada"}),
    )
    .await;
    let s = slack.wait_for(1).await.remove(0).json();
    assert_slack(&s);
    assert_eq!(s["blocks"][0]["text"]["text"], "New post: Dark mode");
    assert!(
        s["blocks"][1]["text"]["text"]
            .as_str()
            .expect("text")
            .ends_with('…')
    );
    let d = discord.wait_for(1).await.remove(0).json();
    assert_discord(&d);
    assert_eq!(d["embeds"][0]["title"], "New post: Dark mode");
    assert_eq!(
        d["embeds"][0]["fields"][0],
        json!({"name": "author", "value": "ada", "inline": true})
    );

    let (_, all) = t.admin.get("/v1/integrations").await;
    assert_eq!(all["integrations"]["slack"]["connected"], true);
    assert_eq!(all["integrations"]["slack"]["events"], json!(["post.*"]));
    assert_eq!(all["integrations"]["discord"]["events"], json!(["*"]));
    assert_eq!(all["integrations"]["webhook"], json!({"connected": false}));
    server.stop().await;
}

#[tokio::test]
async fn connect_is_an_upsert_and_disconnect_touches_only_the_integration() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let first = Receiver::ok().await;
    let second = Receiver::ok().await;
    let (_, a) = t
        .admin
        .put("/v1/integrations/webhook", json!({"url": first.url}))
        .await;
    assert!(
        a["secret"]
            .as_str()
            .expect("secret on first connect")
            .starts_with("whsec_")
    );
    let (_, b) = t
        .admin
        .put("/v1/integrations/webhook", json!({"url": second.url}))
        .await;
    assert_eq!(a["endpointId"], b["endpointId"], "one per type per tenant");
    assert!(b.get("secret").is_none());
    // An endpoint created directly with the same format is not the integration's.
    let manual = t
        .endpoint(json!({"url": first.url, "events": ["*"], "format": "slack"}))
        .await;
    let (_, slack) = t
        .admin
        .put("/v1/integrations/slack", json!({"url": second.url}))
        .await;
    assert_ne!(slack["endpointId"], manual["id"]);
    let (status, gone) = t.admin.delete("/v1/integrations/slack").await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["success"], true);
    assert_eq!(
        t.admin.delete("/v1/integrations/slack").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = t
        .admin
        .get(&format!(
            "/v1/endpoints/{}",
            manual["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the manual slack endpoint is untouched"
    );
    // Every delivery to the webhook integration now goes to the second URL.
    t.publish("a.b", json!({})).await;
    second.wait_for(1).await;
    assert_eq!(
        t.admin
            .put("/v1/integrations/teams", json!({"url": first.url}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin
            .put("/v1/integrations/slack", json!({"url": "nope"}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        t.admin
            .put(
                "/v1/integrations/slack",
                json!({"url": second.url, "events": []})
            )
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    server.stop().await;
}

#[tokio::test]
async fn test_sends_a_sample_naming_the_tenant_and_reports_the_target() {
    let server = Server::start().await;
    let t = server.tenant("Acme Corp").await;
    let slack = Receiver::ok().await;
    t.admin
        .put("/v1/integrations/slack", json!({"url": slack.url}))
        .await;
    let (status, result) = t.admin.post_empty("/v1/integrations/slack/test").await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["success"], true);
    let got = slack.wait_for(1).await.remove(0).json();
    assert_slack(&got);
    assert!(
        got["text"].as_str().expect("text").contains("Acme Corp"),
        "{got}"
    );

    let broken = Receiver::status(404).await;
    t.admin
        .put("/v1/integrations/discord", json!({"url": broken.url}))
        .await;
    let (_, result) = t.admin.post_empty("/v1/integrations/discord/test").await;
    assert_eq!(result["success"], false);
    assert!(
        result["message"].as_str().expect("message").contains("404"),
        "{result}"
    );
    assert_eq!(
        t.admin.post_empty("/v1/integrations/webhook/test").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, events) = t.admin.get("/v1/events").await;
    assert_eq!(events["totalElements"], 0, "a test is not an event");
    server.stop().await;
}
