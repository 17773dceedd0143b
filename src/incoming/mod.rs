//! Incoming webhooks: the rules for calls the world makes to `/hooks/in/{token}`, apart from
//! their HTTP glue (`api/incoming.rs`): reading the body ([`payload`]: JSON, forms, challenges;
//! [`cloudevents`]: CloudEvents in either mode),
//! signature verification ([`verify`]), what the request log keeps ([`request_log`]) and the
//! per-hook rate limit ([`rate_limit`]).

pub mod cloudevents;
pub mod payload;
pub mod rate_limit;
pub mod request_log;
pub mod verify;
