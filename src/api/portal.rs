//! Portal links: a tenant admin hands its own customer a link that opens the dashboard
//! signed in to the tenant, with a role, until it expires or is deleted.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, Path, Query};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::model::tenant::PortalLink;
use crate::model::{PortalLinkId, Role, duration, now_ms, rfc3339};

/// How long a link lasts when the request does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The longest a link may last.
pub(super) const LONGEST_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct PortalLinkIn {
    role: Option<String>,
    expires_in: Option<String>,
}

fn link_json(l: &PortalLink) -> Value {
    json!({
        "id": l.id,
        "role": l.role,
        "createdAt": rfc3339(l.created_at),
        "expiresAt": rfc3339(l.expires_at),
    })
}

/// The role and lifetime a request asks for, checked.
fn wanted(body: PortalLinkIn) -> Result<(Role, Duration), ApiError> {
    let role = match body.role.as_deref() {
        None | Some("viewer") => Role::Viewer,
        Some("admin") => Role::Admin,
        Some(_) => return Err(ApiError::invalid("role must be admin or viewer")),
    };
    let lifetime = match body.expires_in {
        None => DEFAULT_LIFETIME,
        Some(text) => {
            duration::parse(&text).map_err(|e| ApiError::invalid(format!("expiresIn: {e}")))?
        }
    };
    if lifetime.is_zero() || lifetime > LONGEST_LIFETIME {
        return Err(ApiError::invalid(
            "expiresIn must be more than zero and at most 30d",
        ));
    }
    Ok((role, lifetime))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<PortalLinkIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    let (role, lifetime) = wanted(body.parse().await?)?;
    let expires_at = now_ms() + i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX);
    let (link, token) = state
        .store
        .create_portal_link(tenant, role, expires_at)
        .await
        .map_err(not_found("tenant"))?;
    let mut out = link_json(&link);
    out["url"] = Value::String(format!("/ui/#token={token}"));
    out["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(out)))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    let page = state.store.list_portal_links(tenant, query.page()?).await?;
    Ok(Json(page_json(page, link_json)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant_admin_with_key()?;
    let id = PortalLinkId::parse(&id).ok_or_else(|| ApiError::not_found("portal link"))?;
    state
        .store
        .delete_portal_link(tenant, id)
        .await
        .map_err(not_found("portal link"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(role: Option<&str>, expires_in: Option<&str>) -> PortalLinkIn {
        PortalLinkIn {
            role: role.map(str::to_owned),
            expires_in: expires_in.map(str::to_owned),
        }
    }

    #[test]
    fn a_link_is_a_viewer_for_an_hour_unless_asked_and_never_past_30_days() {
        assert_eq!(
            wanted(body(None, None)).ok(),
            Some((Role::Viewer, DEFAULT_LIFETIME))
        );
        assert_eq!(
            wanted(body(Some("admin"), Some("30d"))).ok(),
            Some((Role::Admin, LONGEST_LIFETIME))
        );
        assert!(wanted(body(Some("publisher"), None)).is_err());
        assert!(wanted(body(None, Some("31d"))).is_err());
        assert!(wanted(body(None, Some("0s"))).is_err());
        assert!(wanted(body(None, Some("soon"))).is_err());
    }
}
