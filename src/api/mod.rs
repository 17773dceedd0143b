//! The control API: a hyper server (through axum), the route list, auth, and one file per
//! resource. Only this module knows HTTP status codes ([`error`]).

mod deliveries;
mod endpoints;
mod error;
mod event_types;
mod events;
mod extract;
mod health;
mod incoming;
mod integrations;
mod page;
mod sample;
mod schedules;
mod tenants;

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};

pub use crate::incoming::rate_limit::IncomingLimiter;
pub use error::ApiError;

use crate::outbound::Outbound;
use crate::store::Store;
use crate::target::TargetPolicy;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The delivery client, for synchronous test sends.
    pub outbound: Outbound,
    /// Which endpoint URLs are allowed.
    pub policy: TargetPolicy,
    /// SHA-256 of the operator token.
    pub operator_hash: [u8; 32],
    /// Process metrics.
    pub metrics: crate::metrics::Metrics,
    /// Per-hook rate limit of incoming webhooks.
    pub incoming_limiter: IncomingLimiter,
    /// Whether SMTP is configured (email schedules are refused without it).
    pub email_enabled: bool,
    /// Largest request body read.
    pub max_body_bytes: usize,
}

/// The one route list.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/v1/tenants/{id}",
            get(tenants::get).delete(tenants::delete),
        )
        .route(
            "/v1/tenants/{id}/keys",
            post(tenants::create_key).get(tenants::list_keys),
        )
        .route(
            "/v1/tenants/{id}/keys/{key_id}",
            axum::routing::delete(tenants::delete_key),
        )
        .route(
            "/v1/event-types",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/v1/event-types/{name}",
            axum::routing::delete(event_types::delete),
        )
        .route(
            "/v1/endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route("/v1/endpoints/{id}/stats", get(endpoints::stats))
        .route("/v1/endpoints/{id}/enable", post(endpoints::enable))
        .route("/v1/endpoints/{id}/test", post(endpoints::test_send))
        .route(
            "/v1/endpoints/{id}/secret/rotate",
            post(endpoints::rotate_secret),
        )
        .route("/v1/endpoints/{id}/recover", post(endpoints::recover))
        .route(
            "/v1/endpoints/{id}/deliveries",
            get(deliveries::list_for_endpoint),
        )
        .route("/v1/events", post(events::publish).get(events::list))
        .route("/v1/events/batch", post(events::publish_batch))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/deliveries/{id}", get(deliveries::get))
        .route("/v1/deliveries/{id}/retry", post(deliveries::retry))
        .route("/v1/incoming", post(incoming::create).get(incoming::list))
        .route("/v1/incoming/{id}", axum::routing::delete(incoming::delete))
        .route("/v1/incoming/{id}/requests", get(incoming::requests))
        .route(
            "/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route(
            "/v1/schedules/{id}",
            get(schedules::get)
                .patch(schedules::patch)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{id}/trigger", post(schedules::trigger))
        .route("/v1/schedules/{id}/runs", get(schedules::runs))
        .route("/v1/integrations", get(integrations::list))
        .route(
            "/v1/integrations/{kind}",
            axum::routing::put(integrations::connect).delete(integrations::disconnect),
        )
        .route("/v1/integrations/{kind}/test", post(integrations::test))
        .route(
            "/hooks/in/{token}",
            post(incoming::receive).get(incoming::challenge),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
