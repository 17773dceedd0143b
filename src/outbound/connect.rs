//! How a delivery's connection is made: straight to the endpoint through the guarded resolver,
//! or through the operator's HTTP proxy (`--proxy`): a `CONNECT` tunnel for `https://`, a
//! forwarded request for `http://`. Through a proxy the proxy resolves the name, so hookd
//! resolves and checks it first, by the same target policy.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::ProxySetting;
use crate::target::{GuardedResolver, TargetError, TargetPolicy};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector under TLS: direct, or through a proxy.
#[derive(Clone)]
pub(super) struct Connect {
    direct: HttpConnector<GuardedResolver>,
    proxy: Option<Proxy>,
}

#[derive(Clone)]
struct Proxy {
    uri: Uri,
    /// `Proxy-Authorization` for `CONNECT`.
    authorization: Option<http::HeaderValue>,
    /// Reaches the proxy itself (the operator's own address: not guarded).
    plain: HttpConnector,
    policy: TargetPolicy,
}

impl Connect {
    /// A connector for `policy`, through `proxy` when one is given.
    pub(super) fn new(policy: TargetPolicy, proxy: Option<ProxySetting>) -> Self {
        let mut direct = HttpConnector::new_with_resolver(GuardedResolver(policy));
        tune(&mut direct);
        let proxy = proxy.map(|setting| {
            let mut plain = HttpConnector::new();
            tune(&mut plain);
            Proxy {
                uri: setting.uri,
                authorization: setting.authorization,
                plain,
                policy,
            }
        });
        Self { direct, proxy }
    }
}

fn tune<R>(c: &mut HttpConnector<R>) {
    c.enforce_http(false);
    c.set_nodelay(true);
    c.set_connect_timeout(Some(std::time::Duration::from_secs(10)));
}

/// A TCP connection to the endpoint or the proxy; `proxied` when requests on it must name
/// the whole URL (a forwarding proxy).
pub(super) struct Conn {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl tower_service::Service<Uri> for Connect {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self.proxy.clone() {
            None => {
                let connecting = self.direct.call(dst);
                Box::pin(async move {
                    Ok(Conn {
                        io: connecting.await?,
                        proxied: false,
                    })
                })
            }
            Some(proxy) => Box::pin(async move {
                let https = dst.scheme_str() == Some("https");
                let host = dst.host().ok_or(TargetError::Dns("no host".into()))?;
                let port = dst.port_u16().unwrap_or(if https { 443 } else { 80 });
                proxy.policy.check_host(host, port).await?;
                if https {
                    let mut tunnel = Tunnel::new(proxy.uri, proxy.plain);
                    if let Some(authorization) = proxy.authorization {
                        tunnel = tunnel.with_auth(authorization);
                    }
                    let io = tunnel.call(dst).await?;
                    Ok(Conn { io, proxied: false })
                } else {
                    let io = proxy.plain.clone().call(proxy.uri).await?;
                    Ok(Conn { io, proxied: true })
                }
            }),
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.inner().connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
