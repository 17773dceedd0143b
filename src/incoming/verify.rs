//! Signature verification of incoming calls, with the same signer hookd sends with: Standard
//! Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) or GitHub style
//! (`x-hub-signature-256`), within a five-minute tolerance.

use http::HeaderMap;

use super::request_log::header;
use crate::model::SignatureScheme;
use crate::signing::Signer;

/// How far a signed call's timestamp may be from now.
const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Checks a call's signature at `now_s` (unix seconds); the error says what was wrong.
pub fn verify(
    scheme: SignatureScheme,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), String> {
    let signer = Signer::new(scheme, &[secret]).map_err(|e| e.to_string())?;
    let result = match scheme {
        SignatureScheme::Standard | SignatureScheme::Ed25519 => {
            let id = header(headers, "webhook-id").ok_or("missing webhook-id header")?;
            let ts = header(headers, "webhook-timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or("missing or malformed webhook-timestamp header")?;
            let sig =
                header(headers, "webhook-signature").ok_or("missing webhook-signature header")?;
            signer.verify(id, ts, body, sig, now_s, SIGNATURE_TOLERANCE_S)
        }
        SignatureScheme::Github => {
            let sig = header(headers, "x-hub-signature-256")
                .ok_or("missing x-hub-signature-256 header")?;
            signer.verify("", 0, body, sig, now_s, SIGNATURE_TOLERANCE_S)
        }
    };
    result.map_err(|e| format!("signature rejected: {e}"))
}
