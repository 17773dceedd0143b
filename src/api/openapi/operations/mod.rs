//! The API's operations, as the document lists them, by area.

mod delivery;
mod extras;
mod service;

use serde_json::{Value, json};

use super::fields::reference;
use super::{Access, Op};

const ADMIN: Access = Access::Tenant("admin");
const PUBLISHER: Access = Access::Tenant("publisher");
const VIEWER: Access = Access::Tenant("viewer");

/// A body that must be an empty object.
fn empty() -> Value {
    json!({"type": "object", "additionalProperties": false})
}

/// A success body: the named schema.
fn named(name: &str) -> Option<Value> {
    Some(reference(name))
}

/// An operation that takes nothing and answers nothing yet: the parts are filled in.
fn op(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    access: Access,
) -> Op {
    Op {
        method,
        path,
        id,
        summary,
        access,
        query: Vec::new(),
        body: None,
        ok: Vec::new(),
        errors: &[],
    }
}

/// Every operation of the API.
pub(super) fn operations() -> Vec<Op> {
    let mut all = service::operations();
    all.extend(delivery::operations());
    all.extend(extras::operations());
    all
}
