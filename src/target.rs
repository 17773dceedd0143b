//! Which addresses hookd may deliver to. By default only `https://` URLs whose host resolves
//! to public addresses: never loopback, private, link-local, shared (CGNAT) or metadata
//! addresses. The check runs when an endpoint is saved and again on every connection, inside
//! the HTTP client's resolver, so a name that later resolves elsewhere is still refused.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

/// What the operator allows as delivery targets (by default: neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// Accept `http://` URLs.
    pub allow_http: bool,
    /// Accept loopback, private and link-local addresses.
    pub allow_private: bool,
}

/// Why a target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// `http://` where only `https://` is allowed.
    #[error(
        "url must use https:// (this server does not allow plain http; start hookd with --allow-http to allow it)"
    )]
    PlainHttp,
    /// A broker's address without TLS (`redis://`) where only encrypted targets are allowed.
    #[error(
        "url uses {0}://, which is not encrypted (use its TLS form), and this server does not allow unencrypted targets (start hookd with --allow-http to allow them)"
    )]
    Unencrypted(String),
    /// The host is, or resolves to, a private address.
    #[error(
        "url points at a private, loopback, link-local or metadata address ({0}), which this server does not allow (start hookd with --allow-private-targets to allow it)"
    )]
    Blocked(IpAddr),
    /// The host name did not resolve.
    #[error("host name did not resolve: {0}")]
    Dns(String),
}

impl TargetPolicy {
    /// Checks a URL's scheme and, when it is an IP literal or a resolvable name, its address.
    /// A name that does not resolve yet is accepted: its deliveries fail as `dns` until it does.
    pub async fn check_url(&self, url: &url::Url) -> Result<(), TargetError> {
        self.check_literal(url)?;
        match url.host() {
            Some(url::Host::Domain(name)) if !self.allow_private => {
                let port = url.port_or_known_default().unwrap_or(443);
                match resolve(name, port, *self).await {
                    Err(TargetError::Dns(_)) => Ok(()),
                    other => other.map(|_| ()),
                }
            }
            _ => Ok(()),
        }
    }

    /// The checks that need no lookup: the scheme, and the address when the host is an IP
    /// literal (which the client's resolver never sees). Names are checked by resolving.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), TargetError> {
        if url.scheme() == "http" && !self.allow_http {
            return Err(TargetError::PlainHttp);
        }
        if crate::model::destination::is_plaintext(url.scheme()) && !self.allow_http {
            return Err(TargetError::Unencrypted(url.scheme().to_owned()));
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            _ => Ok(()),
        }
    }

    /// Checks a host about to be reached through a proxy (which resolves it itself): hookd
    /// resolves it first and refuses it by the same rule as a direct connection.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), TargetError> {
        if self.allow_private {
            return Ok(());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => resolve(bare, port, *self).await.map(|_| ()),
        }
    }

    /// The addresses of `host` a connection may use: the literal itself, or what the name
    /// resolves to less the addresses the policy refuses (for clients that connect
    /// themselves, such as brokers').
    pub async fn addresses(
        &self,
        host: &url::Host<&str>,
        port: u16,
    ) -> Result<Vec<SocketAddr>, TargetError> {
        let literal = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(*ip),
            url::Host::Ipv6(ip) => IpAddr::V6(*ip),
            url::Host::Domain(name) => return resolve(name, port, *self).await,
        };
        self.check_ip(literal)?;
        Ok(vec![SocketAddr::new(literal, port)])
    }

    /// Refuses a blocked address unless private targets are allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if !self.allow_private && is_blocked(ip) {
            Err(TargetError::Blocked(ip))
        } else {
            Ok(())
        }
    }
}

/// Whether an address is one a public webhook must never reach.
pub fn is_blocked(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_blocked_v4(v4),
            None => is_blocked_v6(v6),
        },
    }
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || ip.segments()[0] == 0x64 && ip.segments()[1] == 0xff9b // NAT64 can reach private v4
        || ip.segments()[0] == 0x2001 && ip.segments()[1] == 0xdb8
        || ip.to_ipv4().is_some_and(is_blocked_v4)
}

async fn resolve(
    name: &str,
    port: u16,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, TargetError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|e| TargetError::Dns(format!("{name}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Dns(format!("{name}: no addresses")));
    }
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| policy.check_ip(a.ip()).is_ok())
        .collect();
    if allowed.is_empty() {
        Err(TargetError::Blocked(addrs[0].ip()))
    } else {
        Ok(allowed)
    }
}

/// The HTTP client's resolver: resolves names and drops addresses the policy refuses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver(pub TargetPolicy);

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let policy = self.0;
        Box::pin(async move {
            resolve(name.as_str(), 0, policy)
                .await
                .map(Vec::into_iter)
                .map_err(std::io::Error::other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_blocked(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_blocked(ip.parse().unwrap()), "{ip}");
        }
    }
}
