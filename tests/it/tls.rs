//! TLS to receivers: an internal CA's receiver trusted through `--ca-file`, and mutual TLS
//! with a per-endpoint client certificate, against real TLS servers on 127.0.0.1 whose CA is
//! made in the test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{Server, wait_until};

/// An HTTPS receiver on 127.0.0.1 whose certificate an internal CA signed.
pub struct InternalCa {
    /// `https://127.0.0.1:port/hook`.
    pub url: String,
    /// The CA certificate, PEM (what `--ca-file` holds).
    pub ca_pem: String,
    /// Requests the receiver answered.
    pub count: Arc<AtomicUsize>,
    /// A client certificate and key (PEM) the CA signed.
    pub client: (String, String),
}

/// A CA made here.
pub(crate) fn new_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("key"))
        .expect("ca")
}

/// A client certificate and key (PEM) signed by `ca`.
fn client_cert(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["hookd-client".to_owned()])
        .expect("params")
        .signed_by(&key, ca)
        .expect("client cert");
    (cert.pem(), key.serialize_pem())
}

/// Starts the receiver: answers 204 to every request and counts them. With
/// `require_client_cert`, the TLS handshake refuses clients without a certificate the CA
/// signed.
pub async fn receiver_behind_internal_ca(require_client_cert: bool) -> InternalCa {
    let ca = new_ca();
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &*ca)
        .expect("server cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("ca root");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("tls config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}/hook", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(204)
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    InternalCa {
        url,
        ca_pem: ca.pem(),
        count,
        client: client_cert(&ca),
    }
}

/// Starts hookd trusting `ca` (`--ca-file`), with `tweak` applied.
pub async fn server_trusting(
    ca: &InternalCa,
    tweak: impl FnOnce(&mut hookd::config::Config),
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("ca file");
    let server = Server::start_with(|c| {
        c.ca_file = Some(ca_file);
        tweak(c);
    })
    .await;
    (server, dir)
}

/// Waits until `ca`'s receiver has answered `n` requests.
pub async fn wait_count(ca: &InternalCa, n: usize) {
    wait_until("the receiver is reached", Duration::from_secs(10), || {
        let count = ca.count.clone();
        async move { count.load(Ordering::SeqCst) >= n }
    })
    .await;
}

#[tokio::test]
async fn a_ca_file_makes_an_internal_cas_receivers_trusted() {
    let ca = receiver_behind_internal_ca(false).await;
    // Without the CA the handshake fails, classified as tls.
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": ca.url, "events": ["*"], "retrySchedule": []}))
        .await;
    let event = t.publish("a.b", json!({})).await;
    let id = event["id"].as_str().expect("id");
    let delivery = t.wait_delivery_status(id, "failed").await;
    assert_eq!(delivery["attempts"][0]["error"], "tls", "{delivery}");
    assert_eq!(ca.count.load(Ordering::SeqCst), 0);
    server.stop().await;
    // With it (--ca-file), the same receiver is reached.
    let (server, _dir) = server_trusting(&ca, |_| {}).await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": ca.url, "events": ["*"]})).await;
    t.publish("a.b", json!({})).await;
    wait_count(&ca, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn a_receiver_that_demands_a_client_certificate_gets_the_endpoints_own() {
    let ca = receiver_behind_internal_ca(true).await;
    let stranger = client_cert(&new_ca());
    let (server, _dir) = server_trusting(&ca, |_| {}).await;
    let t = server.tenant("acme").await;
    // Without a certificate, and with one the receiver's CA did not sign: refused.
    let ep = t
        .endpoint(json!({"url": ca.url, "events": ["*"], "retrySchedule": []}))
        .await;
    let id = ep["id"].as_str().expect("id").to_owned();
    assert_eq!(ep["clientCertificateConfigured"], false);
    let event = t.publish("a.b", json!({})).await;
    let failed = t
        .wait_delivery_status(event["id"].as_str().expect("id"), "failed")
        .await;
    let class = &failed["attempts"][0]["error"];
    assert!(class == "tls" || class == "incomplete", "{failed}");
    let path = format!("/v1/endpoints/{id}");
    let (status, read) = t
        .admin
        .patch(
            &path,
            json!({"clientCertificate": {"certPem": stranger.0, "keyPem": stranger.1}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let event = t.publish("a.b", json!({})).await;
    t.wait_delivery_status(event["id"].as_str().expect("id"), "failed")
        .await;
    assert_eq!(ca.count.load(Ordering::SeqCst), 0, "no request got through");
    // With the certificate the receiver's CA signed: delivered.
    let (cert_pem, key_pem) = &ca.client;
    let (status, read) = t
        .admin
        .patch(
            &path,
            json!({"clientCertificate": {"certPem": cert_pem, "keyPem": key_pem}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["clientCertificateConfigured"], true);
    assert!(!read.to_string().contains("PRIVATE KEY"), "never read back");
    let event = t.publish("a.b", json!({})).await;
    t.wait_delivery_status(event["id"].as_str().expect("id"), "succeeded")
        .await;
    assert_eq!(ca.count.load(Ordering::SeqCst), 1);
    // A certificate that does not parse, or a key that is not its certificate's: 422.
    for bad in [
        json!({"certPem": "nope", "keyPem": key_pem}),
        json!({"certPem": cert_pem, "keyPem": "nope"}),
        json!({"certPem": cert_pem, "keyPem": stranger.1}),
        json!({"certPem": cert_pem}),
    ] {
        let (status, err) = t
            .admin
            .patch(&path, json!({"clientCertificate": bad}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {err}");
        let message = err["error"]["message"].as_str().expect("message");
        assert!(message.contains("clientCertificate"), "{message}");
    }
    let (_, read) = t.admin.get(&path).await;
    assert_eq!(
        read["clientCertificateConfigured"], true,
        "refusals changed nothing"
    );
    server.stop().await;
}
