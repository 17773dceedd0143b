//! hookd's own `hookd.*` events: what each one carries. Which ones are published, and when,
//! is decided where the change happens (the delivery engine for attempts); these are only
//! their shapes, so every publisher writes them alike.

use serde_json::json;

use super::{AttemptOutcome, DisableReason, Endpoint, EndpointId, UnixMs, rfc3339};
use crate::model::delivery::DeliveryFacts;

/// A delivery failed for good.
pub const DELIVERY_EXHAUSTED: &str = "hookd.delivery.exhausted";
/// A delivery that had failed for good succeeded after a replay.
pub const DELIVERY_RECOVERED: &str = "hookd.delivery.recovered";
/// An endpoint stopped receiving deliveries.
pub const ENDPOINT_DISABLED: &str = "hookd.endpoint.disabled";
/// An endpoint receives deliveries again.
pub const ENDPOINT_ENABLED: &str = "hookd.endpoint.enabled";
/// An endpoint's signing secret was replaced.
pub const ENDPOINT_SECRET_ROTATED: &str = "hookd.endpoint.secret_rotated";

/// One operational event to publish into the tenant of the endpoint it is about; that
/// endpoint never receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// The event type, one of the constants above.
    pub name: &'static str,
    /// The endpoint it is about.
    pub about: EndpointId,
    /// Its `data`.
    pub data: serde_json::Value,
}

/// `hookd.delivery.exhausted` or `hookd.delivery.recovered` about one attempt.
pub fn delivery(
    name: &'static str,
    endpoint: &Endpoint,
    delivery: &DeliveryFacts,
    attempt: u32,
    outcome: &AttemptOutcome,
) -> Announcement {
    Announcement {
        name,
        about: endpoint.id,
        data: json!({
            "endpointId": endpoint.id,
            "deliveryId": delivery.id,
            "eventId": delivery.event_id,
            "eventType": delivery.event_type,
            "attempts": attempt,
            "responseCode": outcome.response_code,
            "error": outcome.error.map(|e| e.as_str()),
        }),
    }
}

/// `hookd.endpoint.disabled`; `consecutive_failures` is given when failures disabled it.
pub fn disabled(
    endpoint: EndpointId,
    reason: DisableReason,
    consecutive_failures: Option<u64>,
    at: UnixMs,
) -> Announcement {
    let mut data = json!({
        "endpointId": endpoint,
        "reason": reason,
        "disabledAt": rfc3339(at),
    });
    if let Some(n) = consecutive_failures {
        data["consecutiveFailures"] = json!(n);
    }
    Announcement {
        name: ENDPOINT_DISABLED,
        about: endpoint,
        data,
    }
}

/// `hookd.endpoint.enabled`.
pub fn enabled(endpoint: EndpointId, previous: Option<DisableReason>, at: UnixMs) -> Announcement {
    Announcement {
        name: ENDPOINT_ENABLED,
        about: endpoint,
        data: json!({
            "endpointId": endpoint,
            "previousReason": previous,
            "enabledAt": rfc3339(at),
        }),
    }
}

/// `hookd.endpoint.secret_rotated`.
pub fn secret_rotated(endpoint: EndpointId, at: UnixMs, old_expires_at: UnixMs) -> Announcement {
    Announcement {
        name: ENDPOINT_SECRET_ROTATED,
        about: endpoint,
        data: json!({
            "endpointId": endpoint,
            "rotatedAt": rfc3339(at),
            "oldSecretExpiresAt": rfc3339(old_expires_at),
        }),
    }
}
