//! Incoming webhooks: what a hook does with what it receives, and how a call is logged.

use std::collections::BTreeMap;

use super::{EventId, EventName, IncomingId, IncomingRequestId, SignatureScheme, TenantId, UnixMs};

/// What an incoming hook does with an accepted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingAction {
    /// Publish the body as the `data` of an event of this type (fanned out like any event).
    Publish(EventName),
    /// Keep it in the request log only.
    Store,
}

/// An incoming hook.
#[derive(Debug, Clone)]
pub struct IncomingHook {
    /// Its id.
    pub id: IncomingId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Display name.
    pub name: String,
    /// What it does with accepted calls.
    pub action: IncomingAction,
    /// Calls must carry a valid signature under this scheme and secret.
    pub verify: Option<(SignatureScheme, String)>,
    /// When it was created.
    pub created_at: UnixMs,
}

/// One call, as logged.
#[derive(Debug, Clone)]
pub struct IncomingRequest {
    /// Its id (set once stored).
    pub id: IncomingRequestId,
    /// When it arrived.
    pub received_at: UnixMs,
    /// Its content type.
    pub content_type: Option<String>,
    /// The headers that matter.
    pub headers: BTreeMap<String, String>,
    /// The body, cut to the log's cap.
    pub body: Option<String>,
    /// Whether it was accepted.
    pub accepted: bool,
    /// Why it was rejected.
    pub error: Option<String>,
    /// The event it published.
    pub event_id: Option<EventId>,
}
