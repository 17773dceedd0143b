//! Configuration: flags > `HOOKD_*` environment > `hookd.toml` > defaults. This is the only
//! module that reads the environment. [`Config::validate`] runs once, at start.

use crate::model::Invalid;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::telemetry::OtlpSettings;

/// How hard each commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: a committed write survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a crash of hookd, may lose the last commits on power loss.
    Normal,
}

/// Every setting of a running hookd, with its default in [`Config::default`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// The SQLite file.
    pub db: PathBuf,
    /// The operator token; when `None`, one is generated on first start and stored hashed.
    pub admin_token: Option<String>,
    /// Let endpoints point at loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// Accept `http://` endpoint URLs.
    pub allow_http: bool,
    /// Commit durability.
    pub durability: Durability,
    /// Largest request body the API reads, in bytes.
    pub max_body_bytes: usize,
    /// API connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Serve the API over HTTPS with this PEM certificate chain (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM certificates trusted for deliveries besides the built-in roots (an internal CA).
    pub ca_file: Option<PathBuf>,
    /// Every delivery goes through this HTTP proxy (CONNECT for `https://`).
    pub proxy: Option<ProxySetting>,
    /// The key file endpoint credentials are sealed with (default: beside a SQLite file;
    /// required on PostgreSQL for endpoint credentials, the same file for every process).
    pub credentials_key_file: Option<PathBuf>,
    /// How long the API waits for a request's head, and for the next request on an idle
    /// keep-alive connection, before closing the connection.
    pub header_read_timeout: Duration,
    /// How long a request's body may take to arrive, once its head has; slower is `408`.
    pub body_read_timeout: Duration,
    /// Deliveries in flight at once, over all endpoints.
    pub max_in_flight: usize,
    /// Deliveries in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// How often the dispatcher looks for due work when nothing woke it.
    pub poll_interval: Duration,
    /// How long shutdown waits for in-flight attempts.
    pub shutdown_grace: Duration,
    /// How long a claim holds a delivery beyond its timeout before another claim may take it.
    pub lease_margin: Duration,
    /// How long succeeded deliveries (with their attempts and events) are kept.
    pub retention: Duration,
    /// How long failed deliveries are kept (longer: they are what an operator replays).
    pub failed_retention: Duration,
    /// How often housekeeping (retention, expired secrets) runs.
    pub housekeeping_interval: Duration,
    /// Calls per second one incoming webhook accepts (429 beyond).
    pub incoming_rate_limit: u32,
    /// The SMTP server email digests go through; email delivery is refused without it.
    pub smtp: Option<SmtpConfig>,
    /// Delays before each retry of a failed email send.
    pub email_retry_schedule: Vec<Duration>,
    /// Where traces are exported (OTLP over HTTP); `None`: no spans are made.
    pub otlp: Option<OtlpSettings>,
    /// The busiest endpoints, and the tenants with the deepest queues, that get series of
    /// their own in `/metrics` (the rest are summed as `other`).
    pub metrics_top: usize,
}

/// How TLS is used to reach the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a local relay).
    None,
    /// STARTTLS on a plain connection (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[smtp]` in `hookd.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// How TLS is used.
    pub tls: SmtpTls,
    /// The sender address.
    pub from: String,
    /// User name, when the server wants one.
    pub username: Option<String>,
    /// Password, with `username`.
    pub password: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            db: PathBuf::from("hookd.db"),
            admin_token: None,
            allow_private_targets: false,
            allow_http: false,
            durability: Durability::Full,
            max_body_bytes: 1024 * 1024,
            max_connections: 10_000,
            tls_cert: None,
            ca_file: None,
            proxy: None,
            credentials_key_file: None,
            tls_key: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_in_flight: 512,
            max_in_flight_per_endpoint: 128,
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            lease_margin: Duration::from_secs(30),
            retention: Duration::from_secs(30 * 86_400),
            failed_retention: Duration::from_secs(90 * 86_400),
            housekeeping_interval: Duration::from_secs(60),
            incoming_rate_limit: 100,
            smtp: None,
            email_retry_schedule: crate::model::endpoint::DEFAULT_RETRY_SCHEDULE.to_vec(),
            otlp: None,
            metrics_top: crate::metrics::DEFAULT_TOP,
        }
    }
}

/// How a setting is named to the user: its flag, when it has one, and its key in the config
/// file the settings were read with, if one was.
fn setting_name(key: &str, file: Option<&Path>) -> String {
    let in_file = |key: &str| match file {
        Some(path) => format!("{key} in {}", path.display()),
        None => key.to_owned(),
    };
    match key {
        "listen"
        | "db"
        | "admin_token"
        | "durability"
        | "tls_cert"
        | "tls_key"
        | "ca_file"
        | "proxy"
        | "credentials_key_file"
        | "otlp_endpoint" => {
            format!("--{} ({})", key.replace('_', "-"), in_file(key))
        }
        other => in_file(other),
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path} (named by {named_by})")]
    Read {
        /// The file.
        path: PathBuf,
        /// What asked for it: `--config`, `HOOKD_CONFIG`, or the default `./hookd.toml`.
        named_by: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for hookd.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {}: {message}", setting_name(key, file.as_deref()))]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        message: String,
        /// The config file the settings were read with, if one was.
        file: Option<PathBuf>,
    },
}

/// `hookd serve` flags; each also reads its `HOOKD_*` variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT or a host name that resolves [default: 127.0.0.1:8080].
    #[arg(long, env = "HOOKD_LISTEN", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,
    /// SQLite database file, or a postgres://user@host:port/db URL [default: ./hookd.db].
    #[arg(long, env = "HOOKD_DB")]
    pub db: Option<PathBuf>,
    /// Operator token (generated and printed once on first start when unset).
    #[arg(long, env = "HOOKD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Let endpoints point at loopback, private and link-local addresses.
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: bool,
    /// Accept plain http:// endpoint URLs.
    #[arg(long, env = "HOOKD_ALLOW_HTTP")]
    pub allow_http: bool,
    /// Commit durability [default: full].
    #[arg(long, env = "HOOKD_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// Serve the API over HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "HOOKD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "HOOKD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM certificates trusted for deliveries besides the built-in roots (an internal CA).
    #[arg(long, env = "HOOKD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Send every delivery through this HTTP proxy, e.g. http://127.0.0.1:3128 (CONNECT for
    /// https:// endpoints).
    #[arg(long, env = "HOOKD_PROXY")]
    pub proxy: Option<String>,
    /// The key file endpoint credentials (auth, client certificates) are sealed with
    /// [default: <db>.credentials-key beside a SQLite file; made when missing].
    #[arg(long, env = "HOOKD_CREDENTIALS_KEY_FILE")]
    pub credentials_key_file: Option<PathBuf>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g. http://127.0.0.1:4318
    /// (/v1/traces is added) [default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then
    /// OTEL_EXPORTER_OTLP_ENDPOINT; none set: no traces].
    #[arg(long, env = "HOOKD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Config file [default: ./hookd.toml when present].
    #[arg(long, env = "HOOKD_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The keys `hookd.toml` may hold (same meaning as the flags; durations as `"10s"`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    db: Option<PathBuf>,
    admin_token: Option<String>,
    allow_private_targets: Option<bool>,
    allow_http: Option<bool>,
    durability: Option<Durability>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    proxy: Option<String>,
    credentials_key_file: Option<PathBuf>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_in_flight: Option<usize>,
    max_in_flight_per_endpoint: Option<usize>,
    poll_interval: Option<String>,
    shutdown_grace: Option<String>,
    lease_margin: Option<String>,
    retention: Option<String>,
    failed_retention: Option<String>,
    housekeeping_interval: Option<String>,
    incoming_rate_limit: Option<u32>,
    smtp: Option<SmtpConfig>,
    email_retry_schedule: Option<Vec<String>>,
    otlp_endpoint: Option<String>,
    metrics_top: Option<usize>,
}

/// The standard OpenTelemetry variables hookd reads (`OTEL_*`), as they were set.
#[derive(Debug, Clone, Default)]
pub struct OtelEnv {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the traces URL, used as it is.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (`/v1/traces` is added).
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`: `k=v,k2=v2`.
    pub headers: Option<String>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `k=v,k2=v2`, values percent-encoded.
    pub resource_attributes: Option<String>,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans waiting for export at most.
    pub max_queue_size: Option<String>,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`: no traces, whatever is set.
    pub disabled: bool,
}

impl OtelEnv {
    /// Reads the variables from the environment (an empty one counts as unset).
    pub fn read() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            traces_endpoint: var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            endpoint: var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            headers: var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .or_else(|| var("OTEL_EXPORTER_OTLP_HEADERS")),
            service_name: var("OTEL_SERVICE_NAME"),
            resource_attributes: var("OTEL_RESOURCE_ATTRIBUTES"),
            max_queue_size: var("OTEL_BSP_MAX_QUEUE_SIZE"),
            disabled: var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim() == "true")
                || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none"),
        }
    }
}

/// Spans waiting for export at most, unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise (the
/// specification's default).
const OTLP_QUEUE: usize = 2048;

/// Where traces go: `--otlp-endpoint` (or `otlp_endpoint` in the file) as a base URL, else the
/// standard variables; `None` when none is set or the variables turn the SDK off.
pub fn otlp_settings(
    setting: Option<String>,
    env: &OtelEnv,
) -> Result<Option<OtlpSettings>, Invalid> {
    let (given, add_path) = match (&setting, &env.traces_endpoint, &env.endpoint) {
        _ if env.disabled && setting.is_none() => return Ok(None),
        (Some(base), _, _) => (base.trim(), true),
        (None, Some(url), _) => (url.trim(), false),
        (None, None, Some(base)) => (base.trim(), true),
        (None, None, None) => return Ok(None),
    };
    let refused = || {
        Invalid(format!(
            "'{given}' must be an http:// or https:// URL with a host, like http://127.0.0.1:4318"
        ))
    };
    let url = url::Url::parse(given).map_err(|_| refused())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(refused());
    }
    let base = given.trim_end_matches('/');
    let endpoint = match add_path && !base.ends_with("/v1/traces") {
        true => format!("{base}/v1/traces"),
        false => given.to_owned(),
    };
    let pairs = |name: &str, text: Option<&String>| -> Result<Vec<(String, String)>, Invalid> {
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        text.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|pair| {
                // The pair is not echoed: a header's value may be a collector's API key.
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Invalid(format!(
                        "{name} holds a member without '=': use key=value,key2=value2"
                    ))
                })?;
                let decode = |t: &str| {
                    percent_encoding::percent_decode_str(t.trim())
                        .decode_utf8_lossy()
                        .into_owned()
                };
                Ok((decode(k), decode(v)))
            })
            .collect()
    };
    let queue = match &env.max_queue_size {
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| {
                Invalid(format!(
                    "OTEL_BSP_MAX_QUEUE_SIZE is '{n}': use a number from 1 to 1000000"
                ))
            })?,
        None => OTLP_QUEUE,
    };
    let resource = pairs("OTEL_RESOURCE_ATTRIBUTES", env.resource_attributes.as_ref())?;
    let service_name = env
        .service_name
        .clone()
        .or_else(|| {
            resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "hookd".to_owned());
    Ok(Some(OtlpSettings {
        endpoint,
        headers: pairs("OTEL_EXPORTER_OTLP_HEADERS", env.headers.as_ref())?,
        service_name,
        resource,
        queue,
    }))
}

/// An address to listen on: `IP:PORT`, or `host:port` with a host name that resolves
/// (`localhost:8081`; an IPv4 address is preferred when the name has both).
pub fn parse_listen(text: &str) -> Result<SocketAddr, Invalid> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let refused = || {
        Invalid(format!(
            "'{text}' is not an address to listen on: use IP:PORT, like 127.0.0.1:8081"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(refused)?;
    let port: u16 = port.parse().map_err(|_| refused())?;
    let resolved: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|_| refused())?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or(resolved.first())
        .copied()
        .ok_or_else(refused)
}

/// `--proxy`: the HTTP proxy every delivery goes through, and the credentials it asks for.
#[derive(Debug, Clone)]
pub struct ProxySetting {
    /// `http://host:port`, without credentials.
    pub uri: http::Uri,
    /// `Proxy-Authorization: Basic …`, from the URL's `user:password@` (marked sensitive).
    pub authorization: Option<http::HeaderValue>,
}

impl std::fmt::Display for ProxySetting {
    /// The proxy's address; never its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)?;
        if self.authorization.is_some() {
            write!(f, " (with credentials)")?;
        }
        Ok(())
    }
}

impl ProxySetting {
    /// Reads `http://[user:password@]host:port` (user and password percent-encoded).
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let shape = "must be an http:// proxy URL with a host, like http://127.0.0.1:3128 or http://user:password@proxy:3128";
        let url = url::Url::parse(text).map_err(|_| format!("the proxy URL {shape}"))?;
        if url.scheme() != "http" || url.host_str().is_none() {
            return Err(format!("the proxy URL {shape}").into());
        }
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8_lossy()
                .into_owned()
        };
        let authorization = match (url.username(), url.password()) {
            ("", None) => None,
            (user, password) => {
                use base64::Engine;
                let pair = format!("{}:{}", decode(user), decode(password.unwrap_or("")));
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut header = http::HeaderValue::try_from(format!("Basic {encoded}"))
                    .map_err(|e| format!("the proxy's credentials: {e}"))?;
                header.set_sensitive(true);
                Some(header)
            }
        };
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(80);
        let uri = format!("http://{host}:{port}")
            .parse()
            .map_err(|_| format!("the proxy URL {shape}"))?;
        Ok(Self { uri, authorization })
    }
}

impl Config {
    /// Builds the configuration from flags, environment and the config file.
    pub fn load(args: ServeArgs) -> Result<Self, ConfigError> {
        let (path, named_by) = match &args.config {
            // Clap folds the flag and the variable into one value.
            Some(path) if std::env::var_os("HOOKD_CONFIG").is_some_and(|v| v == *path) => {
                (Some(path.clone()), "HOOKD_CONFIG")
            }
            Some(path) => (Some(path.clone()), "--config"),
            None if Path::new("hookd.toml").exists() => (
                Some(PathBuf::from("hookd.toml")),
                "the default ./hookd.toml",
            ),
            None => (None, ""),
        };
        let file = match &path {
            Some(p) => read_file(p, named_by)?,
            None => FileConfig::default(),
        };
        Self::build(args, file, &OtelEnv::read()).map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => ConfigError::Invalid {
                key,
                message,
                file: path,
            },
            other => other,
        })
    }

    /// The configuration from flags and the file's keys, checked.
    fn build(args: ServeArgs, file: FileConfig, otel: &OtelEnv) -> Result<Self, ConfigError> {
        let d = Config::default();
        let duration = |key: &'static str, v: Option<String>, default: Duration| match v {
            Some(s) => crate::model::duration::parse(&s).map_err(|message| ConfigError::Invalid {
                key,
                message: message.to_string(),
                file: None,
            }),
            None => Ok(default),
        };
        let config =
            Config {
                listen: match (args.listen, file.listen) {
                    (Some(flag), _) => flag,
                    (None, Some(text)) => {
                        parse_listen(&text).map_err(|message| ConfigError::Invalid {
                            key: "listen",
                            message: message.to_string(),
                            file: None,
                        })?
                    }
                    (None, None) => d.listen,
                },
                db: args.db.or(file.db).unwrap_or(d.db),
                admin_token: args.admin_token.or(file.admin_token),
                allow_private_targets: args.allow_private_targets
                    || file
                        .allow_private_targets
                        .unwrap_or(d.allow_private_targets),
                allow_http: args.allow_http || file.allow_http.unwrap_or(d.allow_http),
                durability: args.durability.or(file.durability).unwrap_or(d.durability),
                max_body_bytes: file.max_body_bytes.unwrap_or(d.max_body_bytes),
                max_connections: file.max_connections.unwrap_or(d.max_connections),
                tls_cert: args.tls_cert.or(file.tls_cert),
                tls_key: args.tls_key.or(file.tls_key),
                ca_file: args.ca_file.or(file.ca_file),
                proxy: match args.proxy.or(file.proxy) {
                    Some(text) => Some(ProxySetting::parse(&text).map_err(|message| {
                        ConfigError::Invalid {
                            key: "proxy",
                            message: message.to_string(),
                            file: None,
                        }
                    })?),
                    None => None,
                },
                credentials_key_file: args.credentials_key_file.or(file.credentials_key_file),
                header_read_timeout: duration(
                    "header_read_timeout",
                    file.header_read_timeout,
                    d.header_read_timeout,
                )?,
                body_read_timeout: duration(
                    "body_read_timeout",
                    file.body_read_timeout,
                    d.body_read_timeout,
                )?,
                max_in_flight: file.max_in_flight.unwrap_or(d.max_in_flight),
                max_in_flight_per_endpoint: file
                    .max_in_flight_per_endpoint
                    .unwrap_or(d.max_in_flight_per_endpoint),
                poll_interval: duration("poll_interval", file.poll_interval, d.poll_interval)?,
                shutdown_grace: duration("shutdown_grace", file.shutdown_grace, d.shutdown_grace)?,
                lease_margin: duration("lease_margin", file.lease_margin, d.lease_margin)?,
                retention: duration("retention", file.retention, d.retention)?,
                failed_retention: duration(
                    "failed_retention",
                    file.failed_retention,
                    d.failed_retention,
                )?,
                housekeeping_interval: duration(
                    "housekeeping_interval",
                    file.housekeeping_interval,
                    d.housekeeping_interval,
                )?,
                incoming_rate_limit: file.incoming_rate_limit.unwrap_or(d.incoming_rate_limit),
                smtp: file.smtp,
                email_retry_schedule: match file.email_retry_schedule {
                    Some(list) => list
                        .iter()
                        .map(|s| crate::model::duration::parse(s))
                        .collect::<Result<_, _>>()
                        .map_err(|message| ConfigError::Invalid {
                            key: "email_retry_schedule",
                            message: message.to_string(),
                            file: None,
                        })?,
                    None => d.email_retry_schedule,
                },
                metrics_top: file.metrics_top.unwrap_or(d.metrics_top),
                otlp: otlp_settings(args.otlp_endpoint.or(file.otlp_endpoint), otel).map_err(
                    |message| ConfigError::Invalid {
                        key: "otlp_endpoint",
                        message: message.to_string(),
                        file: None,
                    },
                )?,
            };
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
                file: None,
            })
        };
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return invalid("admin_token", "must be at least 16 characters");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.max_body_bytes) {
            return invalid("max_body_bytes", "must be between 1024 and 67108864");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("tls_cert", "needs tls_key, and tls_key needs tls_cert");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return invalid("max_connections", "must be between 1 and 1000000");
        }
        if self.header_read_timeout < Duration::from_millis(100) {
            return invalid("header_read_timeout", "must be at least 100ms");
        }
        if self.body_read_timeout < Duration::from_millis(100) {
            return invalid("body_read_timeout", "must be at least 100ms");
        }
        if !(1..=10_000).contains(&self.max_in_flight) {
            return invalid("max_in_flight", "must be between 1 and 10000");
        }
        if self.max_in_flight_per_endpoint == 0
            || self.max_in_flight_per_endpoint > self.max_in_flight
        {
            return invalid(
                "max_in_flight_per_endpoint",
                "must be between 1 and max_in_flight",
            );
        }
        if self.retention < Duration::from_secs(1) || self.failed_retention < self.retention {
            return invalid(
                "retention",
                "must be at least 1s, and failed_retention at least retention",
            );
        }
        if self.housekeeping_interval < Duration::from_millis(10) {
            return invalid("housekeeping_interval", "must be at least 10ms");
        }
        if self.incoming_rate_limit == 0 {
            return invalid("incoming_rate_limit", "must be at least 1");
        }
        if self.poll_interval < Duration::from_millis(10) {
            return invalid("poll_interval", "must be at least 10ms");
        }
        if self.metrics_top > 1000 {
            return invalid("metrics_top", "must be between 0 and 1000");
        }
        Ok(())
    }
}

fn read_file(path: &Path, named_by: &'static str) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        named_by,
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests;
