//! Broker destinations against real brokers started here: from Debian's packages, Redis
//! Streams (`redis-server`), NATS JetStream (`nats-server`) and AMQP (`rabbitmq-server`); from
//! crates.io, Kafka (tansu's Kafka-compatible broker, `tools/test-kafka`, which `.ci/run`
//! builds). Each scenario runs against each broker. Under `CI=true` a missing broker fails the
//! test; elsewhere the test is skipped with a note.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::process::{kill_mid_burst, signal, spawn, tenant_key, wait_health};
use crate::support::{
    ADMIN, Api, Received, Server, python_with, test_db, verify_standard, wait_listening, wait_until,
};

/// A broker the tests start, deliver to and read back.
pub(crate) trait TestBroker: Sized {
    /// The destination's `type`.
    const KIND: &'static str;
    /// What the broker's refusal says (the error reply the refusal test provokes).
    const REFUSAL: &'static str;
    /// Starts one (with `password` for a user `hookd` when given); `None` when skipped.
    async fn start(password: Option<&str>) -> Option<Self>;
    /// Its address, as an endpoint's `url`.
    fn url(&self) -> String;
    /// The endpoint's `destination` for messages to `name`.
    fn destination(&self, name: &str) -> Value;
    /// Sets up what a consumer sets up before messages to `name` can be stored (a JetStream
    /// stream, a Kafka topic); nothing for Redis.
    async fn prepare(&self, name: &str);
    /// Makes the broker refuse messages to `name` (Redis: a key of another type; NATS and
    /// Kafka: nothing, as before `prepare`, no stream holds the subject and no topic exists).
    async fn refuse(&self, name: &str);
    /// The messages stored for `name`, oldest first: where each is (entry id, stream sequence)
    /// and its headers and body as a received request.
    async fn entries(&self, name: &str) -> Vec<(String, Received)>;
    /// Its process.
    fn process(&mut self) -> &mut BrokerProcess;

    /// Kills it (`SIGKILL`).
    fn kill(&mut self) {
        self.process().kill();
    }

    /// Starts it again on the same port (Redis comes back empty; NATS keeps its streams).
    async fn restart(&mut self) {
        let process = self.process();
        process.kill();
        process.run().await;
    }

    /// Waits until `name` holds `n` messages; returns them.
    async fn wait_entries(&self, name: &str, n: usize) -> Vec<(String, Received)> {
        wait_until(
            &format!("{n} messages for {name}"),
            Duration::from_secs(30),
            || async move { self.entries(name).await.len() >= n },
        )
        .await;
        self.entries(name).await
    }
}

/// Where `binary` (from Debian's package of that name) is: on the `PATH`, or where Debian
/// puts it (`nats-server` is in `/usr/sbin`, which a user's `PATH` may lack). Under `CI=true`
/// its absence fails the test.
fn find(binary: &str) -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(binary))
        .find(|path| path.is_file());
    if found.is_none() {
        missing(binary);
    }
    found
}

/// Says that Debian's `package` is not installed: fails the test under `CI=true`, else notes
/// that it is skipped.
fn missing(package: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{package} is not installed (Debian's {package} package; .ci/run installs it)"
    );
    eprintln!("skipped: {package} is not installed (apt-get install {package})");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A received message made of named fields or headers and a body.
fn received(headers: HashMap<String, String>, body: Bytes) -> Received {
    Received {
        headers,
        body,
        path: String::new(),
        at: std::time::Instant::now(),
    }
}

/// Sets a broker's command up from its port, data dir and password.
type Setup = fn(&mut Command, u16, &std::path::Path, Option<&str>);

/// A broker's process on a free port, with a temp dir for its data, killed (with what it
/// started: RabbitMQ's script starts Erlang) when dropped.
pub(crate) struct BrokerProcess {
    program: std::path::PathBuf,
    /// Sets its arguments (and environment) from its port, data dir and password.
    setup: Setup,
    port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl BrokerProcess {
    /// Starts `program` (a Debian package of that name); `None` when it is not here.
    async fn start(program: &'static str, setup: Setup, password: Option<&str>) -> Option<Self> {
        Self::start_at(find(program)?, program, setup, password).await
    }

    /// Starts the program at `path`; `None` (having said that `package` is missing) when it
    /// is not there.
    async fn start_at(
        path: std::path::PathBuf,
        package: &str,
        setup: Setup,
        password: Option<&str>,
    ) -> Option<Self> {
        if !path.is_file() {
            missing(package);
            return None;
        }
        let mut process = Self {
            program: path,
            setup,
            port: free_port(),
            password: password.map(str::to_owned),
            dir: tempfile::tempdir().expect("dir"),
            child: None,
        };
        process.run().await;
        Some(process)
    }

    async fn run(&mut self) {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&self.program);
        (self.setup)(
            &mut cmd,
            self.port,
            self.dir.path(),
            self.password.as_deref(),
        );
        let child = cmd
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.program.display()));
        self.child = Some(child);
        wait_listening(&self.program.display().to_string(), self.port).await;
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `redis-server` on 127.0.0.1 with nothing saved to disk. With a password, its user
/// `hookd` has it, and the tests read as the user `tester`.
pub(crate) struct RedisServer(BrokerProcess);

impl RedisServer {
    fn setup(cmd: &mut Command, port: u16, dir: &std::path::Path, password: Option<&str>) {
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir);
        if let Some(password) = password {
            let password = format!(">{password}");
            cmd.args(["--user", "hookd", "on", &password, "~*", "&*", "+@all"])
                .args(["--user", "tester", "on", "nopass", "~*", "&*", "+@all"]);
        }
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let user = if self.0.password.is_some() {
            "tester@"
        } else {
            ""
        };
        redis::Client::open(format!("redis://{user}127.0.0.1:{}", self.0.port))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }
}

impl TestBroker for RedisServer {
    const KIND: &'static str = "redis";
    const REFUSAL: &'static str = "WRONGTYPE";

    async fn start(password: Option<&str>) -> Option<Self> {
        BrokerProcess::start("redis-server", Self::setup, password)
            .await
            .map(Self)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    fn destination(&self, name: &str) -> Value {
        json!({"type": "redis", "stream": name})
    }

    async fn prepare(&self, _: &str) {}

    async fn refuse(&self, name: &str) {
        let _: () = redis::cmd("SET")
            .arg(name)
            .arg("not a stream")
            .query_async(&mut self.connection().await)
            .await
            .expect("SET");
    }

    async fn entries(&self, stream: &str) -> Vec<(String, Received)> {
        let raw: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query_async(&mut self.connection().await)
            .await
            .expect("XRANGE");
        raw.into_iter()
            .map(|(id, flat)| {
                let mut headers = HashMap::new();
                let mut body = Bytes::new();
                for pair in flat.chunks(2) {
                    let name = String::from_utf8_lossy(&pair[0]).into_owned();
                    if name == "body" {
                        body = Bytes::copy_from_slice(&pair[1]);
                    } else {
                        headers.insert(name, String::from_utf8_lossy(&pair[1]).into_owned());
                    }
                }
                (id, received(headers, body))
            })
            .collect()
    }

    fn process(&mut self) -> &mut BrokerProcess {
        &mut self.0
    }
}

/// A `nats-server` with JetStream on 127.0.0.1, its store in the temp dir (kept across a
/// restart). With a password, its user `hookd` has it.
pub(crate) struct NatsServer(BrokerProcess);

impl NatsServer {
    fn setup(cmd: &mut Command, port: u16, dir: &std::path::Path, password: Option<&str>) {
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir);
        if let Some(password) = password {
            cmd.args(["--user", "hookd", "--pass", password]);
        }
    }

    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(password) = &self.0.password {
            options = options.user_and_password("hookd".into(), password.clone());
        }
        let client = options
            .connect(format!("127.0.0.1:{}", self.0.port))
            .await
            .expect("connect to nats");
        async_nats::jetstream::new(client)
    }

    /// The stream that holds `subject` (named after it).
    fn stream_name(subject: &str) -> String {
        subject.replace('.', "_")
    }
}

impl TestBroker for NatsServer {
    const KIND: &'static str = "nats";
    const REFUSAL: &'static str = "no JetStream stream";

    async fn start(password: Option<&str>) -> Option<Self> {
        BrokerProcess::start("nats-server", Self::setup, password)
            .await
            .map(Self)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    fn destination(&self, name: &str) -> Value {
        json!({"type": "nats", "subject": name})
    }

    async fn prepare(&self, subject: &str) {
        self.jetstream()
            .await
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: Self::stream_name(subject),
                subjects: vec![subject.to_owned()],
                ..Default::default()
            })
            .await
            .expect("create the stream");
    }

    async fn refuse(&self, _: &str) {}

    async fn entries(&self, subject: &str) -> Vec<(String, Received)> {
        let js = self.jetstream().await;
        let Ok(mut stream) = js.get_stream(Self::stream_name(subject)).await else {
            return Vec::new();
        };
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut out = Vec::new();
        for sequence in 1..=last {
            let m = stream.get_raw_message(sequence).await.expect("message");
            let headers = m
                .headers
                .iter()
                .map(|(name, values)| (name.to_string(), values[0].to_string()))
                .collect();
            let position = format!("stream {} sequence {sequence}", Self::stream_name(subject));
            out.push((position, received(headers, m.payload)));
        }
        out
    }

    fn process(&mut self) -> &mut BrokerProcess {
        &mut self.0
    }
}

/// A RabbitMQ node (Debian's `rabbitmq-server`) on 127.0.0.1, its data in the temp dir (kept
/// across a restart), named after its port. Its user is `guest`, or `hookd` with a password.
/// The tests read with a queue named after the exchange, bound to it for every key; what they
/// take from it is kept, so reading again sees every message so far.
pub(crate) struct RabbitServer {
    process: BrokerProcess,
    taken: tokio::sync::Mutex<Vec<(String, Received)>>,
}

impl RabbitServer {
    fn setup(cmd: &mut Command, port: u16, dir: &std::path::Path, password: Option<&str>) {
        let config = match password {
            Some(p) => format!("default_user = hookd\ndefault_pass = {p}\n"),
            None => String::new(),
        };
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("rabbitmq.conf");
        std::fs::write(dir.join("enabled_plugins"), "[].").expect("enabled_plugins");
        let distribution = free_port();
        cmd.env("HOME", dir)
            .env("RABBITMQ_NODENAME", format!("hookd{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", distribution.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"));
    }

    async fn channel(&self) -> (lapin::Connection, lapin::Channel) {
        let login = match &self.process.password {
            Some(p) => format!("hookd:{p}"),
            None => "guest:guest".into(),
        };
        let url = format!("amqp://{login}@127.0.0.1:{}", self.process.port);
        let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
            .await
            .expect("connect to rabbitmq");
        let channel = connection.create_channel().await.expect("channel");
        (connection, channel)
    }
}

impl TestBroker for RabbitServer {
    const KIND: &'static str = "amqp";
    const REFUSAL: &'static str = "NOT_FOUND";

    async fn start(password: Option<&str>) -> Option<Self> {
        // `rabbitmq-server` in /usr/sbin runs this as the rabbitmq user; the tests run it
        // themselves, as whoever they are.
        let program = std::path::PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let process =
            BrokerProcess::start_at(program, "rabbitmq-server", Self::setup, password).await?;
        Some(Self {
            process,
            taken: Default::default(),
        })
    }

    fn url(&self) -> String {
        format!("amqp://127.0.0.1:{}", self.process.port)
    }

    fn destination(&self, name: &str) -> Value {
        json!({"type": "amqp", "exchange": name})
    }

    async fn prepare(&self, name: &str) {
        use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
        let (_connection, channel) = self.channel().await;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                name.into(),
                lapin::ExchangeKind::Topic,
                durable,
                Default::default(),
            )
            .await
            .expect("exchange");
        let queue = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(name.into(), queue, Default::default())
            .await
            .expect("queue");
        channel
            .queue_bind(
                name.into(),
                name.into(),
                "#".into(),
                QueueBindOptions::default(),
                Default::default(),
            )
            .await
            .expect("bind");
    }

    async fn refuse(&self, _: &str) {}

    async fn entries(&self, name: &str) -> Vec<(String, Received)> {
        let mut taken = self.taken.lock().await;
        let (_connection, channel) = self.channel().await;
        let take = lapin::options::BasicGetOptions { no_ack: true };
        while let Ok(Some(m)) = channel.basic_get(name.into(), take).await {
            let mut headers: HashMap<String, String> = HashMap::new();
            if let Some(table) = m.delivery.properties.headers() {
                for (key, value) in table.inner() {
                    if let lapin::types::AMQPValue::LongString(v) = value {
                        headers.insert(key.to_string(), v.to_string());
                    }
                }
            }
            let position = format!(
                "confirmed by exchange '{name}' with routing key '{}'",
                m.delivery.routing_key
            );
            let body = Bytes::from(m.delivery.data.clone());
            taken.push((position, received(headers, body)));
        }
        taken.clone()
    }

    fn process(&mut self) -> &mut BrokerProcess {
        &mut self.process
    }
}

/// A Kafka-compatible broker: tansu's, from crates.io, on SQLite storage in the temp dir (kept
/// across a restart), built by `.ci/run` (`tools/test-kafka`). With a password, its user
/// `hookd` has it (SCRAM). Topics have one partition unless a test makes more.
pub(crate) struct KafkaServer(BrokerProcess);

impl KafkaServer {
    /// Where `.ci/run` builds the broker.
    fn program() -> std::path::PathBuf {
        std::env::var_os("HOOKD_TEST_KAFKA")
            .map(Into::into)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/test-kafka/release/hookd-test-kafka")
            })
    }

    fn setup(cmd: &mut Command, port: u16, dir: &std::path::Path, password: Option<&str>) {
        cmd.arg(format!("127.0.0.1:{port}")).arg(dir);
        if let Some(password) = password {
            cmd.args(["hookd", password]);
        }
    }

    async fn client(&self) -> rskafka::client::Client {
        use rskafka::client::{Credentials, SaslConfig};
        let mut builder =
            rskafka::client::ClientBuilder::new(vec![format!("127.0.0.1:{}", self.0.port)])
                .backoff_config(rskafka::BackoffConfig {
                    deadline: Some(Duration::from_secs(5)),
                    ..Default::default()
                });
        if let Some(password) = &self.0.password {
            let login = Credentials::new("hookd".into(), password.clone());
            // hookd logs in with SCRAM-SHA-512 (the destination's default); the reader with
            // SHA-256, so the broker is seen to take both.
            builder = builder.sasl_config(SaslConfig::ScramSha256(login));
        }
        tokio::time::timeout(Duration::from_secs(10), builder.build())
            .await
            .expect("kafka answers within 10s")
            .expect("connect to kafka")
    }

    /// Makes `topic` with `partitions` partitions.
    pub(crate) async fn create_topic(&self, topic: &str, partitions: i32) {
        self.client()
            .await
            .controller_client()
            .expect("controller")
            .create_topic(topic, partitions, 1, 5_000)
            .await
            .expect("create the topic");
    }

    /// Each record of `topic`'s `partition`, oldest first, as (offset, record).
    pub(crate) async fn records(
        &self,
        topic: &str,
        partition: i32,
    ) -> Vec<rskafka::record::RecordAndOffset> {
        use rskafka::client::partition::UnknownTopicHandling;
        let client = self.client().await;
        let Ok(reader) = client
            .partition_client(topic, partition, UnknownTopicHandling::Error)
            .await
        else {
            return Vec::new();
        };
        let mut records = Vec::new();
        loop {
            let offset = records
                .last()
                .map_or(0, |r: &rskafka::record::RecordAndOffset| r.offset + 1);
            let Ok((batch, high_watermark)) = reader.fetch_records(offset, 1..1_000_000, 100).await
            else {
                return records;
            };
            records.extend(batch);
            let next = records.last().map_or(0, |r| r.offset + 1);
            if next >= high_watermark || next == offset {
                return records;
            }
        }
    }
}

impl TestBroker for KafkaServer {
    const KIND: &'static str = "kafka";
    const REFUSAL: &'static str = "no topic";

    async fn start(password: Option<&str>) -> Option<Self> {
        let package = "hookd-test-kafka (tools/test-kafka, which .ci/run builds)";
        BrokerProcess::start_at(Self::program(), package, Self::setup, password)
            .await
            .map(Self)
    }

    fn url(&self) -> String {
        format!("kafka://127.0.0.1:{}", self.0.port)
    }

    fn destination(&self, name: &str) -> Value {
        json!({"type": "kafka", "topic": name, "key": "eventId", "sasl": "scram-sha-512"})
    }

    async fn prepare(&self, name: &str) {
        self.create_topic(name, 1).await;
    }

    async fn refuse(&self, _: &str) {}

    async fn entries(&self, topic: &str) -> Vec<(String, Received)> {
        self.records(topic, 0)
            .await
            .into_iter()
            .map(|r| {
                let headers = r
                    .record
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                let body = Bytes::from(r.record.value.unwrap_or_default());
                let position = format!("topic {topic} partition 0 offset {}", r.offset);
                (position, received(headers, body))
            })
            .collect()
    }

    fn process(&mut self) -> &mut BrokerProcess {
        &mut self.0
    }
}

/// An endpoint to `broker`'s `name`, retrying every second.
fn broker_endpoint<B: TestBroker>(broker: &B, name: &str) -> Value {
    json!({
        "url": broker.url(),
        "destination": broker.destination(name),
        "events": ["*"],
        "retrySchedule": ["1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"],
    })
}

/// The attempts of an event's first delivery.
async fn attempts(api: &Api, event: &str) -> Vec<Value> {
    let (_, e) = api.get(&format!("/v1/events/{event}")).await;
    let Some(dlv) = e["deliveries"][0]["id"].as_str() else {
        return Vec::new();
    };
    let (_, d) = api.get(&format!("/v1/deliveries/{dlv}")).await;
    d["attempts"].as_array().cloned().unwrap_or_default()
}

/// What the Standard Webhooks library (`tests/it/py/verify_standard.py`) says of each
/// message: `{id, verified, error}`.
fn verify_with_library(
    python: &std::path::Path,
    secret: &str,
    messages: &[(String, Received)],
) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/py/verify_standard.py"
    );
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the verifier");
    let mut stdin = child.stdin.take().expect("stdin");
    for (_, m) in messages {
        let line = json!({
            "secret": secret,
            "headers": m.headers,
            "body": String::from_utf8_lossy(&m.body),
        });
        writeln!(stdin, "{line}").expect("write");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("verifier output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a verdict"))
        .collect()
}

/// Waits until an attempt of `event`'s first delivery failed with one of `classes`.
async fn wait_attempt_failed(api: &Api, event: &str, classes: &[&str]) {
    wait_until(
        &format!("an attempt of {event} failing with one of {classes:?}"),
        Duration::from_secs(30),
        || async move {
            attempts(api, event)
                .await
                .iter()
                .any(|a| classes.iter().any(|c| a["error"] == *c))
        },
    )
    .await;
}

async fn every_delivery_is_signed_as_an_http_one_is<B: TestBroker>() {
    let Some(broker) = B::start(Some("s3cret-pass")).await else {
        return;
    };
    broker.prepare("orders.paid").await;
    let server = Server::start().await;
    let t = server.tenant(B::KIND).await;
    let mut body = broker_endpoint(&broker, "orders.paid");
    body["auth"] = json!({"type": "basic", "username": "hookd", "password": "s3cret-pass"});
    body["headers"] = json!({"x-team": "billing"});
    body["events"] = json!(["order.*"]);
    let ep = t.endpoint(body).await;
    assert_eq!(ep["destination"], broker.destination("orders.paid"));
    assert_eq!(ep["url"], broker.url());
    assert_eq!(ep["authConfigured"], true);
    let secret = ep["secret"].as_str().expect("secret");

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(t.publish("order.paid", json!({"n": i})).await["id"].clone());
    }
    // Without `fifo` they may be stored in any order: each is found by its `webhook-id`.
    let entries = broker.wait_entries("orders.paid", 3).await;
    assert_eq!(entries.len(), 3);
    for id in &ids {
        let (position, received) = entries
            .iter()
            .find(|(_, r)| r.header("webhook-id") == id.as_str().expect("id"))
            .expect("the event's message");
        assert!(verify_standard(secret, received), "{received:?}");
        assert_eq!(received.header("content-type"), "application/json");
        assert_eq!(received.header("x-team"), "billing");
        assert!(!received.header("webhook-timestamp").is_empty());
        let event = received.json();
        assert_eq!(event["event"], "order.paid");
        assert_eq!(event["id"], *id);
        // The attempt log names where the message is.
        let delivery = t
            .wait_delivery_status(id.as_str().expect("id"), "succeeded")
            .await;
        assert_eq!(delivery["attempts"][0]["responseBody"], position.as_str());
        assert_eq!(delivery["attempts"][0]["error"], Value::Null);
    }
    let stats = t.stats(ep["id"].as_str().expect("id")).await;
    assert_eq!(stats["succeeded"], 3, "{stats}");
    // A consumer's Standard Webhooks library verifies each message as it would a request.
    if let Some(python) = python_with("standardwebhooks", "the Standard Webhooks library") {
        let verdicts = verify_with_library(&python, secret, &entries);
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        for verdict in &verdicts {
            assert_eq!(verdict["verified"], true, "{verdict}");
        }
    }
    // The synchronous test send reaches the broker too.
    let path = format!("/v1/endpoints/{}/test", ep["id"].as_str().expect("id"));
    let (status, sent) = t.admin.post_empty(&path).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["delivered"], true, "{sent}");
    let after = broker.wait_entries("orders.paid", 4).await;
    let test_event = &after.last().expect("the test message").1;
    assert_eq!(test_event.json()["event"], "webhook.test");

    // A wrong password is an `auth` failure of the attempt.
    let mut wrong = broker_endpoint(&broker, "orders.paid");
    wrong["auth"] = json!({"type": "basic", "username": "hookd", "password": "nope"});
    wrong["events"] = json!(["wrong.*"]);
    t.endpoint(wrong).await;
    let event = t.publish("wrong.password", json!({})).await;
    wait_attempt_failed(&t.admin, event["id"].as_str().expect("id"), &["auth"]).await;
    server.stop().await;
}

#[tokio::test]
async fn a_redis_stream_gets_every_delivery_signed_as_an_http_one_is() {
    every_delivery_is_signed_as_an_http_one_is::<RedisServer>().await;
}

#[tokio::test]
async fn a_nats_subject_gets_every_delivery_signed_as_an_http_one_is() {
    every_delivery_is_signed_as_an_http_one_is::<NatsServer>().await;
}

#[tokio::test]
async fn an_amqp_exchange_gets_every_delivery_signed_as_an_http_one_is() {
    every_delivery_is_signed_as_an_http_one_is::<RabbitServer>().await;
}

#[tokio::test]
async fn a_kafka_topic_gets_every_delivery_signed_as_an_http_one_is() {
    every_delivery_is_signed_as_an_http_one_is::<KafkaServer>().await;
}

async fn a_refusing_or_stopped_broker_gets_retries_until_it_takes_the_message<B: TestBroker>() {
    let Some(mut broker) = B::start(None).await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant(B::KIND).await;
    t.endpoint(broker_endpoint(&broker, "jobs.queued")).await;
    broker.refuse("jobs.queued").await;
    let event = t.publish("job.queued", json!({"k": 1})).await;
    let id = event["id"].as_str().expect("id").to_owned();
    wait_attempt_failed(&t.admin, &id, &["broker_refused"]).await;
    let refused = attempts(&t.admin, &id).await;
    assert!(
        refused[0]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains(B::REFUSAL)),
        "{refused:?}"
    );
    // Down: the attempts cannot connect (or lose the connection they had).
    broker.kill();
    let lost = ["connect", "incomplete", "timeout"];
    wait_attempt_failed(&t.admin, &id, &lost).await;
    // Back: the next retry is stored.
    broker.restart().await;
    broker.prepare("jobs.queued").await;
    let delivery = t.wait_delivery_status(&id, "succeeded").await;
    let entries = broker.wait_entries("jobs.queued", 1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1.header("webhook-id"), id);
    let classes: Vec<&str> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["error"].as_str().unwrap_or("ok"))
        .collect();
    let refused_at = classes.iter().position(|c| *c == "broker_refused");
    let lost_at = classes.iter().position(|c| lost.contains(c));
    assert!(refused_at < lost_at, "{classes:?}");
    assert_eq!(classes.last(), Some(&"ok"), "{classes:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_refusing_or_stopped_redis_gets_retries_until_it_takes_the_message() {
    a_refusing_or_stopped_broker_gets_retries_until_it_takes_the_message::<RedisServer>().await;
}

#[tokio::test]
async fn a_refusing_or_stopped_nats_gets_retries_until_it_takes_the_message() {
    a_refusing_or_stopped_broker_gets_retries_until_it_takes_the_message::<NatsServer>().await;
}

#[tokio::test]
async fn a_refusing_or_stopped_rabbitmq_gets_retries_until_it_takes_the_message() {
    a_refusing_or_stopped_broker_gets_retries_until_it_takes_the_message::<RabbitServer>().await;
}

#[tokio::test]
async fn a_refusing_or_stopped_kafka_gets_retries_until_it_takes_the_message() {
    a_refusing_or_stopped_broker_gets_retries_until_it_takes_the_message::<KafkaServer>().await;
}

async fn a_fifo_endpoint_gets_events_in_publish_order<B: TestBroker>() {
    let Some(broker) = B::start(None).await else {
        return;
    };
    broker.prepare("seq.steps").await;
    let server = Server::start().await;
    let t = server.tenant(B::KIND).await;
    let mut body = broker_endpoint(&broker, "seq.steps");
    body["ordering"] = json!("fifo");
    t.endpoint(body).await;
    let mut published = Vec::new();
    for round in 0..5 {
        let events: Vec<Value> = (0..10)
            .map(|i| json!({"type": "seq.step", "data": {"round": round, "i": i}}))
            .collect();
        let answer = t.publish_batch(events).await;
        for e in answer["events"].as_array().expect("events") {
            published.push(e["id"].as_str().expect("id").to_owned());
        }
    }
    let entries = broker.wait_entries("seq.steps", published.len()).await;
    let streamed: Vec<String> = entries
        .iter()
        .map(|(_, r)| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(streamed, published);
    server.stop().await;
}

#[tokio::test]
async fn a_fifo_redis_endpoint_gets_events_in_publish_order() {
    a_fifo_endpoint_gets_events_in_publish_order::<RedisServer>().await;
}

#[tokio::test]
async fn a_fifo_nats_endpoint_gets_events_in_publish_order() {
    a_fifo_endpoint_gets_events_in_publish_order::<NatsServer>().await;
}

#[tokio::test]
async fn a_fifo_amqp_endpoint_gets_events_in_publish_order() {
    a_fifo_endpoint_gets_events_in_publish_order::<RabbitServer>().await;
}

#[tokio::test]
async fn a_fifo_kafka_endpoint_gets_events_in_publish_order() {
    a_fifo_endpoint_gets_events_in_publish_order::<KafkaServer>().await;
}

async fn killing_hookd_mid_burst_loses_no_message<B: TestBroker>() {
    let Some(broker) = B::start(None).await else {
        return;
    };
    broker.prepare("burst.events").await;
    let dir = tempfile::tempdir().expect("dir");
    let db = test_db(dir.path()).await;
    let mut hookd = spawn(&db, Some(ADMIN));
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let api = op.with_token(&tenant_key(&op).await);
    let mut body = broker_endpoint(&broker, "burst.events");
    body["name"] = json!("r");
    let (status, ep) = api.post("/v1/endpoints", body).await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");

    let accepted = kill_mid_burst(&mut hookd, &api, 2000).await;

    let mut restarted = spawn(&db, Some(ADMIN));
    wait_until(
        "every accepted event stored by the broker after the restart",
        Duration::from_secs(60),
        || {
            let (broker, accepted) = (&broker, &accepted);
            async move {
                let seen: HashSet<String> = broker
                    .entries("burst.events")
                    .await
                    .into_iter()
                    .map(|(_, r)| r.header("webhook-id").to_owned())
                    .collect();
                accepted.iter().all(|id| seen.contains(id))
            }
        },
    )
    .await;
    signal(&restarted.child, "-TERM");
    let _ = tokio::task::spawn_blocking(move || restarted.child.wait()).await;
}

#[tokio::test]
async fn killing_hookd_mid_burst_loses_no_message_to_redis() {
    killing_hookd_mid_burst_loses_no_message::<RedisServer>().await;
}

#[tokio::test]
async fn killing_hookd_mid_burst_loses_no_message_to_nats() {
    killing_hookd_mid_burst_loses_no_message::<NatsServer>().await;
}

#[tokio::test]
async fn killing_hookd_mid_burst_loses_no_message_to_rabbitmq() {
    killing_hookd_mid_burst_loses_no_message::<RabbitServer>().await;
}

#[tokio::test]
async fn killing_hookd_mid_burst_loses_no_message_to_kafka() {
    killing_hookd_mid_burst_loses_no_message::<KafkaServer>().await;
}

/// A Kafka record's key is the field the destination names, and the partition is the one
/// Kafka's own partitioner gives that key: one customer's events stay on one partition, in
/// order. An event without the field has no key (and goes by its id).
#[tokio::test]
async fn kafka_records_are_keyed_and_partitioned_by_a_payload_field() {
    use hookd::model::destination::kafka_partition;
    let Some(broker) = KafkaServer::start(None).await else {
        return;
    };
    broker.create_topic("orders.keyed", 3).await;
    let server = Server::start().await;
    let t = server.tenant("kafka-keys").await;
    let mut body = broker_endpoint(&broker, "orders.keyed");
    body["destination"]["key"] = json!("/data/customer");
    body["ordering"] = json!("fifo");
    t.endpoint(body).await;
    let customers = ["c_ada", "c_bob", "c_cy", "c_dee", "c_eve"];
    let mut published: HashMap<&str, Vec<String>> = HashMap::new();
    let events: Vec<Value> = (0..30)
        .map(|i| json!({"type": "order.paid", "data": {"customer": customers[i % 5], "i": i}}))
        .collect();
    let answer = t.publish_batch(events).await;
    for (i, e) in answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .enumerate()
    {
        let id = e["id"].as_str().expect("id").to_owned();
        published.entry(customers[i % 5]).or_default().push(id);
    }
    let unkeyed = t.publish("order.paid", json!({"i": "none"})).await;
    let unkeyed = unkeyed["id"].as_str().expect("id").to_owned();

    wait_until("31 records", Duration::from_secs(30), || async {
        let mut n = 0;
        for p in 0..3 {
            n += broker.records("orders.keyed", p).await.len();
        }
        n == 31
    })
    .await;
    let mut used = HashSet::new();
    let mut streamed: HashMap<String, Vec<String>> = HashMap::new();
    for partition in 0..3 {
        for r in broker.records("orders.keyed", partition).await {
            let id = String::from_utf8_lossy(&r.record.headers["webhook-id"]).into_owned();
            let body: Value =
                serde_json::from_slice(r.record.value.as_deref().expect("a value")).expect("json");
            let Some(key) = r.record.key.clone() else {
                assert_eq!(id, unkeyed, "only the event without a customer has no key");
                let by_id = kafka_partition(id.as_bytes(), 3);
                assert_eq!(
                    partition as usize, by_id,
                    "an unkeyed record goes by its event id"
                );
                continue;
            };
            let key = String::from_utf8(key).expect("utf-8");
            assert_eq!(key, body["data"]["customer"], "{body}");
            assert_eq!(
                partition as usize,
                kafka_partition(key.as_bytes(), 3),
                "{key}"
            );
            used.insert(partition);
            streamed.entry(key).or_default().push(id);
        }
    }
    for customer in customers {
        assert_eq!(
            streamed[customer], published[customer],
            "{customer}'s events in order"
        );
    }
    assert!(
        used.len() > 1,
        "five keys spread over more than one partition: {used:?}"
    );
    server.stop().await;
}

/// A `redis-server` that speaks TLS alone, with a certificate for `localhost` from `ca`.
fn tls_redis_setup(cmd: &mut Command, port: u16, dir: &std::path::Path, _: Option<&str>) {
    cmd.args(["--bind", "127.0.0.1", "--save", "", "--port", "0"])
        .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
        .arg("--tls-cert-file")
        .arg(dir.join("server.pem"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--dir")
        .arg(dir);
}

#[tokio::test]
async fn a_rediss_destination_checks_the_server_certificate_against_the_trusted_roots() {
    let Some(program) = find("redis-server") else {
        return;
    };
    let ca = crate::tls::new_ca();
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &*ca)
        .expect("server cert");
    let mut redis = BrokerProcess {
        program,
        setup: tls_redis_setup,
        port: free_port(),
        password: None,
        dir: tempfile::tempdir().expect("dir"),
        child: None,
    };
    std::fs::write(redis.dir.path().join("server.pem"), cert.pem()).expect("cert");
    std::fs::write(redis.dir.path().join("server.key"), key.serialize_pem()).expect("key");
    redis.run().await;
    let body = json!({
        "url": format!("rediss://localhost:{}", redis.port),
        "destination": {"type": "redis", "stream": "secure"},
        "events": ["*"],
        "retrySchedule": ["1s"],
    });

    // Trusting the internal CA (`--ca-file`): delivered over TLS.
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca file");
    let trusting = Server::start_with(|c| c.ca_file = Some(ca_file)).await;
    let t = trusting.tenant("tls").await;
    t.endpoint(body.clone()).await;
    let event = t.publish("secure.thing", json!({})).await;
    let delivery = t
        .wait_delivery_status(event["id"].as_str().expect("id"), "succeeded")
        .await;
    let entry = delivery["attempts"][0]["responseBody"]
        .as_str()
        .unwrap_or("");
    assert!(entry.contains('-'), "a stream entry id: {delivery}");
    trusting.stop().await;

    // Without it, the certificate is refused: a `tls` failure.
    let plain = Server::start().await;
    let t = plain.tenant("tls").await;
    t.endpoint(body).await;
    let event = t.publish("secure.thing", json!({})).await;
    wait_attempt_failed(&t.admin, event["id"].as_str().expect("id"), &["tls"]).await;
    plain.stop().await;
}

#[tokio::test]
async fn a_broker_destination_is_checked_when_it_is_set() {
    let server = Server::start().await;
    let t = server.tenant("checks").await;
    let create = |body: Value| {
        let api = t.admin.clone();
        async move {
            let mut full = json!({"name": "b", "events": ["*"]});
            for (k, v) in body.as_object().expect("object") {
                full[k] = v.clone();
            }
            api.post("/v1/endpoints", full).await
        }
    };
    let redis = json!({"type": "redis", "stream": "s"});
    for (body, says) in [
        (
            json!({"url": "https://example.com/hook", "destination": redis}),
            "URL for a 'redis' destination, not https://",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379", "destination": {"type": "kafka", "topic": "t"}}),
            "(or kafka://) URL for a 'kafka' destination",
        ),
        (
            json!({"url": "kafka://127.0.0.1:9092", "destination": {"type": "kafka", "topic": "t", "key": "customer"}}),
            "JSON Pointer",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379"}),
            "for a 'http' destination",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379", "destination": redis, "format": "slack"}),
            "format 'slack' is for HTTP endpoints",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379/0", "destination": redis}),
            "no path or query",
        ),
        (
            json!({"url": "redis://user:pw@127.0.0.1:6379", "destination": redis}),
            "use auth",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379", "destination": redis, "auth": {
                "type": "oauth2", "tokenUrl": "http://127.0.0.1:9/token",
                "clientId": "c", "clientSecret": "s"}}),
            "not oauth2",
        ),
        (
            json!({"url": "redis://127.0.0.1:6379", "destination": {"type": "redis"}}),
            "stream is required",
        ),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    let (_, list) = t.admin.get("/v1/endpoints").await;
    assert_eq!(
        list["content"],
        json!([]),
        "a refused request changes nothing"
    );

    // A PATCH that would leave the url and the destination apart is refused too.
    let ep = t
        .endpoint(json!({"url": "redis://127.0.0.1:6379", "destination": redis, "events": ["*"]}))
        .await;
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().expect("id"));
    let (status, answer) = t
        .admin
        .patch(&path, json!({"destination": {"type": "http"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (_, kept) = t.admin.get(&path).await;
    assert_eq!(kept["destination"], redis);
    let (status, moved) = t
        .admin
        .patch(
            &path,
            json!({"destination": {"type": "http"}, "url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["destination"], json!({"type": "http"}));
    server.stop().await;

    // Unencrypted and private broker addresses follow the target policy.
    let strict = Server::start_with(|c| {
        c.allow_http = false;
        c.allow_private_targets = false;
    })
    .await;
    let t = strict.tenant("strict").await;
    for (url, says) in [
        ("redis://cache.example.com:6379", "not encrypted"),
        ("rediss://127.0.0.1:6380", "private"),
    ] {
        let (status, answer) = t
            .admin
            .post(
                "/v1/endpoints",
                json!({"name": "b", "url": url, "destination": redis, "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{url}: {message}");
    }
    strict.stop().await;
}
