//! A door on loopback for a client that dials by itself (the Kafka client, which connects to
//! whichever brokers the cluster names): it speaks as a SOCKS5 proxy, and makes each
//! connection asked of it only to an address the target policy allows, resolving the name
//! once, itself. Each client gets its own door, closed when the client is dropped; the last
//! refusal is kept so the attempt can say which policy refused what.
//!
//! Only what a SOCKS5 client that asks for nothing more sends is spoken (RFC 1928): no
//! authentication, `CONNECT` to an IPv4, IPv6 or domain address.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::target::{TargetError, TargetPolicy};

/// How long a client has to say where it wants to go.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// How long the door tries the allowed addresses (the client gives up on its own too).
const CONNECT: Duration = Duration::from_secs(10);

/// The SOCKS5 replies the door gives.
const SUCCEEDED: u8 = 0x00;
const NOT_ALLOWED: u8 = 0x02;
const REFUSED: u8 = 0x05;
const COMMAND_NOT_SUPPORTED: u8 = 0x07;

/// A door's address and its last refusal; the door closes when this is dropped.
pub(super) struct Guard {
    address: SocketAddr,
    refused: Arc<Mutex<Option<TargetError>>>,
    door: tokio::task::JoinHandle<()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.door.abort();
    }
}

impl Guard {
    /// Opens a door that lets through what `policy` allows.
    pub(super) async fn open(policy: TargetPolicy) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let refused = Arc::new(Mutex::new(None));
        let door = tokio::spawn(serve(listener, policy, refused.clone()));
        Ok(Self {
            address,
            refused,
            door,
        })
    }

    /// The door's address, as a SOCKS5 client takes it.
    pub(super) fn proxy(&self) -> String {
        self.address.to_string()
    }

    /// Why the policy last refused a connection, once.
    pub(super) fn refusal(&self) -> Option<TargetError> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

async fn serve(
    listener: TcpListener,
    policy: TargetPolicy,
    refused: Arc<Mutex<Option<TargetError>>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let refused = refused.clone();
        tokio::spawn(async move {
            if let Err(e) = pass(client, policy, refused).await {
                tracing::debug!(error = %e, "a guarded broker connection ended");
            }
        });
    }
}

/// One client's connection: where it wants to go, then the tunnel if the policy allows it.
async fn pass(
    mut client: TcpStream,
    policy: TargetPolicy,
    refused: Arc<Mutex<Option<TargetError>>>,
) -> std::io::Result<()> {
    let asked = tokio::time::timeout(HANDSHAKE, request(&mut client))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let Some((host, port)) = asked else {
        return reply(&mut client, COMMAND_NOT_SUPPORTED).await;
    };
    let parsed = url::Host::parse(&host).map_err(std::io::Error::other)?;
    let host = match &parsed {
        url::Host::Domain(name) => url::Host::Domain(name.as_str()),
        url::Host::Ipv4(ip) => url::Host::Ipv4(*ip),
        url::Host::Ipv6(ip) => url::Host::Ipv6(*ip),
    };
    let addresses = match policy.addresses(&host, port).await {
        Ok(addresses) => addresses,
        Err(e) => {
            *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            return reply(&mut client, NOT_ALLOWED).await;
        }
    };
    let Ok(Ok(mut upstream)) = tokio::time::timeout(CONNECT, connect_first(&addresses)).await
    else {
        return reply(&mut client, REFUSED).await;
    };
    let _ = client.set_nodelay(true);
    reply(&mut client, SUCCEEDED).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// TCP (no delay) to the first of `addresses` that answers; the last failure when none does.
pub(super) async fn connect_first(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::other("no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads the greeting (answering "no authentication") and the request; the host (a name,
/// or an address as text) and port of a `CONNECT`, `None` for another command.
async fn request(client: &mut TcpStream) -> std::io::Result<Option<(String, u16)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let [version, methods] = read_array(client).await?;
    if version != 5 {
        return Err(bad("not SOCKS5"));
    }
    let mut offered = vec![0; usize::from(methods)];
    client.read_exact(&mut offered).await?;
    if !offered.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Err(bad("the client offers no way without authentication"));
    }
    client.write_all(&[5, 0]).await?;
    let [version, command, _, kind] = read_array(client).await?;
    if version != 5 {
        return Err(bad("not SOCKS5"));
    }
    let host = match kind {
        1 => Ipv4Addr::from(read_array::<4>(client).await?).to_string(),
        4 => format!("[{}]", Ipv6Addr::from(read_array::<16>(client).await?)),
        3 => {
            let [len] = read_array(client).await?;
            let mut name = vec![0; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| bad("a host name that is not UTF-8"))?
        }
        _ => return Err(bad("an address of an unknown kind")),
    };
    let port = u16::from_be_bytes(read_array(client).await?);
    Ok((command == 1).then_some((host, port)))
}

async fn read_array<const N: usize>(client: &mut TcpStream) -> std::io::Result<[u8; N]> {
    let mut bytes = [0; N];
    client.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// A reply with no bound address (0.0.0.0:0: clients of a `CONNECT` do not use it).
async fn reply(client: &mut TcpStream, code: u8) -> std::io::Result<()> {
    client.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SOCKS5 `CONNECT` to `host:port` through the door; the reply code and the stream.
    async fn ask(door: &Guard, host: &str, port: u16) -> (u8, TcpStream) {
        let mut s = TcpStream::connect(&door.address).await.expect("door");
        s.write_all(&[5, 1, 0]).await.expect("greeting");
        assert_eq!(read_array::<2>(&mut s).await.expect("method"), [5, 0]);
        let mut request = vec![5, 1, 0, 3, host.len() as u8];
        request.extend_from_slice(host.as_bytes());
        request.extend_from_slice(&port.to_be_bytes());
        s.write_all(&request).await.expect("request");
        let answer: [u8; 10] = read_array(&mut s).await.expect("reply");
        (answer[1], s)
    }

    #[tokio::test]
    async fn the_door_lets_through_only_what_the_policy_allows() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = upstream.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.expect("accept");
            s.write_all(b"hello").await.expect("write");
        });

        let strict = Guard::open(TargetPolicy::default()).await.expect("door");
        let (code, _) = ask(&strict, "127.0.0.1", port).await;
        assert_eq!(code, NOT_ALLOWED);
        assert!(matches!(strict.refusal(), Some(TargetError::Blocked(_))));
        assert!(strict.refusal().is_none(), "a refusal is told once");

        let open = Guard::open(TargetPolicy {
            allow_http: true,
            allow_private: true,
        })
        .await
        .expect("door");
        let (code, mut tunnel) = ask(&open, "127.0.0.1", port).await;
        assert_eq!(code, SUCCEEDED);
        let said: [u8; 5] = read_array(&mut tunnel).await.expect("through the tunnel");
        assert_eq!(&said, b"hello");
    }
}
