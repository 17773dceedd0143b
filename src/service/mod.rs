//! Application services: one per use-case, outside the store. Each reads what it needs,
//! computes a plan as data with pure code (the rules live in [`crate::model`] and
//! [`crate::fanout`]), and hands the plan to the store, which applies it and decides nothing.

pub mod auth;
pub mod publish;
pub mod record;
pub mod replay;
