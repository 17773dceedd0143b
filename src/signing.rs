//! Webhook signatures: Standard Webhooks (`v1,` HMAC-SHA256 over `id.timestamp.body`), its
//! asymmetric form (`v1a,` Ed25519 over the same), and GitHub style (`sha256=` hex HMAC-SHA256
//! over the body). The same code signs outgoing deliveries and verifies incoming calls.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::model::SignatureScheme;

/// Base64 of given secrets: the standard alphabet, with or without padding.
const SECRET_B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The prefix of an Ed25519 signing secret: base64 of the 32-byte seed.
pub const ED25519_SECRET_PREFIX: &str = "whsk_";

/// The prefix of an Ed25519 public key: base64 of its 32 bytes.
pub const ED25519_PUBLIC_PREFIX: &str = "whpk_";

/// Why a secret or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// A `standard` secret that is not `whsec_` + base64 of 24–64 bytes.
    #[error("secret must be 'whsec_' followed by the base64 of 24 to 64 bytes")]
    BadStandardSecret,
    /// An `ed25519` secret that is not `whsk_` + base64 of a 32-byte seed.
    #[error("secret must be 'whsk_' followed by the base64 of a 32-byte Ed25519 seed")]
    BadEd25519Secret,
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

/// A new secret for `scheme`: `whsk_` + a random 32-byte seed for `ed25519`, else as
/// [`generate_secret`].
pub fn generate_secret_for(scheme: SignatureScheme) -> String {
    match scheme {
        SignatureScheme::Ed25519 => {
            let seed: [u8; 32] = rand::random();
            format!("{ED25519_SECRET_PREFIX}{}", B64.encode(seed))
        }
        SignatureScheme::Standard | SignatureScheme::Github => generate_secret(),
    }
}

/// The public key (`whpk_…`) of an `ed25519` secret, for receivers to verify with.
pub fn public_key(secret: &str) -> Result<String, SigningError> {
    let pair = ed25519_pair(secret)?;
    Ok(format!(
        "{ED25519_PUBLIC_PREFIX}{}",
        B64.encode(pair.public_key().as_ref())
    ))
}

fn ed25519_pair(secret: &str) -> Result<Ed25519KeyPair, SigningError> {
    let seed = key_bytes(SignatureScheme::Ed25519, secret)?;
    Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| SigningError::BadEd25519Secret)
}

/// One secret, ready to sign with.
#[derive(Clone)]
enum Key {
    /// An HMAC key (`standard`, `github`).
    Hmac(HmacSha256),
    /// An Ed25519 key pair (`ed25519`).
    Ed25519(Arc<Ed25519KeyPair>),
}

/// A key ready to sign with, derived once from an endpoint's secret.
#[derive(Clone)]
pub struct Signer {
    scheme: SignatureScheme,
    keys: Vec<Key>,
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
            .map(|s| match scheme {
                SignatureScheme::Ed25519 => Ok(Key::Ed25519(Arc::new(ed25519_pair(s)?))),
                SignatureScheme::Standard | SignatureScheme::Github => {
                    let key = key_bytes(scheme, s)?;
                    HmacSha256::new_from_slice(&key)
                        .map(Key::Hmac)
                        .map_err(|_| SigningError::BadStandardSecret)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { scheme, keys })
    }

    /// The signature prefix of this scheme.
    fn prefix(&self) -> &'static str {
        match self.scheme {
            SignatureScheme::Standard => "v1,",
            SignatureScheme::Ed25519 => "v1a,",
            SignatureScheme::Github => "sha256=",
        }
    }

    /// One key's signature of the message, without the prefix.
    fn signature(&self, key: &Key, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match (key, self.scheme) {
            (Key::Hmac(key), SignatureScheme::Github) => {
                let mut mac = key.clone();
                mac.update(body);
                hex::encode(mac.finalize().into_bytes())
            }
            (Key::Hmac(key), _) => B64.encode(standard_mac(key, msg_id, timestamp, body)),
            (Key::Ed25519(pair), _) => {
                B64.encode(pair.sign(&signed_content(msg_id, timestamp, body)).as_ref())
            }
        }
    }

    /// The signature header's value for this message. Standard Webhooks lists one signature
    /// per secret (the current one first, then the one it replaced, during a rotation's grace
    /// period). GitHub's header holds one value: during the grace period the previous secret's
    /// (receivers that have not switched keep verifying; those that have verify with the new
    /// secret and fall back to the old), from then on the current one's.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let keys = match self.scheme {
            SignatureScheme::Github => self.keys.last().map_or(&[][..], std::slice::from_ref),
            _ => &self.keys[..],
        };
        let mut out = String::new();
        for key in keys {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(self.prefix());
            out.push_str(&self.signature(key, msg_id, timestamp, body));
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
        if self.scheme != SignatureScheme::Github && (now_s - timestamp).abs() > tolerance_s {
            return Err(SigningError::Stale);
        }
        let content = signed_content(msg_id, timestamp, body);
        let mut seen = false;
        for given in header
            .split(' ')
            .filter_map(|sig| sig.strip_prefix(self.prefix()))
        {
            seen = true;
            let matches = self.keys.iter().any(|key| match key {
                Key::Ed25519(pair) => B64.decode(given).is_ok_and(|sig| {
                    UnparsedPublicKey::new(&ED25519, pair.public_key().as_ref())
                        .verify(&content, &sig)
                        .is_ok()
                }),
                Key::Hmac(_) => {
                    let expected = self.signature(key, msg_id, timestamp, body);
                    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
                }
            });
            if matches {
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

/// What Standard Webhooks signs: `{id}.{timestamp}.{body}`.
fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
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
            // Padded or not, as the reference libraries take it.
            let key = SECRET_B64
                .decode(b64)
                .map_err(|_| SigningError::BadStandardSecret)?;
            if (24..=64).contains(&key.len()) {
                Ok(key)
            } else {
                Err(SigningError::BadStandardSecret)
            }
        }
        SignatureScheme::Ed25519 => {
            let seed = secret
                .strip_prefix(ED25519_SECRET_PREFIX)
                .and_then(|b64| B64.decode(b64).ok())
                .ok_or(SigningError::BadEd25519Secret)?;
            if seed.len() == 32 {
                Ok(seed)
            } else {
                Err(SigningError::BadEd25519Secret)
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
    fn a_standard_secret_reads_the_same_with_or_without_padding() {
        let padded = format!("{SECRET_PREFIX}{}", B64.encode([7u8; 25]));
        let unpadded = padded.trim_end_matches('=');
        assert_ne!(padded, unpadded);
        let sign = |secret: &str| {
            Signer::new(SignatureScheme::Standard, &[secret])
                .unwrap()
                .sign(MSG_ID, TS, BODY)
        };
        assert_eq!(sign(&padded), sign(unpadded));
        assert!(check_secret(SignatureScheme::Standard, "whsec_not*base64").is_err());
    }

    #[test]
    fn github_signs_with_one_secret_the_previous_during_a_rotation() {
        let (new, old) = ("the-new-secret-5678", "the-old-secret-1234");
        let both = Signer::new(SignatureScheme::Github, &[new, old]).unwrap();
        let only_old = Signer::new(SignatureScheme::Github, &[old]).unwrap();
        assert_eq!(both.sign("", 0, BODY), only_old.sign("", 0, BODY));
        assert!(!both.sign("", 0, BODY).contains(' '));
        let standard = Signer::new(SignatureScheme::Standard, &[SECRET, SECRET]).unwrap();
        assert_eq!(standard.sign(MSG_ID, TS, BODY).split(' ').count(), 2);
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

    #[test]
    fn ed25519_signs_v1a_with_each_secret_and_verifies_against_its_public_key() {
        let secret = generate_secret_for(SignatureScheme::Ed25519);
        assert!(secret.starts_with(ED25519_SECRET_PREFIX));
        assert_eq!(check_secret(SignatureScheme::Ed25519, &secret), Ok(()));
        let other = generate_secret_for(SignatureScheme::Ed25519);
        let signer = Signer::new(SignatureScheme::Ed25519, &[&secret, &other]).unwrap();
        let header = signer.sign(MSG_ID, TS, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1a,")));
        let only_other = Signer::new(SignatureScheme::Ed25519, &[&other]).unwrap();
        assert_eq!(
            only_other.verify(MSG_ID, TS, b"{}", &header, TS, 300),
            Ok(())
        );
        assert_eq!(
            only_other.verify(MSG_ID, TS, b"{ }", &header, TS, 300),
            Err(SigningError::Mismatch)
        );
        assert_eq!(
            only_other.verify(MSG_ID, TS, b"{}", &header, TS + 301, 300),
            Err(SigningError::Stale)
        );
        let public = public_key(&secret).unwrap();
        assert!(public.starts_with(ED25519_PUBLIC_PREFIX));
        assert_eq!(
            B64.decode(&public[ED25519_PUBLIC_PREFIX.len()..])
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn an_ed25519_secret_is_whsk_and_a_32_byte_seed() {
        let short = format!("{ED25519_SECRET_PREFIX}{}", B64.encode([1u8; 31]));
        assert_eq!(
            check_secret(SignatureScheme::Ed25519, &short),
            Err(SigningError::BadEd25519Secret)
        );
        assert!(check_secret(SignatureScheme::Ed25519, SECRET).is_err());
        assert!(check_secret(SignatureScheme::Ed25519, "whsk_not base64").is_err());
    }
}
