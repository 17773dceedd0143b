//! Where an endpoint's deliveries go: an HTTP URL (the default), or a broker at the endpoint's
//! `url` (`redis://…`, `nats://…`, `amqp://…`, `kafka://…`). Each is checked here once, when it is set; what reaches the outbound
//! client is valid.

use serde_json::{Value, json};

use super::Invalid;

/// An endpoint's destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Destination {
    /// A `POST` to the endpoint's `http(s)://` URL.
    #[default]
    Http,
    /// An `XADD` to a Redis stream on the server at the endpoint's `redis(s)://` URL.
    Redis {
        /// The stream's key.
        stream: String,
        /// Trims the stream to about this many entries (`MAXLEN ~`); `None` keeps every one.
        max_len: Option<u64>,
    },
    /// A JetStream publish to a subject on the NATS server at the endpoint's `nats://` (or
    /// `tls://`) URL, acknowledged by the stream that holds the subject.
    Nats {
        /// The subject (no wildcards).
        subject: String,
    },
    /// A persistent, mandatory `basic.publish` to an exchange on the AMQP 0.9.1 server
    /// (RabbitMQ) at the endpoint's `amqp://host:port/vhost` URL, confirmed by the broker.
    Amqp {
        /// The exchange (`""`: the default exchange, which routes to the queue the routing key
        /// names).
        exchange: String,
        /// A fixed routing key; `None`: each event's type.
        routing_key: Option<String>,
    },
    /// A produce to a Kafka topic on the cluster at the endpoint's `kafka://` (or
    /// `kafka+ssl://`) URL, acknowledged by every in-sync replica (`acks=all`).
    Kafka {
        /// The topic.
        topic: String,
        /// What each record's key is (and so which partition it goes to).
        key: KafkaKey,
        /// How hookd logs in when the endpoint has `auth`.
        sasl: Sasl,
    },
}

/// A Kafka record's key: what keeps one entity's events on one partition, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KafkaKey {
    /// The event's id (`webhook-id`).
    #[default]
    EventId,
    /// The value at this JSON Pointer (RFC 6901) in the delivered body, e.g.
    /// `/data/customerId`: its text for a string, its JSON for anything else; a record has
    /// no key when the body has nothing there.
    Field(String),
}

impl KafkaKey {
    /// The key of a record whose body is `body`, for the event `id`.
    pub fn of(&self, id: &str, body: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::EventId => Some(id.as_bytes().to_vec()),
            Self::Field(pointer) => {
                let doc: Value = serde_json::from_slice(body).ok()?;
                match doc.pointer(pointer)? {
                    Value::Null => None,
                    Value::String(text) => Some(text.as_bytes().to_vec()),
                    other => Some(other.to_string().into_bytes()),
                }
            }
        }
    }
}

/// The SASL mechanism of a Kafka login (the endpoint's `auth` gives the user and password).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sasl {
    /// `PLAIN`: the password as it is (over TLS, or where plain connections are allowed).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`, the default.
    #[default]
    ScramSha512,
}

impl Sasl {
    const NAMES: [(Self, &'static str); 3] = [
        (Self::Plain, "plain"),
        (Self::ScramSha256, "scram-sha-256"),
        (Self::ScramSha512, "scram-sha-512"),
    ];

    /// The API name: `plain`, `scram-sha-256`, `scram-sha-512`.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("", |(_, name)| name)
    }

    fn parse(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(m, _)| *m)
    }
}

/// Kafka's partitioner: the partition of a record with key `key` among `partitions`, as
/// Kafka's own clients choose it (murmur2 of the key, made positive, modulo the count), so
/// hookd's records land where a Java or librdkafka producer's with the same key would.
pub fn kafka_partition(key: &[u8], partitions: usize) -> usize {
    (murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)
}

/// Kafka's murmur2 (seed `0x9747b28c`), as `org.apache.kafka.common.utils.Utils.murmur2`.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The destination types: what a `type` may say.
const TYPES: &str = "'http', 'redis', 'nats', 'amqp' or 'kafka'";

impl Destination {
    /// Parses the API form (also the stored form): `{"type": "redis", "stream": …}`.
    pub fn parse(v: &Value) -> Result<Self, Invalid> {
        let Some(fields) = v.as_object() else {
            return Err(format!("destination must be an object with a type ({TYPES})").into());
        };
        let kind = fields
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid(format!("destination.type is required: {TYPES}")))?;
        let allowed: &[&str] = match kind {
            "http" => &["type"],
            "redis" => &["type", "stream", "maxLen"],
            "nats" => &["type", "subject"],
            "amqp" => &["type", "exchange", "routingKey"],
            "kafka" => &["type", "topic", "key", "sasl"],
            other => return Err(format!("destination.type '{other}' is not one of {TYPES}").into()),
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(
                "destination has no field '{unknown}' for type '{kind}' (it takes {})",
                allowed.join(", ")
            )
            .into());
        }
        match kind {
            "redis" => {
                let stream = required_text(fields, "stream")?;
                check_key(&stream, "destination.stream")?;
                let max_len = match fields.get("maxLen") {
                    None | Some(Value::Null) => None,
                    // A whole number, written `5` or `5.0` (JSON does not tell them apart).
                    Some(v) => Some(
                        v.as_u64()
                            .or_else(|| {
                                v.as_f64()
                                    .filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f < 1e15)
                                    .map(|f| f as u64)
                            })
                            .filter(|n| *n >= 1)
                            .ok_or(
                                "destination.maxLen must be a whole number of entries, at least 1",
                            )?,
                    ),
                };
                Ok(Self::Redis { stream, max_len })
            }
            "nats" => {
                let subject = required_text(fields, "subject")?;
                check_key(&subject, "destination.subject")?;
                if subject
                    .split('.')
                    .any(|token| token.is_empty() || token.contains(['*', '>']))
                {
                    return Err("destination.subject must be tokens separated by dots, none empty and no wildcards (* or >)".into());
                }
                Ok(Self::Nats { subject })
            }
            "amqp" => {
                let exchange = required_text(fields, "exchange")?;
                let name = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
                if exchange.len() > 127 || !exchange.bytes().all(name) {
                    return Err("destination.exchange must be at most 127 letters, digits, '-', '_', '.' or ':' (\"\": the default exchange)".into());
                }
                let routing_key = match fields.get("routingKey") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(key)) => {
                        check_key(key, "destination.routingKey")?;
                        Some(key.clone())
                    }
                    Some(_) => return Err(
                        "destination.routingKey must be a string, or null for each event's type"
                            .into(),
                    ),
                };
                Ok(Self::Amqp {
                    exchange,
                    routing_key,
                })
            }
            "kafka" => {
                let topic = required_text(fields, "topic")?;
                let name = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
                if topic.is_empty()
                    || topic.len() > 249
                    || !topic.bytes().all(name)
                    || topic == "."
                    || topic == ".."
                {
                    return Err("destination.topic must be 1 to 249 letters, digits, '-', '_' or '.' (not '.' or '..')".into());
                }
                let key = match fields.get("key") {
                    None | Some(Value::Null) => KafkaKey::EventId,
                    Some(Value::String(k)) if k == "eventId" => KafkaKey::EventId,
                    Some(Value::String(pointer))
                        if pointer.starts_with('/')
                            && pointer.chars().count() <= 256
                            && !pointer.chars().any(char::is_control) =>
                    {
                        KafkaKey::Field(pointer.clone())
                    }
                    Some(_) => return Err("destination.key must be \"eventId\" or a JSON Pointer into the delivered body (\"/data/customerId\"), at most 256 bytes".into()),
                };
                let sasl = match fields.get("sasl") {
                    None | Some(Value::Null) => Sasl::default(),
                    Some(Value::String(name)) => Sasl::parse(name).ok_or_else(|| {
                        Invalid(format!(
                            "destination.sasl '{name}' is not one of 'plain', 'scram-sha-256' or 'scram-sha-512'"
                        ))
                    })?,
                    Some(_) => return Err("destination.sasl must be 'plain', 'scram-sha-256' or 'scram-sha-512'".into()),
                };
                Ok(Self::Kafka { topic, key, sasl })
            }
            _ => Ok(Self::Http),
        }
    }

    /// The API and stored form.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Http => json!({"type": "http"}),
            Self::Redis { stream, max_len } => {
                let mut v = json!({"type": "redis", "stream": stream});
                if let Some(n) = max_len {
                    v["maxLen"] = json!(n);
                }
                v
            }
            Self::Nats { subject } => json!({"type": "nats", "subject": subject}),
            Self::Amqp {
                exchange,
                routing_key,
            } => {
                let mut v = json!({"type": "amqp", "exchange": exchange});
                if let Some(key) = routing_key {
                    v["routingKey"] = json!(key);
                }
                v
            }
            Self::Kafka { topic, key, sasl } => {
                let key = match key {
                    KafkaKey::EventId => "eventId",
                    KafkaKey::Field(pointer) => pointer,
                };
                json!({"type": "kafka", "topic": topic, "key": key, "sasl": sasl.name()})
            }
        }
    }

    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Redis { .. } => "redis",
            Self::Nats { .. } => "nats",
            Self::Amqp { .. } => "amqp",
            Self::Kafka { .. } => "kafka",
        }
    }

    /// What an attempt does, as the delivery's request shows it: `POST`, `XADD`.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Http => "POST",
            Self::Redis { .. } => "XADD",
            Self::Nats { .. } => "PUB",
            Self::Amqp { .. } => "basic.publish",
            Self::Kafka { .. } => "PRODUCE",
        }
    }

    /// The broker and the name messages go to (`redis`, the stream), for a broker destination.
    pub fn broker(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::Http => None,
            Self::Redis { stream, .. } => Some(("redis", stream)),
            Self::Nats { subject } => Some(("nats", subject)),
            Self::Amqp { exchange, .. } => Some(("rabbitmq", exchange)),
            Self::Kafka { topic, .. } => Some(("kafka", topic)),
        }
    }

    /// Whether deliveries are HTTP requests.
    pub fn is_http(&self) -> bool {
        matches!(self, Self::Http)
    }

    /// The URL schemes the endpoint's `url` may have: the plain one, then the TLS one.
    pub fn schemes(&self) -> [&'static str; 2] {
        SCHEMES[match self {
            Self::Http => 0,
            Self::Redis { .. } => 1,
            Self::Nats { .. } => 2,
            Self::Amqp { .. } => 3,
            Self::Kafka { .. } => 4,
        }]
    }

    /// The port of a URL without one.
    pub fn default_port(&self, url: &url::Url) -> u16 {
        url.port_or_known_default().unwrap_or(match self {
            Self::Http => 443,
            Self::Redis { .. } => 6379,
            Self::Nats { .. } => 4222,
            Self::Amqp { .. } if url.scheme() == "amqps" => 5671,
            Self::Amqp { .. } => 5672,
            Self::Kafka { .. } => 9092,
        })
    }

    /// Checks that `url` is one for this destination.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Invalid> {
        let [plain, tls] = self.schemes();
        if url.scheme() != plain && url.scheme() != tls {
            return Err(format!(
                "url must be a {tls}:// (or {plain}://) URL for a '{}' destination, not {}://",
                self.kind(),
                url.scheme()
            )
            .into());
        }
        // The Kafka client splits `host:port` at the first colon.
        if matches!(self, Self::Kafka { .. }) && matches!(url.host(), Some(url::Host::Ipv6(_))) {
            return Err(
                "url for a 'kafka' destination must name its host, or give an IPv4 address: an IPv6 literal is not supported"
                    .into(),
            );
        }
        // An AMQP URL's path is its virtual host; other brokers' URLs have none.
        let vhost = matches!(self, Self::Amqp { .. });
        if !self.is_http()
            && (!vhost && url.path() != "" && url.path() != "/" || url.query().is_some())
        {
            return Err(format!(
                "url for a '{}' destination is the broker's address alone ({plain}://host:port), with no path or query",
                self.kind()
            )
            .into());
        }
        Ok(())
    }
}

/// Each destination's URL schemes: the plain one, then the TLS one.
const SCHEMES: [[&str; 2]; 5] = [
    ["http", "https"],
    ["redis", "rediss"],
    ["nats", "tls"],
    ["amqp", "amqps"],
    ["kafka", "kafka+ssl"],
];

/// A URL scheme that some destination takes.
pub fn is_known_scheme(scheme: &str) -> bool {
    SCHEMES.iter().any(|pair| pair.contains(&scheme))
}

/// Whether a URL's scheme carries no TLS (`http`, `redis`): allowed only where plain HTTP is.
pub fn is_plaintext(scheme: &str) -> bool {
    SCHEMES.iter().any(|[plain, _]| *plain == scheme)
}

fn required_text(fields: &serde_json::Map<String, Value>, name: &str) -> Result<String, Invalid> {
    match fields.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("destination.{name} is required, as a string").into()),
    }
}

/// A key, subject or queue name: 1 to 256 characters (as the API document counts them), no whitespace or control characters.
fn check_key(key: &str, field: &str) -> Result<(), Invalid> {
    if key.is_empty() || key.chars().count() > 256 {
        return Err(format!("{field} must be 1 to 256 characters").into());
    }
    // As the document's pattern says: no white space (U+FEFF counts, as in ECMAScript's
    // `\s`), no control characters.
    if key
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\u{feff}')
    {
        return Err(format!("{field} must not hold spaces or control characters").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_shows_each_type() {
        let redis = json!({"type": "redis", "stream": "orders", "maxLen": 1000});
        let parsed = Destination::parse(&redis).expect("redis");
        assert_eq!(
            parsed,
            Destination::Redis {
                stream: "orders".into(),
                max_len: Some(1000)
            }
        );
        assert_eq!(parsed.to_json(), redis);
        let written_as_float = json!({"type": "redis", "stream": "orders", "maxLen": 1000.0});
        assert_eq!(Destination::parse(&written_as_float), Ok(parsed));
        assert_eq!(
            Destination::parse(&json!({"type": "http"})),
            Ok(Destination::Http)
        );
        let amqp = json!({"type": "amqp", "exchange": "hookd", "routingKey": "all"});
        assert_eq!(Destination::parse(&amqp).expect("amqp").to_json(), amqp);
        let by_type = json!({"type": "amqp", "exchange": ""});
        assert_eq!(
            Destination::parse(&by_type).expect("amqp").to_json(),
            by_type
        );
        let nats = json!({"type": "nats", "subject": "orders.paid"});
        assert_eq!(Destination::parse(&nats).expect("nats").to_json(), nats);
        let kafka =
            json!({"type": "kafka", "topic": "orders", "key": "/data/customer", "sasl": "plain"});
        assert_eq!(Destination::parse(&kafka).expect("kafka").to_json(), kafka);
        let defaults = Destination::parse(&json!({"type": "kafka", "topic": "orders"}));
        assert_eq!(
            defaults.expect("kafka").to_json(),
            json!({"type": "kafka", "topic": "orders", "key": "eventId", "sasl": "scram-sha-512"})
        );
    }

    #[test]
    fn a_kafka_key_is_the_event_id_or_a_field_of_the_body() {
        let body = br#"{"data": {"customer": "c_1", "n": 7, "gone": null}}"#;
        assert_eq!(KafkaKey::EventId.of("evt_1", body), Some(b"evt_1".to_vec()));
        let field = |p: &str| KafkaKey::Field(p.into()).of("evt_1", body);
        assert_eq!(field("/data/customer"), Some(b"c_1".to_vec()));
        assert_eq!(field("/data/n"), Some(b"7".to_vec()));
        assert_eq!(field("/data/gone"), None);
        assert_eq!(field("/data/missing"), None);
    }

    #[test]
    fn the_partition_of_a_key_is_the_one_kafka_clients_choose() {
        // Kafka's own test vectors for its murmur2 (UtilsTest.testMurmur2).
        for (key, hash) in [
            (&b"21"[..], -973_932_308_i32),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(
                murmur2(key) as i32,
                hash,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(kafka_partition(b"abc", 1), 0);
        assert_eq!(kafka_partition(b"abc", 10), 479_470_107 % 10);
        assert!((0..100).all(|i| kafka_partition(format!("k{i}").as_bytes(), 3) < 3));
    }

    #[test]
    fn refuses_what_is_not_valid_with_a_reason() {
        for (v, says) in [
            (json!("redis"), "must be an object"),
            (json!({}), "type is required"),
            (json!({"type": "sqs"}), "not one of"),
            (json!({"type": "kafka"}), "topic is required"),
            (json!({"type": "kafka", "topic": "a b"}), "1 to 249"),
            (json!({"type": "kafka", "topic": ".."}), "1 to 249"),
            (
                json!({"type": "kafka", "topic": "t", "key": "id"}),
                "JSON Pointer",
            ),
            (
                json!({"type": "kafka", "topic": "t", "sasl": "gssapi"}),
                "not one of",
            ),
            (json!({"type": "nats", "subject": "a.*"}), "no wildcards"),
            (json!({"type": "nats", "subject": "a..b"}), "none empty"),
            (json!({"type": "nats"}), "subject is required"),
            (json!({"type": "amqp"}), "exchange is required"),
            (json!({"type": "amqp", "exchange": "a b"}), "at most 127"),
            (
                json!({"type": "amqp", "exchange": "x", "routingKey": 5}),
                "routingKey",
            ),
            (json!({"type": "redis"}), "stream is required"),
            (json!({"type": "redis", "stream": ""}), "1 to 256"),
            (json!({"type": "redis", "stream": "a b"}), "spaces"),
            (
                json!({"type": "redis", "stream": "s", "maxLen": 0}),
                "maxLen",
            ),
            (
                json!({"type": "redis", "stream": "s", "topic": "t"}),
                "no field 'topic'",
            ),
            (json!({"type": "http", "stream": "s"}), "no field 'stream'"),
        ] {
            let err = Destination::parse(&v).expect_err(&v.to_string());
            assert!(err.0.contains(says), "{v}: {}", err.0);
        }
    }

    #[test]
    fn a_url_must_fit_its_destination() {
        let redis = Destination::Redis {
            stream: "s".into(),
            max_len: None,
        };
        let url = |s: &str| url::Url::parse(s).expect("url");
        assert!(redis.check_url(&url("redis://127.0.0.1:6379")).is_ok());
        assert!(redis.check_url(&url("rediss://cache.example")).is_ok());
        assert!(redis.check_url(&url("https://example.com")).is_err());
        assert!(redis.check_url(&url("redis://h/0?x=1")).is_err());
        assert!(Destination::Http.check_url(&url("redis://h")).is_err());
        assert_eq!(redis.default_port(&url("redis://h")), 6379);
        let kafka = Destination::parse(&json!({"type": "kafka", "topic": "t"})).expect("kafka");
        assert!(
            kafka
                .check_url(&url("kafka+ssl://kafka.internal:9093"))
                .is_ok()
        );
        assert!(kafka.check_url(&url("kafka://[::1]:9092")).is_err());
        assert_eq!(kafka.default_port(&url("kafka://h")), 9092);
        assert!(is_known_scheme("rediss") && !is_known_scheme("ftp"));
        assert!(is_plaintext("amqp") && is_plaintext("http"));
        assert!(!is_plaintext("amqps") && !is_plaintext("tls"));
    }
}
