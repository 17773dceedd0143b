//! The named schemas (`components.schemas`).

use serde_json::{Value, json};

use super::fields::*;

/// The schemas the operations share.
pub(super) fn schemas() -> Value {
    let mut endpoint_fields = vec![
        ("id", id(EndpointId::PREFIX)),
        ("name", string()),
        ("url", string()),
        ("destination", destination_schema()),
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
            "destination",
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
            ("id", id(DeliveryId::PREFIX)),
            ("eventId", id(EventId::PREFIX)),
            ("eventType", string()),
            ("endpointId", id(EndpointId::PREFIX)),
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
            ("traceId", nullable(trace_id())),
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
    // What an attempt sends, with the endpoint's settings now: per-attempt and secret values
    // are named in parentheses, not shown.
    delivery_detail["properties"]["request"] = object(
        &[
            (
                "method",
                json!({"enum": ["POST", "XADD", "PUB", "basic.publish", "PRODUCE"], "description": "POST for an HTTP endpoint; XADD for a 'redis' destination (the headers are the entry's fields, the body its `body` field); PUB for a 'nats' one, basic.publish for an 'amqp' one and PRODUCE for a 'kafka' one (the headers are the message's or record's)"}),
            ),
            ("url", string()),
            (
                "headers",
                json!({"type": "array", "items": {"type": "array", "prefixItems": [string(), string()], "minItems": 2, "maxItems": 2}}),
            ),
            ("body", string()),
        ],
        &["method", "url", "headers", "body"],
        false,
    );
    delivery_detail["required"]
        .as_array_mut()
        .expect("required")
        .extend([json!("attempts"), json!("request")]);
    let event = object(
        &[
            ("id", id(EventId::PREFIX)),
            ("type", string()),
            ("data", json!({})),
            ("channels", channels()),
            ("traceparent", nullable(traceparent())),
            ("tracestate", nullable(string())),
            ("createdAt", time()),
            ("deliveries", integer(0)),
        ],
        &["id", "type", "createdAt"],
        false,
    );
    let event_detail = object(
        &[
            ("id", id(EventId::PREFIX)),
            ("type", string()),
            ("data", json!({})),
            ("channels", channels()),
            ("traceparent", nullable(traceparent())),
            ("tracestate", nullable(string())),
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
            ("id", id(EventId::PREFIX)),
            ("type", string()),
            ("createdAt", time()),
            ("deliveries", integer(0)),
        ],
        &["id", "type", "createdAt", "deliveries"],
        false,
    );
    let incoming = object(
        &[
            ("id", id(IncomingId::PREFIX)),
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
            ("id", id(ScheduleId::PREFIX)),
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
            (
                "nextRuns",
                json!({"type": "array", "items": time(), "maxItems": 3}),
            ),
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
            ("endpointId", id(EndpointId::PREFIX)),
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
            ("id", id(TenantId::PREFIX)), ("name", string()), ("createdAt", time()),
            ("features", features(false)), ("limits", limits(false)),
            ("usage", usage()),
        ], &["id", "name", "createdAt", "features", "limits"], false),
        "Key": object(&[
            ("id", id(KeyId::PREFIX)), ("name", string()),
            ("role", roles()),
            ("tenantId", id(TenantId::PREFIX)), ("createdAt", time()), ("key", string()),
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
            ("id", id(PortalLinkId::PREFIX)), ("role", one_of(&["admin", "viewer"])),
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
