//! Outbound HTTP: one shared client (keep-alive pool, rustls for `https://`, the guarded
//! resolver, the operator's proxy) and [`Outbound::send`], which signs and POSTs one message
//! with the endpoint's credentials and classifies what came back. Used by the dispatcher's
//! workers and by the synchronous test send.

mod brokers;
mod connect;
mod credentials;
mod guard;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::model::credentials::ClientCertificate;
use crate::model::endpoint::{HeaderSetting, Sealed};
use crate::model::{AttemptOutcome, Endpoint, EndpointId, ErrorClass, now_ms};
use crate::report::ErrorChain;
use crate::sealing::SealingKey;
use crate::signing::Signer;
use crate::target::{TargetError, TargetPolicy};

use connect::Connect;
use credentials::{AuthInUse, CredentialError, InUse};

/// Response bytes kept in the attempt log.
pub const KEPT_BODY_BYTES: usize = 4096;
/// Response bytes read at most; a longer body is cut off and the connection dropped.
pub const READ_BODY_BYTES: usize = 64 * 1024;

/// Endpoints whose opened credentials are kept; past this many, all are opened afresh.
const MAX_KEPT_CREDENTIALS: usize = 10_000;

type Connector = hyper_rustls::HttpsConnector<Connect>;
type HttpClient = Client<Connector, Full<Bytes>>;

/// How deliveries leave hookd.
#[derive(Clone, Default)]
pub struct OutboundConfig {
    /// Which targets are allowed.
    pub policy: TargetPolicy,
    /// Roots trusted besides the built-in web roots (`--ca-file`: an internal CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Every delivery goes through this HTTP proxy (`--proxy`).
    pub proxy: Option<crate::config::ProxySetting>,
    /// Opens endpoints' sealed credentials.
    pub sealing: Option<SealingKey>,
}

/// The shared delivery client.
#[derive(Clone)]
pub struct Outbound {
    client: HttpClient,
    policy: TargetPolicy,
    user_agent: HeaderValue,
    /// Builds clients that present an endpoint's certificate.
    connect: Connect,
    roots: Arc<rustls::RootCertStore>,
    sealing: Option<SealingKey>,
    /// Endpoints' credentials, opened.
    in_use: Arc<Mutex<HashMap<EndpointId, Arc<InUse>>>>,
    /// Connections to broker destinations.
    brokers: brokers::Brokers,
    /// The proxy's `Proxy-Authorization`, sent with requests it forwards (`http://` targets;
    /// tunnels carry it in their `CONNECT`).
    proxy_authorization: Option<HeaderValue>,
}

/// Why a client certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The PEM does not parse.
    #[error("{what} is not PEM: {source}")]
    Pem {
        /// `certPem` or `keyPem`.
        what: &'static str,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// No certificate in `certPem`.
    #[error("certPem holds no certificate")]
    NoCertificate,
    /// rustls refused the pair (an unsupported key, or a key that is not the certificate's).
    #[error("the certificate and key cannot be used together: {0}")]
    Refused(#[source] rustls::Error),
}

fn tls_config(
    roots: Arc<rustls::RootCertStore>,
    client_cert: Option<&ClientCertificate>,
) -> Result<rustls::ClientConfig, CertificateError> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(CertificateError::Refused)?
        .with_root_certificates(roots);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some(cert) => {
            let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| CertificateError::Pem {
                    what: "certPem",
                    source,
                })?;
            if chain.is_empty() {
                return Err(CertificateError::NoCertificate);
            }
            let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(|source| {
                CertificateError::Pem {
                    what: "keyPem",
                    source,
                }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(CertificateError::Refused)
        }
    }
}

fn client(connect: Connect, tls: rustls::ClientConfig) -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connect);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(https)
}

/// What to send: a message id, a body, and the endpoint that receives it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The `webhook-id` (the event id).
    pub id: &'a str,
    /// The event's type (an AMQP destination's routing key, unless it names a fixed one).
    pub event_type: &'a str,
    /// The request body.
    pub body: &'a Bytes,
    /// The headers its format goes with: the content type (and CloudEvents' `ce-*`).
    pub format_headers: &'a [(&'static str, String)],
    /// The `traceparent` (and `tracestate`) of the attempt's span, when its event has a trace.
    pub trace: Option<(&'a str, Option<&'a str>)>,
}

impl Outbound {
    /// Builds the shared client.
    pub fn new(config: OutboundConfig) -> Result<Self, rustls::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in config.extra_roots {
            roots.add(root)?;
        }
        let roots = Arc::new(roots);
        let proxy_authorization = config.proxy.as_ref().and_then(|p| p.authorization.clone());
        let connect = Connect::new(config.policy, config.proxy);
        let tls = tls_config(roots.clone(), None).map_err(|e| match e {
            CertificateError::Refused(e) => e,
            other => rustls::Error::General(other.to_string()),
        })?;
        let user_agent = HeaderValue::from_static(crate::render::USER_AGENT);
        Ok(Self {
            client: client(connect.clone(), tls),
            policy: config.policy,
            user_agent,
            connect,
            roots,
            sealing: config.sealing,
            in_use: Arc::default(),
            brokers: brokers::Brokers::default(),
            proxy_authorization,
        })
    }

    /// The `Proxy-Authorization` a request to `url` carries: one the proxy forwards (`http://`).
    fn forwarded(&self, url: &url::Url) -> Option<&HeaderValue> {
        self.proxy_authorization
            .as_ref()
            .filter(|_| url.scheme() == "http")
    }

    /// Checks that a client certificate and its key can be presented (the API's check).
    pub fn check_client_certificate(
        &self,
        cert: &ClientCertificate,
    ) -> Result<(), CertificateError> {
        tls_config(self.roots.clone(), Some(cert)).map(|_| ())
    }

    /// The endpoint's credentials, opened (once per change of them); `None` when it has none.
    fn credentials(&self, endpoint: &Endpoint) -> Result<Option<Arc<InUse>>, CredentialError> {
        let s = &endpoint.settings;
        if s.auth.is_none() && s.client_certificate.is_none() {
            return Ok(None);
        }
        let mut kept = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(in_use) = kept.get(&endpoint.id)
            && in_use.opened_from(&s.auth, &s.client_certificate)
        {
            return Ok(Some(in_use.clone()));
        }
        let opened = Arc::new(InUse::open(
            self.sealing.as_ref(),
            &s.auth,
            &s.client_certificate,
            |cert| {
                tls_config(self.roots.clone(), Some(cert))
                    .map(|tls| client(self.connect.clone(), tls))
                    .map_err(CredentialError::Certificate)
            },
        )?);
        if kept.len() >= MAX_KEPT_CREDENTIALS {
            kept.clear();
        }
        kept.insert(endpoint.id, opened.clone());
        Ok(Some(opened))
    }

    /// Signs `msg` for `endpoint` and POSTs it (or publishes it to its broker) once, with the endpoint's credentials (an
    /// OAuth2 endpoint that answers 401 gets one more try with a new token); never fails, the
    /// outcome says how it went.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
    ) -> AttemptOutcome {
        let at = now_ms();
        let started = Instant::now();
        let settings = &endpoint.settings;
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(u64::from(settings.timeout_ms));
        let fail = |class, message| failed(at, started, class, message);
        if let Err(e) = self.policy.check_literal(&settings.url) {
            return fail(ErrorClass::BlockedTarget, e.to_string());
        }
        if !settings.destination.is_http() {
            return self
                .publish(endpoint, signer, msg, deadline, at, started)
                .await;
        }
        let credentials = match self.credentials(endpoint) {
            Ok(c) => c,
            Err(e) => return fail(ErrorClass::Auth, e.to_string()),
        };
        let client = credentials
            .as_ref()
            .and_then(|c| c.client.as_ref())
            .unwrap_or(&self.client);
        let auth = credentials.as_ref().and_then(|c| c.auth.as_ref());
        let authorization = match auth {
            None => None,
            Some(AuthInUse::Basic(header)) => Some(header.clone()),
            Some(oauth @ AuthInUse::OAuth2 { .. }) => {
                match self
                    .bearer(oauth, None, deadline, settings.timeout_ms)
                    .await
                {
                    Ok(header) => Some(header),
                    Err(e) => return fail(ErrorClass::Auth, e.to_string()),
                }
            }
        };
        let send = |authorization: Option<HeaderValue>| {
            self.exchange(
                client,
                endpoint,
                signer,
                msg,
                authorization,
                deadline,
                at,
                started,
            )
        };
        let outcome = send(authorization.clone()).await;
        match auth {
            Some(oauth @ AuthInUse::OAuth2 { .. }) if outcome.response_code == Some(401) => {
                let stale = authorization.as_ref();
                match self
                    .bearer(oauth, stale, deadline, settings.timeout_ms)
                    .await
                {
                    Ok(header) => send(Some(header)).await,
                    Err(e) => fail(ErrorClass::Auth, e.to_string()),
                }
            }
            _ => outcome,
        }
    }

    /// An OAuth2 endpoint's `Authorization` header (fetched within the attempt's deadline).
    async fn bearer(
        &self,
        oauth: &AuthInUse,
        stale: Option<&HeaderValue>,
        deadline: tokio::time::Instant,
        timeout_ms: u32,
    ) -> Result<HeaderValue, CredentialError> {
        let AuthInUse::OAuth2 {
            token_url,
            form,
            token,
        } = oauth
        else {
            return Err(CredentialError::NotOAuth2);
        };
        self.policy.check_literal(token_url).map_err(|source| {
            CredentialError::TokenNotAllowed {
                url: token_url.to_string(),
                source,
            }
        })?;
        tokio::time::timeout_at(
            deadline,
            credentials::bearer(
                &self.client,
                self.forwarded(token_url),
                (token_url, form),
                token,
                stale,
            ),
        )
        .await
        .map_err(|_| CredentialError::TokenTimeout {
            url: token_url.to_string(),
            timeout_ms,
        })?
    }

    /// One request and its classified answer, by `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        client: &HttpClient,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
        authorization: Option<HeaderValue>,
        deadline: tokio::time::Instant,
        at: i64,
        started: Instant,
    ) -> AttemptOutcome {
        let settings = &endpoint.settings;
        let fail = |class, message| failed(at, started, class, message);
        let request = match self.build(endpoint, signer, msg, authorization) {
            Ok(r) => r,
            Err((class, message)) => return fail(class, message),
        };
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|e| classify(e, &settings.url))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, at));
            let body = read_capped(response.into_body()).await;
            Ok::<_, (ErrorClass, String)>((status, retry_after, body))
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Err(_) => fail(
                ErrorClass::Timeout,
                format!("no complete answer within {}ms", settings.timeout_ms),
            ),
            Ok(Err((class, message))) => fail(class, message),
            Ok(Ok((status, _, Err(e)))) => AttemptOutcome {
                at,
                response_code: Some(status.as_u16()),
                latency_ms: started.elapsed().as_millis() as u32,
                error: Some(ErrorClass::Incomplete),
                error_message: Some(format!(
                    "the answer {status} was cut short: {}",
                    ErrorChain(&e)
                )),
                response_body: None,
                retry_after_ms: None,
            },
            Ok(Ok((status, retry_after, Ok((kept, overflow))))) => {
                let ok = status.is_success();
                let error = match (ok, overflow) {
                    (true, _) => None,
                    (false, true) => Some(ErrorClass::BodyTooLarge),
                    (false, false) => Some(ErrorClass::HttpStatus),
                };
                AttemptOutcome {
                    at,
                    response_code: Some(status.as_u16()),
                    latency_ms: started.elapsed().as_millis() as u32,
                    error,
                    error_message: error.map(|_| format!("the endpoint answered {status}")),
                    response_body: Some(String::from_utf8_lossy(&kept).into_owned()),
                    retry_after_ms: retry_after.filter(|_| matches!(status.as_u16(), 429 | 503)),
                }
            }
        }
    }

    /// Opens `what` (its URL, a header value), which the endpoint's settings hold sealed; an
    /// `auth` failure of the attempt when it cannot be.
    fn opened(&self, sealed: &Sealed, what: &str) -> Result<String, (ErrorClass, String)> {
        let key = self.sealing.as_ref().ok_or_else(|| {
            (
                ErrorClass::Auth,
                format!("the endpoint's {what} is sealed but hookd has no credentials key (--credentials-key-file)"),
            )
        })?;
        key.open_text(sealed)
            .map_err(|e| (ErrorClass::Auth, format!("{what}: {e}")))
    }

    /// What every delivery carries, as HTTP headers or as a broker message's headers or
    /// fields: the format's headers, `webhook-id` and `webhook-timestamp`, the endpoint's own
    /// headers (opened; an `authorization` among them is left out when `auth` replaces it),
    /// the trace context, and the signature under the endpoint's header name.
    fn signed_fields(
        &self,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
        auth_replaces: bool,
    ) -> Result<Vec<(String, String)>, (ErrorClass, String)> {
        let settings = &endpoint.settings;
        let timestamp = now_ms() / 1000;
        let signature = signer.sign(msg.id, timestamp, msg.body);
        let mut fields: Vec<(String, String)> = msg
            .format_headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        fields.push(("webhook-id".into(), msg.id.to_owned()));
        fields.push(("webhook-timestamp".into(), timestamp.to_string()));
        for (name, value) in &settings.headers {
            if auth_replaces && name == "authorization" {
                continue;
            }
            let value = match value {
                HeaderSetting::Plain(value) => value.clone(),
                HeaderSetting::Sealed(sealed) => {
                    let opened = self.opened(sealed, &format!("header '{name}'"))?;
                    HeaderValue::try_from(opened.as_str())
                        .map_err(|e| (ErrorClass::Auth, format!("header '{name}': {e}")))?;
                    opened
                }
            };
            fields.push((name.clone(), value));
        }
        if let Some((traceparent, tracestate)) = msg.trace {
            fields.push(("traceparent".into(), traceparent.to_owned()));
            if let Some(tracestate) = tracestate {
                fields.push(("tracestate".into(), tracestate.to_owned()));
            }
        }
        fields.push((settings.signature_header().to_owned(), signature));
        Ok(fields)
    }

    fn build(
        &self,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
        authorization: Option<HeaderValue>,
    ) -> Result<Request<Full<Bytes>>, (ErrorClass, String)> {
        let unbuilt = |e: http::Error| {
            (
                ErrorClass::Connect,
                format!("cannot build the request: {e}"),
            )
        };
        let settings = &endpoint.settings;
        // A URL that is a credential (Slack, Discord) is stored sealed: opened for the request.
        let target = match &settings.url_sealed {
            None => settings.url.as_str().to_owned(),
            Some(sealed) => self.opened(sealed, "URL")?,
        };
        let mut builder = Request::post(target.as_str())
            .header(http::header::USER_AGENT, self.user_agent.clone());
        for (name, value) in self.signed_fields(endpoint, signer, msg, authorization.is_some())? {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| unbuilt(e.into()))?;
            builder = builder.header(name, value);
        }
        if let Some(authorization) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, authorization);
        }
        if let Some(proxy) = self.forwarded(&settings.url) {
            builder = builder.header(http::header::PROXY_AUTHORIZATION, proxy.clone());
        }
        builder.body(Full::new(msg.body.clone())).map_err(unbuilt)
    }
}

/// An attempt that got no answer.
fn failed(at: i64, started: Instant, class: ErrorClass, message: String) -> AttemptOutcome {
    AttemptOutcome {
        at,
        response_code: None,
        latency_ms: started.elapsed().as_millis() as u32,
        error: Some(class),
        error_message: Some(message),
        response_body: None,
        retry_after_ms: None,
    }
}

/// Reads a response body: keeps the first [`KEPT_BODY_BYTES`], stops after
/// [`READ_BODY_BYTES`]. Returns what was kept and whether the body was longer; an error when
/// the body broke off before its end (a reset, or fewer bytes than `Content-Length`).
async fn read_capped(mut body: hyper::body::Incoming) -> Result<(Vec<u8>, bool), hyper::Error> {
    let mut kept = Vec::new();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(data) = frame.data_ref() {
            read += data.len();
            let room = KEPT_BODY_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
            if read > READ_BODY_BYTES {
                return Ok((kept, true));
            }
        }
    }
    Ok((kept, false))
}

/// `Retry-After` as seconds or an HTTP date, in milliseconds from `now`.
fn parse_retry_after(value: &str, now: i64) -> Option<u64> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some(u64::try_from(when.timestamp_millis() - now).unwrap_or(0))
}

fn classify(e: hyper_util::client::legacy::Error, url: &url::Url) -> (ErrorClass, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(mut err) = source {
        // An io::Error's source() skips the error it wraps (io errors nest): unwrap them.
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(t) = err.downcast_ref::<TargetError>() {
            return match t {
                TargetError::Dns(_) => (ErrorClass::Dns, t.to_string()),
                _ => (ErrorClass::BlockedTarget, t.to_string()),
            };
        }
        if err.downcast_ref::<rustls::Error>().is_some() {
            return (ErrorClass::Tls, format!("TLS failed: {err}"));
        }
        source = err.source();
    }
    let detail = ErrorChain(&e).to_string();
    let host = url.host_str().unwrap_or("?");
    let port = url.port_or_known_default().unwrap_or(0);
    if e.is_connect() {
        (
            ErrorClass::Connect,
            format!("cannot connect to {host}:{port}: {detail}"),
        )
    } else {
        // Connected and sent (or sending): the answer is what broke off.
        (
            ErrorClass::Incomplete,
            format!("the connection to {host}:{port} broke before a complete answer: {detail}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("3", 0), Some(3000));
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp_millis();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
