//! Who a bearer token stands for, as pure rules: the shapes of tokens (the operator token, a
//! tenant key `hk_<id>_<secret>`, a portal link `hkp_<id>_<secret>`), the hash stored in place
//! of each secret, and the decision over a stored credential. The auth service reads the
//! stored credential a token names and asks [`decide`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{KeyId, PortalLinkId, Role, TenantId, UnixMs};

/// Who is calling, once a token has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The operator token: manages tenants and keys.
    Operator,
    /// A tenant API key, or a portal link's token.
    Tenant {
        /// The tenant.
        tenant_id: TenantId,
        /// Which credential.
        via: Credential,
        /// Its role.
        role: Role,
    },
}

/// The tenant credential a call came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    Key(KeyId),
    /// A portal link's token.
    PortalLink(PortalLinkId),
}

/// A tenant credential as stored: whose, with what role, the hash of its secret and, for a
/// portal link, when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its role.
    pub role: Role,
    /// SHA-256 of its secret.
    pub secret_hash: Vec<u8>,
    /// When it expires (portal links).
    pub expires_at: Option<UnixMs>,
}

/// SHA-256 of a secret: what is stored in place of keys and tokens.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A new random secret: 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `secret` hashes to `hash`, compared in constant time.
pub fn secret_matches(hash: &[u8], secret: &str) -> bool {
    hash.ct_eq(&hash_secret(secret)).into()
}

/// Splits a token `<prefix><id>_<secret>` (keys, portal links) into the id's text and the
/// secret.
fn split_token<'a>(token: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    token.strip_prefix(prefix)?.split_once('_')
}

/// What a bearer token says it is, before anything is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A tenant key: its id and secret.
    Key(KeyId, &'a str),
    /// A portal link's token: its id and secret.
    PortalLink(PortalLinkId, &'a str),
    /// Neither shape (the operator token is checked against its hash first).
    Unknown,
}

impl<'a> Presented<'a> {
    /// Reads a token's shape.
    pub fn read(token: &'a str) -> Self {
        if let Some((id, secret)) = split_token(token, "hkp_") {
            return match PortalLinkId::parse(&format!("{}{id}", PortalLinkId::PREFIX)) {
                Some(id) => Self::PortalLink(id, secret),
                None => Self::Unknown,
            };
        }
        match split_token(token, "hk_")
            .and_then(|(id, s)| Some((KeyId::parse(&format!("{}{id}", KeyId::PREFIX))?, s)))
        {
            Some((id, secret)) => Self::Key(id, secret),
            None => Self::Unknown,
        }
    }
}

/// The caller a presented credential stands for at `now`, given what is stored under its id:
/// none when nothing is, the secret does not match, or the link has expired.
pub fn decide(
    presented: Presented<'_>,
    stored: Option<&StoredCredential>,
    now: UnixMs,
) -> Option<Caller> {
    let (via, secret) = match presented {
        Presented::Key(id, secret) => (Credential::Key(id), secret),
        Presented::PortalLink(id, secret) => (Credential::PortalLink(id), secret),
        Presented::Unknown => return None,
    };
    let stored = stored?;
    let matches = secret_matches(&stored.secret_hash, secret);
    let live = stored.expires_at.is_none_or(|at| at > now);
    (matches && live).then_some(Caller::Tenant {
        tenant_id: stored.tenant_id,
        via,
        role: stored.role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(secret: &str, expires_at: Option<UnixMs>) -> StoredCredential {
        StoredCredential {
            tenant_id: TenantId(4),
            role: Role::Publisher,
            secret_hash: hash_secret(secret).to_vec(),
            expires_at,
        }
    }

    #[test]
    fn a_token_is_read_by_its_shape() {
        assert_eq!(
            Presented::read("hk_12_abc_def"),
            Presented::Key(KeyId(12), "abc_def")
        );
        assert_eq!(
            Presented::read("hkp_7_x_y"),
            Presented::PortalLink(PortalLinkId(7), "x_y")
        );
        for unknown in [
            "hk_abc",
            "hk_x_abc",
            "hkp_0_abc",
            "hko_abc",
            "",
            "hk_12",
            "nope",
        ] {
            assert_eq!(Presented::read(unknown), Presented::Unknown, "{unknown}");
        }
    }

    #[test]
    fn a_credential_stands_for_its_tenant_only_with_its_secret_and_before_it_expires() {
        let key = Presented::Key(KeyId(1), "right");
        let link = Presented::PortalLink(PortalLinkId(2), "right");
        let caller = |via| {
            Some(Caller::Tenant {
                tenant_id: TenantId(4),
                via,
                role: Role::Publisher,
            })
        };
        let cases = [
            (
                key,
                Some(stored("right", None)),
                0,
                caller(Credential::Key(KeyId(1))),
            ),
            (key, Some(stored("wrong", None)), 0, None),
            (key, None, 0, None),
            (
                link,
                Some(stored("right", Some(10))),
                9,
                caller(Credential::PortalLink(PortalLinkId(2))),
            ),
            (link, Some(stored("right", Some(10))), 10, None),
            (Presented::Unknown, Some(stored("right", None)), 0, None),
        ];
        for (presented, stored, now, want) in cases {
            assert_eq!(
                decide(presented, stored.as_ref(), now),
                want,
                "{presented:?} at {now}"
            );
        }
    }
}
