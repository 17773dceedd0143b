//! The control API: a hyper server (through axum), the route list, auth, and one file per
//! resource. Only this module knows HTTP status codes (`error.rs`).

mod deliveries;
mod endpoints;
mod error;
mod event_types;
mod events;
mod extract;
mod framing;
mod gate;
mod health;
mod incoming;
mod integrations;
pub mod openapi;
mod page;
mod portal;
mod release;
mod sample;
mod schedules;
mod series;
mod tenants;
mod traced;
mod ui;

use std::future::Future;

use axum::Router;
use axum::routing::{get, post};

pub use crate::incoming::rate_limit::IncomingLimiter;
pub use error::ApiError;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::model::plan::Feature;
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
    /// Span export (off unless a collector is set).
    pub telemetry: crate::telemetry::Telemetry,
    /// Per-hook rate limit of incoming webhooks.
    pub incoming_limiter: IncomingLimiter,
    /// Whether SMTP is configured (email schedules are refused without it).
    pub email_enabled: bool,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// Seals endpoint credentials before they are stored (`None`: credentials are refused).
    pub sealing: Option<crate::sealing::SealingKey>,
}

/// The one route list; each request is a span when traces are exported.
pub fn router(state: AppState) -> Router {
    let telemetry = state.telemetry.clone();
    let router = routes(state);
    match telemetry.is_on() {
        true => router.layer(axum::middleware::from_fn_with_state(
            telemetry,
            traced::request,
        )),
        false => router,
    }
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui::root))
        .route("/ui/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .route("/v1/me", get(tenants::me))
        .route(
            "/v1/keys",
            post(tenants::create_own_key).get(tenants::list_own_keys),
        )
        .route(
            "/v1/keys/{id}",
            axum::routing::delete(tenants::delete_own_key),
        )
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/v1/tenants/{id}",
            get(tenants::get)
                .patch(tenants::patch)
                .delete(tenants::delete),
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
        .route("/v1/endpoints/{id}/stats/series", get(series::endpoint))
        .route("/v1/stats/series", get(series::all_endpoints))
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
        .route("/v1/portal-links", post(portal::create).get(portal::list))
        .route(
            "/v1/portal-links/{id}",
            axum::routing::delete(portal::delete),
        )
        .route(
            "/hooks/in/{token}",
            post(incoming::receive).get(incoming::challenge),
        )
        .merge(gated(&state, Feature::Incoming, incoming_routes))
        .merge(gated(&state, Feature::Schedules, schedule_routes))
        .merge(gated(&state, Feature::Integrations, integration_routes))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

/// Incoming webhooks' routes (tenant side; `/hooks/in/…` checks the plan itself).
fn incoming_routes(routes: Router<AppState>) -> Router<AppState> {
    routes
        .route("/v1/incoming", post(incoming::create).get(incoming::list))
        .route("/v1/incoming/{id}", axum::routing::delete(incoming::delete))
        .route("/v1/incoming/{id}/requests", get(incoming::requests))
}

/// Schedules' routes.
fn schedule_routes(routes: Router<AppState>) -> Router<AppState> {
    routes
        .route(
            "/v1/schedules",
            post(schedules::create).get(schedules::list),
        )
        .route("/v1/schedules/preview", get(schedules::preview))
        .route(
            "/v1/schedules/{id}",
            get(schedules::get)
                .patch(schedules::patch)
                .delete(schedules::delete),
        )
        .route("/v1/schedules/{id}/trigger", post(schedules::trigger))
        .route("/v1/schedules/{id}/runs", get(schedules::runs))
}

/// Integrations' routes.
fn integration_routes(routes: Router<AppState>) -> Router<AppState> {
    routes
        .route("/v1/integrations", get(integrations::list))
        .route(
            "/v1/integrations/{kind}",
            axum::routing::put(integrations::connect).delete(integrations::disconnect),
        )
        .route("/v1/integrations/{kind}/test", post(integrations::test))
}

/// The routes `add` lists, answering `403 plan_required` to a tenant whose plan has
/// `feature` off.
fn gated(
    state: &AppState,
    feature: Feature,
    add: fn(Router<AppState>) -> Router<AppState>,
) -> Router<AppState> {
    let gate = gate::Gate {
        state: state.clone(),
        feature,
    };
    add(Router::new()).route_layer(axum::middleware::from_fn_with_state(gate, gate::gate))
}

/// How the API treats connections.
#[derive(Clone)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a request's head (or the next request on an idle keep-alive connection) may
    /// take before the connection is closed; also the TLS handshake's limit.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open requests.
    pub drain: Duration,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes open requests
/// (bounded by `limits.drain`: connections still open then are closed). Connections are bounded in number, and one that sends its
/// head too slowly or sits idle past `header_read_timeout` is closed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let peak = Arc::new(release::Peak::default());
    let returns_memory = tokio::spawn(release::watch(
        open.clone(),
        limits.max_connections,
        peak.clone(),
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Every connection's task, so that those still open after the drain time can be ended.
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = open.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        peak.opened(limits.max_connections - open.available_permits());
        let _ = stream.set_nodelay(true);
        let (http, app, watcher) = (http.clone(), app.clone(), graceful.watcher());
        let (tls, handshake) = (limits.tls.clone(), limits.header_read_timeout);
        connections.spawn(async move {
            match tls {
                None => serve_connection(&http, stream, app, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(&http, tls, app, watcher).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    returns_memory.abort();
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "API connections still open after the drain time; closing them"
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves HTTP/1.1 on one connection until it closes (or shutdown ends it).
async fn serve_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (io, ambiguous) = framing::Watched::new(io);
    let requests = std::sync::atomic::AtomicU64::new(0);
    let service = hyper::service::service_fn(move |request| {
        let index = requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refused = ambiguous.is(index);
        let mut app = app.clone();
        async move {
            if refused {
                return Ok(axum::response::IntoResponse::into_response(
                    ApiError::malformed(
                        "a request may state its length with Content-Length or Transfer-Encoding, not both",
                    ),
                ));
            }
            // A router is always ready: no `poll_ready` needed.
            tower_service::Service::call(&mut app, request).await
        }
    });
    let connection = http.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %crate::report::ErrorChain(&e), "API connection ended with an error");
    }
}

/// The certificates in a PEM file; an error when it holds none.
pub fn certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            source: e,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// A TLS acceptor for the API from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        path: key.to_owned(),
        source: e,
    })?;
    // The provider is named here: no process-wide default need be installed first.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Why the API's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read PEM file {path}")]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0} holds no certificate")]
    NoCertificate(std::path::PathBuf),
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS configuration")]
    Rustls(#[source] rustls::Error),
}
