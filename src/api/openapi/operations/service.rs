//! The service's own routes (root, dashboard, health, metrics, the document), tenants, keys
//! and event types.

use serde_json::json;

use super::super::fields::*;
use super::{ADMIN, VIEWER, named, op};
use crate::api::openapi::{Access, Op};

pub(super) fn operations() -> Vec<Op> {
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
                        ("tenantId", id(TenantId::PREFIX)),
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
                "Prometheus metrics (OpenMetrics text): totals, attempts by endpoint for the busiest endpoints and each tenant's queue for the deepest queues (the rest summed as other), and trace export",
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
                ADMIN,
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/keys/{id}",
                "deleteOwnKey",
                "Delete one of this tenant's keys; it stops working at once",
                ADMIN,
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
                VIEWER,
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/event-types/{name}",
                "deleteEventType",
                "Remove an event type from the catalog",
                ADMIN,
            )
        },
    ]
}
