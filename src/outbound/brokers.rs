//! Deliveries to brokers: one pooled connection per endpoint (made again when its settings
//! change or the connection breaks), made to an address the target policy allows, and the
//! signed message published on it. A delivery succeeds when the broker acknowledged it.
//!
//! Redis Streams: `XADD <stream> [MAXLEN ~ n] * <field> <value> …`, one field per header an
//! HTTP delivery has (`webhook-id`, `webhook-timestamp`, the signature, `content-type`, …)
//! and the body as `body`. The entry's id is kept as the attempt's response.
//!
//! AMQP 0.9.1 (RabbitMQ): a persistent, mandatory `basic.publish` to the exchange with the
//! routing key (fixed, or the event's type), those fields as message headers, `content-type`
//! and `message-id` (the `webhook-id`) as its properties, on a channel in confirm mode. It
//! succeeds on the broker's confirm; a message no queue took (returned) or a negative
//! confirm is a refusal.
//!
//! NATS JetStream: a publish to the subject with those headers as NATS headers and the body
//! as the payload, acknowledged by the stream that holds the subject; the stream and sequence
//! are kept as the attempt's response. The client reconnects by itself no more: a connection
//! that is not up is made again on the next attempt, and servers a cluster announces are
//! never used (only the address the target policy checked).
//!
//! Kafka: one record to the topic's partition for the record's key (Kafka's own partitioner:
//! murmur2 of the key), acknowledged by every in-sync replica (`acks=all`); the fields are the
//! record's headers, the body its value, and the topic, partition and offset are kept as the
//! attempt's response. Every connection the Kafka client makes, to the bootstrap address and
//! to the brokers the cluster's metadata names (the partitions' leaders), goes through a
//! guarded door (`guard.rs`) that makes it only to an address the target policy allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redis::aio::MultiplexedConnection;

use crate::model::EndpointSettings;
use crate::model::destination::{Destination, Sasl, is_plaintext, kafka_partition};
use crate::model::{AttemptOutcome, Endpoint, EndpointId, ErrorClass, UnixMs};
use crate::report::ErrorChain;
use crate::target::TargetError;

use super::{Message, Outbound, credentials, failed};

/// Endpoints whose broker connections are kept; past this many, all are made afresh.
const MAX_KEPT_CONNECTIONS: usize = 10_000;

/// A connection to an endpoint's broker.
#[derive(Clone)]
enum Connection {
    Redis(MultiplexedConnection),
    Nats(async_nats::jetstream::Context),
    Amqp(Arc<AmqpLink>),
    Kafka(Arc<KafkaLink>),
}

/// A Kafka client, the door its connections go through, the topic's partitions, and a client
/// per partition, made when first used.
struct KafkaLink {
    client: rskafka::client::Client,
    guard: super::guard::Guard,
    partitions: Vec<i32>,
    producers: tokio::sync::Mutex<HashMap<i32, Arc<rskafka::client::partition::PartitionClient>>>,
}

/// An AMQP connection and its channel in confirm mode (the connection closes when dropped).
struct AmqpLink {
    _connection: lapin::Connection,
    channel: lapin::Channel,
}

impl Connection {
    /// Whether it can take a message now (a NATS client that lost its server is not).
    fn is_up(&self) -> bool {
        match self {
            Self::Redis(_) => true,
            Self::Nats(js) => {
                js.client().connection_state() == async_nats::connection::State::Connected
            }
            Self::Amqp(link) => link.channel.status().connected(),
            // The client reconnects by itself; a failed produce drops it.
            Self::Kafka(_) => true,
        }
    }
}

/// The broker connections in use, by endpoint, each with the settings' version it was made
/// for (`updated_at`).
#[derive(Clone, Default)]
pub(super) struct Brokers {
    kept: Arc<Mutex<HashMap<EndpointId, (UnixMs, Connection)>>>,
    /// One gate per endpoint that is connecting: its concurrent attempts wait for the one
    /// connection instead of each making their own.
    connecting: Arc<Mutex<HashMap<EndpointId, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Why a broker connection could not be made; the sentence is what the attempt log shows.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    /// The URL has no host.
    #[error("the url has no host")]
    NoHost,
    /// The target policy refused the broker's address, or its name did not resolve.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// No address took the connection.
    #[error("cannot connect to {host}:{port}: {source}")]
    Tcp {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    /// The host is not a name TLS can check.
    #[error("'{0}' is not a host name TLS can check")]
    ServerName(String),
    /// The stored credentials cannot be used.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialError),
    /// Redis refused the handshake (a wrong password, say).
    #[error("redis refused the connection: {0}")]
    Redis(#[source] redis::RedisError),
    /// The NATS connection failed or was refused.
    #[error("cannot connect to nats: {0}")]
    Nats(#[source] async_nats::ConnectError),
    /// The AMQP connection or its channel failed or was refused.
    #[error("cannot connect to the AMQP broker: {0}")]
    Amqp(#[source] lapin::Error),
    /// The Kafka cluster could not be reached, refused the login, or has no such topic.
    #[error("cannot connect to kafka: {0}")]
    Kafka(#[source] rskafka::client::error::Error),
    /// The guarded door for a client's connections could not be opened.
    #[error("cannot open the guarded door for the broker connections on loopback: {0}")]
    Guard(#[source] std::io::Error),
    /// The cluster has no such topic (hookd does not create topics).
    #[error("kafka has no topic '{0}'")]
    NoTopic(String),
}

impl ConnectError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Target(TargetError::Dns(_)) => ErrorClass::Dns,
            Self::Target(_) => ErrorClass::BlockedTarget,
            Self::NoHost | Self::Tcp { .. } | Self::Guard(_) => ErrorClass::Connect,
            Self::Tls { .. } | Self::ServerName(_) => ErrorClass::Tls,
            Self::Credentials(_) => ErrorClass::Auth,
            Self::Redis(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
                ErrorClass::Auth
            }
            Self::Redis(e) if e.is_io_error() => ErrorClass::Connect,
            Self::Redis(_) => ErrorClass::BrokerRefused,
            Self::Nats(e) => {
                use async_nats::ConnectErrorKind as Kind;
                match e.kind() {
                    Kind::Authentication | Kind::AuthorizationViolation => ErrorClass::Auth,
                    Kind::Tls => ErrorClass::Tls,
                    Kind::Dns => ErrorClass::Dns,
                    Kind::TimedOut => ErrorClass::Timeout,
                    _ => ErrorClass::Connect,
                }
            }
            Self::Amqp(e) => amqp_class(e),
            Self::Kafka(e) => kafka_class(e, ErrorClass::Connect),
            Self::NoTopic(_) => ErrorClass::BrokerRefused,
        }
    }
}

/// A stream to a broker: plain TCP, or TLS over it.
trait BrokerStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> BrokerStream for T {}

impl Outbound {
    /// Publishes `msg` to `endpoint`'s broker once, by `deadline`; never fails, the outcome
    /// says how it went.
    pub(super) async fn publish(
        &self,
        endpoint: &Endpoint,
        signer: &crate::signing::Signer,
        msg: Message<'_>,
        deadline: tokio::time::Instant,
        at: UnixMs,
        started: Instant,
    ) -> AttemptOutcome {
        let fail = |class, message| failed(at, started, class, message);
        let fields = match self.signed_fields(endpoint, signer, msg, false) {
            Ok(f) => f,
            Err((class, message)) => return fail(class, message),
        };
        let attempt = async {
            let connection = self
                .broker_connection(endpoint)
                .await
                .map_err(|e| (e.class(), e.to_string()))?;
            match (&endpoint.settings.destination, connection) {
                (Destination::Redis { stream, max_len }, Connection::Redis(conn)) => {
                    self.redis_xadd(endpoint.id, conn, (stream, *max_len), &fields, msg)
                        .await
                }
                (Destination::Nats { subject }, Connection::Nats(js)) => {
                    self.nats_publish(endpoint.id, &js, subject, &fields, msg)
                        .await
                }
                (
                    Destination::Amqp {
                        exchange,
                        routing_key,
                    },
                    Connection::Amqp(link),
                ) => {
                    let key = routing_key.as_deref().unwrap_or(msg.event_type);
                    self.amqp_publish(endpoint.id, &link, exchange, key, &fields, msg)
                        .await
                }
                (Destination::Kafka { topic, key, .. }, Connection::Kafka(link)) => {
                    let key = key.of(msg.id, msg.body);
                    self.kafka_produce(endpoint.id, &link, topic, key, &fields, msg)
                        .await
                }
                (destination, _) => Err((
                    ErrorClass::Connect,
                    format!(
                        "a '{}' destination has no broker client",
                        destination.kind()
                    ),
                )),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Err(_) => {
                // The connection may hold a command that never finished: make a new one.
                self.forget_broker(endpoint.id);
                fail(
                    ErrorClass::Timeout,
                    format!(
                        "the broker did not acknowledge within {}ms",
                        endpoint.settings.timeout_ms
                    ),
                )
            }
            Ok(Err((class, message))) => fail(class, message),
            Ok(Ok(entry)) => AttemptOutcome {
                at,
                response_code: None,
                latency_ms: started.elapsed().as_millis() as u32,
                error: None,
                error_message: None,
                response_body: Some(entry),
                retry_after_ms: None,
            },
        }
    }

    /// One `XADD` of the message's fields and body; the entry's id.
    async fn redis_xadd(
        &self,
        endpoint: EndpointId,
        mut conn: MultiplexedConnection,
        (stream, max_len): (&str, Option<u64>),
        fields: &[(String, String)],
        msg: Message<'_>,
    ) -> Result<String, (ErrorClass, String)> {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(stream);
        if let Some(n) = max_len {
            xadd.arg("MAXLEN").arg("~").arg(n);
        }
        xadd.arg("*");
        for (name, value) in fields {
            xadd.arg(name).arg(value);
        }
        xadd.arg("body").arg(msg.body.as_ref());
        xadd.query_async::<String>(&mut conn)
            .await
            .map_err(|e| self.redis_failed(endpoint, stream, e))
    }

    /// One JetStream publish of the message, its fields as headers; where the stream put it.
    async fn nats_publish(
        &self,
        endpoint: EndpointId,
        js: &async_nats::jetstream::Context,
        subject: &str,
        fields: &[(String, String)],
        msg: Message<'_>,
    ) -> Result<String, (ErrorClass, String)> {
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in fields {
            headers.insert(name.as_str(), value.as_str());
        }
        let published = async {
            js.publish_with_headers(subject.to_owned(), headers, msg.body.clone())
                .await?
                .await
        };
        published
            .await
            .map(|ack| format!("stream {} sequence {}", ack.stream, ack.sequence))
            .map_err(|e| self.nats_failed(endpoint, subject, e))
    }

    /// An `XADD` that failed: the broker's error reply, or a connection that broke (which is
    /// then made again on the next attempt).
    fn redis_failed(
        &self,
        endpoint: EndpointId,
        stream: &str,
        e: redis::RedisError,
    ) -> (ErrorClass, String) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
            self.forget_broker(endpoint);
            return (
                ErrorClass::Incomplete,
                format!(
                    "the connection to redis broke before the XADD was acknowledged: {}",
                    ErrorChain(&e)
                ),
            );
        }
        (
            ErrorClass::BrokerRefused,
            format!("redis refused the XADD to stream '{stream}': {e}"),
        )
    }

    /// A JetStream publish that failed: no stream holds the subject, or the stream refused it
    /// (its limits), or the connection broke (made again on the next attempt).
    fn nats_failed(
        &self,
        endpoint: EndpointId,
        subject: &str,
        e: async_nats::jetstream::context::PublishError,
    ) -> (ErrorClass, String) {
        use async_nats::jetstream::context::PublishErrorKind as Kind;
        match e.kind() {
            Kind::StreamNotFound => (
                ErrorClass::BrokerRefused,
                format!("nats has no JetStream stream for subject '{subject}': {e}"),
            ),
            Kind::BrokenPipe | Kind::TimedOut => {
                self.forget_broker(endpoint);
                (
                    ErrorClass::Incomplete,
                    format!(
                        "the connection to nats broke before the publish to '{subject}' was acknowledged: {e}"
                    ),
                )
            }
            _ => (
                ErrorClass::BrokerRefused,
                format!("nats refused the publish to '{subject}': {e}"),
            ),
        }
    }

    /// One confirmed publish on the endpoint's channel.
    async fn amqp_publish(
        &self,
        endpoint: EndpointId,
        link: &AmqpLink,
        exchange: &str,
        routing_key: &str,
        fields: &[(String, String)],
        msg: Message<'_>,
    ) -> Result<String, (ErrorClass, String)> {
        use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
        let mut headers = FieldTable::default();
        let mut content_type = None;
        for (name, value) in fields {
            if name == "content-type" {
                content_type = Some(ShortString::from(value.as_str()));
            }
            headers.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(LongString::from(value.as_str())),
            );
        }
        let mut properties = lapin::BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(ShortString::from(msg.id))
            .with_headers(headers);
        if let Some(content_type) = content_type {
            properties = properties.with_content_type(content_type);
        }
        let options = lapin::options::BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let sent = async {
            link.channel
                .basic_publish(
                    ShortString::from(exchange),
                    ShortString::from(routing_key),
                    options,
                    msg.body,
                    properties,
                )
                .await?
                .await
        };
        let target = format!("exchange '{exchange}' with routing key '{routing_key}'");
        match sent.await {
            Ok(lapin::Confirmation::Ack(None)) => Ok(format!("confirmed by {target}")),
            Ok(lapin::Confirmation::Ack(Some(returned))) => Err((
                ErrorClass::BrokerRefused,
                format!(
                    "the broker returned the message: no queue took it from {target} ({} {})",
                    returned.reply_code, returned.reply_text
                ),
            )),
            Ok(confirmation) => Err((
                ErrorClass::BrokerRefused,
                format!("the broker did not confirm the message to {target}: {confirmation:?}"),
            )),
            Err(e) => {
                // The channel (or the connection) is closed after an error: made again.
                self.forget_broker(endpoint);
                let class = match amqp_class(&e) {
                    ErrorClass::Connect => ErrorClass::Incomplete,
                    class => class,
                };
                Err((class, format!("the publish to {target} failed: {e}")))
            }
        }
    }

    /// One record to the partition of its key (or of the event's id, for a record without
    /// one), acknowledged by every in-sync replica; where it is.
    async fn kafka_produce(
        &self,
        endpoint: EndpointId,
        link: &KafkaLink,
        topic: &str,
        key: Option<Vec<u8>>,
        fields: &[(String, String)],
        msg: Message<'_>,
    ) -> Result<String, (ErrorClass, String)> {
        let by = key.as_deref().unwrap_or(msg.id.as_bytes());
        let partition = link.partitions[kafka_partition(by, link.partitions.len())];
        let producer = {
            let mut producers = link.producers.lock().await;
            match producers.get(&partition) {
                Some(p) => p.clone(),
                None => {
                    let made = link
                        .client
                        .partition_client(
                            topic,
                            partition,
                            rskafka::client::partition::UnknownTopicHandling::Error,
                        )
                        .await
                        .map_err(|e| self.kafka_failed(endpoint, link, topic, &e))?;
                    let made = Arc::new(made);
                    producers.insert(partition, made.clone());
                    made
                }
            }
        };
        let record = rskafka::record::Record {
            key,
            value: Some(msg.body.to_vec()),
            headers: fields
                .iter()
                .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
                .collect(),
            timestamp: rskafka::chrono::Utc::now(),
        };
        let offsets = producer
            .produce(
                vec![record],
                rskafka::client::partition::Compression::NoCompression,
            )
            .await
            .map_err(|e| self.kafka_failed(endpoint, link, topic, &e))?;
        let offset = offsets.first().copied().unwrap_or(-1);
        Ok(format!(
            "topic {topic} partition {partition} offset {offset}"
        ))
    }

    /// A produce that failed: the broker's refusal, or a connection that broke (the client
    /// is made again on the next attempt).
    fn kafka_failed(
        &self,
        endpoint: EndpointId,
        link: &KafkaLink,
        topic: &str,
        e: &rskafka::client::error::Error,
    ) -> (ErrorClass, String) {
        if let Some(refusal) = link.guard.refusal() {
            self.forget_broker(endpoint);
            let message = format!(
                "the cluster named a broker for topic '{topic}' that hookd may not reach: {refusal}"
            );
            return (ConnectError::Target(refusal).class(), message);
        }
        let class = kafka_class(e, ErrorClass::Incomplete);
        if class != ErrorClass::BrokerRefused {
            self.forget_broker(endpoint);
        }
        (
            class,
            format!("the produce to topic '{topic}' failed: {}", ErrorChain(e)),
        )
    }

    fn forget_broker(&self, endpoint: EndpointId) {
        let mut kept = self.brokers.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.remove(&endpoint);
    }

    /// The connection kept for the endpoint's settings, when it is up.
    fn kept_broker(&self, endpoint: &Endpoint) -> Option<Connection> {
        let kept = self.brokers.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(&endpoint.id)
            .filter(|(version, conn)| *version == endpoint.updated_at && conn.is_up())
            .map(|(_, conn)| conn.clone())
    }

    /// The endpoint's broker connection: the one kept for its settings, or a new one (made
    /// once for the attempts that wait on it together).
    async fn broker_connection(&self, endpoint: &Endpoint) -> Result<Connection, ConnectError> {
        if let Some(conn) = self.kept_broker(endpoint) {
            return Ok(conn);
        }
        let gate = {
            let mut connecting = self
                .brokers
                .connecting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            connecting.entry(endpoint.id).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(conn) = self.kept_broker(endpoint) {
            return Ok(conn);
        }
        let made = self.connect_broker(endpoint).await;
        self.brokers
            .connecting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&endpoint.id);
        let conn = made?;
        let mut kept = self.brokers.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_KEPT_CONNECTIONS {
            kept.clear();
        }
        kept.insert(endpoint.id, (endpoint.updated_at, conn.clone()));
        Ok(conn)
    }

    async fn connect_broker(&self, endpoint: &Endpoint) -> Result<Connection, ConnectError> {
        let settings = &endpoint.settings;
        let login = match &settings.auth {
            None => None,
            Some(sealed) => Some(credentials::login(self.sealing.as_ref(), sealed)?),
        };
        match settings.destination {
            Destination::Amqp { .. } => self.connect_amqp(settings, login).await,
            Destination::Nats { .. } => self.connect_nats(settings, login).await,
            Destination::Kafka {
                ref topic, sasl, ..
            } => self.connect_kafka(settings, topic, sasl, login).await,
            Destination::Redis { .. } | Destination::Http => {
                let stream = self
                    .broker_stream(&settings.url, &settings.destination)
                    .await?;
                let mut info = redis::RedisConnectionInfo::default();
                if let Some((username, password)) = login {
                    info = info.set_username(username).set_password(password);
                }
                let (conn, driver) = MultiplexedConnection::new_with_config(
                    &info,
                    stream,
                    redis::AsyncConnectionConfig::new().set_response_timeout(None),
                )
                .await
                .map_err(ConnectError::Redis)?;
                tokio::spawn(driver);
                Ok(Connection::Redis(conn))
            }
        }
    }

    /// A NATS client connected to the address the target policy allows (for `tls://`, the
    /// host name, checked first, which TLS needs to verify the server), announcing no others.
    async fn connect_nats(
        &self,
        settings: &EndpointSettings,
        login: Option<(String, String)>,
    ) -> Result<Connection, ConnectError> {
        let url = &settings.url;
        let (port, addrs) = self.allowed(url, &settings.destination).await?;
        let tls = !is_plaintext(url.scheme());
        let target = if tls {
            format!("tls://{}:{port}", url.host_str().unwrap_or_default())
        } else {
            format!("nats://{}", addrs[0])
        };
        let mut options = async_nats::ConnectOptions::new()
            .name("hookd")
            .ignore_discovered_servers()
            .retain_servers_order()
            .connection_timeout(std::time::Duration::from_secs(5))
            .max_reconnects(Some(1));
        if tls {
            options = options
                .require_tls(true)
                .tls_client_config(self.broker_tls(url)?);
        }
        if let Some((user, password)) = login {
            options = options.user_and_password(user, password);
        }
        let client = options
            .connect(target.as_str())
            .await
            .map_err(ConnectError::Nats)?;
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(std::time::Duration::from_millis(u64::from(
            settings.timeout_ms,
        )));
        Ok(Connection::Nats(js))
    }

    /// An AMQP connection to the address the target policy allows (for `amqps://`, the host
    /// name, which TLS needs), with one channel in confirm mode.
    async fn connect_amqp(
        &self,
        settings: &EndpointSettings,
        login: Option<(String, String)>,
    ) -> Result<Connection, ConnectError> {
        let url = &settings.url;
        let (port, addrs) = self.allowed(url, &settings.destination).await?;
        let mut target = url.clone();
        if is_plaintext(url.scheme()) {
            let _ = target.set_ip_host(addrs[0].ip());
        }
        let _ = target.set_port(Some(port));
        if let Some((username, password)) = &login {
            let _ = target.set_username(username);
            let _ = target.set_password(Some(password));
        }
        let connection =
            lapin::Connection::connect(target.as_str(), lapin::ConnectionProperties::default())
                .await
                .map_err(ConnectError::Amqp)?;
        let channel = connection
            .create_channel()
            .await
            .map_err(ConnectError::Amqp)?;
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .map_err(ConnectError::Amqp)?;
        Ok(Connection::Amqp(Arc::new(AmqpLink {
            _connection: connection,
            channel,
        })))
    }

    /// A Kafka client bootstrapped from the url's host, every connection of which goes through
    /// a guarded door of its own (the target policy's check, made there), and the topic's
    /// partitions.
    async fn connect_kafka(
        &self,
        settings: &EndpointSettings,
        topic: &str,
        sasl: Sasl,
        login: Option<(String, String)>,
    ) -> Result<Connection, ConnectError> {
        use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
        let url = &settings.url;
        let host = url.host_str().ok_or(ConnectError::NoHost)?;
        let bootstrap = format!("{host}:{}", settings.destination.default_port(url));
        let guard = super::guard::Guard::open(self.policy)
            .await
            .map_err(ConnectError::Guard)?;
        // Retries inside the client stop well before the attempt's deadline, so the attempt
        // says what failed rather than only that it timed out.
        let patience = std::time::Duration::from_millis(u64::from(settings.timeout_ms) / 2);
        let mut builder = ClientBuilder::new(vec![bootstrap])
            .client_id("hookd")
            .socks5_proxy(guard.proxy())
            .backoff_config(rskafka::BackoffConfig {
                init_backoff: std::time::Duration::from_millis(50),
                max_backoff: std::time::Duration::from_millis(500),
                base: 2.0,
                deadline: Some(patience),
            });
        if !is_plaintext(url.scheme()) {
            builder = builder.tls_config(Arc::new(self.broker_tls(url)?));
        }
        if let Some((username, password)) = login {
            let credentials = Credentials::new(username, password);
            builder = builder.sasl_config(match sasl {
                Sasl::Plain => SaslConfig::Plain(credentials),
                Sasl::ScramSha256 => SaslConfig::ScramSha256(credentials),
                Sasl::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        // A connection the door refused is told as the policy's refusal.
        let failed = |e| match guard.refusal() {
            Some(refusal) => ConnectError::Target(refusal),
            None => ConnectError::Kafka(e),
        };
        let client = builder.build().await.map_err(failed)?;
        let topics = client.list_topics().await.map_err(failed)?;
        let mut partitions: Vec<i32> = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.into_iter().collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(ConnectError::NoTopic(topic.to_owned()));
        }
        partitions.sort_unstable();
        Ok(Connection::Kafka(Arc::new(KafkaLink {
            client,
            guard,
            partitions,
            producers: Default::default(),
        })))
    }

    /// The broker's port (the destination's default when the URL has none) and the addresses
    /// of its host the target policy allows.
    async fn allowed(
        &self,
        url: &url::Url,
        destination: &Destination,
    ) -> Result<(u16, Vec<std::net::SocketAddr>), ConnectError> {
        let host = url.host().ok_or(ConnectError::NoHost)?;
        let port = destination.default_port(url);
        Ok((port, self.policy.addresses(&host, port).await?))
    }

    /// The TLS settings of a connection to the broker at `url`: the same roots as HTTPS.
    fn broker_tls(&self, url: &url::Url) -> Result<rustls::ClientConfig, ConnectError> {
        super::tls_config(self.roots.clone(), None).map_err(|e| ConnectError::Tls {
            host: url.host_str().unwrap_or_default().to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// A stream to the broker at `url`: TCP to the first allowed address that answers, with
    /// TLS (the same roots as HTTPS) when the scheme is the destination's TLS one.
    async fn broker_stream(
        &self,
        url: &url::Url,
        destination: &Destination,
    ) -> Result<Box<dyn BrokerStream>, ConnectError> {
        let host_text = url.host_str().unwrap_or_default().to_owned();
        let (port, addrs) = self.allowed(url, destination).await?;
        let tcp = super::guard::connect_first(&addrs)
            .await
            .map_err(|source| ConnectError::Tcp {
                host: host_text.clone(),
                port,
                source,
            })?;
        if is_plaintext(url.scheme()) {
            return Ok(Box::new(tcp));
        }
        let tls = self.broker_tls(url)?;
        let name = rustls::pki_types::ServerName::try_from(
            host_text
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|_| ConnectError::ServerName(host_text.clone()))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|source| ConnectError::Tls {
                host: host_text,
                source,
            })?;
        Ok(Box::new(stream))
    }
}

/// The class of an AMQP failure: the network's, a refused login, or the broker's refusal (a
/// channel or connection closed with an error: no such exchange, no access, …).
fn amqp_class(e: &lapin::Error) -> ErrorClass {
    match e.kind() {
        lapin::ErrorKind::IOError(_) | lapin::ErrorKind::MissingHeartbeatError => {
            ErrorClass::Connect
        }
        lapin::ErrorKind::AuthProviderError(_) => ErrorClass::Auth,
        lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 403 => ErrorClass::Auth,
        _ if e.to_string().contains("ACCESS_REFUSED") => ErrorClass::Auth,
        _ => ErrorClass::BrokerRefused,
    }
}

/// The class of a Kafka failure: a refused login, the broker's refusal (an error code in its
/// answer), or the network's (`network`: `connect` while connecting, `incomplete` after).
fn kafka_class(e: &rskafka::client::error::Error, network: ErrorClass) -> ErrorClass {
    use rskafka::client::error::{Error, ProtocolError};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(rskafka::ConnectionError::SaslFailed(_)) = err.downcast_ref() {
            return ErrorClass::Auth;
        }
        if let Some(Error::Timeout) = err.downcast_ref::<Error>() {
            return ErrorClass::Timeout;
        }
        if let Some(Error::ServerError { protocol_error, .. }) = err.downcast_ref::<Error>() {
            return match protocol_error {
                ProtocolError::SaslAuthenticationFailed
                | ProtocolError::TopicAuthorizationFailed
                | ProtocolError::ClusterAuthorizationFailed => ErrorClass::Auth,
                ProtocolError::RequestTimedOut => ErrorClass::Timeout,
                _ => ErrorClass::BrokerRefused,
            };
        }
        cause = err.source();
    }
    // A login the broker refused may come wrapped where no `source` reaches it (a retry that
    // ran out of time keeps its errors in a list): its debug form still names it.
    if format!("{e:?}").contains("SaslFailed") {
        return ErrorClass::Auth;
    }
    network
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::client::error::{Error, ProtocolError, RequestContext};

    fn server_error(protocol_error: ProtocolError) -> Error {
        Error::ServerError {
            protocol_error,
            error_message: None,
            request: RequestContext::Topic("t".into()),
            response: None,
            is_virtual: false,
        }
    }

    #[test]
    fn a_kafka_failure_is_the_brokers_refusal_a_login_or_the_networks() {
        let refused = server_error(ProtocolError::UnknownTopicOrPartition);
        assert_eq!(
            kafka_class(&refused, ErrorClass::Incomplete),
            ErrorClass::BrokerRefused
        );
        let too_big = server_error(ProtocolError::MessageTooLarge);
        assert_eq!(
            kafka_class(&too_big, ErrorClass::Incomplete),
            ErrorClass::BrokerRefused
        );
        let login = server_error(ProtocolError::SaslAuthenticationFailed);
        assert_eq!(kafka_class(&login, ErrorClass::Connect), ErrorClass::Auth);
        let slow = server_error(ProtocolError::RequestTimedOut);
        assert_eq!(kafka_class(&slow, ErrorClass::Connect), ErrorClass::Timeout);
        let broken = Error::Request(rskafka::client::error::RequestError::IO(
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        ));
        assert_eq!(
            kafka_class(&broken, ErrorClass::Incomplete),
            ErrorClass::Incomplete
        );
        assert_eq!(
            kafka_class(&Error::Timeout, ErrorClass::Connect),
            ErrorClass::Timeout
        );
    }
}
