//! How an endpoint is shown: its JSON, with a URL that is a credential sealed (only its origin
//! readable) and secret header values hidden.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::model::endpoint::{HeaderSetting, Sealed, redacted};
use crate::model::{Endpoint, EndpointSettings, Invalid, duration, rfc3339};
use crate::report::ErrorChain;
use crate::sealing::{SealError, SealingKey};

/// Seals the URL of an endpoint whose format makes it a credential (Slack, Discord), keeping
/// only its origin readable, and opens it again when the format no longer does. Without a
/// credentials key the URL stays as it is.
pub(in crate::api) fn protect_url(
    s: &mut EndpointSettings,
    sealing: Option<&SealingKey>,
) -> Result<(), Invalid> {
    let Some(key) = sealing else { return Ok(()) };
    match (&s.url_sealed, s.format.url_is_secret()) {
        (None, true) => {
            let sealed = key
                .seal(s.url.as_str().as_bytes())
                .map_err(|e| Invalid(format!("url: {e}")))?;
            s.url = redacted(&s.url);
            s.url_sealed = Some(sealed);
        }
        (Some(sealed), false) => {
            s.url =
                open_url(sealed, key).map_err(|e| Invalid(format!("url: {}", ErrorChain(&e))))?;
            s.url_sealed = None;
        }
        _ => {}
    }
    Ok(())
}

/// Why a sealed URL cannot be opened.
#[derive(Debug, thiserror::Error)]
enum UrlOpenError {
    /// The key does not open it.
    #[error("the sealed url cannot be opened")]
    Open(#[source] SealError),
    /// What it opens to is not a URL.
    #[error("the sealed url is not a URL")]
    Parse(#[source] url::ParseError),
}

/// A sealed URL, opened.
fn open_url(sealed: &Sealed, key: &SealingKey) -> Result<url::Url, UrlOpenError> {
    let text = key.open_text(sealed).map_err(UrlOpenError::Open)?;
    url::Url::parse(&text).map_err(UrlOpenError::Parse)
}

/// An endpoint's URL as the API shows it: whole (opened when sealed; its origin alone when the
/// key cannot open it).
pub(in crate::api) fn shown_url(s: &EndpointSettings, sealing: Option<&SealingKey>) -> String {
    match (&s.url_sealed, sealing) {
        (Some(sealed), Some(key)) => match open_url(sealed, key) {
            Ok(url) => url.to_string(),
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "a stored endpoint URL cannot be opened");
                s.url.to_string()
            }
        },
        _ => s.url.to_string(),
    }
}

/// Custom headers as the API shows them: sealed values opened (one the key cannot open shows
/// as `null`, and the log says why).
fn headers_json(headers: &BTreeMap<String, HeaderSetting>, sealing: Option<&SealingKey>) -> Value {
    let shown: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            let value = match value {
                HeaderSetting::Plain(v) => Value::String(v.clone()),
                HeaderSetting::Sealed(sealed) => match sealing.map(|key| key.open_text(sealed)) {
                    Some(Ok(text)) => Value::String(text),
                    Some(Err(e)) => {
                        tracing::error!(header = %name, error = %e, "a stored header value cannot be opened");
                        Value::Null
                    }
                    None => Value::Null,
                },
            };
            (name.clone(), value)
        })
        .collect();
    Value::Object(shown)
}

pub(super) fn endpoint_json(e: &Endpoint, sealing: Option<&SealingKey>) -> Value {
    let s = &e.settings;
    json!({
        "id": e.id,
        "name": s.name,
        "url": shown_url(s, sealing),
        "destination": s.destination.to_json(),
        "events": s.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "isActive": s.is_active,
        "signatureScheme": s.signature_scheme.as_str(),
        "signatureHeaderName": s.signature_header(),
        "format": s.format.as_str(),
        "headers": headers_json(&s.headers, sealing),
        "retrySchedule": s.retry_schedule.iter().map(|d| duration::format(*d)).collect::<Vec<_>>(),
        "disableAfter": s.disable_after,
        "timeoutMs": s.timeout_ms,
        "rateLimit": s.rate_limit,
        "ordering": s.ordering.as_str(),
        "filter": s.filter.as_ref().map(|f| f.source()),
        "channels": s.channels,
        "authConfigured": s.auth.is_some(),
        "clientCertificateConfigured": s.client_certificate.is_some(),
        "createdAt": rfc3339(e.created_at),
        "updatedAt": rfc3339(e.updated_at),
        "disabledAt": e.disabled_at.map(rfc3339),
        "disabledReason": e.disabled_reason,
    })
}
