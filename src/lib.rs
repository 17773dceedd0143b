//! hookd: a self-hosted webhook delivery engine in one binary with an embedded SQLite file.
//!
//! # Layout
//! - [`app`]: wires store, dispatcher, scheduler, housekeeping and API;
//!   `app::run(config, listener, shutdown)`.
//! - [`config`]: settings from flags > `HOOKD_*` environment > `hookd.toml` > defaults.
//! - [`model`]: pure types (ids, endpoints, events, deliveries, schedules, an attempt's facts
//!   and transition, the `hookd.*` event shapes, publish plans, token rules, how derived counts
//!   fold) and the rules that parse them.
//! - [`service`]: the use-cases outside the store. Publishing plans events from the tenant's
//!   [`fanout::Audience`] (targets, quota, idempotency window, status schedules to wake) and
//!   the store applies the plan, or hands it back when the tenant's version moved;
//!   authentication reads the credential a token names and decides by [`model::auth`];
//!   replay (a retry by hand, a recover window's missed events) is decided by
//!   [`model::replay`] from state read outside the writer and applied only while that state
//!   holds. A schedule run ([`schedule::firing`]) plans its digest the same way and decides
//!   the run's status from the plan. Recording results plans each endpoint's results with the
//!   delivery engine's rule ([`model::results`]) and their `hookd.*` announcements from the
//!   audience; the store writes each while its lease holds, and hands back an endpoint's
//!   results when the state they depend on (or the tenant's version) moved.
//! - [`db`]: the database underneath the store, knowing none of hookd's tables: statements
//!   and values on SQLite or PostgreSQL ([`db::sql`]), their errors, the single writer (group
//!   commit, [`db::writer`]), the read pools, a SQLite file's place and lock.
//! - [`store`]: hookd's rows and statements: migrations, the claim, what a write batch shares
//!   (the ledger every derived count goes through, tenants' versions and audiences), and on
//!   PostgreSQL the processes' heartbeats. It keeps rows and checks leases and versions.
//! - [`delivery`]: the dispatcher (claims, leases, bounded workers, batched records), one
//!   attempt's step, and the rule for what follows an attempt ([`delivery::after_attempt`]:
//!   retry, give up, disable, `hookd.*` events).
//! - [`fanout`]: which endpoints an event goes to (subscriptions compiled once per tenant),
//!   and the publish plan computed from a tenant's audience.
//! - [`schedule`]: schedules' timer, firing (period, digest, one short write), digest text,
//!   PDF/DOCX documents and the SMTP mailer.
//! - [`incoming`]: incoming webhooks' rules: body decoding, challenges, signature checks,
//!   what the request log keeps, the per-hook rate limit.
//! - [`housekeeping`]: periodic clean-up of the database.
//! - [`api`]: the control API: routes, auth, errors, one file per resource.
//! - [`metrics`]: Prometheus counters shared by the API and the dispatcher.
//! - [`outbound`]: the shared HTTP client that signs, sends and classifies one attempt, with
//!   the endpoint's credentials (Basic, OAuth2 tokens, client certificates) and the proxy.
//! - [`sealing`]: endpoint credentials sealed at rest under a key kept outside the database.
//! - [`render`]: request bodies per endpoint format (json, Slack, Discord), and a delivery's
//!   request as shown to a person.
//! - [`report`]: errors in the log with their cause chain.
//! - [`copy`]: `hookd copy`, a whole database into an empty one (SQLite → PostgreSQL or
//!   back), through the store's migrations and [`db::sql`].
//! - [`demo`]: `hookd demo` (hookd working end to end on a temporary database) and
//!   `hookd receive` (a receiver that verifies signatures).
//! - [`signing`]: Standard Webhooks and GitHub signatures, signing and verifying.
//! - [`target`]: which delivery addresses are allowed (no private targets by default).
//! - [`telemetry`]: OpenTelemetry spans, exported over OTLP when a collector is set.
//!
//! # Dependency rule
//! `main → {app, demo, copy} → app → {api, delivery, housekeeping, schedule} → service → store → db
//! → rusqlite` (a service is skipped where a route only reads or writes one row).
//! Everyone may use `model`, `config`, `fanout`, `signing`, `target`, `metrics`, `telemetry`,
//! `render`, `outbound`, `sealing`, `report` and `incoming` (which use only `model` and `signing`).
//! The services under `app` never import each other, with one exception: the API's trigger
//! runs `schedule::firing`, the same step as the timer. Neither the store nor the services
//! import `delivery`: the dispatcher hands the recording service the after-attempt rule as a
//! function ([`model::attempt::AttemptRule`]), and the store writes what it planned.

pub mod api;
pub mod app;
pub mod config;
pub mod copy;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod fanout;
pub mod housekeeping;
pub mod incoming;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod render;
pub mod report;
pub mod schedule;
pub mod sealing;
pub mod service;
pub mod signing;
pub mod store;
pub mod target;
pub mod telemetry;
