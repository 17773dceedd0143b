//! hookd's own `hookd.*` events: which ones a change announces, and what each one carries.
//! The delivery engine's after-attempt rule and the store's endpoint writes both ask here, so
//! every publisher announces alike. None is ever announced about a delivery of a `hookd.*`
//! event, so they cannot loop; the endpoint an event is about never receives it.

use serde_json::json;

use super::{AttemptOutcome, DisableReason, Endpoint, EndpointId, UnixMs, rfc3339};
use crate::model::delivery::DeliveryFacts;
use crate::model::event::OPERATIONAL_PREFIX;
use crate::model::publish::NewEvent;
use crate::model::{EventName, Invalid};

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

impl Announcement {
    /// The event it publishes: no idempotency key, no channels.
    pub fn event(&self) -> Result<NewEvent, Invalid> {
        Ok(NewEvent {
            name: EventName::parse(self.name)?,
            data: self.data.to_string(),
            idempotency_key: None,
            channels: Vec::new(),
            trace: None,
        })
    }
}

/// What an attempt's result came to, as far as announcements go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptNews {
    /// The delivery failed for good.
    pub exhausted: bool,
    /// A delivery that had failed for good succeeded.
    pub recovered: bool,
    /// The endpoint was disabled, why, and after how many failures in a row.
    pub disabled: Option<(DisableReason, u64)>,
    /// When the attempt finished.
    pub at: UnixMs,
}

/// The announcements of one attempt's result: `hookd.delivery.exhausted`,
/// `hookd.delivery.recovered`, `hookd.endpoint.disabled` — none for a delivery of a `hookd.*`
/// event.
pub fn after_attempt(
    endpoint: &Endpoint,
    delivery: &DeliveryFacts,
    attempt: u32,
    outcome: &AttemptOutcome,
    news: AttemptNews,
) -> Vec<Announcement> {
    let mut out = Vec::new();
    if delivery.event_type.starts_with(OPERATIONAL_PREFIX) {
        return out;
    }
    let about = |name| self::delivery(name, endpoint, delivery, attempt, outcome);
    if news.exhausted {
        out.push(about(DELIVERY_EXHAUSTED));
    }
    if news.recovered {
        out.push(about(DELIVERY_RECOVERED));
    }
    if let Some((reason, consecutive)) = news.disabled {
        out.push(disabled(endpoint.id, reason, Some(consecutive), news.at));
    }
    out
}

/// `hookd.endpoint.enabled`, when the endpoint was disabled before.
pub fn on_enabled(before: &Endpoint, at: UnixMs) -> Option<Announcement> {
    (!before.settings.is_active).then(|| enabled(before.id, before.disabled_reason, at))
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
