//! An endpoint's credentials in use: opened from their sealed form once (and again only when
//! they change), the HTTP Basic header, OAuth2 tokens fetched with the client-credentials
//! grant and cached until they expire, and a client that presents the endpoint's TLS client
//! certificate.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Request};
use http_body_util::Full;

use crate::model::credentials::{ClientCertificate, EndpointAuth};
use crate::model::endpoint::Sealed;
use crate::sealing::SealingKey;

use super::HttpClient;

/// How an endpoint's requests authenticate.
pub(super) enum AuthInUse {
    /// A fixed `Authorization: Basic …`.
    Basic(HeaderValue),
    /// `Authorization: Bearer …` with a token from `token_url`.
    OAuth2 {
        token_url: url::Url,
        /// The form body of the token request.
        form: String,
        /// The token in use; held while one is fetched, so concurrent attempts fetch once.
        token: tokio::sync::Mutex<Option<Token>>,
    },
}

/// A fetched OAuth2 token.
pub(super) struct Token {
    header: HeaderValue,
    /// When it expires (`None`: it did not say; used until an endpoint answers 401).
    until: Option<Instant>,
}

/// An endpoint's credentials, opened, with what they were opened from.
pub(super) struct InUse {
    auth_sealed: Option<Sealed>,
    cert_sealed: Option<Sealed>,
    /// How requests authenticate.
    pub auth: Option<AuthInUse>,
    /// A client presenting the endpoint's certificate (`None`: the shared client).
    pub client: Option<HttpClient>,
}

impl InUse {
    /// Whether these were opened from exactly these sealed values.
    pub fn opened_from(&self, auth: &Option<Sealed>, cert: &Option<Sealed>) -> bool {
        &self.auth_sealed == auth && &self.cert_sealed == cert
    }

    /// Opens an endpoint's sealed credentials; `client_with` builds a client presenting a
    /// certificate. The error is a sentence for the attempt log.
    pub fn open(
        key: Option<&SealingKey>,
        auth: &Option<Sealed>,
        cert: &Option<Sealed>,
        client_with: impl FnOnce(&ClientCertificate) -> Result<HttpClient, String>,
    ) -> Result<Self, String> {
        let key = key.ok_or(
            "the endpoint has credentials but hookd has no credentials key (--credentials-key-file)",
        )?;
        let open = |sealed: &Sealed| -> Result<Vec<u8>, String> {
            key.open(sealed).map_err(|e| e.to_string())
        };
        let auth_in_use = match auth {
            None => None,
            Some(sealed) => {
                let auth: EndpointAuth = serde_json::from_slice(&open(sealed)?)
                    .map_err(|e| format!("stored auth cannot be read: {e}"))?;
                Some(AuthInUse::from(auth)?)
            }
        };
        let client = match cert {
            None => None,
            Some(sealed) => {
                let cert: ClientCertificate = serde_json::from_slice(&open(sealed)?)
                    .map_err(|e| format!("stored client certificate cannot be read: {e}"))?;
                Some(client_with(&cert)?)
            }
        };
        Ok(Self {
            auth_sealed: auth.clone(),
            cert_sealed: cert.clone(),
            auth: auth_in_use,
            client,
        })
    }
}

impl AuthInUse {
    fn from(auth: EndpointAuth) -> Result<Self, String> {
        Ok(match auth {
            EndpointAuth::Basic { username, password } => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                let mut header = HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(|e| format!("auth: {e}"))?;
                header.set_sensitive(true);
                Self::Basic(header)
            }
            EndpointAuth::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", &client_id)
                    .append_pair("client_secret", &client_secret);
                if let Some(scope) = &scope {
                    form.append_pair("scope", scope);
                }
                Self::OAuth2 {
                    token_url: url::Url::parse(&token_url)
                        .map_err(|e| format!("auth.tokenUrl: {e}"))?,
                    form: form.finish(),
                    token: tokio::sync::Mutex::new(None),
                }
            }
        })
    }
}

/// What a token endpoint answers.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

/// The `Authorization` header to send: the cached token unless it expired or is `stale` (the
/// one an endpoint just refused), else a new one fetched with `client` (with the proxy's
/// credentials when the proxy forwards the request).
pub(super) async fn bearer(
    client: &HttpClient,
    proxy_authorization: Option<&HeaderValue>,
    (token_url, form): (&url::Url, &str),
    cached: &tokio::sync::Mutex<Option<Token>>,
    stale: Option<&HeaderValue>,
) -> Result<HeaderValue, String> {
    let mut cached = cached.lock().await;
    if let Some(token) = cached.as_ref()
        && token.until.is_none_or(|until| Instant::now() < until)
        && Some(&token.header) != stale
    {
        return Ok(token.header.clone());
    }
    *cached = None;
    let token = fetch(client, proxy_authorization, token_url, form).await?;
    let header = token.header.clone();
    *cached = Some(token);
    Ok(header)
}

/// One client-credentials token request.
async fn fetch(
    client: &HttpClient,
    proxy_authorization: Option<&HeaderValue>,
    token_url: &url::Url,
    form: &str,
) -> Result<Token, String> {
    let mut request = Request::post(token_url.as_str());
    if let Some(proxy) = proxy_authorization {
        request = request.header(http::header::PROXY_AUTHORIZATION, proxy.clone());
    }
    let request = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(form.to_owned())))
        .map_err(|e| format!("cannot build the token request: {e}"))?;
    let fetched_at = Instant::now();
    let response = client.request(request).await.map_err(|e| {
        format!(
            "the token endpoint {token_url} failed: {}",
            crate::report::ErrorChain(&e)
        )
    })?;
    let status = response.status();
    let (body, _) = super::read_capped(response.into_body())
        .await
        .map_err(|e| format!("the token endpoint {token_url} broke off its answer: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let snippet: String = text.chars().take(200).collect();
        return Err(format!(
            "the token endpoint {token_url} answered {status}: {snippet}"
        ));
    }
    let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        format!("the token endpoint {token_url} answered no usable token (access_token): {e}")
    })?;
    let mut header =
        HeaderValue::try_from(format!("Bearer {}", answer.access_token)).map_err(|_| {
            format!("the token endpoint {token_url} answered a token that is not a header value")
        })?;
    header.set_sensitive(true);
    let until = answer
        .expires_in
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| fetched_at + Duration::from_secs_f64(s.min(1e9)));
    Ok(Token { header, until })
}
