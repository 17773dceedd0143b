//! Endpoints, events and deliveries.

use serde_json::json;

use super::super::fields::*;
use super::{ADMIN, PUBLISHER, VIEWER, empty, named, op};
use crate::api::openapi::Op;

pub(super) fn operations() -> Vec<Op> {
    vec![
        Op {
            body: Some((endpoint_in(true), false)),
            ok: vec![(201, named("CreatedEndpoint"))],
            ..op(
                "post",
                "/v1/endpoints",
                "createEndpoint",
                "Subscribe a URL to events",
                ADMIN,
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
                VIEWER,
            )
        },
        Op {
            ok: vec![(200, named("Endpoint"))],
            ..op(
                "get",
                "/v1/endpoints/{id}",
                "getEndpoint",
                "One endpoint",
                VIEWER,
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/endpoints/{id}",
                "deleteEndpoint",
                "Delete an endpoint",
                ADMIN,
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
                VIEWER,
            )
        },
        Op {
            query: vec![window_query()],
            ok: vec![(200, Some(series(&[])))],
            ..op(
                "get",
                "/v1/endpoints/{id}/stats/series",
                "endpointSeries",
                "Attempts per hour (24h) or six hours (7d), with success rate and latency",
                VIEWER,
            )
        },
        Op {
            query: vec![window_query()],
            ok: vec![(
                200,
                Some(object(
                    &[
                        ("window", one_of(&["24h", "7d"])),
                        ("stepSeconds", integer(1)),
                        (
                            "endpoints",
                            json!({"type": "array", "items": series(&[("endpointId", id(EndpointId::PREFIX))])}),
                        ),
                    ],
                    &["window", "stepSeconds", "endpoints"],
                    false,
                )),
            )],
            ..op(
                "get",
                "/v1/stats/series",
                "allEndpointsSeries",
                "Every endpoint's attempts over time, for a list of sparklines",
                VIEWER,
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
                ADMIN,
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
                ADMIN,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        (
                            "gracePeriod",
                            duration_up_to(crate::api::endpoints::MAX_GRACE, false),
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
                ADMIN,
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
                ADMIN,
            )
        },
        Op {
            query: [
                vec![
                    query(
                        "status",
                        one_of(&["pending", "succeeded", "failed"]),
                        "only deliveries with this status",
                    ),
                    query(
                        "eventType",
                        json!({"type": "string", "maxLength": 200}),
                        "only deliveries of events of this exact type",
                    ),
                    query(
                        "since",
                        time(),
                        "only deliveries created at or after this instant",
                    ),
                    query(
                        "until",
                        time(),
                        "only deliveries created before this instant",
                    ),
                ],
                paging(),
            ]
            .concat(),
            ok: vec![(200, Some(page("Delivery")))],
            ..op(
                "get",
                "/v1/endpoints/{id}/deliveries",
                "listEndpointDeliveries",
                "An endpoint's delivery log, newest first",
                VIEWER,
            )
        },
        Op {
            query: trace_headers(),
            body: Some((event_in(), false)),
            ok: vec![(202, named("Published"))],
            errors: &[409, 429],
            ..op(
                "post",
                "/v1/events",
                "publishEvent",
                "Publish an event (answered once it and its deliveries are committed)",
                PUBLISHER,
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
                VIEWER,
            )
        },
        Op {
            query: trace_headers(),
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
                PUBLISHER,
            )
        },
        Op {
            ok: vec![(200, named("EventDetail"))],
            ..op(
                "get",
                "/v1/events/{id}",
                "getEvent",
                "One event with its deliveries",
                VIEWER,
            )
        },
        Op {
            ok: vec![(200, named("DeliveryDetail"))],
            ..op(
                "get",
                "/v1/deliveries/{id}",
                "getDelivery",
                "One delivery with its attempts",
                VIEWER,
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
                ADMIN,
            )
        },
    ]
}

/// `window`: the span a series covers.
fn window_query() -> serde_json::Value {
    query(
        "window",
        one_of(&["24h", "7d"]),
        "24h (a point per hour, the default) or 7d (a point per six hours)",
    )
}

/// A series of points, oldest first (the last one is the current, partial step), with
/// `extra` fields.
fn series(extra: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let point = object(
        &[
            ("at", time()),
            ("succeeded", integer(0)),
            ("failed", integer(0)),
            (
                "successRate",
                nullable(json!({"type": "number", "minimum": 0, "maximum": 100})),
            ),
            ("p50Ms", nullable(integer(0))),
            ("p99Ms", nullable(integer(0))),
        ],
        &["at", "succeeded", "failed", "successRate", "p50Ms", "p99Ms"],
        false,
    );
    let mut fields = vec![
        ("window", one_of(&["24h", "7d"])),
        ("stepSeconds", integer(1)),
        ("points", json!({"type": "array", "items": point})),
    ];
    fields.extend(extra.iter().cloned());
    let mut required = vec!["window", "stepSeconds", "points"];
    required.extend(extra.iter().map(|(name, _)| *name));
    object(&fields, &required, false)
}
