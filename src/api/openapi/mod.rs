//! The OpenAPI 3.1 document of the control API (`GET /openapi.json`, `docs/openapi.json`): every
//! route of the router, with its parameters, request and response bodies, every status it
//! answers and the role it needs. Kept by hand next to the routes; a test fails when a route
//! exists without an entry here, or an entry without a route, and Schemathesis checks the
//! live server against it in CI.

use serde_json::{Map, Value, json};
mod fields;
mod operations;
mod schemas;

use fields::*;
use operations::operations;
use schemas::schemas;

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
    /// Query and header parameters.
    query: Vec<Value>,
    /// The JSON request body's schema, and whether it may be left out (action routes).
    body: Option<(Value, bool)>,
    /// Success statuses with their body schemas (`None`: no body).
    ok: Vec<(u16, Option<Value>)>,
    /// Error statuses beyond those the access and the body imply.
    errors: &'static [u16],
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
            // A CloudEvent in structured mode is published with its own type (binary mode:
            // `ce-*` headers over a JSON or form body).
            let cloudevent = json!({
                "type": "object",
                "properties": {
                    "specversion": {"const": "1.0"},
                    "id": {"type": "string", "pattern": "\\S"},
                    "source": {"type": "string", "pattern": "\\S"},
                    "type": event_name(),
                },
                "required": ["specversion", "id", "source", "type"],
                "not": {"required": ["data_base64"]},
            });
            json!({
                "application/json": {"schema": {}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "application/cloudevents+json": {"schema": cloudevent},
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
        let source = include_str!("../mod.rs");
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
        let stored: Value = serde_json::from_str(include_str!("../../../docs/openapi.json"))
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
