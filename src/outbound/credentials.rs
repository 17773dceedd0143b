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
use crate::report::ErrorChain;
use crate::sealing::{SealError, SealingKey};
use crate::target::TargetError;

use super::{CertificateError, HttpClient};

/// Why an endpoint's credentials could not be used for an attempt; the sentence is what the
/// attempt log shows (class `auth`).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Sealed credentials, and no key to open them.
    #[error(
        "the endpoint has credentials but hookd has no credentials key (--credentials-key-file)"
    )]
    NoKey,
    /// The key does not open them.
    #[error(transparent)]
    Unseal(SealError),
    /// The opened auth is not an auth setting.
    #[error("stored auth cannot be read: {0}")]
    StoredAuth(#[source] serde_json::Error),
    /// The opened certificate is not a certificate setting.
    #[error("stored client certificate cannot be read: {0}")]
    StoredCertificate(#[source] serde_json::Error),
    /// The certificate or its key cannot be presented.
    #[error("the client certificate cannot be used: {0}")]
    Certificate(#[source] CertificateError),
    /// The Basic credentials make no header value.
    #[error("auth: {0}")]
    Header(#[source] http::header::InvalidHeaderValue),
    /// The token URL is not a URL.
    #[error("auth.tokenUrl: {0}")]
    TokenUrl(#[source] url::ParseError),
    /// The token URL is not an allowed target.
    #[error("the token endpoint {url} is not allowed: {source}")]
    TokenNotAllowed {
        /// The token URL.
        url: String,
        /// Why.
        source: TargetError,
    },
    /// The token request could not be built.
    #[error("cannot build the token request: {0}")]
    TokenRequest(#[source] http::Error),
    /// The token endpoint could not be reached.
    #[error("the token endpoint {url} failed: {}", ErrorChain(.source.as_ref()))]
    TokenFailed {
        /// The token URL.
        url: String,
        /// Why.
        source: Box<hyper_util::client::legacy::Error>,
    },
    /// The token endpoint broke off its answer.
    #[error("the token endpoint {url} broke off its answer: {source}")]
    TokenBrokeOff {
        /// The token URL.
        url: String,
        /// Why.
        source: hyper::Error,
    },
    /// The token endpoint refused.
    #[error("the token endpoint {url} answered {status}: {snippet}")]
    TokenRefused {
        /// The token URL.
        url: String,
        /// Its status.
        status: http::StatusCode,
        /// The start of its body.
        snippet: String,
    },
    /// The token endpoint answered without a token.
    #[error("the token endpoint {url} answered no usable token (access_token): {source}")]
    NoToken {
        /// The token URL.
        url: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The token is not a header value.
    #[error("the token endpoint {0} answered a token that is not a header value")]
    TokenNotHeader(String),
    /// A broker destination's auth is not a username and password.
    #[error(
        "a broker destination authenticates with basic auth (username and password), not oauth2"
    )]
    NotBasic,
    /// A token was asked for an endpoint without OAuth2.
    #[error("not an OAuth2 endpoint")]
    NotOAuth2,
    /// The token endpoint did not answer in time.
    #[error("the token endpoint {url} did not answer within {timeout_ms}ms")]
    TokenTimeout {
        /// The token URL.
        url: String,
        /// The attempt's timeout.
        timeout_ms: u32,
    },
}

/// A broker destination's username and password, opened from its sealed `auth`.
pub(super) fn login(
    key: Option<&SealingKey>,
    auth: &Sealed,
) -> Result<(String, String), CredentialError> {
    let key = key.ok_or(CredentialError::NoKey)?;
    let opened = key.open(auth).map_err(CredentialError::Unseal)?;
    match serde_json::from_slice(&opened).map_err(CredentialError::StoredAuth)? {
        EndpointAuth::Basic { username, password } => Ok((username, password)),
        EndpointAuth::Oauth2 { .. } => Err(CredentialError::NotBasic),
    }
}

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
        client_with: impl FnOnce(&ClientCertificate) -> Result<HttpClient, CredentialError>,
    ) -> Result<Self, CredentialError> {
        let key = key.ok_or(CredentialError::NoKey)?;
        let open = |sealed: &Sealed| key.open(sealed).map_err(CredentialError::Unseal);
        let auth_in_use = match auth {
            None => None,
            Some(sealed) => {
                let auth: EndpointAuth =
                    serde_json::from_slice(&open(sealed)?).map_err(CredentialError::StoredAuth)?;
                Some(AuthInUse::from(auth)?)
            }
        };
        let client = match cert {
            None => None,
            Some(sealed) => {
                let cert: ClientCertificate = serde_json::from_slice(&open(sealed)?)
                    .map_err(CredentialError::StoredCertificate)?;
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
    fn from(auth: EndpointAuth) -> Result<Self, CredentialError> {
        Ok(match auth {
            EndpointAuth::Basic { username, password } => {
                let encoded = STANDARD.encode(format!("{username}:{password}"));
                let mut header = HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(CredentialError::Header)?;
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
                    token_url: url::Url::parse(&token_url).map_err(CredentialError::TokenUrl)?,
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
) -> Result<HeaderValue, CredentialError> {
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
) -> Result<Token, CredentialError> {
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
        .map_err(CredentialError::TokenRequest)?;
    let fetched_at = Instant::now();
    let url = || token_url.to_string();
    let response =
        client
            .request(request)
            .await
            .map_err(|source| CredentialError::TokenFailed {
                url: url(),
                source: Box::new(source),
            })?;
    let status = response.status();
    let (body, _) = super::read_capped(response.into_body())
        .await
        .map_err(|source| CredentialError::TokenBrokeOff { url: url(), source })?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let snippet: String = text.chars().take(200).collect();
        return Err(CredentialError::TokenRefused {
            url: url(),
            status,
            snippet,
        });
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .map_err(|source| CredentialError::NoToken { url: url(), source })?;
    let mut header = HeaderValue::try_from(format!("Bearer {}", answer.access_token))
        .map_err(|_| CredentialError::TokenNotHeader(url()))?;
    header.set_sensitive(true);
    let until = answer
        .expires_in
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| fetched_at + Duration::from_secs_f64(s.min(1e9)));
    Ok(Token { header, until })
}
