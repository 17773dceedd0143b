//! Endpoints: create, read, change, delete, stats, enable, and the synchronous test send.

use crate::model::Invalid;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, OptionalJson, Path, Query};
use super::extract::{NoFields, Whole, check_name, nullable};
use super::page::page_json;
use super::sample::send_sample;
use super::{ApiError, AppState};

mod shown;
use crate::model::credentials::{ClientCertificate, EndpointAuth};
use crate::model::destination::Destination;
use crate::model::endpoint::NewEndpoint;
use crate::model::endpoint::{HeaderSetting, Sealed, check_header_value, parse_target, parse_url};
use crate::model::event::check_channels;
use crate::model::filter::Filter;
use crate::model::{
    Endpoint, EndpointId, EndpointSettings, EventPattern, Format, Ordering, Role, SignatureScheme,
    duration, now_ms, parse_rfc3339, rfc3339,
};
use crate::signing::{self};
use shown::endpoint_json;
pub(super) use shown::{protect_url, shown_url};

/// The fields of a create or PATCH body; absent fields keep their value (or default).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct EndpointIn {
    name: Option<String>,
    url: Option<String>,
    destination: Option<Value>,
    events: Option<Vec<String>>,
    secret: Option<String>,
    is_active: Option<bool>,
    signature_scheme: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    signature_header_name: Option<Option<String>>,
    format: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    retry_schedule: Option<Vec<String>>,
    disable_after: Option<Whole<u32>>,
    timeout_ms: Option<Whole<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<Whole<u32>>>,
    ordering: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    filter: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    channels: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    auth: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    client_certificate: Option<Option<Value>>,
    /// `auth` and `clientCertificate`, checked and sealed by [`EndpointIn::seal_credentials`].
    #[serde(skip)]
    sealed: SealedCredentials,
}

/// Credentials a body sets (`Some(Some)`), removes (`Some(None)`) or leaves (`None`), sealed.
#[derive(Default)]
struct SealedCredentials {
    auth: Option<Option<Sealed>>,
    client_certificate: Option<Option<Sealed>>,
    /// The custom headers a body sets, values sealed (plain when hookd has no key).
    headers: Option<BTreeMap<String, HeaderSetting>>,
    /// Whether the `auth` a body sets is OAuth2's (which only HTTP endpoints take).
    oauth2: bool,
}

/// Seals a credential for storage; refused when hookd has no credentials key.
fn seal(state: &AppState, field: &str, value: &impl serde::Serialize) -> Result<Sealed, ApiError> {
    let key = state.sealing.as_ref().ok_or_else(|| {
        ApiError::invalid(format!(
            "{field} cannot be stored: this hookd has no credentials key (start it with --credentials-key-file, the same file for every process)"
        ))
    })?;
    let text = serde_json::to_vec(value).map_err(|e| {
        tracing::error!(error = %e, "a credential does not serialize");
        ApiError::internal()
    })?;
    key.seal(&text).map_err(|e| {
        tracing::error!(error = %e, "a credential cannot be sealed");
        ApiError::internal()
    })
}

impl EndpointIn {
    /// Checks `auth` and `clientCertificate` (a token URL by the target policy, a certificate
    /// by loading it) and seals them, and seals custom header values (they often hold API
    /// keys); `apply` then stores them.
    async fn seal_credentials(&mut self, state: &AppState) -> Result<(), ApiError> {
        if let Some(headers) = self.headers.take() {
            let mut sealed = BTreeMap::new();
            for (name, value) in headers {
                let name = name.to_ascii_lowercase();
                check_header_value(&name, &value).map_err(ApiError::invalid)?;
                let value = match &state.sealing {
                    Some(key) => {
                        HeaderSetting::Sealed(key.seal(value.as_bytes()).map_err(|e| {
                            tracing::error!(error = %e, "a header value cannot be sealed");
                            ApiError::internal()
                        })?)
                    }
                    None => HeaderSetting::Plain(value),
                };
                sealed.insert(name, value);
            }
            self.sealed.headers = Some(sealed);
        }
        if let Some(auth) = self.auth.take() {
            self.sealed.auth = Some(match auth {
                None => None,
                Some(value) => {
                    let auth = EndpointAuth::parse(&value).map_err(ApiError::invalid)?;
                    if let EndpointAuth::Oauth2 { token_url, .. } = &auth {
                        self.sealed.oauth2 = true;
                        let url = parse_url(token_url).map_err(ApiError::invalid)?;
                        state
                            .policy
                            .check_url(&url)
                            .await
                            .map_err(|e| ApiError::invalid(format!("auth.tokenUrl: {e}")))?;
                    }
                    Some(seal(state, "auth", &auth)?)
                }
            });
        }
        if let Some(cert) = self.client_certificate.take() {
            self.sealed.client_certificate = Some(match cert {
                None => None,
                Some(value) => {
                    if !value.is_object() {
                        return Err(ApiError::invalid(
                            "clientCertificate must be an object {certPem, keyPem}",
                        ));
                    }
                    let cert: ClientCertificate = serde_json::from_value(value).map_err(|e| {
                        ApiError::invalid(format!(
                            "clientCertificate: {e} (use {{certPem, keyPem}})"
                        ))
                    })?;
                    state
                        .outbound
                        .check_client_certificate(&cert)
                        .map_err(|e| ApiError::invalid(format!("clientCertificate: {e}")))?;
                    Some(seal(state, "clientCertificate", &cert)?)
                }
            });
        }
        Ok(())
    }

    /// Applies every present field to `s`; the error names the field.
    fn apply(self, s: &mut EndpointSettings) -> Result<(), Invalid> {
        if let Some(auth) = self.sealed.auth {
            s.auth = auth;
        }
        if let Some(cert) = self.sealed.client_certificate {
            s.client_certificate = cert;
        }
        if let Some(name) = self.name {
            s.name = name;
        }
        if let Some(url) = self.url {
            s.url = parse_target(&url)?;
            s.url_sealed = None;
        }
        if let Some(destination) = self.destination {
            s.destination = Destination::parse(&destination)?;
        }
        if self.sealed.oauth2 && !s.destination.is_http() {
            return Err(format!(
                "auth for a '{}' destination is basic (the broker's username and password), not oauth2",
                s.destination.kind()
            )
            .into());
        }
        if let Some(events) = self.events {
            s.events = events
                .iter()
                .map(|e| EventPattern::parse(e))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("events: {e}"))?;
        }
        if let Some(active) = self.is_active {
            s.is_active = active;
        }
        if let Some(scheme) = self.signature_scheme {
            s.signature_scheme = SignatureScheme::parse(&scheme)
                .ok_or("signatureScheme must be 'standard', 'github' or 'ed25519'")?;
        }
        if let Some(name) = self.signature_header_name {
            s.signature_header_name = name.map(|n| n.to_ascii_lowercase());
        }
        if let Some(format) = self.format {
            s.format =
                Format::parse(&format).ok_or("format must be 'json', 'slack' or 'discord'")?;
        }
        if let Some(headers) = self.sealed.headers {
            s.headers = headers;
        }
        if let Some(schedule) = self.retry_schedule {
            s.retry_schedule = schedule
                .iter()
                .map(|d| duration::parse(d))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("retrySchedule: {e}"))?;
        }
        if let Some(Whole(n)) = self.disable_after {
            s.disable_after = n;
        }
        if let Some(Whole(ms)) = self.timeout_ms {
            s.timeout_ms = ms;
        }
        if let Some(limit) = self.rate_limit {
            s.rate_limit = limit.map(|Whole(n)| n);
        }
        if let Some(ordering) = self.ordering {
            s.ordering = Ordering::parse(&ordering).ok_or("ordering must be 'none' or 'fifo'")?;
        }
        if let Some(channels) = self.channels {
            if let Some(list) = &channels {
                check_channels(list)?;
                if list.is_empty() {
                    return Err("channels must list at least one channel, or be null".into());
                }
            }
            s.channels = channels;
        }
        if let Some(filter) = self.filter {
            s.filter = match filter {
                Some(source) => Some(std::sync::Arc::new(Filter::parse(&source)?)),
                None => None,
            };
        }
        Ok(())
    }
}

/// An endpoint as the API shows it: with `publicKey` for an `ed25519` endpoint, derived from
/// its signing secret (read for it alone).
async fn endpoint_out(state: &AppState, e: &Endpoint) -> Result<Value, ApiError> {
    let mut out = endpoint_json(e, state.sealing.as_ref());
    if e.settings.signature_scheme == SignatureScheme::Ed25519 {
        out["publicKey"] = public_key(state, e.id).await?;
    }
    Ok(out)
}

/// The `whpk_…` public key of an `ed25519` endpoint's current secret.
async fn public_key(state: &AppState, id: EndpointId) -> Result<Value, ApiError> {
    let secret = state
        .store
        .endpoint_secret(id)
        .await
        .map_err(not_found("endpoint"))?;
    let key = signing::public_key(&secret).map_err(|e| {
        tracing::error!(error = %e, "a stored ed25519 secret is unreadable");
        ApiError::internal()
    })?;
    Ok(Value::String(key))
}

/// One of the tenant's endpoints, or 404.
async fn owned_endpoint(
    state: &AppState,
    tenant: crate::model::TenantId,
    id: EndpointId,
) -> Result<Endpoint, ApiError> {
    state
        .store
        .get_endpoint(tenant, id)
        .await
        .map_err(not_found("endpoint"))
}

fn endpoint_id(id: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(id).ok_or_else(|| ApiError::not_found("endpoint"))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<EndpointIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let mut body = body.parse().await?;
    let name = body
        .name
        .take()
        .ok_or_else(|| ApiError::invalid("name is required"))?;
    check_name(&name)?;
    let url = body
        .url
        .take()
        .ok_or_else(|| ApiError::invalid("url is required"))?;
    let url = parse_target(&url).map_err(ApiError::invalid)?;
    let events = body
        .events
        .take()
        .ok_or_else(|| ApiError::invalid("events is required: list at least one event type"))?;
    let events = events
        .iter()
        .map(|e| EventPattern::parse(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid(format!("events: {e}")))?;
    let secret = body.secret.take();
    body.seal_credentials(&state).await?;
    let mut settings = EndpointSettings::new(name, url, events);
    body.apply(&mut settings).map_err(ApiError::invalid)?;
    settings.check().map_err(ApiError::invalid)?;
    state
        .policy
        .check_url(&settings.url)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    protect_url(&mut settings, state.sealing.as_ref()).map_err(|e| {
        tracing::error!(error = %e, "an endpoint URL cannot be sealed");
        ApiError::internal()
    })?;
    let secret = match secret {
        Some(s) => {
            signing::check_secret(settings.signature_scheme, &s)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            s
        }
        None => signing::generate_secret_for(settings.signature_scheme),
    };
    let endpoint = state
        .store
        .create_endpoint(
            tenant,
            NewEndpoint {
                settings,
                secret: secret.clone(),
            },
        )
        .await?;
    let mut out = endpoint_out(&state, &endpoint).await?;
    out["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(out)))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let page = state.store.list_endpoints(tenant, query.page()?).await?;
    // Only `ed25519` endpoints show a key, read from their secret.
    let keyed: Vec<(usize, EndpointId)> = page
        .content
        .iter()
        .enumerate()
        .filter(|(_, e)| e.settings.signature_scheme == SignatureScheme::Ed25519)
        .map(|(i, e)| (i, e.id))
        .collect();
    let mut out = page_json(page, |e| endpoint_json(e, state.sealing.as_ref()));
    for (i, id) in keyed {
        out["content"][i]["publicKey"] = public_key(&state, id).await?;
    }
    Ok(Json(out))
}

pub(super) async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let endpoint = owned_endpoint(&state, tenant, endpoint_id(&id)?).await?;
    Ok(Json(endpoint_out(&state, &endpoint).await?))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody<EndpointIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let mut body = body.parse().await?;
    let id = endpoint_id(&id)?;
    if body.secret.is_some() {
        return Err(ApiError::invalid(
            "secret cannot be changed with PATCH; rotate it with POST /v1/endpoints/{id}/secret/rotate",
        ));
    }
    if let Some(url) = &body.url {
        let url = parse_target(url).map_err(ApiError::invalid)?;
        state
            .policy
            .check_url(&url)
            .await
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    if let Some(scheme) = body
        .signature_scheme
        .as_deref()
        .and_then(SignatureScheme::parse)
    {
        let secret = state
            .store
            .endpoint_secret(id)
            .await
            .map_err(not_found("endpoint"))?;
        if signing::check_secret(scheme, &secret).is_err() {
            return Err(ApiError::invalid(format!(
                "signatureScheme cannot become '{}': the endpoint's secret is not one for it (a {} secret); create a new endpoint with that scheme",
                scheme.as_str(),
                match scheme {
                    SignatureScheme::Standard => "whsec_",
                    SignatureScheme::Ed25519 => "whsk_",
                    SignatureScheme::Github => "printable",
                }
            )));
        }
    }
    body.seal_credentials(&state).await?;
    let sealing = state.sealing.clone();
    let endpoint = state
        .store
        .update_endpoint(
            tenant,
            id,
            Box::new(move |s| {
                body.apply(s)?;
                protect_url(s, sealing.as_ref())
            }),
        )
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(endpoint_out(&state, &endpoint).await?))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    state
        .store
        .delete_endpoint(tenant, endpoint_id(&id)?)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn stats(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let e = owned_endpoint(&state, tenant, endpoint_id(&id)?).await?;
    let k = &e.counters;
    let finished = k.succeeded + k.failed;
    let success_rate =
        (finished > 0).then(|| (k.succeeded as f64 * 10_000.0 / finished as f64).round() / 100.0);
    Ok(Json(json!({
        "successRate": success_rate,
        "totalDeliveries": k.succeeded + k.failed + k.pending,
        "succeeded": k.succeeded,
        "failed": k.failed,
        "pending": k.pending,
        "consecutiveFailures": k.consecutive_failures,
        "lastDelivery": k.last_delivery.as_ref().map(|(at, status, code)| json!({
            "at": rfc3339(*at),
            "status": status,
            "responseCode": code,
        })),
        "disabledAt": e.disabled_at.map(rfc3339),
        "disabledReason": e.disabled_reason,
    })))
}

pub(super) async fn enable(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: OptionalJson<NoFields>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    body.parse().await?;
    let endpoint = state
        .store
        .enable_endpoint(tenant, endpoint_id(&id)?)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(endpoint_out(&state, &endpoint).await?))
}

pub(super) async fn test_send(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: OptionalJson<NoFields>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    body.parse().await?;
    let id = endpoint_id(&id)?;
    let endpoint = owned_endpoint(&state, tenant, id).await?;
    let data = json!({"message": "This is a test event from hookd.", "endpointId": id});
    let outcome = send_sample(&state, &endpoint, "webhook.test", &data).await?;
    Ok(Json(json!({
        "delivered": outcome.is_success(),
        "responseCode": outcome.response_code,
        "latencyMs": outcome.latency_ms,
        "error": outcome.error.map(|e| e.as_str()),
        "errorMessage": outcome.error_message,
        "responseBody": outcome.response_body,
    })))
}

/// The body of `…/secret/rotate`: an optional new secret and grace period.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RotateIn {
    secret: Option<String>,
    grace_period: Option<String>,
}

/// Longest grace period a rotation may give the old secret.
pub(super) const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: OptionalJson<RotateIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    let id = endpoint_id(&id)?;
    let endpoint = owned_endpoint(&state, tenant, id).await?;
    let grace = match body.grace_period {
        // Exactly digits and a unit, as the document says: no spaces around them.
        Some(g) if g.trim() != g => {
            return Err(ApiError::invalid(format!(
                "gracePeriod: '{g}' is not a duration: write a number and a unit, like 24h"
            )));
        }
        Some(g) => {
            duration::parse(&g).map_err(|e| ApiError::invalid(format!("gracePeriod: {e}")))?
        }
        None => std::time::Duration::from_secs(86_400),
    };
    if grace > MAX_GRACE {
        return Err(ApiError::invalid("gracePeriod may be at most 30d"));
    }
    let secret = match body.secret {
        Some(s) => {
            signing::check_secret(endpoint.settings.signature_scheme, &s)
                .map_err(|e| ApiError::invalid(format!("secret: {e}")))?;
            s
        }
        None => signing::generate_secret_for(endpoint.settings.signature_scheme),
    };
    let grace_ms = grace.as_millis() as i64;
    // The end the store gave the old secret, not one computed again here (later).
    let old_secret_ends = state
        .store
        .rotate_secret(tenant, id, secret.clone(), grace_ms)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(json!({
        "secret": secret,
        "oldSecretExpiresAt": rfc3339(old_secret_ends),
    })))
}

/// The body of `…/recover`: the window to replay.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecoverIn {
    since: String,
    until: Option<String>,
}

pub(super) async fn recover(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody<RecoverIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    let id = endpoint_id(&id)?;
    let since = parse_rfc3339(&body.since)
        .ok_or_else(|| ApiError::invalid("since must be an RFC 3339 timestamp"))?;
    let until = match &body.until {
        Some(u) => parse_rfc3339(u)
            .ok_or_else(|| ApiError::invalid("until must be an RFC 3339 timestamp"))?,
        None => now_ms() + 1,
    };
    if since >= until {
        return Err(ApiError::invalid("since must be before until"));
    }
    let recovered = crate::service::replay::recover(&state.store, tenant, id, since, until)
        .await
        .map_err(not_found("endpoint"))?;
    Ok(Json(json!({"recovered": recovered})))
}
