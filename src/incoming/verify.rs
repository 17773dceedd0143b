//! Signature verification of incoming calls, with the same signer hookd sends with: Standard
//! Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) or GitHub style
//! (`x-hub-signature-256`), within a five-minute tolerance.

use http::HeaderMap;

use super::request_log::header;
use crate::model::SignatureScheme;
use crate::signing::{Signer, SigningError};

/// How far a signed call's timestamp may be from now.
const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Why a call's signature was not accepted; the sentence is what the caller and the request
/// log are told.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The hook's own secret cannot make a signer.
    #[error(transparent)]
    Secret(SigningError),
    /// A header the scheme needs is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// `webhook-timestamp` is missing or not a number.
    #[error("missing or malformed webhook-timestamp header")]
    Timestamp,
    /// The signature does not verify.
    #[error("signature rejected: {0}")]
    Signature(#[source] SigningError),
}

/// Checks a call's signature at `now_s` (unix seconds); the error says what was wrong.
pub fn verify(
    scheme: SignatureScheme,
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), Rejected> {
    let signer = Signer::new(scheme, &[secret]).map_err(Rejected::Secret)?;
    let needed = |name: &'static str| header(headers, name).ok_or(Rejected::Missing(name));
    let result = match scheme {
        SignatureScheme::Standard | SignatureScheme::Ed25519 => {
            let id = needed("webhook-id")?;
            let ts = header(headers, "webhook-timestamp")
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(Rejected::Timestamp)?;
            let sig = needed("webhook-signature")?;
            signer.verify(id, ts, body, sig, now_s, SIGNATURE_TOLERANCE_S)
        }
        SignatureScheme::Github => {
            let sig = needed("x-hub-signature-256")?;
            signer.verify("", 0, body, sig, now_s, SIGNATURE_TOLERANCE_S)
        }
    };
    result.map_err(Rejected::Signature)
}
