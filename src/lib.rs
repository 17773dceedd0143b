//! hookd: a self-hosted webhook delivery engine in one binary with an embedded SQLite file.
//!
//! # Layout
//! - [`app`]: wires store, dispatcher and API; `app::run(config, listener, shutdown)`.
//! - [`config`]: settings from flags > `HOOKD_*` environment > `hookd.toml` > defaults.
//! - [`model`]: pure types (ids, endpoints, events, deliveries) and the rules that parse them.
//! - [`store`]: all SQL: migrations, the single writer (group commit), the read pool.
//! - [`delivery`]: the dispatcher (claims, leases, bounded workers) and one attempt's step.
//! - [`documents`]: digest files (PDF, DOCX).
//! - [`housekeeping`]: periodic clean-up of the database.
//! - [`api`]: the control API: routes, auth, errors, one file per resource.
//! - [`mailer`]: sends email digests over SMTP, with retries.
//! - [`metrics`]: Prometheus counters shared by the API and the dispatcher.
//! - [`outbound`]: the shared HTTP client that signs, sends and classifies one attempt.
//! - [`render`]: request bodies per endpoint format (json, Slack, Discord).
//! - [`scheduler`]: fires due schedules (their digests go out through the outbox).
//! - [`signing`]: Standard Webhooks and GitHub signatures, signing and verifying.
//! - [`target`]: which delivery addresses are allowed (no private targets by default).
//!
//! # Dependency rule
//! `main → app → {api, delivery, housekeeping, scheduler, mailer} → store → rusqlite`. Everyone may use `model`, `config`,
//! `signing`, `target`, `metrics`, `render` and `outbound`; the services under `app` never import each other.

pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod fanout;
pub mod housekeeping;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod render;
pub mod report;
pub mod schedule;
pub mod signing;
pub mod store;
pub mod target;
