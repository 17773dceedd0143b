//! Incoming webhooks: the admin routes that manage hooks, and the public `/hooks/in/{token}`
//! that the world calls. An accepted call is stored (and, for `publish` hooks, published
//! through the same store path as `POST /v1/events`) before it is answered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Auth, JsonBody, Query};
use super::tenants::{check_name, not_found, page_json};
use super::{ApiError, AppState};
use crate::model::incoming::{IncomingAction, IncomingHook, IncomingRequest};
use crate::model::{
    EventName, IncomingId, IncomingRequestId, Role, SignatureScheme, now_ms, rfc3339,
};
use crate::signing::{self, Signer};
use crate::store::NewEvent;

/// Body bytes kept in the request log.
const LOGGED_BODY_BYTES: usize = 64 * 1024;
/// How far a signed call's timestamp may be from now.
const SIGNATURE_TOLERANCE_S: i64 = 300;
/// The headers worth keeping in the log (never `authorization` or cookies).
const LOGGED_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-request-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "x-slack-request-timestamp",
];

/// Calls per second each incoming hook accepts; the rest get 429.
#[derive(Clone)]
pub struct IncomingLimiter {
    per_second: usize,
    windows: Arc<Mutex<HashMap<IncomingId, VecDeque<Instant>>>>,
}

impl IncomingLimiter {
    /// A limiter of `per_second` calls per hook.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second as usize,
            windows: Arc::default(),
        }
    }

    /// Takes a slot for `hook`, or says how many seconds to wait.
    fn take(&self, hook: IncomingId) -> Result<(), u64> {
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let window = windows.entry(hook).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= self.per_second {
            return Err(1);
        }
        window.push_back(now);
        Ok(())
    }
}

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
    action: ActionIn,
    verify: Option<VerifyIn>,
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
    JsonBody(body): JsonBody<IncomingIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    check_name(&body.name)?;
    let action = match (body.action.kind.as_str(), body.action.event_type) {
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
    let verify = match body.verify {
        Some(v) => {
            let scheme = SignatureScheme::parse(&v.scheme)
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
    state
        .store
        .find_incoming(token)
        .await?
        .ok_or_else(|| ApiError::not_found("incoming webhook"))
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
    let mut log = IncomingRequest {
        id: IncomingRequestId(0),
        received_at: now_ms(),
        content_type: header(&headers, "content-type").map(str::to_owned),
        headers: LOGGED_HEADERS
            .iter()
            .filter_map(|name| header(&headers, name).map(|v| ((*name).to_owned(), v.to_owned())))
            .collect::<BTreeMap<_, _>>(),
        body: None,
        accepted: false,
        error: None,
        event_id: None,
    };
    let limit = state.max_body_bytes;
    let body = match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            log.error = Some(format!("body over the {limit}-byte limit"));
            state.store.record_incoming(&hook, log, None).await?;
            return Err(ApiError::too_large(limit));
        }
    };
    log.body =
        Some(String::from_utf8_lossy(&body[..body.len().min(LOGGED_BODY_BYTES)]).into_owned());
    match check(&hook, &headers, &body) {
        Err(verdict) => {
            log.error = Some(verdict.logged);
            state.store.record_incoming(&hook, log, None).await?;
            Err(verdict.error)
        }
        Ok(Checked::Challenge(challenge)) => {
            log.accepted = true;
            state.store.record_incoming(&hook, log, None).await?;
            Ok(Json(json!({"challenge": challenge})).into_response())
        }
        Ok(Checked::Payload(value)) => {
            log.accepted = true;
            let publish = match &hook.action {
                IncomingAction::Publish(name) => {
                    let data = if value.is_object() {
                        value
                    } else {
                        json!({"payload": value})
                    };
                    Some(NewEvent {
                        name: name.clone(),
                        data: data.to_string(),
                        idempotency_key: None,
                    })
                }
                IncomingAction::Store => None,
            };
            let (id, published) = state.store.record_incoming(&hook, log, publish).await?;
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
    /// A body to act on.
    Payload(Value),
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Content type, body shape and signature, in that order.
fn check(hook: &IncomingHook, headers: &HeaderMap, body: &[u8]) -> Result<Checked, Verdict> {
    let mime = header(headers, "content-type")
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let value = match mime.as_str() {
        "application/json" => serde_json::from_slice::<Value>(body).map_err(|e| {
            reject(
                ApiError::malformed(format!("the body is not valid JSON: {e}")),
                "malformed JSON",
            )
        })?,
        "application/x-www-form-urlencoded" => Value::Object(
            url::form_urlencoded::parse(body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
        other => {
            return Err(reject(
                ApiError::unsupported_media_type_of(
                    "application/json or application/x-www-form-urlencoded",
                ),
                format!("unsupported content type '{other}'"),
            ));
        }
    };
    if let Some((scheme, secret)) = &hook.verify {
        verify(*scheme, secret, headers, body)
            .map_err(|why| reject(ApiError::signature(why.clone()), why))?;
    }
    if value["type"] == "url_verification"
        && let Some(challenge) = value["challenge"].as_str()
    {
        return Ok(Checked::Challenge(challenge.to_owned()));
    }
    Ok(Checked::Payload(value))
}

fn verify(
    scheme: SignatureScheme,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let signer = Signer::new(scheme, &[secret]).map_err(|e| e.to_string())?;
    let now = now_ms() / 1000;
    let result = match scheme {
        SignatureScheme::Standard => {
            let id = header(headers, "webhook-id").ok_or("missing webhook-id header")?;
            let ts = header(headers, "webhook-timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("missing or malformed webhook-timestamp header")?;
            let sig =
                header(headers, "webhook-signature").ok_or("missing webhook-signature header")?;
            signer.verify(id, ts, body, sig, now, SIGNATURE_TOLERANCE_S)
        }
        SignatureScheme::Github => {
            let sig = header(headers, "x-hub-signature-256")
                .ok_or("missing x-hub-signature-256 header")?;
            signer.verify("", 0, body, sig, now, SIGNATURE_TOLERANCE_S)
        }
    };
    result.map_err(|e| format!("signature rejected: {e}"))
}
