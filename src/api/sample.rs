//! Sample deliveries sent at once, outside the outbox (an endpoint's or an integration's test).

use bytes::Bytes;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::model::{Endpoint, now_ms, rfc3339};
use crate::outbound::Message;
use crate::render::{EventView, format_headers, render};
use crate::signing::Signer;

/// Signs and sends a sample event (not stored) to `endpoint` in its format, now.
pub(super) async fn send_sample(
    state: &AppState,
    endpoint: &Endpoint,
    name: &str,
    data: &Value,
) -> Result<crate::model::AttemptOutcome, ApiError> {
    let secrets = state.store.endpoint_secrets(endpoint.id).await?;
    let keys: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signer = Signer::new(endpoint.settings.signature_scheme, &keys)
        .map_err(|e| ApiError::invalid(format!("the endpoint's secret cannot sign: {e}")))?;
    let msg_id = format!("evt_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let (timestamp, data) = (rfc3339(now_ms()), data.to_string());
    let view = EventView {
        id: &msg_id,
        name,
        timestamp: &timestamp,
        data: &data,
    };
    let body = Bytes::from(render(endpoint.settings.format, view));
    let format_headers = format_headers(endpoint.settings.format, view);
    Ok(state
        .outbound
        .send(
            endpoint,
            &signer,
            Message {
                id: &msg_id,
                event_type: name,
                body: &body,
                format_headers: &format_headers,
                trace: None,
            },
        )
        .await)
}
