//! The schemas' building blocks: fields, bounds and patterns the server enforces.

use crate::model::duration;
use crate::model::endpoint::RESERVED_HEADERS;
pub(super) use crate::model::ids::{
    DeliveryId, EndpointId, EventId, IncomingId, KeyId, PortalLinkId, ScheduleId, TenantId,
};
use serde_json::{Map, Value, json};

/// A plan's feature switches; `input`: a PATCH body's part (every field optional).
pub(super) fn features(input: bool) -> Value {
    let names = ["incoming", "integrations", "schedules"];
    let fields: Vec<(&str, Value)> = names
        .iter()
        .map(|n| (*n, json!({"type": "boolean"})))
        .collect();
    object(&fields, if input { &[] } else { &names }, input)
}

/// A plan's limits (`null`: none); `input`: a PATCH body's part (every field optional).
pub(super) fn limits(input: bool) -> Value {
    let names = ["endpoints", "eventsPerDay"];
    let count = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    let fields: Vec<(&str, Value)> = names
        .iter()
        .map(|n| (*n, nullable(count.clone())))
        .collect();
    object(&fields, if input { &[] } else { &names }, input)
}

/// A tenant's usage of what its plan limits.
pub(super) fn usage() -> Value {
    object(
        &[("endpoints", integer(0)), ("eventsToday", integer(0))],
        &["endpoints", "eventsToday"],
        false,
    )
}

pub(super) fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Whether `schema` already takes `null`.
pub(super) fn accepts_null(schema: &Value) -> bool {
    schema["type"] == "null"
        || schema["anyOf"]
            .as_array()
            .is_some_and(|options| options.iter().any(|o| o["type"] == "null"))
}

pub(super) fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

pub(super) fn string() -> Value {
    json!({"type": "string"})
}

pub(super) fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// A regular expression for the decimal numbers 1..=`most` (no leading zero), or 0..=`most`
/// with `zero`.
pub(super) fn numbers_up_to(most: u64, zero: bool) -> String {
    let digits: Vec<u32> = most
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let width = digits.len();
    let mut options = Vec::new();
    if zero {
        options.push("0".to_owned());
    }
    // Shorter numbers: any.
    if width > 1 {
        options.push(format!("[1-9][0-9]{{0,{}}}", width - 2));
    }
    // As long as `most`: its first i digits, then a smaller one, then any.
    for i in 0..width {
        let low = u32::from(i == 0);
        if digits[i] > low {
            let prefix: String = digits[..i].iter().map(|d| d.to_string()).collect();
            let rest = width - i - 1;
            options.push(format!("{prefix}[{low}-{}][0-9]{{{rest}}}", digits[i] - 1));
        }
    }
    if most > 0 {
        options.push(most.to_string());
    }
    options.join("|")
}

/// A duration as hookd reads one, digits and a unit (`250ms`, `10s`, `5m`, `2h`, `1d`), from
/// zero (or from one unit, `positive`) up to `most` (`duration::parse` takes at most 366d).
pub(super) fn duration_up_to(most: std::time::Duration, positive: bool) -> Value {
    let most_ms = u64::try_from(most.as_millis()).unwrap_or(u64::MAX);
    let options: Vec<String> = duration::UNITS
        .iter()
        .map(|(unit, ms)| format!("(?:{}){unit}", numbers_up_to(most_ms / ms, !positive)))
        .collect();
    json!({"type": "string", "pattern": format!("^0*(?:{})$", options.join("|"))})
}

/// Text without control characters (Unicode's Cc, as Rust's `char::is_control`).
pub(super) const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// One base64 character; the last character of a 1-byte and of a 2-byte tail (whose spare
/// bits are zero, as the decoder requires).
pub(super) const B64: &str = "[A-Za-z0-9+/]";
pub(super) const B64_END_1: &str = "[AQgw]";
pub(super) const B64_END_2: &str = "[AEIMQUYcgkosw048]";

/// A signing secret as a scheme takes one (`signing::check_secret`): `standard` is `whsec_`
/// and the base64 (padded or not) of 24 to 64 bytes, `ed25519` `whsk_` and the padded base64
/// of a 32-byte seed, `github` 8 to 256 characters with no control character.
pub(super) fn secret_text(scheme: &str) -> Value {
    let tail = format!("(?:{B64}{B64_END_1}(?:==)?|{B64}{{2}}{B64_END_2}=?)");
    let tail_1 = format!("(?:{B64}{B64_END_1}(?:==)?)");
    match scheme {
        "standard" => json!({"type": "string", "pattern": format!(
            "^whsec_(?:(?:{B64}{{4}}){{8,20}}{tail}?|(?:{B64}{{4}}){{21}}{tail_1}?)$"
        )}),
        "ed25519" => json!({"type": "string", "pattern": format!(
            "^whsk_(?:{B64}{{4}}){{10}}{B64}{{2}}{B64_END_2}=$"
        )}),
        _ => json!({
            "type": "string", "minLength": 8, "maxLength": 256,
            "pattern": NO_CONTROL
        }),
    }
}

/// `secret` in the form `schemeField` names (`standard` when it is left out or null).
pub(super) fn secret_by_scheme(scheme_field: &str, schemes: &[&str]) -> Value {
    let rules: Vec<Value> = schemes
        .iter()
        .map(|scheme| {
            let named = match *scheme {
                "standard" => json!({"enum": ["standard", null]}),
                other => json!({"const": other}),
            };
            let condition = match *scheme {
                "standard" => json!({"properties": {scheme_field: named}}),
                _ => json!({"properties": {scheme_field: named}, "required": [scheme_field]}),
            };
            json!({"if": condition, "then": {"properties": {"secret": nullable(secret_text(scheme))}}})
        })
        .collect();
    Value::Array(rules)
}

pub(super) fn integer(minimum: i64) -> Value {
    json!({"type": "integer", "minimum": minimum})
}

/// An id: its prefix and a number from 1 (hookd's ids fit in 63 bits).
pub(super) fn id(prefix: &str) -> Value {
    json!({"type": "string", "pattern": format!("^{prefix}[1-9][0-9]{{0,17}}$")})
}

/// A display name as hookd takes one: 1–200 characters, not only spaces.
pub(super) fn name_text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"})
}

/// A key's role.
pub(super) fn roles() -> Value {
    one_of(&["admin", "publisher", "viewer"])
}

/// A key to create: its name and role.
pub(super) fn key_in() -> Value {
    object(
        &[("name", name_text()), ("role", roles())],
        &["name", "role"],
        true,
    )
}

/// An event to publish (alone or in a batch).
pub(super) fn event_in() -> Value {
    object(
        &[
            ("type", event_name()),
            // Any JSON object (typed as one by generated clients, not as an empty one).
            (
                "data",
                json!({"type": "object", "additionalProperties": true}),
            ),
            (
                "idempotencyKey",
                json!({"type": "string", "minLength": 1, "maxLength": 255}),
            ),
            ("channels", channels()),
        ],
        &["type", "data"],
        true,
    )
}

/// Channel names: at most 10, each 1–128 of `[A-Za-z0-9_.:-]`.
pub(super) fn channels() -> Value {
    json!({"type": "array", "maxItems": 10, "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}})
}

/// An event name: `[a-z0-9_]+` parts joined by dots.
pub(super) fn event_name() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9_]+(\\.[a-z0-9_]+)*$", "maxLength": 200})
}

/// An event type pattern: `*`, a name, or a name and `.*`.
pub(super) fn event_pattern() -> Value {
    json!({"type": "string", "pattern": "^(\\*|[a-z0-9_]+(\\.[a-z0-9_]+)*(\\.\\*)?)$", "maxLength": 202})
}

/// A URL hookd sends to: `http(s)://`, at most 2048 characters, no user or password.
pub(super) fn url_text() -> Value {
    json!({"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://[^/?#@]+([/?#][^@]*)?$"})
}

/// An endpoint's URL: an HTTP URL, or a broker's address for a broker destination.
pub(super) fn endpoint_url_text() -> Value {
    json!({
        "type": "string", "format": "uri", "maxLength": 2048,
        "pattern": "^(https?://[^/?#@]+([/?#][^@]*)?|(rediss?|nats|tls)://[^/?#@]+/?|kafka(\\+ssl)?://[^/?#@\\[]+/?|amqps?://[^/?#@]+(/[^/?#@]*)?)$",
        "description": "an http(s):// URL for an 'http' destination; the broker's address for a broker: redis://host:port (rediss:// with TLS) for 'redis', nats://host:port (tls:// with TLS) for 'nats', amqp://host:port/vhost (amqps:// with TLS) for 'amqp', kafka://host:port (kafka+ssl:// with TLS; a name or an IPv4 address), a bootstrap broker, for 'kafka'",
    })
}

/// Where an endpoint's deliveries go (`http`: the default).
pub(super) fn destination_schema() -> Value {
    json!({"oneOf": [
        object(&[("type", json!({"const": "http"}))], &["type"], true),
        object(&[
            ("type", json!({"const": "redis"})),
            ("stream", json!({"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$"})),
            ("maxLen", nullable(json!({"type": "integer", "minimum": 1}))),
        ], &["type", "stream"], true),
        object(&[
            ("type", json!({"const": "nats"})),
            ("subject", json!({"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f.*>]+(\\.[^\\s\\u0000-\\u001f\\u007f-\\u009f.*>]+)*$"})),
        ], &["type", "subject"], true),
        object(&[
            ("type", json!({"const": "amqp"})),
            ("exchange", json!({"type": "string", "maxLength": 127, "pattern": "^[A-Za-z0-9._:-]*$", "description": "\"\": the default exchange"})),
            ("routingKey", nullable(json!({"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$", "description": "null: each event's type"}))),
        ], &["type", "exchange"], true),
        object(&[
            ("type", json!({"const": "kafka"})),
            ("topic", json!({"type": "string", "minLength": 1, "maxLength": 249, "pattern": "^([A-Za-z0-9_-][A-Za-z0-9._-]*|\\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\\.\\.[A-Za-z0-9._-]+)$"})),
            ("key", nullable(json!({"type": "string", "maxLength": 256, "pattern": "^(eventId|/[^\\u0000-\\u001f\\u007f-\\u009f]*)$", "description": "each record's key: 'eventId' (the default), or a JSON Pointer into the delivered body ('/data/customerId'); a record has no key when the body has nothing there"}))),
            ("sasl", nullable(json!({"enum": ["plain", "scram-sha-256", "scram-sha-512"], "description": "the SASL mechanism of the login the endpoint's auth gives (default scram-sha-512)"}))),
        ], &["type", "topic"], true),
    ], "description": "'http' POSTs to the url; 'redis' XADDs each delivery to a stream on the server at the url; 'nats' publishes it to a JetStream subject on the server at the url; 'amqp' publishes it to an exchange on the AMQP 0.9.1 server (RabbitMQ) at the url, with publisher confirms; 'kafka' produces a record to a topic of the cluster at the url, with acks=all (broker destinations: format json or cloudevents, auth basic, no clientCertificate)"})
}

/// A header name as hookd takes one: a lowercase HTTP token of at most 100 characters.
pub(super) fn header_name() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$"})
}

/// The header names an endpoint's `headers` may not use (`signature`: that
/// `signatureHeaderName` may not use), as `EndpointSettings::check` refuses them.
pub(super) fn hookd_headers(signature: bool) -> Value {
    let mut names: Vec<&str> = if signature {
        RESERVED_HEADERS[..11].to_vec()
    } else {
        RESERVED_HEADERS.to_vec()
    };
    names.push("content-type");
    if !signature {
        names.push("x-hub-signature-256");
    }
    json!(names)
}

pub(super) fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

pub(super) fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// An object schema; `required` lists the fields that are always present (responses) or must
/// be given (requests). Request bodies refuse unknown fields (`closed`).
pub(super) fn object(fields: &[(&str, Value)], required: &[&str], closed: bool) -> Value {
    // In a request, an optional field may also be `null`, which means the same as leaving it
    // out (or, on PATCH, removing the setting).
    let properties: Map<String, Value> = fields
        .iter()
        .map(|(name, schema)| {
            let optional = closed && !required.contains(name);
            let schema = match optional && !accepts_null(schema) {
                true => nullable(schema.clone()),
                false => schema.clone(),
            };
            ((*name).to_owned(), schema)
        })
        .collect();
    let mut schema = json!({"type": "object", "properties": properties, "required": required});
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

/// A page of `item`s.
pub(super) fn page(item: &str) -> Value {
    object(
        &[
            (
                "content",
                json!({"type": "array", "items": reference(item)}),
            ),
            ("totalElements", integer(0)),
            ("totalPages", integer(0)),
            ("size", integer(1)),
            ("number", integer(0)),
        ],
        &["content", "totalElements", "totalPages", "size", "number"],
        false,
    )
}

pub(super) fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// A query parameter the operation cannot do without.
pub(super) fn required_query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": true, "schema": schema, "description": description})
}

/// A W3C `traceparent` as the API answers it: version 00.
pub(super) fn traceparent() -> Value {
    json!({"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"})
}

/// A W3C `traceparent` as a publish takes it: version 00, or a later one (not `ff`), which may
/// have more fields after the four (read as version 00); empty is as good as none (HTTP trims
/// the blanks around a header's value).
fn traceparent_in() -> Value {
    json!({"type": "string", "pattern": "^[ \\t]*(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}|(0[1-9a-f]|[1-9a-e][0-9a-f]|f[0-9a-e])-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[ -~]*)?)?[ \\t]*$"})
}

/// A trace id: 32 lower-case hex digits.
pub(super) fn trace_id() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{32}$"})
}

/// The W3C trace context headers a publish takes: the event keeps them, and each attempt
/// sends the receiver a `traceparent` of the event's trace with a span of its own.
pub(super) fn trace_headers() -> Vec<Value> {
    vec![
        json!({"name": "traceparent", "in": "header", "required": false, "schema": traceparent_in(),
               "description": "The W3C trace context of the publishing span; a malformed one is refused (422), one with an all-zero id is taken as none"}),
        json!({"name": "tracestate", "in": "header", "required": false,
               "schema": {"type": "string"},
               "description": "Vendors' trace state, kept with a traceparent; never refused: dropped when it is not key=value members of printable ASCII, or over 32 members or 512 characters"}),
    ]
}

pub(super) fn paging() -> Vec<Value> {
    vec![
        query(
            "page",
            json!({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
            "0-based page number",
        ),
        query(
            "size",
            json!({"type": "integer", "minimum": 1, "maximum": 100}),
            "items per page (1–100)",
        ),
    ]
}

/// An incoming webhook's action: what a call to it does. `eventType` (the type a call is
/// published as) belongs to `publish` alone.
pub(super) fn incoming_action(closed: bool) -> Value {
    if !closed {
        return object(
            &[
                ("type", one_of(&["publish", "store"])),
                ("eventType", string()),
            ],
            &["type"],
            false,
        );
    }
    json!({"oneOf": [
        object(
            &[("type", json!({"const": "publish"})), ("eventType", event_name())],
            &["type", "eventType"],
            true,
        ),
        object(
            &[("type", json!({"const": "store"})), ("eventType", json!({"type": "null"}))],
            &["type"],
            true,
        ),
    ]})
}

/// A payload filter: conditions that must all hold (`path` is `type` or a dot path under
/// `data`); what `value` holds depends on `op`.
pub(super) fn filter_schema() -> Value {
    let scalar = json!({"type": ["string", "number", "boolean", "null"]});
    let rules = [
        (vec!["eq", "ne"], scalar.clone()),
        (vec!["in", "nin"], json!({"type": "array", "items": scalar})),
        (vec!["exists"], json!({"type": "boolean"})),
        (vec!["prefix"], string()),
        (
            vec!["gt", "gte", "lt", "lte"],
            json!({"type": ["number", "string"]}),
        ),
    ];
    let conditions: Vec<Value> = rules
        .into_iter()
        .map(|(ops, value)| {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "maxLength": 256, "pattern": "^(type|data(\\.[A-Za-z0-9_-]+)+)$"},
                    "op": {"type": "string", "enum": ops},
                    "value": value,
                },
                "required": ["path", "op", "value"],
                "additionalProperties": false,
            })
        })
        .collect();
    json!({"type": "array", "maxItems": 32, "items": {"oneOf": conditions}})
}

/// An endpoint's `auth` (write-only): HTTP Basic, or OAuth2 client credentials. Texts are
/// 1 to `max` characters without control characters (`model::credentials`).
pub(super) fn auth_schema() -> Value {
    let text = |max: u32| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": NO_CONTROL});
    let mut username = text(256);
    // Nor a colon, which would end the name in HTTP Basic.
    username["pattern"] = json!(NO_CONTROL.replacen("[^", "[^:", 1));
    json!({"oneOf": [
        object(&[
            ("type", json!({"const": "basic"})),
            ("username", username),
            ("password", text(1024)),
        ], &["type", "username", "password"], true),
        object(&[
            ("type", json!({"const": "oauth2"})),
            ("tokenUrl", url_text()),
            ("clientId", text(256)),
            ("clientSecret", text(1024)),
            ("scope", text(1024)),
        ], &["type", "tokenUrl", "clientId", "clientSecret"], true),
    ]})
}

/// The endpoint settings that read back as they are written (`signatureHeaderName` is
/// nullable in a request, always present in an answer).
pub(super) fn endpoint_settings() -> [(&'static str, Value); 11] {
    [
        ("isActive", json!({"type": "boolean"})),
        (
            "signatureScheme",
            one_of(&["standard", "github", "ed25519"]),
        ),
        (
            "format",
            one_of(&[
                "json",
                "slack",
                "discord",
                "cloudevents",
                "cloudevents-binary",
            ]),
        ),
        (
            "headers",
            json!({
                "type": "object", "maxProperties": 30,
                "propertyNames": {"allOf": [header_name(), {"not": {"enum": hookd_headers(false)}}]},
                "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$"},
                "description": "sent with every delivery; not the headers hookd sets, nor the signature header; values at most 4096 bytes",
            }),
        ),
        (
            "retrySchedule",
            json!({"type": "array", "maxItems": 20, "items": duration_up_to(duration::LONGEST, false)}),
        ),
        (
            "disableAfter",
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
        ),
        (
            "timeoutMs",
            json!({"type": "integer", "minimum": 100, "maximum": 120_000}),
        ),
        (
            "rateLimit",
            nullable(json!({"type": "integer", "minimum": 1, "maximum": 100_000})),
        ),
        ("ordering", one_of(&["none", "fifo"])),
        ("filter", nullable(filter_schema())),
        // An endpoint's channels: at least one (null: every channel).
        (
            "channels",
            nullable(json!({"allOf": [channels(), {"minItems": 1}]})),
        ),
    ]
}

/// The endpoint settings a request may set (`create`: `name`, `url`, `events` required).
pub(super) fn endpoint_in(create: bool) -> Value {
    let mut fields = vec![
        ("name", name_text()),
        ("url", endpoint_url_text()),
        ("destination", destination_schema()),
        (
            "events",
            json!({"type": "array", "items": event_pattern(), "minItems": 1, "maxItems": 100}),
        ),
        (
            "signatureHeaderName",
            nullable(json!({"allOf": [header_name(), {"not": {"enum": hookd_headers(true)}}]})),
        ),
        ("auth", nullable(auth_schema())),
        (
            "clientCertificate",
            nullable(object(
                &[("certPem", string()), ("keyPem", string())],
                &["certPem", "keyPem"],
                true,
            )),
        ),
    ];
    fields.extend(endpoint_settings());
    if create {
        fields.push(("secret", string()));
    }
    let required: &[&str] = if create {
        &["name", "url", "events"]
    } else {
        &[]
    };
    let mut schema = object(&fields, required, true);
    if create {
        schema["allOf"] = secret_by_scheme("signatureScheme", &["standard", "github", "ed25519"]);
    }
    schema
}

pub(super) fn schedule_in(create: bool) -> Value {
    let fields = [
        (
            "scheduleType",
            one_of(&[
                "weekly_digest",
                "on_status_change",
                "custom_cron",
                "one_time",
            ]),
        ),
        ("cronExpression", string()),
        (
            "triggerStatus",
            json!({"type": "string", "minLength": 1, "maxLength": 100}),
        ),
        ("scheduledAt", time()),
        (
            "timezone",
            json!({"type": "string", "description": "an IANA zone, such as Europe/Berlin"}),
        ),
        (
            "format",
            one_of(&["json", "markdown", "html", "pdf", "docx"]),
        ),
        ("deliveryMethod", one_of(&["webhook", "email"])),
        ("endpointId", id(EndpointId::PREFIX)),
        ("recipients", recipients()),
        (
            "eventTypes",
            json!({"type": "array", "items": event_pattern()}),
        ),
        ("includeChangelog", json!({"type": "boolean"})),
        ("customSubject", json!({"type": "string", "maxLength": 200})),
        (
            "customMessage",
            json!({"type": "string", "maxLength": 5000}),
        ),
    ];
    let required: &[&str] = if create {
        &["scheduleType", "timezone", "format", "deliveryMethod"]
    } else {
        &[]
    };
    let mut fields = fields.to_vec();
    if create {
        fields.push(("webhookUrl", url_text()));
    }
    let mut schema = object(&fields, required, true);
    if create {
        schema["allOf"] = schedule_rules();
    }
    schema
}

/// Email recipients: 1 to 50 addresses.
pub(super) fn recipients() -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string", "format": "email"}})
}

/// What a new schedule's fields require of each other: the field its type needs, and the
/// target its delivery method needs (a webhook goes to `endpointId` or to a new endpoint for
/// `webhookUrl`, an email to `recipients`). A PATCH is held to the same rules after it is
/// merged with the stored schedule.
pub(super) fn schedule_rules() -> Value {
    let absent = |fields: &[&str]| -> Value {
        let none: Map<String, Value> = fields
            .iter()
            .map(|f| ((*f).to_owned(), json!({"type": "null"})))
            .collect();
        json!({"properties": none})
    };
    let when = |field: &str, value: &str, then: Value| json!({"if": {"properties": {field: {"const": value}}, "required": [field]}, "then": then});
    let needs =
        |field: &str, schema: Value| json!({"required": [field], "properties": {field: schema}});
    json!([
        when(
            "scheduleType",
            "custom_cron",
            needs("cronExpression", string())
        ),
        when("scheduleType", "one_time", needs("scheduledAt", time())),
        when(
            "scheduleType",
            "on_status_change",
            needs("triggerStatus", json!({"type": "string"})),
        ),
        when(
            "deliveryMethod",
            "webhook",
            json!({"allOf": [
                absent(&["recipients"]),
                {"oneOf": [
                    json!({"allOf": [needs("endpointId", string()), absent(&["webhookUrl"])]}),
                    json!({"allOf": [needs("webhookUrl", string()), absent(&["endpointId"])]}),
                ]},
            ]}),
        ),
        when(
            "deliveryMethod",
            "email",
            json!({"allOf": [needs("recipients", recipients()), absent(&["endpointId", "webhookUrl"])]}),
        ),
    ])
}
