//! Plan gates: the routes of a feature a tenant's plan switched off answer `403
//! plan_required`, before their handler runs.

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::Auth;
use super::{ApiError, AppState};
use crate::model::TenantId;
use crate::model::auth::Caller;
use crate::model::plan::Feature;

/// What a gate needs: the state, and the feature its routes belong to.
#[derive(Clone)]
pub(super) struct Gate {
    pub state: AppState,
    pub feature: Feature,
}

/// Lets a tenant's call through when its plan has the gate's feature. Calls that are not a
/// tenant's (no token, a bad one, the operator's) go on to the handler, which answers them.
pub(super) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Ok(auth) = Auth::from_request_parts(&mut parts, &gate.state).await {
        if let Auth(Caller::Tenant { tenant_id, .. }) = auth
            && let Err(e) = require(&gate.state, tenant_id, gate.feature).await
        {
            return e.into_response();
        }
        // The handler takes the caller from here instead of checking the token again.
        parts.extensions.insert(auth);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// `Ok` when the tenant's plan has `feature`; `403 plan_required` otherwise.
pub(super) async fn require(
    state: &AppState,
    tenant_id: TenantId,
    feature: Feature,
) -> Result<(), ApiError> {
    let plan = state.store.plan(tenant_id).await?;
    plan.require(feature).map_err(ApiError::plan)
}
