//! What an endpoint authenticates with: HTTP Basic or OAuth2 client credentials (`auth`), and
//! a TLS client certificate (`clientCertificate`). Written by the API, sealed at rest, opened
//! only to send.

use super::Invalid;
use serde::{Deserialize, Serialize};

/// How deliveries authenticate to an endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum EndpointAuth {
    /// `Authorization: Basic …`.
    Basic {
        /// The user name (no `:`).
        username: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer …` with a token from the client-credentials grant.
    #[serde(rename_all = "camelCase")]
    Oauth2 {
        /// Where tokens are fetched (form POST).
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
        /// The scope asked for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, …)"),
            Self::Oauth2 {
                token_url,
                client_id,
                ..
            } => write!(f, "OAuth2({token_url}, {client_id}, …)"),
        }
    }
}

/// Checks one text field: 1 to `max` characters, no control characters.
fn text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.is_empty() || value.chars().count() > max {
        return Err(format!("auth.{field} must be 1 to {max} characters").into());
    }
    if value.chars().any(char::is_control) {
        return Err(format!("auth.{field} may not hold control characters").into());
    }
    Ok(())
}

impl EndpointAuth {
    /// Reads and checks the API's `auth` object; the error names the bad part.
    pub fn parse(value: &serde_json::Value) -> Result<Self, Invalid> {
        // Serde also reads a tagged enum from a list; the API takes an object.
        if !value.is_object() {
            return Err("auth must be an object {type, …}".into());
        }
        let auth: Self = serde_json::from_value(value.clone()).map_err(|e| {
            format!("auth: {e} (use {{type: basic, username, password}} or {{type: oauth2, tokenUrl, clientId, clientSecret, scope?}})")
        })?;
        match &auth {
            Self::Basic { username, password } => {
                text("username", username, 256)?;
                if username.contains(':') {
                    return Err("auth.username may not hold ':' (HTTP Basic)".into());
                }
                text("password", password, 1024)?;
            }
            Self::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                super::endpoint::parse_url(token_url).map_err(|e| format!("auth.tokenUrl: {e}"))?;
                text("clientId", client_id, 256)?;
                text("clientSecret", client_secret, 1024)?;
                if let Some(scope) = scope {
                    text("scope", scope, 1024)?;
                }
            }
        }
        Ok(auth)
    }
}

/// A TLS client certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertificate {
    /// The certificate (and any intermediates), PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCertificate(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn basic_and_oauth2_parse_and_bad_parts_are_named() {
        let basic =
            EndpointAuth::parse(&json!({"type": "basic", "username": "u", "password": "p"}));
        assert!(matches!(basic, Ok(EndpointAuth::Basic { .. })));
        let oauth = EndpointAuth::parse(&json!({
            "type": "oauth2", "tokenUrl": "https://auth.example.com/token",
            "clientId": "c", "clientSecret": "s", "scope": "hooks"
        }));
        assert!(matches!(
            oauth,
            Ok(EndpointAuth::Oauth2 { scope: Some(_), .. })
        ));
        for (bad, names) in [
            (json!({"type": "digest"}), "digest"),
            (json!({"type": "basic", "username": "u"}), "password"),
            (
                json!({"type": "basic", "username": "a:b", "password": "p"}),
                "username",
            ),
            (
                json!({"type": "basic", "username": "u", "password": "p", "x": 1}),
                "x",
            ),
            (
                json!({"type": "oauth2", "tokenUrl": "ftp://x", "clientId": "c", "clientSecret": "s"}),
                "tokenUrl",
            ),
            (
                json!({"type": "oauth2", "tokenUrl": "https://x/t", "clientId": "", "clientSecret": "s"}),
                "clientId",
            ),
        ] {
            let err = EndpointAuth::parse(&bad).unwrap_err().0;
            assert!(err.contains(names), "{bad}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let auth = EndpointAuth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
