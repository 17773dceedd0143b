//! Outgoing endpoints: their settings (validated once, here) and their stored state.

use super::Invalid;
use super::destination::Destination;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{EndpointId, EventPattern, TenantId, UnixMs};

/// How deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Standard Webhooks: `webhook-signature: v1,<base64 HMAC>`.
    Standard,
    /// GitHub style: `X-Hub-Signature-256: sha256=<hex HMAC of the body>`.
    Github,
    /// Standard Webhooks, asymmetric: `webhook-signature: v1a,<base64 Ed25519 signature>`.
    Ed25519,
}

/// The body shape sent to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `{id, event, timestamp, data}`.
    Json,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Discord webhook message.
    Discord,
    /// A CloudEvents 1.0 event in structured mode (`application/cloudevents+json`).
    CloudEvents,
    /// A CloudEvents 1.0 event in binary mode: `ce-*` headers, the body is the event's `data`.
    CloudEventsBinary,
}

impl Format {
    /// Whether an endpoint of this format has a URL that is a credential: a Slack or Discord
    /// webhook URL lets anyone who has it post to the channel.
    pub fn url_is_secret(self) -> bool {
        matches!(self, Self::Slack | Self::Discord)
    }
}

/// What of a URL may be kept readable when the URL itself is sealed: its origin.
pub fn redacted(url: &url::Url) -> url::Url {
    let mut shown = url.clone();
    shown.set_path("/");
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown
}

/// Whether deliveries to the endpoint may overtake each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// Any order, many at a time.
    None,
    /// One at a time, in publish order.
    Fifo,
}

text_enum!(SignatureScheme { Standard => "standard", Github => "github", Ed25519 => "ed25519" });
text_enum!(Format {
    Json => "json",
    Slack => "slack",
    Discord => "discord",
    CloudEvents => "cloudevents",
    CloudEventsBinary => "cloudevents-binary"
});
text_enum!(Ordering { None => "none", Fifo => "fifo" });
text_enum!(DisableReason {
    ConsecutiveFailures => "consecutive_failures",
    Gone => "gone",
    Manual => "manual"
});

/// Why an endpoint stopped receiving deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    /// `disableAfter` deliveries in a row failed for good; its pending deliveries fail too.
    ConsecutiveFailures,
    /// It answered `410 Gone`; its pending deliveries fail too.
    Gone,
    /// Paused through the API; its pending deliveries wait for it.
    Manual,
}

impl DisableReason {
    /// Whether disabling for this reason fails the endpoint's pending deliveries.
    pub fn fails_pending(self) -> bool {
        !matches!(self, Self::Manual)
    }
}

impl serde::Serialize for DisableReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The default delays before each retry: five retries over about a day.
pub const DEFAULT_RETRY_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(86400),
];

/// Headers an endpoint's `headers` may not set: hop-by-hop, framing, and the signature headers.
pub const RESERVED_HEADERS: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Every setting of an endpoint, each one valid.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    /// Display name.
    pub name: String,
    /// Where deliveries are POSTed, or the broker's address.
    pub url: url::Url,
    /// What deliveries are: HTTP requests (the default) or messages to a broker.
    pub destination: Destination,
    /// What it subscribes to (at least one).
    pub events: Vec<EventPattern>,
    /// Signing scheme.
    pub signature_scheme: SignatureScheme,
    /// Overrides the signature header's name.
    pub signature_header_name: Option<String>,
    /// Body shape.
    pub format: Format,
    /// Extra request headers, lowercase names; their values sealed at rest.
    pub headers: BTreeMap<String, HeaderSetting>,
    /// Delays before each retry; its length is the retry count.
    pub retry_schedule: Vec<Duration>,
    /// Consecutive deliveries failed for good that disable the endpoint; 0 = never.
    pub disable_after: u32,
    /// Per-attempt timeout.
    pub timeout_ms: u32,
    /// At most this many deliveries start in any one second.
    pub rate_limit: Option<u32>,
    /// Delivery ordering.
    pub ordering: Ordering,
    /// Whether it receives deliveries.
    pub is_active: bool,
    /// Conditions on the event that must all hold for it to be delivered here (none: every
    /// subscribed event), compiled once.
    pub filter: Option<std::sync::Arc<super::filter::Filter>>,
    /// The channels it listens to (none: every subscribed event, whatever its channels).
    pub channels: Option<Vec<String>>,
    /// How deliveries authenticate to it (HTTP Basic, OAuth2): sealed, never read back.
    pub auth: Option<Sealed>,
    /// The client certificate and key presented to its TLS server: sealed, never read back.
    pub client_certificate: Option<Sealed>,
    /// When the URL is a credential (a Slack or Discord webhook: its path holds the token),
    /// the URL sealed; `url` then holds only its origin (see [`redacted`]).
    pub url_sealed: Option<Sealed>,
}

/// A custom header's value: as given (checked, not stored yet), or sealed with the credentials
/// key, as it is stored (header values often hold API keys). Values stored by a hookd before
/// sealing, or without a credentials key, read back as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSetting {
    /// The value itself.
    Plain(String),
    /// The value sealed; opened where it is sent or shown.
    Sealed(Sealed),
}

/// A credential sealed with the credentials key (see the sealing module): opaque text that only
/// that key opens.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(pub String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(…)")
    }
}

impl EndpointSettings {
    /// A new endpoint's settings: these defaults, before a request's own fields apply.
    pub fn new(name: String, url: url::Url, events: Vec<EventPattern>) -> Self {
        Self {
            name,
            url,
            destination: Destination::Http,
            events,
            signature_scheme: SignatureScheme::Standard,
            signature_header_name: None,
            format: Format::Json,
            headers: BTreeMap::new(),
            retry_schedule: DEFAULT_RETRY_SCHEDULE.to_vec(),
            disable_after: 5,
            timeout_ms: 10_000,
            rate_limit: None,
            ordering: Ordering::None,
            is_active: true,
            filter: None,
            channels: None,
            auth: None,
            client_certificate: None,
            url_sealed: None,
        }
    }

    /// The name of the header that carries the signature.
    pub fn signature_header(&self) -> &str {
        match (&self.signature_header_name, self.signature_scheme) {
            (Some(name), _) => name,
            (None, SignatureScheme::Standard | SignatureScheme::Ed25519) => "webhook-signature",
            (None, SignatureScheme::Github) => "x-hub-signature-256",
        }
    }

    /// Whether any subscription pattern matches this event name.
    pub fn subscribes_to(&self, name: &str) -> bool {
        self.events.iter().any(|p| p.matches(name))
    }

    /// Checks the rules that tie fields together (run after every create or PATCH).
    pub fn check(&self) -> Result<(), Invalid> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err("name must be 1 to 200 characters".into());
        }
        if self.events.is_empty() {
            return Err("events must list at least one event type or pattern".into());
        }
        if self.events.len() > 100 {
            return Err("events may list at most 100 patterns".into());
        }
        if self.retry_schedule.len() > 20 {
            return Err("retrySchedule may hold at most 20 delays".into());
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err("timeoutMs must be between 100 and 120000".into());
        }
        if self.rate_limit == Some(0) || self.rate_limit.is_some_and(|r| r > 100_000) {
            return Err("rateLimit must be between 1 and 100000 deliveries per second".into());
        }
        self.destination.check_url(&self.url)?;
        if !self.destination.is_http() {
            if !matches!(
                self.format,
                Format::Json | Format::CloudEvents | Format::CloudEventsBinary
            ) {
                return Err(format!(
                    "format '{}' is for HTTP endpoints; a '{}' destination takes 'json', 'cloudevents' or 'cloudevents-binary'",
                    self.format.as_str(),
                    self.destination.kind()
                )
                .into());
            }
            if self.client_certificate.is_some() {
                return Err(format!(
                    "clientCertificate is not supported for a '{}' destination yet",
                    self.destination.kind()
                )
                .into());
            }
        }
        if let Some(name) = &self.signature_header_name {
            check_header_name(name)?;
            if RESERVED_HEADERS[..11].contains(&name.as_str()) || name == "content-type" {
                return Err(format!("signatureHeaderName '{name}' is a reserved header").into());
            }
        }
        if self.headers.len() > 30 {
            return Err("headers may hold at most 30 entries".into());
        }
        for (name, value) in &self.headers {
            check_header_name(name)?;
            if RESERVED_HEADERS.contains(&name.as_str())
                || name == "content-type"
                || name == "x-hub-signature-256"
                || name == self.signature_header()
            {
                return Err(format!("headers may not set '{name}': hookd sets it").into());
            }
            // A sealed value was checked before it was sealed.
            if let HeaderSetting::Plain(value) = value {
                check_header_value(name, value)?;
            }
        }
        Ok(())
    }
}

/// Checks a custom header's value: valid in HTTP, no CR, LF or NUL, at most 4096 bytes.
pub fn check_header_value(name: &str, value: &str) -> Result<(), Invalid> {
    if value.len() > 4096 || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!(
            "header '{name}' has an invalid value: no CR, LF or NUL, at most 4096 bytes"
        )
        .into());
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!("header '{name}' has a value that is not valid in HTTP").into());
    }
    Ok(())
}

/// Lowercases and checks a header name (an HTTP token, at most 100 bytes).
pub fn check_header_name(name: &str) -> Result<(), Invalid> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || name.len() > 100 || !name.bytes().all(token) {
        return Err(format!("'{name}' is not a valid header name").into());
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("header name '{name}' must be lowercase").into());
    }
    Ok(())
}

/// Parses a user-supplied URL: absolute `http(s)://host…`, at most 2048 bytes, no credentials.
pub fn parse_url(s: &str) -> Result<url::Url, Invalid> {
    let url = parse_target(s)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url '{s}' must be an https:// (or, where allowed, http://) URL, not {}://",
            url.scheme()
        )
        .into());
    }
    Ok(url)
}

/// Parses an endpoint's URL: as [`parse_url`], or a broker's address (`redis://host:port`)
/// for a destination that is one (its settings' `check` ties the two together).
pub fn parse_target(s: &str) -> Result<url::Url, Invalid> {
    if s.len() > 2048 {
        return Err("url must be at most 2048 characters".into());
    }
    let url = url::Url::parse(s).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => {
            format!("url '{s}' must be absolute, like https://example.com/webhooks")
        }
        e => format!("url '{s}' is not a valid URL: {e}"),
    })?;
    if !super::destination::is_known_scheme(url.scheme()) {
        return Err(format!(
            "url '{s}' must be an https:// (or, where allowed, http://) URL, or a broker's address (redis://, nats://, amqp://, kafka://), not {}://",
            url.scheme()
        )
        .into());
    }
    if url.host().is_none() {
        return Err(format!("url '{s}' has no host").into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("url must not carry credentials; use auth (or headers) instead".into());
    }
    if url.fragment().is_some() {
        return Err("url must not have a #fragment".into());
    }
    Ok(url)
}

/// An endpoint as stored: settings plus identity, state and running counters.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its settings.
    pub settings: EndpointSettings,
    /// When it was created.
    pub created_at: UnixMs,
    /// When its settings last changed.
    pub updated_at: UnixMs,
    /// When it was disabled, if it is.
    pub disabled_at: Option<UnixMs>,
    /// Why, if it is disabled.
    pub disabled_reason: Option<DisableReason>,
    /// Running counters behind the stats route.
    pub counters: EndpointCounters,
}

/// Counters kept in the same transaction as each outcome, so stats never count rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointCounters {
    /// Deliveries that succeeded.
    pub succeeded: u64,
    /// Deliveries that failed for good.
    pub failed: u64,
    /// Deliveries still pending.
    pub pending: u64,
    /// Deliveries failed for good in a row since the last success.
    pub consecutive_failures: u64,
    /// The last finished attempt: when, `succeeded`/`failed`, and the response code.
    pub last_delivery: Option<(UnixMs, String, Option<u16>)>,
}

/// A validated endpoint to create, with its secret.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its settings.
    pub settings: EndpointSettings,
    /// The signing secret.
    pub secret: String,
}

/// A change to an endpoint's settings, applied inside the write so two changes never race.
pub type EndpointPatch = Box<dyn FnOnce(&mut EndpointSettings) -> Result<(), Invalid> + Send>;
