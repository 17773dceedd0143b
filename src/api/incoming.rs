//! Incoming webhooks: the admin routes that manage hooks, and the public `/hooks/in/{token}`
//! that the world calls. An accepted call is stored (and, for `publish` hooks, published
//! through the same store path as `POST /v1/events`) before it is answered.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, Object, Path, Query, check_name, read_limited};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::incoming::cloudevents;
use crate::incoming::payload::{self, PayloadError, decode, event_data};
use crate::incoming::request_log::{header, logged_body, logged_headers};
use crate::incoming::verify::verify;
use crate::model::incoming::{IncomingAction, IncomingHook, IncomingRequest};
use crate::model::plan::Feature;
use crate::model::publish::NewEvent;
use crate::model::{
    EventName, IncomingId, IncomingRequestId, Role, SignatureScheme, now_ms, rfc3339,
};
use crate::service::publish::record_incoming;
use crate::signing;
use crate::telemetry::Under;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ActionIn {
    #[serde(rename = "type")]
    kind: String,
    event_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyIn {
    scheme: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IncomingIn {
    name: String,
    action: Object<ActionIn>,
    verify: Option<Object<VerifyIn>>,
}

fn hook_json(h: &IncomingHook) -> Value {
    let action = match &h.action {
        IncomingAction::Publish(name) => json!({"type": "publish", "eventType": name.as_str()}),
        IncomingAction::Store => json!({"type": "store"}),
    };
    json!({
        "id": h.id,
        "name": h.name,
        "action": action,
        "verify": h.verify.as_ref().map(|(scheme, _)| json!({"scheme": scheme.as_str()})),
        "createdAt": rfc3339(h.created_at),
    })
}

fn request_json(r: &IncomingRequest) -> Value {
    json!({
        "id": r.id,
        "receivedAt": rfc3339(r.received_at),
        "contentType": r.content_type,
        "headers": r.headers,
        "body": r.body,
        "status": if r.accepted { "accepted" } else { "rejected" },
        "error": r.error,
        "eventId": r.event_id,
    })
}

fn incoming_id(id: &str) -> Result<IncomingId, ApiError> {
    IncomingId::parse(id).ok_or_else(|| ApiError::not_found("incoming webhook"))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<IncomingIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    check_name(&body.name)?;
    let Object(action) = body.action;
    let action = match (action.kind.as_str(), action.event_type) {
        ("publish", Some(name)) => IncomingAction::Publish(
            EventName::parse(&name)
                .map_err(|e| ApiError::invalid(format!("action.eventType: {e}")))?,
        ),
        ("publish", None) => {
            return Err(ApiError::invalid(
                "action.eventType is required for a publish action",
            ));
        }
        ("store", None) => IncomingAction::Store,
        ("store", Some(_)) => {
            return Err(ApiError::invalid(
                "action.eventType is only for a publish action",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "action.type must be 'publish' or 'store'",
            ));
        }
    };
    let verify = match body.verify.map(|Object(v)| v) {
        Some(v) => {
            // A sender signs with Ed25519 using its own private key: hookd would need only the
            // public key, which this verify setting does not take.
            let scheme = SignatureScheme::parse(&v.scheme)
                .filter(|s| *s != SignatureScheme::Ed25519)
                .ok_or_else(|| ApiError::invalid("verify.scheme must be 'standard' or 'github'"))?;
            signing::check_secret(scheme, &v.secret)
                .map_err(|e| ApiError::invalid(format!("verify.secret: {e}")))?;
            Some((scheme, v.secret))
        }
        None => None,
    };
    let (hook, token) = state
        .store
        .create_incoming(tenant, body.name, action, verify)
        .await?;
    let mut out = hook_json(&hook);
    out["token"] = Value::String(token.clone());
    out["url"] = Value::String(format!("/hooks/in/{token}"));
    Ok((StatusCode::CREATED, Json(out)))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let page = state.store.list_incoming(tenant, query.page()?).await?;
    Ok(Json(page_json(page, hook_json)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    state
        .store
        .delete_incoming(tenant, incoming_id(&id)?)
        .await
        .map_err(not_found("incoming webhook"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn requests(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let page = state
        .store
        .list_incoming_requests(tenant, incoming_id(&id)?, query.page()?)
        .await
        .map_err(not_found("incoming webhook"))?;
    Ok(Json(page_json(page, request_json)))
}

async fn hook_for(state: &AppState, token: &str) -> Result<IncomingHook, ApiError> {
    let hook = state
        .store
        .find_incoming(token)
        .await?
        .ok_or_else(|| ApiError::not_found("incoming webhook"))?;
    // A tenant whose plan has incoming webhooks off receives (and logs) nothing.
    super::gate::require(state, hook.tenant_id, Feature::Incoming).await?;
    Ok(hook)
}

/// `GET /hooks/in/{token}?challenge=X`: answers `X` as text, for senders that verify a URL.
pub(super) async fn challenge(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    hook_for(&state, &token).await?;
    let challenge = query
        .get("challenge")
        .ok_or_else(|| ApiError::malformed("add ?challenge=<value> to verify this URL"))?
        .to_owned();
    Ok((
        [(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response())
}

/// How a call is answered and logged.
struct Verdict {
    error: ApiError,
    logged: String,
}

fn reject(error: ApiError, logged: impl Into<String>) -> Verdict {
    Verdict {
        error,
        logged: logged.into(),
    }
}

/// `POST /hooks/in/{token}`: checks, logs and acts on one call.
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let hook = hook_for(&state, &token).await?;
    if let Err(secs) = state.incoming_limiter.take(hook.id) {
        return Err(ApiError::rate_limited(secs));
    }
    let headers = request.headers().clone();
    let span = request
        .extensions()
        .get::<super::traced::RequestSpan>()
        .cloned();
    let under = Under::new(&state.telemetry, span.as_ref().map(|s| s.place));
    let mut log = IncomingRequest {
        id: IncomingRequestId(0),
        received_at: now_ms(),
        content_type: header(&headers, "content-type").map(str::to_owned),
        headers: logged_headers(&headers),
        body: None,
        accepted: false,
        error: None,
        event_id: None,
    };
    let limit = state.max_body_bytes;
    let body = match read_limited(request, limit, state.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => {
            log.error = Some(e.message().to_owned());
            record_incoming(&state.store, &hook, log, None, under).await?;
            return Err(e);
        }
    };
    log.body = Some(logged_body(&body));
    match check(&hook, &headers, &body) {
        Err(verdict) => {
            log.error = Some(verdict.logged);
            record_incoming(&state.store, &hook, log, None, under).await?;
            Err(verdict.error)
        }
        Ok(Checked::Challenge(challenge)) => {
            log.accepted = true;
            record_incoming(&state.store, &hook, log, None, under).await?;
            Ok(Json(json!({"challenge": challenge})).into_response())
        }
        Ok(Checked::Payload { value, name }) => {
            log.accepted = true;
            let publish = match &hook.action {
                IncomingAction::Publish(configured) => Some(NewEvent {
                    name: name.unwrap_or_else(|| configured.clone()),
                    data: event_data(value).to_string(),
                    idempotency_key: None,
                    channels: Vec::new(),
                    // The request's span when traces are exported, else a sender's trace
                    // when it is well formed: a malformed one is no reason to refuse a webhook
                    // hookd does not control.
                    trace: match &span {
                        Some(span) => Some(span.context()),
                        None => super::traced::trace_context(&headers).ok().flatten(),
                    },
                }),
                IncomingAction::Store => None,
            };
            let (id, published) = record_incoming(&state.store, &hook, log, publish, under).await?;
            if published.is_some() {
                state.metrics.published(1);
            }
            let body = json!({"id": id, "eventId": published.map(|p| p.id)});
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
    }
}

enum Checked {
    /// Slack's `url_verification` handshake.
    Challenge(String),
    /// A body to act on, and the type a CloudEvent (either mode) carries: a publish hook
    /// publishes it with that type instead of its own.
    Payload {
        value: Value,
        name: Option<EventName>,
    },
}

/// The hook's signature check, when it has one.
fn check_signature(hook: &IncomingHook, headers: &HeaderMap, body: &[u8]) -> Result<(), Verdict> {
    if let Some((scheme, secret)) = &hook.verify {
        verify(*scheme, secret, headers, body, now_ms() / 1000)
            .map_err(|why| reject(ApiError::signature(why.to_string()), why.to_string()))?;
    }
    Ok(())
}

/// Content type, body shape and signature, in that order; a refusal carries its answer and
/// what the log says.
fn check(hook: &IncomingHook, headers: &HeaderMap, body: &[u8]) -> Result<Checked, Verdict> {
    let content_type = header(headers, "content-type");
    if let Some(mode) = cloudevents::mode(content_type, header(headers, "ce-specversion")) {
        let event = match mode {
            cloudevents::Mode::Structured => cloudevents::structured(body),
            cloudevents::Mode::Binary => {
                cloudevents::binary(|name| header(headers, name), content_type, body)
            }
        }
        .map_err(|e| reject(ApiError::invalid(e.to_string()), e.to_string()))?;
        // Its type is what a publish hook publishes it as (a store hook only keeps the call).
        let name = match hook.action {
            IncomingAction::Publish(_) => Some(EventName::parse(&event.kind).map_err(|e| {
                let why = format!("the CloudEvent's type '{}': {e}", event.kind);
                reject(ApiError::invalid(why.clone()), why)
            })?),
            IncomingAction::Store => None,
        };
        check_signature(hook, headers, body)?;
        return Ok(Checked::Payload {
            value: event.data,
            name,
        });
    }
    let value = decode(content_type, body).map_err(|e| match e {
        PayloadError::UnsupportedType(_) => reject(
            ApiError::unsupported_media_type_of(
                "application/json or application/x-www-form-urlencoded",
            ),
            e.to_string(),
        ),
        PayloadError::MalformedJson(cause) => reject(
            ApiError::malformed(format!("the body is not valid JSON: {cause}")),
            "malformed JSON",
        ),
    })?;
    check_signature(hook, headers, body)?;
    if let Some(challenge) = payload::challenge(&value) {
        return Ok(Checked::Challenge(challenge.to_owned()));
    }
    Ok(Checked::Payload { value, name: None })
}
