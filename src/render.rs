//! Message bodies per endpoint format: `json` (`{id, event, timestamp, data}`), and readable
//! Slack and Discord incoming-webhook messages per event family, cut to each platform's
//! limits without breaking UTF-8.

use serde_json::{Map, Value, json};

use crate::model::Format;
use crate::model::endpoint::{EndpointSettings, HeaderSetting};

/// The facts of an event a body is made from.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    /// `evt_…`.
    pub id: &'a str,
    /// The event type.
    pub name: &'a str,
    /// RFC 3339 time of publishing.
    pub timestamp: &'a str,
    /// The event's `data`, as stored JSON text.
    pub data: &'a str,
}

/// The `source` of the CloudEvents hookd sends: the events API they were published through.
pub const CLOUDEVENTS_SOURCE: &str = "/v1/events";

/// Renders the request body for `format`.
pub fn render(format: Format, event: EventView<'_>) -> String {
    match format {
        Format::Json => json_body(event),
        Format::Slack => slack(&message(event)).to_string(),
        Format::Discord => discord(&message(event)).to_string(),
        Format::CloudEvents => cloudevent(event),
        Format::CloudEventsBinary => event.data.to_owned(),
    }
}

/// The headers a body of `format` goes with, beyond the signature's: its content type, and in
/// CloudEvents' binary mode the event's attributes as `ce-*` headers.
pub fn format_headers(format: Format, event: EventView<'_>) -> Vec<(&'static str, String)> {
    match format {
        Format::Json | Format::Slack | Format::Discord => {
            vec![("content-type", "application/json".to_owned())]
        }
        Format::CloudEvents => vec![(
            "content-type",
            "application/cloudevents+json; charset=utf-8".to_owned(),
        )],
        Format::CloudEventsBinary => vec![
            ("content-type", "application/json".to_owned()),
            ("ce-specversion", "1.0".to_owned()),
            ("ce-id", event.id.to_owned()),
            ("ce-source", CLOUDEVENTS_SOURCE.to_owned()),
            ("ce-type", event.name.to_owned()),
            ("ce-time", event.timestamp.to_owned()),
        ],
    }
}

/// A CloudEvents 1.0 event in structured mode, with `data` spliced in as stored.
fn cloudevent(e: EventView<'_>) -> String {
    let head = json!({
        "specversion": "1.0",
        "id": e.id,
        "source": CLOUDEVENTS_SOURCE,
        "type": e.name,
        "time": e.timestamp,
        "datacontenttype": "application/json",
    });
    with_data(head, e.data)
}

/// `{id, event, timestamp, data}` with `data` spliced in as stored (never parsed again).
fn json_body(e: EventView<'_>) -> String {
    with_data(
        json!({"id": e.id, "event": e.name, "timestamp": e.timestamp}),
        e.data,
    )
}

/// The JSON object `head` with a last field `data`: the event's stored JSON text, spliced in
/// as it is (never parsed again).
fn with_data(head: Value, data: &str) -> String {
    let head = head.to_string();
    let mut body = String::with_capacity(head.len() + data.len() + 10);
    body.push_str(&head[..head.len() - 1]);
    body.push_str(",\"data\":");
    body.push_str(data);
    body.push('}');
    body
}

/// What hookd's requests say they are.
pub const USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

/// A delivery's request as hookd sends it with an endpoint's settings, for a person to read:
/// the values made per attempt (the timestamp, the signature) and the secret ones (sealed
/// headers, auth) are named, not shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownRequest {
    /// Where it goes (a URL that is a credential shows its origin only).
    pub url: String,
    /// Headers in the order they are sent.
    pub headers: Vec<(String, String)>,
    /// The body, exactly as sent.
    pub body: String,
}

/// The request an attempt of `event` to an endpoint with `settings` sends; `outbound` builds
/// the real one with the same headers (a test holds the two to the same names).
pub fn shown_request(settings: &EndpointSettings, event: EventView<'_>) -> ShownRequest {
    let mut headers: Vec<(String, String)> = format_headers(settings.format, event)
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    headers.extend([
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
        ("webhook-id".to_owned(), event.id.to_owned()),
        (
            "webhook-timestamp".to_owned(),
            "(the attempt's time, in seconds)".to_owned(),
        ),
    ]);
    for (name, value) in &settings.headers {
        if settings.auth.is_some() && name == "authorization" {
            continue;
        }
        let shown = match value {
            HeaderSetting::Plain(v) => v.clone(),
            HeaderSetting::Sealed(_) => "(sealed)".to_owned(),
        };
        headers.push((name.clone(), shown));
    }
    if settings.auth.is_some() {
        headers.push((
            "authorization".to_owned(),
            "(from the endpoint's auth)".to_owned(),
        ));
    }
    headers.push((
        settings.signature_header().to_owned(),
        "(signed per attempt)".to_owned(),
    ));
    ShownRequest {
        url: settings.url.to_string(),
        headers,
        body: render(settings.format, event),
    }
}

/// Cuts `s` to at most `max` characters, ending in `…` when cut; never splits a character.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A platform-neutral message: a title, a summary line and name/value fields.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    title: String,
    summary: String,
    fields: Vec<(String, String)>,
    footer: String,
    timestamp: String,
}

fn text_of(data: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match data.get(*k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn action(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).replace('_', " ")
}

/// Builds the message for an event, by family.
fn message(e: EventView<'_>) -> Message {
    let value: Value = serde_json::from_str(e.data).unwrap_or(Value::Null);
    let empty = Map::new();
    let data = value.as_object().unwrap_or(&empty);
    let title_of = |keys: &[&str]| text_of(data, keys).unwrap_or_else(|| "(untitled)".into());
    let family = e.name.split('.').next().unwrap_or("");
    let (title, summary, used): (String, String, &[&str]) = match e.name {
        "post.created" => (
            format!("New post: {}", title_of(&["title", "name"])),
            text_of(data, &["body", "description", "content"]).unwrap_or_default(),
            &["title", "name", "body", "description", "content"],
        ),
        "post.status_changed" => (
            format!("Status changed: {}", title_of(&["title", "name"])),
            format!(
                "{} → {}",
                text_of(data, &["oldStatus", "previousStatus", "from"])
                    .unwrap_or_else(|| "?".into()),
                text_of(data, &["status", "newStatus", "to"]).unwrap_or_else(|| "?".into())
            ),
            &[
                "title",
                "name",
                "oldStatus",
                "previousStatus",
                "from",
                "status",
                "newStatus",
                "to",
            ],
        ),
        "comment.created" => (
            format!(
                "New comment on {}",
                title_of(&["postTitle", "title", "postId"])
            ),
            text_of(data, &["body", "text", "content"]).unwrap_or_default(),
            &["postTitle", "title", "postId", "body", "text", "content"],
        ),
        _ if family == "vote" => (
            format!("Vote on {}", title_of(&["postTitle", "title", "postId"])),
            match text_of(data, &["votes", "voteCount", "total"]) {
                Some(total) => format!("{} · {total} votes", action(e.name)),
                None => action(e.name),
            },
            &[
                "postTitle",
                "title",
                "postId",
                "votes",
                "voteCount",
                "total",
            ],
        ),
        _ if family == "project" => (
            format!(
                "Project {}: {}",
                action(e.name),
                title_of(&["name", "title"])
            ),
            text_of(data, &["description", "summary"]).unwrap_or_default(),
            &["name", "title", "description", "summary"],
        ),
        _ if family == "prd" => (
            format!("PRD {}: {}", action(e.name), title_of(&["title", "name"])),
            text_of(data, &["summary", "description"]).unwrap_or_default(),
            &["title", "name", "summary", "description"],
        ),
        _ if family == "trace" => (
            format!(
                "Trace {}: {}",
                action(e.name),
                title_of(&["name", "traceId", "id"])
            ),
            text_of(data, &["error", "message", "status"]).unwrap_or_default(),
            &["name", "traceId", "id", "error", "message"],
        ),
        _ => (
            e.name.to_owned(),
            text_of(
                data,
                &["message", "title", "name", "description", "summary"],
            )
            .unwrap_or_default(),
            &["message"],
        ),
    };
    let fields = data
        .iter()
        .filter(|(k, _)| !used.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), value))
        })
        .collect();
    Message {
        title,
        summary,
        fields,
        footer: format!("{} · {}", e.name, e.id),
        timestamp: e.timestamp.to_owned(),
    }
}

/// Slack: `{text, blocks}`: a header (≤ 150), a summary section (≤ 3000), fields (≤ 10 per
/// section, ≤ 2000 each) and a context line; never more than 50 blocks.
fn slack(m: &Message) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&m.title, 150), "emoji": true}
    })];
    if !m.summary.is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&m.summary, 3000)}
        }));
    }
    for chunk in m.fields.chunks(10).take(46) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{k}*\n{v}"), 2000)}))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(&m.footer, 3000)}]
    }));
    let text = if m.summary.is_empty() {
        m.title.clone()
    } else {
        format!("{}: {}", m.title, m.summary)
    };
    json!({"text": truncate(&text, 3000), "blocks": blocks})
}

/// Discord: `{content, embeds: [{title, description, fields, timestamp, footer}]}` within
/// Discord's limits: content 2000, title 256, description 4096, 25 fields (name 256, value
/// 1024), footer 2048, and 6000 characters across the embed.
fn discord(m: &Message) -> Value {
    let title = truncate(&m.title, 256);
    let description = truncate(&m.summary, 4096);
    let footer = truncate(&m.footer, 2048);
    let mut budget = 6000usize.saturating_sub(
        title.chars().count() + description.chars().count() + footer.chars().count(),
    );
    let mut fields = Vec::new();
    for (k, v) in m.fields.iter().take(25) {
        let name = truncate(k, 256);
        let value = truncate(if v.is_empty() { "-" } else { v }, 1024);
        let size = name.chars().count() + value.chars().count();
        if size > budget {
            break;
        }
        budget -= size;
        fields.push(json!({"name": name, "value": value, "inline": true}));
    }
    json!({
        "content": truncate(&m.title, 2000),
        "embeds": [{
            "title": title,
            "description": description,
            "fields": fields,
            "timestamp": m.timestamp,
            "footer": {"text": footer},
        }]
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::endpoint::Sealed;

    fn view<'a>(name: &'a str, data: &'a str) -> EventView<'a> {
        EventView {
            id: "evt_1",
            name,
            timestamp: "2026-11-23T10:00:00.000Z",
            data,
        }
    }

    #[test]
    fn a_shown_request_names_what_is_secret_or_made_per_attempt() {
        let mut settings = EndpointSettings::new(
            "orders".into(),
            "https://example.com/hook".parse().expect("url"),
            Vec::new(),
        );
        settings.headers = [
            ("x-env".to_owned(), HeaderSetting::Plain("test".into())),
            (
                "x-api-key".to_owned(),
                HeaderSetting::Sealed(Sealed("opaque".into())),
            ),
            ("authorization".to_owned(), HeaderSetting::Plain("k".into())),
        ]
        .into();
        let plain = shown_request(&settings, view("order.paid", r#"{"n":1}"#));
        let names: Vec<_> = plain
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert!(names.contains(&("x-env", "test")));
        assert!(names.contains(&("x-api-key", "(sealed)")));
        assert!(
            names.contains(&("authorization", "k")),
            "its own header, no auth"
        );
        assert_eq!(
            names.last(),
            Some(&("webhook-signature", "(signed per attempt)"))
        );
        assert_eq!(
            plain.body,
            render(Format::Json, view("order.paid", r#"{"n":1}"#))
        );
        // With auth, the endpoint's own authorization header gives way, as it does when sent.
        settings.auth = Some(Sealed("opaque".into()));
        let with_auth = shown_request(&settings, view("order.paid", "{}"));
        let auth: Vec<_> = with_auth
            .headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .collect();
        assert_eq!(
            auth,
            [&(
                "authorization".to_owned(),
                "(from the endpoint's auth)".to_owned()
            )]
        );
    }

    #[test]
    fn json_keeps_data_as_published() {
        let body = render(Format::Json, view("a.b", r#"{"x": [1, 2]}"#));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"id": "evt_1", "event": "a.b", "timestamp": "2026-11-23T10:00:00.000Z", "data": {"x": [1, 2]}})
        );
    }

    #[test]
    fn cloudevents_carry_the_event_as_attributes_in_either_mode() {
        let data = r#"{"x": [1, 2]}"#;
        let structured: Value =
            serde_json::from_str(&render(Format::CloudEvents, view("a.b", data))).unwrap();
        assert_eq!(
            structured,
            json!({"specversion": "1.0", "id": "evt_1", "source": "/v1/events", "type": "a.b",
                   "time": "2026-11-23T10:00:00.000Z", "datacontenttype": "application/json",
                   "data": {"x": [1, 2]}})
        );
        let headers = format_headers(Format::CloudEvents, view("a.b", data));
        assert_eq!(headers[0].0, "content-type");
        assert!(headers[0].1.starts_with("application/cloudevents+json"));

        assert_eq!(render(Format::CloudEventsBinary, view("a.b", data)), data);
        let binary: HashMap<_, _> = format_headers(Format::CloudEventsBinary, view("a.b", data))
            .into_iter()
            .collect();
        assert_eq!(binary["content-type"], "application/json");
        assert_eq!(binary["ce-specversion"], "1.0");
        assert_eq!(binary["ce-id"], "evt_1");
        assert_eq!(binary["ce-source"], CLOUDEVENTS_SOURCE);
        assert_eq!(binary["ce-type"], "a.b");
        assert_eq!(binary["ce-time"], "2026-11-23T10:00:00.000Z");
    }

    #[test]
    fn truncation_never_splits_a_character() {
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("日本語のテキスト", 4), "日本語…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("🎉🎉🎉", 2).chars().count(), 2);
    }

    #[test]
    fn each_family_reads_as_a_sentence() {
        let cases = [
            (
                "post.created",
                r#"{"title":"Dark mode","body":"Please add it","author":"ada"}"#,
                "New post: Dark mode",
                "Please add it",
            ),
            (
                "post.status_changed",
                r#"{"title":"Dark mode","oldStatus":"open","status":"planned"}"#,
                "Status changed: Dark mode",
                "open → planned",
            ),
            (
                "comment.created",
                r#"{"postTitle":"Dark mode","body":"+1 from me"}"#,
                "New comment on Dark mode",
                "+1 from me",
            ),
            (
                "vote.created",
                r#"{"postTitle":"Dark mode","votes":42}"#,
                "Vote on Dark mode",
                "created · 42 votes",
            ),
            (
                "project.created",
                r#"{"name":"Apollo","description":"Moon"}"#,
                "Project created: Apollo",
                "Moon",
            ),
            (
                "prd.published",
                r#"{"title":"Checkout v2","summary":"One page"}"#,
                "PRD published: Checkout v2",
                "One page",
            ),
            (
                "trace.failed",
                r#"{"name":"agent-run","error":"timeout","durationMs":1200}"#,
                "Trace failed: agent-run",
                "timeout",
            ),
            (
                "billing.paid",
                r#"{"message":"Invoice 7 paid","amount":12}"#,
                "billing.paid",
                "Invoice 7 paid",
            ),
        ];
        for (name, data, title, summary) in cases {
            let m = message(view(name, data));
            assert_eq!(m.title, title, "{name}");
            assert_eq!(m.summary, summary, "{name}");
        }
        let trace = message(view("trace.failed", r#"{"name":"x","durationMs":1200}"#));
        assert_eq!(
            trace.fields,
            vec![("durationMs".to_owned(), "1200".to_owned())]
        );
    }

    #[test]
    fn slack_and_discord_bodies_stay_within_limits() {
        let long = "ü".repeat(10_000);
        let mut data = Map::new();
        data.insert("title".into(), Value::String(long.clone()));
        data.insert("body".into(), Value::String(long.clone()));
        for i in 0..600 {
            data.insert(format!("field{i}"), Value::String(long.clone()));
        }
        let data = Value::Object(data).to_string();
        let slack: Value =
            serde_json::from_str(&render(Format::Slack, view("post.created", &data))).unwrap();
        let blocks = slack["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
        assert!(blocks[1]["text"]["text"].as_str().unwrap().chars().count() <= 3000);
        assert!(slack["text"].as_str().unwrap().chars().count() <= 3000);
        for b in blocks {
            for f in b["fields"].as_array().into_iter().flatten() {
                assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
            }
            assert!(b["fields"].as_array().is_none_or(|f| f.len() <= 10));
        }
        let discord: Value =
            serde_json::from_str(&render(Format::Discord, view("post.created", &data))).unwrap();
        assert!(discord["content"].as_str().unwrap().chars().count() <= 2000);
        let embed = &discord["embeds"][0];
        let count = |v: &Value| v.as_str().unwrap().chars().count();
        assert!(count(&embed["title"]) <= 256);
        assert!(count(&embed["description"]) <= 4096);
        let fields = embed["fields"].as_array().unwrap();
        assert!(fields.len() <= 25);
        let total = count(&embed["title"])
            + count(&embed["description"])
            + count(&embed["footer"]["text"])
            + fields
                .iter()
                .map(|f| count(&f["name"]) + count(&f["value"]))
                .sum::<usize>();
        assert!(total <= 6000, "{total}");
    }
}
