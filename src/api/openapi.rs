//! The OpenAPI 3.1 document of the control API (`GET /openapi.json`, `docs/openapi.json`): every
//! route of the router, with its parameters, request and response bodies, every status it
//! answers and the role it needs. Kept by hand next to the routes; a test fails when a route
//! exists without an entry here, or an entry without a route, and Schemathesis checks the
//! live server against it in CI.

use crate::model::duration;
use crate::model::endpoint::RESERVED_HEADERS;
use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No token.
    Public,
    /// The operator token.
    Operator,
    /// A tenant key with at least this role.
    Tenant(&'static str),
}

/// One operation: its route, what it takes and what it answers.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    access: Access,
    /// Query parameters.
    query: Vec<Value>,
    /// The JSON request body's schema, and whether it may be left out (action routes).
    body: Option<(Value, bool)>,
    /// Success statuses with their body schemas (`None`: no body).
    ok: Vec<(u16, Option<Value>)>,
    /// Error statuses beyond those the access and the body imply.
    errors: &'static [u16],
}

/// A plan's feature switches; `input`: a PATCH body's part (every field optional).
fn features(input: bool) -> Value {
    let names = ["incoming", "integrations", "schedules"];
    let fields: Vec<(&str, Value)> = names
        .iter()
        .map(|n| (*n, json!({"type": "boolean"})))
        .collect();
    object(&fields, if input { &[] } else { &names }, input)
}

/// A plan's limits (`null`: none); `input`: a PATCH body's part (every field optional).
fn limits(input: bool) -> Value {
    let names = ["endpoints", "eventsPerDay"];
    let count = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    let fields: Vec<(&str, Value)> = names
        .iter()
        .map(|n| (*n, nullable(count.clone())))
        .collect();
    object(&fields, if input { &[] } else { &names }, input)
}

/// A tenant's usage of what its plan limits.
fn usage() -> Value {
    object(
        &[("endpoints", integer(0)), ("eventsToday", integer(0))],
        &["endpoints", "eventsToday"],
        false,
    )
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Whether `schema` already takes `null`.
fn accepts_null(schema: &Value) -> bool {
    schema["type"] == "null"
        || schema["anyOf"]
            .as_array()
            .is_some_and(|options| options.iter().any(|o| o["type"] == "null"))
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// A regular expression for the decimal numbers 1..=`most` (no leading zero), or 0..=`most`
/// with `zero`.
fn numbers_up_to(most: u64, zero: bool) -> String {
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
fn duration_up_to(most: std::time::Duration, positive: bool) -> Value {
    let most_ms = u64::try_from(most.as_millis()).unwrap_or(u64::MAX);
    let options: Vec<String> = duration::UNITS
        .iter()
        .map(|(unit, ms)| format!("(?:{}){unit}", numbers_up_to(most_ms / ms, !positive)))
        .collect();
    json!({"type": "string", "pattern": format!("^0*(?:{})$", options.join("|"))})
}

/// Text without control characters (Unicode's Cc, as Rust's `char::is_control`).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// One base64 character; the last character of a 1-byte and of a 2-byte tail (whose spare
/// bits are zero, as the decoder requires).
const B64: &str = "[A-Za-z0-9+/]";
const B64_END_1: &str = "[AQgw]";
const B64_END_2: &str = "[AEIMQUYcgkosw048]";

/// A signing secret as a scheme takes one (`signing::check_secret`): `standard` is `whsec_`
/// and the base64 (padded or not) of 24 to 64 bytes, `ed25519` `whsk_` and the padded base64
/// of a 32-byte seed, `github` 8 to 256 characters with no control character.
fn secret_text(scheme: &str) -> Value {
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
fn secret_by_scheme(scheme_field: &str, schemes: &[&str]) -> Value {
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

fn integer(minimum: i64) -> Value {
    json!({"type": "integer", "minimum": minimum})
}

/// An id: its prefix and a number from 1 (hookd's ids fit in 63 bits).
fn id(prefix: &str) -> Value {
    json!({"type": "string", "pattern": format!("^{prefix}_[1-9][0-9]{{0,17}}$")})
}

/// A display name as hookd takes one: 1–200 characters, not only spaces.
fn name_text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"})
}

/// A key's role.
fn roles() -> Value {
    one_of(&["admin", "publisher", "viewer"])
}

/// A key to create: its name and role.
fn key_in() -> Value {
    object(
        &[("name", name_text()), ("role", roles())],
        &["name", "role"],
        true,
    )
}

/// An event to publish (alone or in a batch).
fn event_in() -> Value {
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
fn channels() -> Value {
    json!({"type": "array", "maxItems": 10, "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}})
}

/// An event name: `[a-z0-9_]+` parts joined by dots.
fn event_name() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9_]+(\\.[a-z0-9_]+)*$", "maxLength": 200})
}

/// An event type pattern: `*`, a name, or a name and `.*`.
fn event_pattern() -> Value {
    json!({"type": "string", "pattern": "^(\\*|[a-z0-9_]+(\\.[a-z0-9_]+)*(\\.\\*)?)$", "maxLength": 202})
}

/// A URL hookd sends to: `http(s)://`, at most 2048 characters, no user or password.
fn url_text() -> Value {
    json!({"type": "string", "format": "uri", "maxLength": 2048, "pattern": "^https?://[^/?#@]+([/?#][^@]*)?$"})
}

/// A header name as hookd takes one: a lowercase HTTP token of at most 100 characters.
fn header_name() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9!#$%&'*+.^_`|~-]{1,100}$"})
}

/// The header names an endpoint's `headers` may not use (`signature`: that
/// `signatureHeaderName` may not use), as `EndpointSettings::check` refuses them.
fn hookd_headers(signature: bool) -> Value {
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

fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// An object schema; `required` lists the fields that are always present (responses) or must
/// be given (requests). Request bodies refuse unknown fields (`closed`).
fn object(fields: &[(&str, Value)], required: &[&str], closed: bool) -> Value {
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
fn page(item: &str) -> Value {
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

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn paging() -> Vec<Value> {
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
fn incoming_action(closed: bool) -> Value {
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
fn filter_schema() -> Value {
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
fn auth_schema() -> Value {
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
fn endpoint_settings() -> [(&'static str, Value); 11] {
    [
        ("isActive", json!({"type": "boolean"})),
        (
            "signatureScheme",
            one_of(&["standard", "github", "ed25519"]),
        ),
        ("format", one_of(&["json", "slack", "discord"])),
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
fn endpoint_in(create: bool) -> Value {
    let mut fields = vec![
        ("name", name_text()),
        ("url", url_text()),
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

fn schedule_in(create: bool) -> Value {
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
        ("endpointId", id("ep")),
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
fn recipients() -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string", "format": "email"}})
}

/// What a new schedule's fields require of each other: the field its type needs, and the
/// target its delivery method needs (a webhook goes to `endpointId` or to a new endpoint for
/// `webhookUrl`, an email to `recipients`). A PATCH is held to the same rules after it is
/// merged with the stored schedule.
fn schedule_rules() -> Value {
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

/// The schemas the operations share.
fn schemas() -> Value {
    let mut endpoint_fields = vec![
        ("id", id("ep")),
        ("name", string()),
        ("url", string()),
        ("events", strings()),
        ("signatureHeaderName", string()),
        ("authConfigured", json!({"type": "boolean"})),
        ("clientCertificateConfigured", json!({"type": "boolean"})),
        ("createdAt", time()),
        ("updatedAt", time()),
        ("disabledAt", nullable(time())),
        ("disabledReason", nullable(string())),
        ("secret", string()),
        (
            "publicKey",
            json!({"type": "string", "pattern": "^whpk_[A-Za-z0-9+/=]+$"}),
        ),
    ];
    endpoint_fields.extend(endpoint_settings());
    let endpoint = object(
        &endpoint_fields,
        &[
            "id",
            "name",
            "url",
            "events",
            "isActive",
            "signatureScheme",
            "format",
            "retrySchedule",
            "disableAfter",
            "timeoutMs",
            "ordering",
            "createdAt",
            "updatedAt",
        ],
        false,
    );
    let delivery = object(
        &[
            ("id", id("dlv")),
            ("eventId", id("evt")),
            ("eventType", string()),
            ("endpointId", id("ep")),
            ("status", one_of(&["pending", "succeeded", "failed"])),
            ("attemptCount", integer(0)),
            ("nextAttemptAt", nullable(time())),
            ("createdAt", time()),
        ],
        &["id", "eventId", "endpointId", "status", "createdAt"],
        false,
    );
    let attempt = object(
        &[
            ("number", integer(1)),
            ("at", time()),
            ("responseCode", nullable(integer(100))),
            ("latencyMs", nullable(integer(0))),
            ("error", nullable(string())),
            ("errorMessage", nullable(string())),
            ("responseBody", nullable(string())),
        ],
        &["number", "at"],
        false,
    );
    let mut delivery_detail = delivery.clone();
    delivery_detail["properties"]["attempts"] =
        json!({"type": "array", "items": reference("Attempt")});
    let event = object(
        &[
            ("id", id("evt")),
            ("type", string()),
            ("data", json!({})),
            ("channels", channels()),
            ("createdAt", time()),
            ("deliveries", integer(0)),
        ],
        &["id", "type", "createdAt"],
        false,
    );
    let event_detail = object(
        &[
            ("id", id("evt")),
            ("type", string()),
            ("data", json!({})),
            ("channels", channels()),
            ("createdAt", time()),
            ("deliveryCount", integer(0)),
            (
                "deliveries",
                json!({"type": "array", "items": reference("Delivery")}),
            ),
        ],
        &["id", "type", "createdAt", "deliveries"],
        false,
    );
    let published = object(
        &[
            ("id", id("evt")),
            ("type", string()),
            ("createdAt", time()),
            ("deliveries", integer(0)),
        ],
        &["id", "type", "createdAt", "deliveries"],
        false,
    );
    let incoming = object(
        &[
            ("id", id("in")),
            ("name", string()),
            ("action", incoming_action(false)),
            (
                "verify",
                nullable(object(&[("scheme", string())], &["scheme"], false)),
            ),
            ("createdAt", time()),
            ("token", string()),
            ("url", string()),
        ],
        &["id", "name", "action", "createdAt"],
        false,
    );
    let incoming_request = object(
        &[
            ("id", string()),
            ("receivedAt", time()),
            ("contentType", nullable(string())),
            (
                "headers",
                json!({"type": "object", "additionalProperties": {"type": "string"}}),
            ),
            ("body", nullable(string())),
            ("status", one_of(&["accepted", "rejected"])),
            ("error", nullable(string())),
            ("eventId", nullable(string())),
        ],
        &["id", "receivedAt", "status"],
        false,
    );
    let schedule = object(
        &[
            ("id", id("sch")),
            ("scheduleType", string()),
            ("cronExpression", nullable(string())),
            ("triggerStatus", nullable(string())),
            ("scheduledAt", nullable(time())),
            ("timezone", string()),
            ("format", string()),
            ("deliveryMethod", one_of(&["webhook", "email"])),
            ("endpointId", nullable(string())),
            ("webhookUrl", nullable(string())),
            ("recipients", nullable(strings())),
            ("eventTypes", nullable(strings())),
            ("includeChangelog", json!({"type": "boolean"})),
            ("customSubject", nullable(string())),
            ("customMessage", nullable(string())),
            ("status", string()),
            ("nextRunAt", nullable(time())),
            ("lastRunAt", nullable(time())),
            ("createdAt", time()),
            ("updatedAt", time()),
            ("secret", string()),
        ],
        &[
            "id",
            "scheduleType",
            "timezone",
            "format",
            "status",
            "createdAt",
        ],
        false,
    );
    let run = object(
        &[
            ("id", string()),
            ("status", string()),
            ("startedAt", time()),
            ("finishedAt", nullable(time())),
            ("periodStart", time()),
            ("periodEnd", time()),
            ("eventCount", integer(0)),
            ("deliveryId", nullable(string())),
            ("error", nullable(string())),
            ("emailResult", nullable(string())),
        ],
        &["id", "status", "startedAt"],
        false,
    );
    let integration = json!({"oneOf": [
        object(&[
            ("connected", json!({"const": true})),
            ("endpointId", id("ep")),
            ("url", string()),
            ("events", strings()),
            ("isActive", json!({"type": "boolean"})),
            ("connectedAt", time()),
        ], &["connected", "endpointId", "url", "events", "connectedAt"], false),
        object(&[("connected", json!({"const": false}))], &["connected"], false),
    ]});
    json!({
        "Error": object(&[("error", object(&[
            ("code", json!({"type": "string", "pattern": "^[a-z_]+$"})),
            ("message", string()),
        ], &["code", "message"], false))], &["error"], false),
        "Tenant": object(&[
            ("id", id("tnt")), ("name", string()), ("createdAt", time()),
            ("features", features(false)), ("limits", limits(false)),
            ("usage", usage()),
        ], &["id", "name", "createdAt", "features", "limits"], false),
        "Key": object(&[
            ("id", id("key")), ("name", string()),
            ("role", roles()),
            ("tenantId", id("tnt")), ("createdAt", time()), ("key", string()),
        ], &["id", "name", "role", "tenantId", "createdAt"], false),
        "EventType": object(&[
            ("name", string()), ("category", nullable(string())),
            ("description", nullable(string())),
        ], &["name"], false),
        "Endpoint": endpoint,
        "CreatedEndpoint": {"allOf": [
            reference("Endpoint"),
            {"type": "object", "properties": {"secret": string()}, "required": ["secret"]},
        ]},
        "Delivery": delivery,
        "DeliveryDetail": delivery_detail,
        "Attempt": attempt,
        "Event": event,
        "EventDetail": event_detail,
        "Published": published,
        "Incoming": incoming,
        "IncomingRequest": incoming_request,
        "Schedule": schedule,
        "Run": run,
        "Integration": integration,
        "PortalLink": object(&[
            ("id", id("prt")), ("role", one_of(&["admin", "viewer"])),
            ("createdAt", time()), ("expiresAt", time()),
            ("url", string()), ("token", string()),
        ], &["id", "role", "createdAt", "expiresAt"], false),
        "Result": object(&[("success", json!({"type": "boolean"})), ("message", string())],
            &["success", "message"], false),
        "Health": object(&[
            ("status", one_of(&["ok", "degraded"])), ("database", string()), ("version", string()),
        ], &["status"], false),
    })
}

/// Every operation of the API.
fn operations() -> Vec<Op> {
    let admin = Access::Tenant("admin");
    let publisher = Access::Tenant("publisher");
    let viewer = Access::Tenant("viewer");
    let empty = || json!({"type": "object", "additionalProperties": false});
    let named = |name: &str| Some(reference(name));
    let op = |method, path, id, summary, access| Op {
        method,
        path,
        id,
        summary,
        access,
        query: Vec::new(),
        body: None,
        ok: Vec::new(),
        errors: &[],
    };
    vec![
        Op {
            ok: vec![(303, None)],
            ..op(
                "get",
                "/",
                "root",
                "Redirects to the dashboard at /ui/",
                Access::Public,
            )
        },
        Op {
            ok: vec![(200, None)],
            ..op(
                "get",
                "/ui/",
                "dashboard",
                "The dashboard (HTML); it signs in with a tenant key or a portal link",
                Access::Public,
            )
        },
        Op {
            ok: vec![(200, None)],
            errors: &[404],
            ..op(
                "get",
                "/ui/{file}",
                "dashboardFile",
                "The dashboard's scripts and styles",
                Access::Public,
            )
        },
        Op {
            ok: vec![(
                200,
                Some(json!({"oneOf": [
                    object(&[
                        ("tenantId", id("tnt")),
                        ("tenantName", string()),
                        ("role", roles()),
                        ("via", one_of(&["key", "portal"])),
                        ("features", features(false)),
                        ("limits", limits(false)),
                        ("usage", usage()),
                    ], &["tenantId", "role", "via", "features", "limits", "usage"], false),
                    object(&[("operator", json!({"const": true}))], &["operator"], false),
                ]})),
            )],
            ..op(
                "get",
                "/v1/me",
                "me",
                "Who the token is: its tenant, role, and the tenant's plan and usage (or the operator)",
                Access::Tenant("viewer"),
            )
        },
        Op {
            ok: vec![(200, named("Health"))],
            errors: &[503],
            ..op(
                "get",
                "/health",
                "health",
                "Whether hookd can serve: 503 with what is wrong when it cannot",
                Access::Public,
            )
        },
        Op {
            ok: vec![(200, None)],
            ..op(
                "get",
                "/metrics",
                "metrics",
                "Prometheus metrics (OpenMetrics text)",
                Access::Operator,
            )
        },
        Op {
            ok: vec![(200, None)],
            ..op(
                "get",
                "/openapi.json",
                "openapi",
                "This document",
                Access::Public,
            )
        },
        Op {
            body: Some((object(&[("name", name_text())], &["name"], true), false)),
            ok: vec![(201, named("Tenant"))],
            ..op(
                "post",
                "/v1/tenants",
                "createTenant",
                "Create a tenant",
                Access::Operator,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Tenant")))],
            ..op(
                "get",
                "/v1/tenants",
                "listTenants",
                "List tenants",
                Access::Operator,
            )
        },
        Op {
            ok: vec![(200, named("Tenant"))],
            ..op(
                "get",
                "/v1/tenants/{id}",
                "getTenant",
                "One tenant",
                Access::Operator,
            )
        },
        Op {
            body: Some((
                object(
                    &[("features", features(true)), ("limits", limits(true))],
                    &[],
                    true,
                ),
                false,
            )),
            ok: vec![(200, named("Tenant"))],
            ..op(
                "patch",
                "/v1/tenants/{id}",
                "setTenantPlan",
                "Set a tenant's plan: features on or off, limits (null: none); absent fields keep their value",
                Access::Operator,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/tenants/{id}",
                "deleteTenant",
                "Delete a tenant and everything it owns",
                Access::Operator,
            )
        },
        Op {
            body: Some((key_in(), false)),
            ok: vec![(201, named("Key"))],
            ..op(
                "post",
                "/v1/tenants/{id}/keys",
                "createKey",
                "Create an API key (the key is shown only here)",
                Access::Operator,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Key")))],
            ..op(
                "get",
                "/v1/tenants/{id}/keys",
                "listKeys",
                "List a tenant's keys",
                Access::Operator,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/tenants/{id}/keys/{key_id}",
                "deleteKey",
                "Delete a key; it stops working at once",
                Access::Operator,
            )
        },
        Op {
            body: Some((key_in(), false)),
            ok: vec![(201, named("Key"))],
            ..op(
                "post",
                "/v1/keys",
                "createOwnKey",
                "Create one of this tenant's API keys (the key is shown only here)",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Key")))],
            ..op(
                "get",
                "/v1/keys",
                "listOwnKeys",
                "This tenant's API keys, never the keys themselves",
                admin,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/keys/{id}",
                "deleteOwnKey",
                "Delete one of this tenant's keys; it stops working at once",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("EventType")))],
            ..op(
                "get",
                "/v1/event-types",
                "listEventTypes",
                "The tenant's event-type catalog",
                viewer,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        ("name", event_name()),
                        ("category", nullable(string())),
                        ("description", nullable(string())),
                    ],
                    &["name"],
                    true,
                ),
                false,
            )),
            ok: vec![(201, named("EventType"))],
            errors: &[409],
            ..op(
                "post",
                "/v1/event-types",
                "createEventType",
                "Register an event type",
                admin,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/event-types/{name}",
                "deleteEventType",
                "Remove an event type from the catalog",
                admin,
            )
        },
        Op {
            body: Some((endpoint_in(true), false)),
            ok: vec![(201, named("CreatedEndpoint"))],
            ..op(
                "post",
                "/v1/endpoints",
                "createEndpoint",
                "Subscribe a URL to events",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Endpoint")))],
            ..op(
                "get",
                "/v1/endpoints",
                "listEndpoints",
                "List endpoints",
                viewer,
            )
        },
        Op {
            ok: vec![(200, named("Endpoint"))],
            ..op(
                "get",
                "/v1/endpoints/{id}",
                "getEndpoint",
                "One endpoint",
                viewer,
            )
        },
        Op {
            body: Some((endpoint_in(false), false)),
            ok: vec![(200, named("Endpoint"))],
            ..op(
                "patch",
                "/v1/endpoints/{id}",
                "updateEndpoint",
                "Change an endpoint's settings",
                admin,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/endpoints/{id}",
                "deleteEndpoint",
                "Delete an endpoint",
                admin,
            )
        },
        Op {
            ok: vec![(
                200,
                Some(object(
                    &[
                        (
                            "successRate",
                            nullable(json!({"type": "number", "minimum": 0, "maximum": 100})),
                        ),
                        ("totalDeliveries", integer(0)),
                        ("succeeded", integer(0)),
                        ("failed", integer(0)),
                        ("pending", integer(0)),
                        ("consecutiveFailures", integer(0)),
                        (
                            "lastDelivery",
                            nullable(object(
                                &[
                                    ("at", time()),
                                    ("status", string()),
                                    ("responseCode", nullable(integer(100))),
                                ],
                                &["at", "status"],
                                false,
                            )),
                        ),
                        ("disabledAt", nullable(time())),
                        ("disabledReason", nullable(string())),
                    ],
                    &[
                        "successRate",
                        "totalDeliveries",
                        "succeeded",
                        "failed",
                        "pending",
                        "consecutiveFailures",
                        "lastDelivery",
                    ],
                    false,
                )),
            )],
            ..op(
                "get",
                "/v1/endpoints/{id}/stats",
                "endpointStats",
                "Success rate and counters",
                viewer,
            )
        },
        Op {
            body: Some((empty(), true)),
            ok: vec![(200, named("Endpoint"))],
            ..op(
                "post",
                "/v1/endpoints/{id}/enable",
                "enableEndpoint",
                "Re-activate an endpoint",
                admin,
            )
        },
        Op {
            body: Some((empty(), true)),
            ok: vec![(
                200,
                Some(object(
                    &[
                        ("delivered", json!({"type": "boolean"})),
                        ("responseCode", nullable(integer(100))),
                        ("latencyMs", nullable(integer(0))),
                        ("error", nullable(string())),
                        ("errorMessage", nullable(string())),
                        ("responseBody", nullable(string())),
                    ],
                    &["delivered"],
                    false,
                )),
            )],
            ..op(
                "post",
                "/v1/endpoints/{id}/test",
                "testEndpoint",
                "Send a signed sample event now",
                admin,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        (
                            "gracePeriod",
                            duration_up_to(super::endpoints::MAX_GRACE, false),
                        ),
                        ("secret", string()),
                    ],
                    &[],
                    true,
                ),
                true,
            )),
            ok: vec![(
                200,
                Some(object(
                    &[("secret", string()), ("oldSecretExpiresAt", time())],
                    &["secret", "oldSecretExpiresAt"],
                    false,
                )),
            )],
            ..op(
                "post",
                "/v1/endpoints/{id}/secret/rotate",
                "rotateSecret",
                "New signing secret; the old one signs too during the grace period",
                admin,
            )
        },
        Op {
            body: Some((
                object(&[("since", time()), ("until", time())], &["since"], true),
                false,
            )),
            ok: vec![(
                200,
                Some(object(&[("recovered", integer(0))], &["recovered"], false)),
            )],
            errors: &[409],
            ..op(
                "post",
                "/v1/endpoints/{id}/recover",
                "recoverEndpoint",
                "Re-queue a window's failed and missed deliveries",
                admin,
            )
        },
        Op {
            query: [
                vec![query(
                    "status",
                    one_of(&["pending", "succeeded", "failed"]),
                    "only deliveries with this status",
                )],
                paging(),
            ]
            .concat(),
            ok: vec![(200, Some(page("Delivery")))],
            ..op(
                "get",
                "/v1/endpoints/{id}/deliveries",
                "listEndpointDeliveries",
                "An endpoint's delivery log, newest first",
                viewer,
            )
        },
        Op {
            body: Some((event_in(), false)),
            ok: vec![(202, named("Published"))],
            errors: &[409, 429],
            ..op(
                "post",
                "/v1/events",
                "publishEvent",
                "Publish an event (answered once it and its deliveries are committed)",
                publisher,
            )
        },
        Op {
            query: [
                vec![query("type", event_name(), "only events of this type")],
                paging(),
            ]
            .concat(),
            ok: vec![(200, Some(page("Event")))],
            ..op(
                "get",
                "/v1/events",
                "listEvents",
                "Events, newest first",
                viewer,
            )
        },
        Op {
            body: Some((
                object(
                    &[(
                        "events",
                        json!({"type": "array", "minItems": 1, "maxItems": 1000, "items": event_in()}),
                    )],
                    &["events"],
                    true,
                ),
                false,
            )),
            ok: vec![(
                202,
                Some(object(
                    &[(
                        "events",
                        json!({"type": "array", "items": reference("Published")}),
                    )],
                    &["events"],
                    false,
                )),
            )],
            errors: &[409, 429],
            ..op(
                "post",
                "/v1/events/batch",
                "publishBatch",
                "Publish up to 1,000 events, all or nothing",
                publisher,
            )
        },
        Op {
            ok: vec![(200, named("EventDetail"))],
            ..op(
                "get",
                "/v1/events/{id}",
                "getEvent",
                "One event with its deliveries",
                viewer,
            )
        },
        Op {
            ok: vec![(200, named("DeliveryDetail"))],
            ..op(
                "get",
                "/v1/deliveries/{id}",
                "getDelivery",
                "One delivery with its attempts",
                viewer,
            )
        },
        Op {
            body: Some((empty(), true)),
            ok: vec![(202, named("Delivery"))],
            errors: &[409],
            ..op(
                "post",
                "/v1/deliveries/{id}/retry",
                "retryDelivery",
                "Queue one more attempt now",
                admin,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        ("name", name_text()),
                        ("action", incoming_action(true)),
                        (
                            "verify",
                            json!({"oneOf": (["standard", "github"].map(|scheme| object(
                                &[
                                    ("scheme", json!({"const": scheme})),
                                    ("secret", secret_text(scheme)),
                                ],
                                &["scheme", "secret"],
                                true,
                            )))}),
                        ),
                    ],
                    &["name", "action"],
                    true,
                ),
                false,
            )),
            ok: vec![(201, named("Incoming"))],
            ..op(
                "post",
                "/v1/incoming",
                "createIncoming",
                "Create an incoming webhook URL",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Incoming")))],
            ..op(
                "get",
                "/v1/incoming",
                "listIncoming",
                "List incoming webhooks",
                viewer,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/incoming/{id}",
                "deleteIncoming",
                "Delete an incoming webhook",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("IncomingRequest")))],
            ..op(
                "get",
                "/v1/incoming/{id}/requests",
                "listIncomingRequests",
                "Calls an incoming webhook received, newest first",
                viewer,
            )
        },
        Op {
            body: Some((schedule_in(true), false)),
            ok: vec![(201, named("Schedule"))],
            // `endpointId` names no endpoint of the tenant.
            errors: &[404],
            ..op(
                "post",
                "/v1/schedules",
                "createSchedule",
                "Create a schedule",
                admin,
            )
        },
        Op {
            query: [
                vec![query(
                    "endpointId",
                    id("ep"),
                    "only schedules delivering to this endpoint",
                )],
                paging(),
            ]
            .concat(),
            ok: vec![(200, Some(page("Schedule")))],
            ..op(
                "get",
                "/v1/schedules",
                "listSchedules",
                "List schedules",
                viewer,
            )
        },
        Op {
            ok: vec![(200, named("Schedule"))],
            ..op(
                "get",
                "/v1/schedules/{id}",
                "getSchedule",
                "One schedule",
                viewer,
            )
        },
        Op {
            body: Some((schedule_in(false), false)),
            ok: vec![(200, named("Schedule"))],
            ..op(
                "patch",
                "/v1/schedules/{id}",
                "updateSchedule",
                "Change a schedule",
                admin,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/schedules/{id}",
                "deleteSchedule",
                "Delete a schedule",
                admin,
            )
        },
        Op {
            body: Some((empty(), true)),
            ok: vec![(202, Some(object(&[("runId", string())], &["runId"], false)))],
            errors: &[409],
            ..op(
                "post",
                "/v1/schedules/{id}/trigger",
                "triggerSchedule",
                "Run a schedule now",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("Run")))],
            ..op(
                "get",
                "/v1/schedules/{id}/runs",
                "listRuns",
                "A schedule's runs, newest first",
                viewer,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        ("role", one_of(&["admin", "viewer"])),
                        (
                            "expiresIn",
                            duration_up_to(super::portal::LONGEST_LIFETIME, true),
                        ),
                    ],
                    &[],
                    true,
                ),
                false,
            )),
            ok: vec![(201, named("PortalLink"))],
            ..op(
                "post",
                "/v1/portal-links",
                "createPortalLink",
                "A link that opens the dashboard signed in to this tenant (the token is shown only here)",
                admin,
            )
        },
        Op {
            query: paging(),
            ok: vec![(200, Some(page("PortalLink")))],
            ..op(
                "get",
                "/v1/portal-links",
                "listPortalLinks",
                "Portal links that have not expired, newest first",
                admin,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/portal-links/{id}",
                "deletePortalLink",
                "Revoke a portal link: its token stops working at once",
                admin,
            )
        },
        Op {
            ok: vec![(
                200,
                Some(object(
                    &[(
                        "integrations",
                        json!({"type": "object", "additionalProperties": reference("Integration")}),
                    )],
                    &["integrations"],
                    false,
                )),
            )],
            ..op(
                "get",
                "/v1/integrations",
                "listIntegrations",
                "Slack, Discord and webhook integrations",
                viewer,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        ("url", json!({"type": "string", "format": "uri"})),
                        ("events", strings()),
                    ],
                    &["url"],
                    true,
                ),
                false,
            )),
            ok: vec![(
                200,
                Some(object(
                    &[
                        ("success", json!({"type": "boolean"})),
                        ("message", string()),
                        ("endpointId", id("ep")),
                        ("secret", string()),
                    ],
                    &["success", "message", "endpointId"],
                    false,
                )),
            )],
            ..op(
                "put",
                "/v1/integrations/{kind}",
                "connectIntegration",
                "Connect or update an integration",
                admin,
            )
        },
        Op {
            ok: vec![(200, named("Result"))],
            ..op(
                "delete",
                "/v1/integrations/{kind}",
                "disconnectIntegration",
                "Disconnect an integration",
                admin,
            )
        },
        Op {
            body: Some((empty(), true)),
            ok: vec![(200, named("Result"))],
            ..op(
                "post",
                "/v1/integrations/{kind}/test",
                "testIntegration",
                "Send a sample notification",
                admin,
            )
        },
        Op {
            body: Some((
                json!({"description": "any JSON value, or a form-encoded body"}),
                false,
            )),
            ok: vec![
                (
                    200,
                    Some(object(&[("challenge", string())], &["challenge"], false)),
                ),
                (
                    202,
                    Some(object(
                        &[("id", string()), ("eventId", nullable(string()))],
                        &["id"],
                        false,
                    )),
                ),
            ],
            errors: &[401, 403, 404, 429],
            ..op(
                "post",
                "/hooks/in/{token}",
                "receiveIncoming",
                "Receive a webhook from outside (the token is the credential)",
                Access::Public,
            )
        },
        Op {
            query: vec![
                json!({"name": "challenge", "in": "query", "required": true, "schema": string(), "description": "answered back as text"}),
            ],
            ok: vec![(200, None)],
            errors: &[400, 403, 404, 422, 429],
            ..op(
                "get",
                "/hooks/in/{token}",
                "challengeIncoming",
                "Answer a verification challenge",
                Access::Public,
            )
        },
    ]
}

/// Operations that act on what `op_id` creates, for clients and stateful testing: the
/// created resource's `id` (or `name`) fills their path parameter.
fn links(op_id: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    let endpoint = [
        "getEndpoint",
        "updateEndpoint",
        "deleteEndpoint",
        "endpointStats",
        "enableEndpoint",
        "testEndpoint",
        "rotateSecret",
        "recoverEndpoint",
        "listEndpointDeliveries",
    ];
    let schedule = [
        "getSchedule",
        "updateSchedule",
        "deleteSchedule",
        "triggerSchedule",
        "listRuns",
    ];
    let (targets, field, parameter): (&[&'static str], _, _) = match op_id {
        "createEndpoint" => (&endpoint, "id", "id"),
        "createSchedule" => (&schedule, "id", "id"),
        "createIncoming" => (&["deleteIncoming", "listIncomingRequests"], "id", "id"),
        "createEventType" => (&["deleteEventType"], "name", "name"),
        "publishEvent" => (&["getEvent"], "id", "id"),
        "createTenant" => (
            &[
                "getTenant",
                "setTenantPlan",
                "deleteTenant",
                "createKey",
                "listKeys",
            ],
            "id",
            "id",
        ),
        "retryDelivery" => (&["getDelivery"], "id", "id"),
        "createPortalLink" => (&["deletePortalLink"], "id", "id"),
        "createOwnKey" => (&["deleteOwnKey"], "id", "id"),
        _ => (&[], "", ""),
    };
    targets.iter().map(|t| (*t, field, parameter)).collect()
}

/// The error statuses an operation answers, from its access, parameters and body.
fn error_statuses(op: &Op) -> Vec<u16> {
    let mut statuses: Vec<u16> = op.errors.to_vec();
    if op.access != Access::Public {
        statuses.extend([401, 403, 503]);
    }
    if op.path.contains('{') && op.access != Access::Public {
        statuses.push(404);
    }
    if !op.query.is_empty() {
        statuses.push(422);
    }
    if op.body.is_some() {
        statuses.extend([400, 413, 415, 422, 503]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No content",
        303 => "See other",
        400 => "Malformed request",
        401 => "No token, or a bad one",
        403 => {
            "The token's role is too weak, or the tenant's plan does not allow it (plan_required, quota_exceeded)"
        }
        404 => "Not found (also malformed ids and other tenants' ids)",
        409 => "Conflicts with the current state",
        413 => "Body over the size limit; nothing stored",
        415 => "Unsupported content type",
        422 => "Well-formed but invalid; the message names the field",
        429 => "Rate limited, or past the plan's daily events (see Retry-After)",
        503 => "Overloaded or storage unavailable; nothing changed",
        _ => "",
    }
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    for (status, schema) in &op.ok {
        let mut response = json!({"description": reason(*status)});
        match (op.id, schema) {
            ("metrics", _) => {
                response["content"] = json!({
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                });
            }
            ("challengeIncoming", _) => {
                response["content"] = json!({"text/plain": {"schema": {"type": "string"}}});
            }
            ("dashboard", _) => {
                response["content"] = json!({"text/html": {"schema": {"type": "string"}}});
            }
            ("dashboardFile", _) => {
                response["content"] = json!({
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                    "text/html": {"schema": {"type": "string"}},
                });
            }
            ("openapi", _) => {
                response["content"] = json!({"application/json": {"schema": {"type": "object"}}});
            }
            (_, Some(schema)) => {
                response["content"] = json!({"application/json": {"schema": schema}});
            }
            (_, None) => {}
        }
        if (200..300).contains(status) {
            let links: Map<String, Value> = links(op.id)
                .into_iter()
                .map(|(target, field, parameter)| {
                    (
                        target.to_owned(),
                        json!({"operationId": target, "parameters": {parameter: format!("$response.body#/{field}")}}),
                    )
                })
                .collect();
            if !links.is_empty() {
                response["links"] = Value::Object(links);
            }
        }
        responses.insert(status.to_string(), response);
    }
    for status in error_statuses(op) {
        let response = if op.id == "health" {
            json!({"description": reason(status), "content": {"application/json": {"schema": reference("Health")}}})
        } else {
            json!({"$ref": format!("#/components/responses/{status}")})
        };
        responses.insert(status.to_string(), response);
    }
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(op.query.iter().cloned());
    let mut out = json!({
        "operationId": op.id,
        "summary": op.summary,
        "responses": responses,
    });
    if !parameters.is_empty() {
        out["parameters"] = Value::Array(parameters);
    }
    match op.access {
        Access::Public => out["security"] = json!([]),
        Access::Operator => {
            out["security"] = json!([{"bearer": []}]);
            out["x-hookd-role"] = json!("operator");
        }
        Access::Tenant(role) => {
            out["security"] = json!([{"bearer": []}]);
            out["x-hookd-role"] = json!(role);
        }
    }
    if let Some((schema, optional)) = &op.body {
        let content = if op.id == "receiveIncoming" {
            json!({
                "application/json": {"schema": {}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            })
        } else {
            let mut json_body = json!({"schema": schema});
            if let Some(example) = example(op.id) {
                json_body["example"] = example;
            }
            json!({"application/json": json_body})
        };
        out["requestBody"] = json!({"required": !optional, "content": content});
    }
    out
}

/// A valid request body for the operations that create something (for API explorers, and
/// so that Schemathesis' first calls create what the linked operations then act on).
fn example(op_id: &str) -> Option<Value> {
    Some(match op_id {
        "createTenant" => json!({"name": "Acme"}),
        "createKey" | "createOwnKey" => json!({"name": "backend", "role": "publisher"}),
        "createEventType" => {
            json!({"name": "order.paid", "category": "orders", "description": "An order was paid"})
        }
        "createEndpoint" => json!({
            "name": "orders",
            "url": "http://127.0.0.1:9/hooks/orders",
            "events": ["order.*"],
            "retrySchedule": ["1m", "5m"],
        }),
        "updateEndpoint" => json!({"timeoutMs": 5000, "rateLimit": 50}),
        "recoverEndpoint" => json!({"since": "2026-01-01T00:00:00Z"}),
        "publishEvent" => json!({"type": "order.paid", "data": {"orderId": 42}}),
        "publishBatch" => json!({"events": [
            {"type": "order.paid", "data": {"orderId": 42}},
            {"type": "order.shipped", "data": {"orderId": 42}},
        ]}),
        "createIncoming" => {
            json!({"name": "stripe", "action": {"type": "publish", "eventType": "payment.received"}})
        }
        "createSchedule" => json!({
            "scheduleType": "custom_cron",
            "cronExpression": "0 9 * * 1",
            "timezone": "Europe/Paris",
            "format": "markdown",
            "deliveryMethod": "webhook",
            "webhookUrl": "http://127.0.0.1:9/hooks/digest",
        }),
        "updateSchedule" => json!({"format": "html"}),
        "createPortalLink" => json!({"role": "viewer", "expiresIn": "1h"}),
        "connectIntegration" => {
            json!({"url": "http://127.0.0.1:9/hooks/chat", "events": ["order.*"]})
        }
        _ => return None,
    })
}

/// One shared response per error status, each with the error shape.
fn error_responses() -> Value {
    let statuses = [400, 401, 403, 404, 409, 413, 415, 422, 429, 503];
    let responses: Map<String, Value> = statuses
        .iter()
        .map(|status| {
            (
                status.to_string(),
                json!({"description": reason(*status), "content": {"application/json": {"schema": reference("Error")}}}),
            )
        })
        .collect();
    Value::Object(responses)
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation(&op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "hookd control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhook delivery: tenants, endpoints, events, deliveries, incoming webhooks, integrations and schedules. Tenant routes take a tenant API key; `x-hookd-role` names the least role an operation needs (viewer < publisher < admin), or `operator` for the operator token.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": error_responses(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// `(method, path)` of every documented operation, for the route check.
pub fn documented_routes() -> Vec<(String, String)> {
    operations()
        .iter()
        .map(|op| (op.method.to_owned(), op.path.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(method, path)` of every route in the router's source (`api/mod.rs`): each
    /// `.route("path", get(..).post(..))`, read up to its closing parenthesis.
    fn routed() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let mut out = Vec::new();
        for (start, _) in source.match_indices(".route(") {
            let rest = &source[start + ".route(".len()..];
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("a closed .route(…)");
            let call = &rest[..end];
            let path = call.split('"').nth(1).expect("a path").to_owned();
            for method in ["get", "post", "put", "patch", "delete"] {
                let used = call
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                if used {
                    out.push((method.to_owned(), path.clone()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routed = routed();
        assert!(
            routed.len() > 40,
            "the router's routes were found: {routed:?}"
        );
        let mut documented = documented_routes();
        documented.sort();
        let missing: Vec<_> = routed.iter().filter(|r| !documented.contains(r)).collect();
        let extra: Vec<_> = documented.iter().filter(|r| !routed.contains(r)).collect();
        assert!(missing.is_empty(), "routes without an entry: {missing:?}");
        assert!(extra.is_empty(), "entries without a route: {extra:?}");
    }

    #[test]
    fn the_document_in_the_repository_is_this_one() {
        let stored: Value = serde_json::from_str(include_str!("../../docs/openapi.json"))
            .expect("docs/openapi.json");
        assert!(
            stored == document(),
            "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn every_operation_has_a_unique_id_and_answers_with_a_status() {
        let ops = operations();
        let mut ids: Vec<_> = ops.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ops.len(), "operation ids are unique");
        for op in &ops {
            assert!(!op.ok.is_empty(), "{} answers some success", op.id);
        }
    }
}
