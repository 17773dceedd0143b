//! The event-type catalog.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, Path, Query};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::model::event::EventType;
use crate::model::{EventName, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventTypeIn {
    name: String,
    category: Option<String>,
    description: Option<String>,
}

fn event_type_json(t: &EventType) -> Value {
    json!({"name": t.name, "category": t.category, "description": t.description})
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let page = state.store.list_event_types(tenant, query.page()?).await?;
    Ok(Json(page_json(page, event_type_json)))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<EventTypeIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    let name = EventName::parse(&body.name).map_err(ApiError::invalid)?;
    for (field, value) in [
        ("category", &body.category),
        ("description", &body.description),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 1000) {
            return Err(ApiError::invalid(format!(
                "{field} must be at most 1000 characters"
            )));
        }
    }
    let event_type = EventType {
        name: name.as_str().to_owned(),
        category: body.category,
        description: body.description,
    };
    let created = state.store.create_event_type(tenant, event_type).await?;
    Ok((StatusCode::CREATED, Json(event_type_json(&created))))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    state
        .store
        .delete_event_type(tenant, name)
        .await
        .map_err(not_found("event type"))?;
    Ok(StatusCode::NO_CONTENT)
}
