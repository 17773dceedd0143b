//! Incoming hooks, schedules, portal links and integrations.

use serde_json::json;

use super::super::fields::*;
use super::{ADMIN, VIEWER, empty, named, op};
use crate::api::openapi::{Access, Op};

pub(super) fn operations() -> Vec<Op> {
    vec![
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
                ADMIN,
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
                VIEWER,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/incoming/{id}",
                "deleteIncoming",
                "Delete an incoming webhook",
                ADMIN,
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
                VIEWER,
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
                ADMIN,
            )
        },
        Op {
            query: [
                vec![query(
                    "endpointId",
                    id(EndpointId::PREFIX),
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
                VIEWER,
            )
        },
        Op {
            query: vec![
                required_query(
                    "cronExpression",
                    json!({"type": "string", "minLength": 1}),
                    "five fields (minute hour day month weekday), like 0 9 * * 1-5",
                ),
                required_query(
                    "timezone",
                    json!({"type": "string", "minLength": 1}),
                    "an IANA zone, like Europe/Berlin",
                ),
            ],
            ok: vec![(
                200,
                Some(object(
                    &[
                        ("cronExpression", string()),
                        ("timezone", string()),
                        (
                            "nextRuns",
                            json!({"type": "array", "items": time(), "minItems": 1, "maxItems": 3}),
                        ),
                    ],
                    &["cronExpression", "timezone", "nextRuns"],
                    false,
                )),
            )],
            ..op(
                "get",
                "/v1/schedules/preview",
                "previewSchedule",
                "When a cron expression fires next in a zone (its next 3 runs)",
                VIEWER,
            )
        },
        Op {
            ok: vec![(200, named("Schedule"))],
            ..op(
                "get",
                "/v1/schedules/{id}",
                "getSchedule",
                "One schedule",
                VIEWER,
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/schedules/{id}",
                "deleteSchedule",
                "Delete a schedule",
                ADMIN,
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
                ADMIN,
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
                VIEWER,
            )
        },
        Op {
            body: Some((
                object(
                    &[
                        ("role", one_of(&["admin", "viewer"])),
                        (
                            "expiresIn",
                            duration_up_to(crate::api::portal::LONGEST_LIFETIME, true),
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
                ADMIN,
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(204, None)],
            ..op(
                "delete",
                "/v1/portal-links/{id}",
                "deletePortalLink",
                "Revoke a portal link: its token stops working at once",
                ADMIN,
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
                VIEWER,
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
                        ("endpointId", id(EndpointId::PREFIX)),
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
                ADMIN,
            )
        },
        Op {
            ok: vec![(200, named("Result"))],
            ..op(
                "delete",
                "/v1/integrations/{kind}",
                "disconnectIntegration",
                "Disconnect an integration",
                ADMIN,
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
                ADMIN,
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
