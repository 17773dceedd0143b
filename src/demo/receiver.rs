//! A webhook receiver that verifies what hookd sends: Standard Webhooks (`webhook-signature`)
//! or GitHub style (`x-hub-signature-256`), then hands each verified delivery to a callback.
//! `hookd receive` and `hookd demo` run it.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::SignatureScheme;
use crate::signing::{Signer, SigningError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A delivery that passed verification.
pub struct Verified {
    /// The `webhook-id` header (the event id; the same on every retry).
    pub id: String,
    /// The body as JSON.
    pub body: serde_json::Value,
}

/// Serves on `listener`, verifying with `secret` under `scheme`; answers 204 to verified
/// deliveries and 401 to the rest. Fails at once when the secret cannot verify anything.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scheme: SignatureScheme,
    secret: String,
    on_delivery: Arc<dyn Fn(Verified) + Send + Sync>,
) -> Result<(), SigningError> {
    let signer = Arc::new(Signer::new(scheme, &[secret.as_str()])?);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return Ok(());
        };
        let (signer, on_delivery) = (signer.clone(), on_delivery.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (signer, on_delivery) = (signer.clone(), on_delivery.clone());
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let id = header("webhook-id");
                    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
                    let signature = match scheme {
                        SignatureScheme::Standard | SignatureScheme::Ed25519 => {
                            header("webhook-signature")
                        }
                        SignatureScheme::Github => header("x-hub-signature-256"),
                    };
                    let body = req.into_body().collect().await?.to_bytes();
                    let now = crate::model::now_ms() / 1000;
                    let status = match signer.verify(&id, timestamp, &body, &signature, now, 300) {
                        Ok(()) => {
                            let body = serde_json::from_slice(&body).unwrap_or_default();
                            on_delivery(Verified { id, body });
                            StatusCode::NO_CONTENT
                        }
                        Err(e) => {
                            eprintln!("rejected a delivery: {e}");
                            StatusCode::UNAUTHORIZED
                        }
                    };
                    let mut response = Response::new(Full::new(Bytes::new()));
                    *response.status_mut() = status;
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The address a receiver listens on, as hookd should call it.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/webhooks")
}
