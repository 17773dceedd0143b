//! Operator routes: tenants and their API keys.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, Object, Path, Query, Whole, check_name, nullable};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::model::plan::{Plan, PlanPatch};
use crate::model::{ApiKey, KeyId, Role, Tenant, TenantId, rfc3339};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantIn {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyIn {
    name: String,
    role: String,
}

/// `PATCH /v1/tenants/{id}`: the plan's parts to change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanIn {
    features: Option<Object<FeaturesIn>>,
    limits: Option<Object<LimitsIn>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FeaturesIn {
    incoming: Option<bool>,
    integrations: Option<bool>,
    schedules: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LimitsIn {
    #[serde(default, deserialize_with = "nullable")]
    endpoints: Option<Option<Whole<u64>>>,
    #[serde(default, deserialize_with = "nullable")]
    events_per_day: Option<Option<Whole<u64>>>,
}

impl PlanIn {
    fn patch(self) -> PlanPatch {
        let features = self.features.map(|Object(f)| f).unwrap_or_default();
        let limits = self.limits.map(|Object(l)| l).unwrap_or_default();
        PlanPatch {
            incoming: features.incoming,
            integrations: features.integrations,
            schedules: features.schedules,
            endpoints: limits.endpoints.map(|l| l.map(|Whole(n)| n)),
            events_per_day: limits.events_per_day.map(|l| l.map(|Whole(n)| n)),
        }
    }
}

fn plan_json(plan: &Plan) -> Value {
    let (f, l) = (plan.features, plan.limits);
    json!({
        "features": {
            "incoming": f.incoming,
            "integrations": f.integrations,
            "schedules": f.schedules,
        },
        "limits": {"endpoints": l.endpoints, "eventsPerDay": l.events_per_day},
    })
}

fn tenant_json(t: &Tenant) -> Value {
    let mut out = json!({"id": t.id, "name": t.name, "createdAt": rfc3339(t.created_at)});
    if let (Value::Object(out), Value::Object(plan)) = (&mut out, plan_json(&t.plan)) {
        out.extend(plan);
    }
    out
}

/// A tenant with its usage, as `GET` and `PATCH` answer it.
async fn tenant_with_usage(state: &AppState, t: &Tenant) -> Result<Value, ApiError> {
    let usage = state.store.usage(t.id).await.map_err(not_found("tenant"))?;
    let mut out = tenant_json(t);
    out["usage"] = json!({"endpoints": usage.endpoints, "eventsToday": usage.events_today});
    Ok(out)
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "role": k.role,
        "tenantId": k.tenant_id,
        "createdAt": rfc3339(k.created_at),
    })
}

fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(id).ok_or_else(|| ApiError::not_found("tenant"))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<TenantIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.operator()?;
    let body = body.parse().await?;
    check_name(&body.name)?;
    let tenant = state.store.create_tenant(body.name).await?;
    Ok((StatusCode::CREATED, Json(tenant_json(&tenant))))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    auth.operator()?;
    let page = state.store.list_tenants(query.page()?).await?;
    Ok(Json(json!(page_json(page, tenant_json))))
}

pub(super) async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth.operator()?;
    let tenant = state
        .store
        .get_tenant(tenant_id(&id)?)
        .await
        .map_err(not_found("tenant"))?;
    Ok(Json(tenant_with_usage(&state, &tenant).await?))
}

/// `PATCH /v1/tenants/{id}`: sets the tenant's plan (features and limits).
pub(super) async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody<PlanIn>,
) -> Result<Json<Value>, ApiError> {
    auth.operator()?;
    let id = tenant_id(&id)?;
    let patch = body.parse().await?.patch();
    state
        .store
        .set_plan(id, patch)
        .await
        .map_err(not_found("tenant"))?;
    let tenant = state
        .store
        .get_tenant(id)
        .await
        .map_err(not_found("tenant"))?;
    Ok(Json(tenant_with_usage(&state, &tenant).await?))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.operator()?;
    state
        .store
        .delete_tenant(tenant_id(&id)?)
        .await
        .map_err(not_found("tenant"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me`: who the token is (the dashboard shows and hides actions by role), and its
/// tenant's plan and usage (what it may still do today).
pub(super) async fn me(State(state): State<AppState>, auth: Auth) -> Result<Json<Value>, ApiError> {
    match auth.0 {
        crate::model::auth::Caller::Tenant {
            tenant_id,
            via,
            role,
        } => {
            let tenant = state
                .store
                .get_tenant(tenant_id)
                .await
                .map_err(not_found("tenant"))?;
            let mut out = tenant_with_usage(&state, &tenant).await?;
            out["tenantId"] = json!(tenant_id);
            out["tenantName"] = json!(tenant.name);
            out["role"] = json!(role);
            out["via"] = json!(match via {
                crate::model::auth::Credential::Key(_) => "key",
                crate::model::auth::Credential::PortalLink(_) => "portal",
            });
            for key in ["id", "name", "createdAt"] {
                if let Value::Object(map) = &mut out {
                    map.remove(key);
                }
            }
            Ok(Json(out))
        }
        crate::model::auth::Caller::Operator => Ok(Json(json!({"operator": true}))),
    }
}

/// Creates a key for `tenant`; the answer carries the key itself, shown only here.
async fn new_key(
    state: &AppState,
    tenant: TenantId,
    body: JsonBody<KeyIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.parse().await?;
    check_name(&body.name)?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid("role must be one of admin, publisher, viewer"))?;
    let (key, token) = state
        .store
        .create_key(tenant, body.name, role)
        .await
        .map_err(not_found("tenant"))?;
    let mut out = key_json(&key);
    out["key"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(out)))
}

async fn keys_page(
    state: &AppState,
    tenant: TenantId,
    query: &Query,
) -> Result<Json<Value>, ApiError> {
    let page = state
        .store
        .list_keys(tenant, query.page()?)
        .await
        .map_err(not_found("tenant"))?;
    Ok(Json(json!(page_json(page, key_json))))
}

async fn remove_key(
    state: &AppState,
    tenant: TenantId,
    key_id: &str,
) -> Result<StatusCode, ApiError> {
    let key = KeyId::parse(key_id).ok_or_else(|| ApiError::not_found("key"))?;
    state
        .store
        .delete_key(tenant, key)
        .await
        .map_err(not_found("key"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn create_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody<KeyIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.operator()?;
    new_key(&state, tenant_id(&id)?, body).await
}

pub(super) async fn list_keys(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    auth.operator()?;
    keys_page(&state, tenant_id(&id)?, &query).await
}

pub(super) async fn delete_key(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    auth.operator()?;
    remove_key(&state, tenant_id(&id)?, &key_id).await
}

/// `POST /v1/keys`: a tenant admin's own key management (the same keys as the operator's).
pub(super) async fn create_own_key(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<KeyIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    new_key(&state, tenant, body).await
}

/// `GET /v1/keys`.
pub(super) async fn list_own_keys(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    keys_page(&state, tenant, &query).await
}

/// `DELETE /v1/keys/{id}`.
pub(super) async fn delete_own_key(
    State(state): State<AppState>,
    auth: Auth,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    remove_key(&state, tenant, &key_id).await
}
