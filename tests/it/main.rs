//! hookd's integration tests: one binary, a real server on port 0, a real SQLite file in a
//! temp dir (or a throwaway PostgreSQL cluster) and real receivers on 127.0.0.1.

mod auth;
mod bad_input;
mod brokers;
mod browser;
mod cloudevents;
mod delivery;
mod endpoint_auth;
mod endpoints;
mod events;
mod fail_safe;
mod failover;
mod fencing;
mod first_hour;
mod ids;
mod incoming;
mod integrations;
mod metrics;
mod openapi;
mod operating;
mod operating_cli;
mod otlp;
mod planning;
mod plans;
mod portal;
mod postgres;
mod process;
mod properties;
mod proxy;
mod retention;
mod rotation;
mod schedules;
mod series;
mod support;
mod tls;
mod trace_context;
