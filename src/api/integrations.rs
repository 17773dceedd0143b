//! `/v1/integrations`: the one-per-type convenience over endpoints that a workspace settings
//! page uses. Slack and Discord are endpoints with those formats; `webhook` is a plain signed
//! endpoint. Only the endpoint an integration created is managed here.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::extract::{Auth, JsonBody, OptionalJson, Path};
use super::sample::send_sample;
use super::{ApiError, AppState};
use crate::model::EndpointSettings;
use crate::model::endpoint::NewEndpoint;
use crate::model::endpoint::parse_url;
use crate::model::{EventPattern, Format, Role, rfc3339};
use crate::signing;
use crate::store::default_events;

/// The integration types, their endpoint format and display name.
const KINDS: [(&str, Format, &str); 3] = [
    ("slack", Format::Slack, "Slack"),
    ("discord", Format::Discord, "Discord"),
    ("webhook", Format::Json, "Webhook"),
];

fn kind(name: &str) -> Result<(&'static str, Format, &'static str), ApiError> {
    KINDS
        .iter()
        .find(|(k, _, _)| *k == name)
        .copied()
        .ok_or_else(|| ApiError::not_found("integration type (slack, discord or webhook)"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectIn {
    url: String,
    events: Option<Vec<String>>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let connected = state.store.integrations(tenant).await?;
    let mut out = Map::new();
    for (name, _, _) in KINDS {
        let entry = match connected.iter().find(|(k, _)| k == name) {
            Some((_, e)) => json!({
                "connected": true,
                "endpointId": e.id,
                "url": super::endpoints::shown_url(&e.settings, state.sealing.as_ref()),
                "events": e.settings.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "isActive": e.settings.is_active,
                "connectedAt": rfc3339(e.created_at),
            }),
            None => json!({"connected": false}),
        };
        out.insert(name.to_owned(), entry);
    }
    Ok(Json(json!({"integrations": out})))
}

pub(super) async fn connect(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    body: JsonBody<ConnectIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    let (kind, format, display) = kind(&name)?;
    let url = parse_url(&body.url).map_err(ApiError::invalid)?;
    state
        .policy
        .check_url(&url)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let events = match body.events {
        Some(events) if events.is_empty() => {
            return Err(ApiError::invalid(
                "events must list at least one event type or pattern",
            ));
        }
        Some(events) => events
            .iter()
            .map(|e| EventPattern::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::invalid(format!("events: {e}")))?,
        None => default_events(),
    };
    let mut settings = EndpointSettings::new(format!("{display} integration"), url, events);
    settings.format = format;
    settings.check().map_err(ApiError::invalid)?;
    super::endpoints::protect_url(&mut settings, state.sealing.as_ref()).map_err(|e| {
        tracing::error!(error = %e, "an endpoint URL cannot be sealed");
        ApiError::internal()
    })?;
    let secret = signing::generate_secret();
    let new = NewEndpoint {
        settings,
        secret: secret.clone(),
    };
    let (endpoint, created) = state.store.connect_integration(tenant, kind, new).await?;
    let mut out = json!({
        "success": true,
        "message": if created { format!("{display} connected") } else { format!("{display} updated") },
        "endpointId": endpoint.id,
    });
    if created && kind == "webhook" {
        out["secret"] = Value::String(secret);
    }
    Ok(Json(out))
}

pub(super) async fn disconnect(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let (kind, _, display) = kind(&name)?;
    state
        .store
        .disconnect_integration(tenant, kind)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => {
                ApiError::not_found(&format!("connected {display} integration"))
            }
            other => other.into(),
        })?;
    Ok(Json(
        json!({"success": true, "message": format!("{display} disconnected")}),
    ))
}

pub(super) async fn test(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    body: OptionalJson<super::extract::NoFields>,
) -> Result<Json<Value>, ApiError> {
    let tenant_id = auth.tenant(Role::Admin)?;
    body.parse().await?;
    let (kind, _, display) = kind(&name)?;
    let connected = state.store.integrations(tenant_id).await?;
    let (_, endpoint) = connected
        .into_iter()
        .find(|(k, _)| k == kind)
        .ok_or_else(|| ApiError::not_found(&format!("connected {display} integration")))?;
    let tenant = state.store.get_tenant(tenant_id).await?;
    let data = json!({
        "message": format!("Test notification from hookd for {}", tenant.name),
        "tenant": tenant.name,
        "integration": kind,
    });
    let outcome = send_sample(&state, &endpoint, "integration.test", &data).await?;
    let message = match (&outcome.error, outcome.response_code) {
        (None, Some(code)) => format!("{display} answered {code}"),
        (Some(class), Some(code)) => format!("{display} answered {code} ({})", class.as_str()),
        (_, None) => format!(
            "{display} could not be reached: {}",
            outcome.error_message.as_deref().unwrap_or("unknown error")
        ),
    };
    Ok(Json(
        json!({"success": outcome.is_success(), "message": message}),
    ))
}
