//! Wiring: opens the store, starts the dispatcher and serves the API until shutdown, then
//! stops in order: no new requests, in-flight attempts finish (bounded), queued writes commit.

use std::future::Future;

use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::delivery::{Dispatcher, DispatcherConfig};
use crate::outbound::{Outbound, OutboundConfig};
use crate::sealing::{SealingKey, default_key_path};
use crate::store::{Store, StoreError};
use crate::target::TargetPolicy;
use crate::telemetry::{Telemetry, TelemetryError};

/// Why hookd could not run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    /// The API server failed.
    #[error("the API server failed")]
    Serve(#[from] std::io::Error),
    /// The API's TLS certificate or key, or the `--ca-file`, cannot be used.
    #[error("cannot use the TLS certificates")]
    Tls(#[from] api::TlsError),
    /// A `--ca-file` certificate is not a usable root.
    #[error("a --ca-file certificate cannot be trusted as a root")]
    CaFile(#[source] rustls::Error),
    /// Trace export cannot start.
    #[error("cannot start trace export")]
    Telemetry(#[from] TelemetryError),
    /// The credentials key cannot be read or made.
    #[error("cannot use the credentials key")]
    Sealing(#[from] crate::sealing::SealError),
}

/// Says at start, loudly, when stored endpoint credentials cannot be opened (the database was
/// restored or copied without its key, or PostgreSQL runs without one): those endpoints'
/// attempts fail as `auth` until the key is back or their credentials are written again.
async fn check_credentials_key(
    store: &Store,
    sealing: Option<&SealingKey>,
) -> Result<(), StoreError> {
    let Some(sealed) = store.some_sealed_credential().await? else {
        return Ok(());
    };
    match sealing {
        None => tracing::error!(
            "endpoints have stored credentials but hookd has no credentials key: start it with --credentials-key-file (the file they were sealed with); until then their attempts fail as 'auth'"
        ),
        Some(key) if key.open(&sealed).is_err() => tracing::error!(
            "the credentials key does not open the endpoints' stored credentials (a database restored or copied without its key?): put the original key file back; until then their attempts fail as 'auth'"
        ),
        Some(_) => {}
    }
    Ok(())
}

/// Runs hookd on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(api::tls_acceptor(cert, key)?),
        _ => None,
    };
    let extra_roots = match &config.ca_file {
        Some(path) => api::certificates(path)?,
        None => Vec::new(),
    };
    // Before the credentials key or any other file is made beside the database.
    if !crate::store::is_postgres_url(&config.db) {
        crate::store::check_location(&config.db)?;
    }
    // On PostgreSQL every process needs the same key: it is never made up silently there.
    let sealing = match &config.credentials_key_file {
        Some(path) => Some(SealingKey::load_or_create(path)?),
        None if crate::store::is_postgres_url(&config.db) => None,
        None => Some(SealingKey::load_or_create(&default_key_path(&config.db))?),
    };
    let (store, handle) = Store::open_any(&config.db, config.durability).await?;
    check_credentials_key(&store, sealing.as_ref()).await?;
    let operator_hash = match &config.admin_token {
        Some(token) => Sha256::digest(token.as_bytes()).into(),
        None => {
            let (hash, generated) = store.operator_token().await?;
            if let Some(token) = generated {
                println!(
                    "hookd: generated the operator token (shown once, stored hashed): {token}"
                );
            }
            hash
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("hookd: listening on {scheme}://{}", listener.local_addr()?);
    let policy = TargetPolicy {
        allow_http: config.allow_http,
        allow_private: config.allow_private_targets,
    };
    if config.allow_http {
        tracing::warn!("--allow-http is on: endpoints may use plain http://, unencrypted");
    }
    if config.allow_private_targets {
        tracing::warn!(
            "--allow-private-targets is on: endpoints may reach loopback and private addresses (this machine and its network)"
        );
    }
    if let Some(proxy) = &config.proxy {
        tracing::info!(%proxy, "every delivery goes through the proxy");
    }
    let outbound = Outbound::new(OutboundConfig {
        policy,
        extra_roots,
        proxy: config.proxy.clone(),
        sealing: sealing.clone(),
    })
    .map_err(AppError::CaFile)?;
    let metrics = crate::metrics::Metrics::new(config.metrics_top);
    let telemetry = match &config.otlp {
        Some(settings) => {
            tracing::info!(endpoint = %settings.endpoint, "exporting traces over OTLP");
            Telemetry::start(settings, metrics.otlp())?
        }
        None => Telemetry::default(),
    };
    let dispatcher = Dispatcher::new(
        store.clone(),
        outbound.clone(),
        metrics.clone(),
        telemetry.clone(),
        DispatcherConfig {
            max_in_flight: config.max_in_flight,
            max_in_flight_per_endpoint: config.max_in_flight_per_endpoint,
            poll_interval: config.poll_interval,
            lease_margin: config.lease_margin,
            shutdown_grace: config.shutdown_grace,
        },
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let dispatcher = tokio::spawn(dispatcher.run(stopped(stop_rx.clone())));
    let housekeeping = tokio::spawn(crate::housekeeping::run(
        store.clone(),
        crate::housekeeping::Retention {
            succeeded: config.retention,
            failed: config.failed_retention,
        },
        config.housekeeping_interval,
        stopped(stop_rx.clone()),
    ));

    let scheduler = tokio::spawn(crate::schedule::run(
        store.clone(),
        telemetry.clone(),
        config.poll_interval,
        stopped(stop_rx.clone()),
    ));
    let mailer = config.smtp.clone().map(|smtp| {
        tokio::spawn(crate::schedule::mail::run(
            store.clone(),
            smtp,
            config.email_retry_schedule.clone(),
            config.poll_interval,
            stopped(stop_rx.clone()),
        ))
    });
    let state = AppState {
        store: store.clone(),
        outbound,
        policy,
        operator_hash,
        metrics,
        telemetry: telemetry.clone(),
        incoming_limiter: api::IncomingLimiter::new(config.incoming_rate_limit),
        email_enabled: config.smtp.is_some(),
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: config.body_read_timeout,
        sealing,
    };
    tracing::info!(listen = %listener.local_addr()?, db = %config.db.display(), "hookd is serving");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests; finishing in-flight attempts");
        let _ = stop_tx.send(true);
    };
    let limits = api::ConnectionLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        drain: config.shutdown_grace,
        tls,
    };
    let served = api::serve(listener, state, limits, signal).await;
    let _ = dispatcher.await;
    let _ = housekeeping.await;
    let _ = scheduler.await;
    if let Some(mailer) = mailer {
        let _ = mailer.await;
    }
    telemetry.shutdown().await;
    drop(store);
    tokio::task::spawn_blocking(move || handle.close())
        .await
        .ok();
    tracing::info!("hookd stopped");
    served.map_err(AppError::from)
}
