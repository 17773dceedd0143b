//! Webhook signatures: Standard Webhooks (`v1,` HMAC-SHA256 over `id.timestamp.body`) and
//! GitHub style (`sha256=` hex HMAC-SHA256 over the body). The same code signs outgoing
//! deliveries and verifies incoming calls.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::SignatureScheme;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// A `standard` secret that is not `whsec_` + base64 of 24–64 bytes.
    #[error("secret must be 'whsec_' followed by the base64 of 24 to 64 bytes")]
    BadStandardSecret,
    /// A `github` secret that is not 8–256 printable characters.
    #[error("secret must be 8 to 256 printable characters")]
    BadGithubSecret,
    /// No signature matched.
    #[error("no signature matches")]
    Mismatch,
    /// A signature header was missing or unreadable.
    #[error("the signature headers are missing or malformed")]
    Missing,
    /// The timestamp is too far from now.
    #[error("the timestamp is outside the allowed window")]
    Stale,
}

/// Generates a secret: `whsec_` + standard base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

/// A key ready to sign with, derived once from an endpoint's secret.
#[derive(Clone)]
pub struct Signer {
    scheme: SignatureScheme,
    keys: Vec<HmacSha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Builds a signer from one or more secrets (several during a rotation's grace period).
    pub fn new(scheme: SignatureScheme, secrets: &[&str]) -> Result<Self, SigningError> {
        let keys = secrets
            .iter()
            .map(|s| {
                let key = key_bytes(scheme, s)?;
                HmacSha256::new_from_slice(&key).map_err(|_| SigningError::BadStandardSecret)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { scheme, keys })
    }

    /// The signature header's value for this message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::new();
        for key in &self.keys {
            if !out.is_empty() {
                out.push(' ');
            }
            match self.scheme {
                SignatureScheme::Standard => {
                    out.push_str("v1,");
                    out.push_str(&B64.encode(standard_mac(key, msg_id, timestamp, body)));
                }
                SignatureScheme::Github => {
                    let mut mac = key.clone();
                    mac.update(body);
                    out.push_str("sha256=");
                    out.push_str(&hex::encode(mac.finalize().into_bytes()));
                }
            }
        }
        out
    }

    /// Checks a received signature header: any one listed signature matching any key passes.
    /// For `standard`, `timestamp` must lie within `tolerance_s` of `now_s`.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
        now_s: i64,
        tolerance_s: i64,
    ) -> Result<(), SigningError> {
        if self.scheme == SignatureScheme::Standard && (now_s - timestamp).abs() > tolerance_s {
            return Err(SigningError::Stale);
        }
        let expected: Vec<String> = self
            .keys
            .iter()
            .map(|key| match self.scheme {
                SignatureScheme::Standard => B64.encode(standard_mac(key, msg_id, timestamp, body)),
                SignatureScheme::Github => {
                    let mut mac = key.clone();
                    mac.update(body);
                    hex::encode(mac.finalize().into_bytes())
                }
            })
            .collect();
        let prefix = match self.scheme {
            SignatureScheme::Standard => "v1,",
            SignatureScheme::Github => "sha256=",
        };
        let mut seen = false;
        for given in header.split(' ').filter_map(|sig| sig.strip_prefix(prefix)) {
            seen = true;
            if expected
                .iter()
                .any(|e| bool::from(e.as_bytes().ct_eq(given.as_bytes())))
            {
                return Ok(());
            }
        }
        Err(if seen {
            SigningError::Mismatch
        } else {
            SigningError::Missing
        })
    }
}

fn standard_mac(key: &HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = key.clone();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks that a secret suits its scheme (the rule for user-given secrets).
pub fn check_secret(scheme: SignatureScheme, secret: &str) -> Result<(), SigningError> {
    key_bytes(scheme, secret).map(|_| ())
}

fn key_bytes(scheme: SignatureScheme, secret: &str) -> Result<Vec<u8>, SigningError> {
    match scheme {
        SignatureScheme::Standard => {
            let b64 = secret
                .strip_prefix(SECRET_PREFIX)
                .ok_or(SigningError::BadStandardSecret)?;
            let key = B64
                .decode(b64)
                .map_err(|_| SigningError::BadStandardSecret)?;
            if (24..=64).contains(&key.len()) {
                Ok(key)
            } else {
                Err(SigningError::BadStandardSecret)
            }
        }
        SignatureScheme::Github => {
            let printable = secret.chars().all(|c| !c.is_control());
            if (8..=256).contains(&secret.chars().count()) && printable {
                Ok(secret.as_bytes().to_vec())
            } else {
                Err(SigningError::BadGithubSecret)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn standard_signature_matches_the_spec_test_vector() {
        let signer = Signer::new(SignatureScheme::Standard, &[SECRET]).unwrap();
        assert_eq!(
            signer.sign(MSG_ID, TS, BODY),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn standard_verification_accepts_the_vector_and_rejects_tampering() {
        let signer = Signer::new(SignatureScheme::Standard, &[SECRET]).unwrap();
        let header = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            signer.verify(MSG_ID, TS, BODY, header, TS + 10, 300),
            Ok(())
        );
        assert_eq!(
            signer.verify(MSG_ID, TS, b"{}", header, TS, 300),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            signer.verify(MSG_ID, TS, BODY, header, TS + 301, 300),
            Err(SigningError::Stale)
        );
        assert_eq!(
            signer.verify(MSG_ID, TS, BODY, "", TS, 300),
            Err(SigningError::Missing)
        );
    }

    #[test]
    fn two_secrets_give_two_space_separated_signatures() {
        let other = generate_secret();
        let signer = Signer::new(SignatureScheme::Standard, &[other.as_str(), SECRET]).unwrap();
        let header = signer.sign(MSG_ID, TS, BODY);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let old_only = Signer::new(SignatureScheme::Standard, &[SECRET]).unwrap();
        assert_eq!(old_only.verify(MSG_ID, TS, BODY, &header, TS, 300), Ok(()));
    }

    #[test]
    fn github_signature_is_hex_hmac_of_the_body_keyed_by_the_secret_text() {
        // HMAC-SHA256("It's a Secret to Everybody", "Hello, World!") from GitHub's docs.
        let signer = Signer::new(SignatureScheme::Github, &["It's a Secret to Everybody"]).unwrap();
        assert_eq!(
            signer.sign("ignored", 0, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn generated_secrets_are_valid_standard_secrets() {
        let secret = generate_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(check_secret(SignatureScheme::Standard, &secret), Ok(()));
        assert!(check_secret(SignatureScheme::Standard, "whsec_short").is_err());
        assert!(check_secret(SignatureScheme::Standard, "nope").is_err());
        assert!(check_secret(SignatureScheme::Github, "short").is_err());
        assert!(check_secret(SignatureScheme::Github, "long enough secret").is_ok());
    }
}
