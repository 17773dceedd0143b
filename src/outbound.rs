//! Outbound HTTP: one shared client (keep-alive pool, rustls for `https://`, the guarded
//! resolver) and [`Outbound::send`], which signs and POSTs one message and classifies what
//! came back. Used by the dispatcher's workers and by the synchronous test send.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::model::{AttemptOutcome, Endpoint, ErrorClass, now_ms};
use crate::report::ErrorChain;
use crate::signing::Signer;
use crate::target::{GuardedResolver, TargetError, TargetPolicy};

/// Response bytes kept in the attempt log.
pub const KEPT_BODY_BYTES: usize = 4096;
/// Response bytes read at most; a longer body is cut off and the connection dropped.
pub const READ_BODY_BYTES: usize = 64 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>;

/// The shared delivery client.
#[derive(Clone)]
pub struct Outbound {
    client: Client<Connector, Full<Bytes>>,
    policy: TargetPolicy,
    user_agent: HeaderValue,
}

/// What to send: a message id, a body, and the endpoint that receives it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The `webhook-id` (the event id).
    pub id: &'a str,
    /// The request body.
    pub body: &'a Bytes,
}

impl Outbound {
    /// Builds the client for a target policy; `extra_roots` are trusted besides the built-in
    /// web roots (`--ca-file`: an internal CA).
    pub fn new(
        policy: TargetPolicy,
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Result<Self, rustls::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(policy));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for root in extra_roots {
            roots.add(root)?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        let user_agent = HeaderValue::from_static(concat!("hookd/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            client,
            policy,
            user_agent,
        })
    }

    /// Signs `msg` for `endpoint` and POSTs it once; never fails, the outcome says how it went.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
    ) -> AttemptOutcome {
        let at = now_ms();
        let started = Instant::now();
        let settings = &endpoint.settings;
        let fail = |class: ErrorClass, message: String| AttemptOutcome {
            at,
            response_code: None,
            latency_ms: started.elapsed().as_millis() as u32,
            error: Some(class),
            error_message: Some(message),
            response_body: None,
            retry_after_ms: None,
        };
        if let Err(e) = self.policy.check_literal(&settings.url) {
            return fail(ErrorClass::BlockedTarget, e.to_string());
        }
        let request = match self.build(endpoint, signer, msg) {
            Ok(r) => r,
            Err(e) => {
                return fail(
                    ErrorClass::Connect,
                    format!("cannot build the request: {e}"),
                );
            }
        };
        let timeout = Duration::from_millis(u64::from(settings.timeout_ms));
        let exchange = async {
            let response = self
                .client
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
        match tokio::time::timeout(timeout, exchange).await {
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

    fn build(
        &self,
        endpoint: &Endpoint,
        signer: &Signer,
        msg: Message<'_>,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let settings = &endpoint.settings;
        let timestamp = now_ms() / 1000;
        let signature = signer.sign(msg.id, timestamp, msg.body);
        let mut builder = Request::post(settings.url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, self.user_agent.clone())
            .header("webhook-id", msg.id)
            .header("webhook-timestamp", timestamp.to_string());
        for (name, value) in &settings.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let name = HeaderName::from_bytes(settings.signature_header().as_bytes())?;
        builder
            .header(name, signature)
            .body(Full::new(msg.body.clone()))
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
