//! The delivery engine: the dispatcher claims due deliveries (never more than the free worker
//! slots, never more than the per-endpoint cap) and hands each to a worker, which makes one
//! attempt ([`worker::attempt`]) and records its outcome through the store.

mod dispatcher;
mod held;
mod slots;
mod transition;
mod worker;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use transition::after_attempt;
pub use worker::{attempt, render_body};
