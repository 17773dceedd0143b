//! End-to-end benchmark: the real hookd binary in its own process (temp database,
//! `synchronous=FULL`), with the load generators and fast local receivers (hyper, answer 204,
//! record arrival times and `webhook-id`s) in this one, so every figure is hookd's own. Runs
//! the scenarios of the performance issues; prints a table row and one JSON line per scenario.
//! (`big-log` alone measures the store in-process, through its own interface.)
//!
//! ```text
//! cargo bench --bench e2e                                # the default scenarios, full size
//! cargo bench --bench e2e -- --quick                     # a tenth of the size
//! cargo bench --bench e2e -- latency fanout-100          # chosen scenarios
//! cargo bench --bench e2e -- backlog big-log             # the heavy ones (not in the default set)
//! cargo bench --bench e2e -- redis-stream nats-jetstream amqp-rabbitmq kafka-tansu   # to a broker started here
//! cargo bench --bench e2e -- throughput-1 --target http://127.0.0.1:9000/hook
//! cargo bench --bench e2e -- processes --db postgres://postgres@127.0.0.1:5432/postgres [--processes 2]
//! ```
//! `HOOKD_BENCH_BIN=path` runs that build of hookd instead of this tree's, to compare two
//! builds in one sitting with the same load.
//! With `--target`, deliveries go to that external receiver instead of the built-in one and
//! only publish-side figures are meaningful.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd::config::Durability;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

const OPERATOR: &str = "bench-operator-token-000";
type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Options {
    scale: f64,
    target: Option<String>,
    /// `--db postgres://…`: the PostgreSQL server the `processes` scenario creates its
    /// databases on (one per process count).
    db: Option<String>,
    /// `--processes N`: the `processes` scenario runs this count alone (1, 2 and 3 otherwise).
    processes: Option<usize>,
}

/// A running hookd (the real binary, in its own process) with a tenant admin key.
struct Hookd {
    base: String,
    key: String,
    client: HttpClient,
    child: Running,
    _dir: tempfile::TempDir,
}

impl Hookd {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("bench.db");
        Self::start_on(dir, &db).await
    }

    /// A hookd serving `db` (a file or a PostgreSQL URL), with a new tenant and key.
    async fn start_on(dir: tempfile::TempDir, db: &std::path::Path) -> Self {
        let mut hookd = Self::attach(dir, db, String::new()).await;
        let tenant = hookd
            .call("/v1/tenants", OPERATOR, json!({"name": "bench"}))
            .await;
        let path = format!("/v1/tenants/{}/keys", tenant["id"].as_str().expect("id"));
        let key = hookd
            .call(&path, OPERATOR, json!({"name": "bench", "role": "admin"}))
            .await;
        hookd.key = key["key"].as_str().expect("key").to_owned();
        hookd
    }

    /// Another hookd process on `db`, using a tenant key made through the first one.
    async fn attach(dir: tempfile::TempDir, db: &std::path::Path, key: String) -> Self {
        let config = dir.path().join("hookd.toml");
        std::fs::write(&config, "max_body_bytes = 8388608\n").expect("config");
        let (child, base, _) = spawn_hookd(db, Some(&config)).await;
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(128)
            .build_http();
        Self {
            base,
            key,
            client,
            child,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Statements this hookd has run on its database (`hookd_db_statements_total`); 0 for a
    /// build that does not count them.
    async fn statements(&self) -> u64 {
        let req = hyper::Request::get(format!("{}/metrics", self.base))
            .header("authorization", format!("Bearer {OPERATOR}"))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let res = self.client.request(req).await.expect("metrics");
        let body = res.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("hookd_db_statements_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn call(&self, path: &str, token: &str, body: Value) -> Value {
        self.request("POST", path, token, Some(body)).await
    }

    async fn request(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .expect("request");
        let res = self.client.request(req).await.expect("hookd answers");
        let status = res.status();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    async fn endpoint(&self, url: &str, extra: Value) -> String {
        let mut body = json!({"name": "bench", "url": url, "events": ["*"]});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        let ep = self.call("/v1/endpoints", &self.key, body).await;
        ep["id"].as_str().expect("id").to_owned()
    }

    /// Publishes `n` events in batches of `batch` from `clients` concurrent clients; returns
    /// the accepted events/s.
    async fn publish(self: &Arc<Self>, n: usize, batch: usize, clients: usize) -> f64 {
        let started = Instant::now();
        let per_client = n.div_ceil(clients);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let hookd = self.clone();
            tasks.push(tokio::spawn(async move {
                let payload = json!({"title": "bench event", "body": "x".repeat(200), "client": c});
                let mut sent = 0;
                while sent < per_client {
                    let size = batch.min(per_client - sent);
                    let events: Vec<Value> = (0..size)
                        .map(|_| json!({"type": "bench.event", "data": payload}))
                        .collect();
                    hookd
                        .call("/v1/events/batch", &hookd.key, json!({"events": events}))
                        .await;
                    sent += size;
                }
            }));
        }
        for t in tasks {
            t.await.expect("client");
        }
        (per_client * clients) as f64 / started.elapsed().as_secs_f64()
    }

    async fn stop(self) {
        let child = self.child;
        let _ = tokio::task::spawn_blocking(move || child.stop()).await;
    }
}

/// A local receiver: answers 204 (or never, when `dead`), counts arrivals, and remembers
/// when each `webhook-id` first arrived.
#[derive(Clone)]
struct Receiver {
    url: String,
    count: Arc<AtomicU64>,
    first_seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Receiver {
    async fn start(dead: bool, track: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let count = Arc::new(AtomicU64::new(0));
        let first_seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (c, f) = (count.clone(), first_seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (count, first_seen) = (c.clone(), f.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (count, first_seen) = (count.clone(), first_seen.clone());
                            async move {
                                let at = Instant::now();
                                if track {
                                    let id = req
                                        .headers()
                                        .get("webhook-id")
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("")
                                        .to_owned();
                                    first_seen.lock().expect("map").entry(id).or_insert(at);
                                }
                                req.into_body().collect().await?;
                                if dead {
                                    std::future::pending::<()>().await;
                                }
                                count.fetch_add(1, Ordering::Relaxed);
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(204)
                                        .body(Full::new(Bytes::new()))
                                        .expect("response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            count,
            first_seen,
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    async fn wait_for(&self, n: u64, limit: Duration) -> Instant {
        let started = Instant::now();
        while self.count() < n {
            assert!(
                started.elapsed() < limit,
                "only {} of {n} deliveries arrived in {limit:?}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Instant::now()
    }
}

/// The statements `all` ran since `before`, read once the count stops moving for a second
/// (the last results are recorded after the receiver has them; housekeeping and heartbeats
/// add a few more, which count too).
async fn settled_statements(all: &[Arc<Hookd>], before: u64) -> f64 {
    let mut last = u64::MAX;
    for _ in 0..30 {
        let mut now = 0;
        for h in all {
            now += h.statements().await;
        }
        if now == last {
            break;
        }
        last = now;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    last.saturating_sub(before) as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, row: &[(&str, String)], json_line: Value) {
    let cells: Vec<String> = row.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("| {name} | {} |", cells.join(" | "));
    println!("{json_line}");
}

fn scaled(n: usize, o: &Options) -> usize {
    ((n as f64 * o.scale) as usize).max(100)
}

async fn throughput_1(o: &Options) {
    let events = scaled(200_000, o);
    let hookd = Arc::new(Hookd::start().await);
    let receiver = Receiver::start(false, false).await;
    let url = o.target.clone().unwrap_or(receiver.url.clone());
    hookd.endpoint(&url, json!({})).await;
    let statements_before = hookd.statements().await;
    let started = Instant::now();
    let accepted = hookd.publish(events, 100, 4).await;
    let delivered = if o.target.is_none() {
        let done = receiver
            .wait_for(events as u64, Duration::from_secs(900))
            .await;
        events as f64 / done.duration_since(started).as_secs_f64()
    } else {
        f64::NAN
    };
    // Statements per delivery, once the last results are recorded (they follow the receipt).
    let per_delivery =
        settled_statements(std::slice::from_ref(&hookd), statements_before).await / events as f64;
    report(
        "throughput-1",
        &[
            ("events", events.to_string()),
            ("accepted/s", format!("{accepted:.0}")),
            ("deliveries/s", format!("{delivered:.0}")),
            ("statements/delivery", format!("{per_delivery:.2}")),
        ],
        json!({"scenario": "throughput-1", "events": events, "acceptedPerSec": accepted.round(), "deliveriesPerSec": delivered.round(), "statementsPerDelivery": per_delivery}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A broker (from Debian's packages) on a free loopback port with a temp dir for its data,
/// killed with what it started (RabbitMQ's script starts Erlang) when dropped.
struct Broker {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Starts `program`, its command set up by `setup` from its port and data dir, and waits
    /// until it listens.
    async fn start(
        program: &str,
        setup: impl FnOnce(&mut std::process::Command, u16, &std::path::Path),
    ) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let mut command = std::process::Command::new(program);
        setup(&mut command, port, dir.path());
        let child = command
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (apt-get install it): {e}"));
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deliveries to one broker destination on this machine, publishing as `throughput-1` does,
/// until `stored` (the broker's own count) reaches every event.
async fn broker_throughput<F, Fut>(
    name: &str,
    o: &Options,
    url: String,
    destination: Value,
    stored: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let events = scaled(100_000, o);
    let hookd = Arc::new(Hookd::start().await);
    hookd
        .endpoint(&url, json!({"destination": destination}))
        .await;
    let started = Instant::now();
    let accepted = hookd.publish(events, 100, 4).await;
    while stored().await < events as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the broker did not get every message"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = events as f64 / started.elapsed().as_secs_f64();
    report(
        name,
        &[
            ("events", events.to_string()),
            ("accepted/s", format!("{accepted:.0}")),
            ("deliveries/s", format!("{delivered:.0}")),
        ],
        json!({"scenario": name, "events": events, "acceptedPerSec": accepted.round(), "deliveriesPerSec": delivered.round()}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// Deliveries to a Redis stream (`XADD`, acknowledged; `redis-server` without persistence).
async fn redis_stream(o: &Options) {
    let redis = Broker::start("redis-server", |c, port, dir| {
        c.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir);
    })
    .await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let conn = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let stored = || {
        let mut conn = conn.clone();
        async move {
            redis::cmd("XLEN")
                .arg("bench")
                .query_async(&mut conn)
                .await
                .expect("XLEN")
        }
    };
    let destination = json!({"type": "redis", "stream": "bench"});
    broker_throughput("redis-stream", o, url, destination, stored).await;
}

/// Deliveries to a NATS JetStream subject (acknowledged by a file-backed stream).
async fn nats_jetstream(o: &Options) {
    let nats = Broker::start("nats-server", |c, port, dir| {
        c.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir);
    })
    .await;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let client = async_nats::connect(url.as_str()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "bench".into(),
            subjects: vec!["bench.events".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let stored = || {
        let mut stream = stream.clone();
        async move { stream.info().await.expect("info").state.messages }
    };
    let destination = json!({"type": "nats", "subject": "bench.events"});
    broker_throughput("nats-jetstream", o, url, destination, stored).await;
}

/// Deliveries to a Kafka topic of one partition (`acks=all`) on the Kafka-compatible broker
/// the tests use (tansu on SQLite, `tools/test-kafka`, which `.ci/run` builds).
async fn kafka_tansu(o: &Options) {
    use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
    let program = std::env::var("HOOKD_TEST_KAFKA").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/test-kafka/release/hookd-test-kafka"
        )
        .to_owned()
    });
    let kafka = Broker::start(&program, |c, port, dir| {
        c.arg(format!("127.0.0.1:{port}")).arg(dir);
    })
    .await;
    let address = format!("127.0.0.1:{}", kafka.port);
    let client = rskafka::client::ClientBuilder::new(vec![address.clone()])
        .build()
        .await
        .expect("connect");
    client
        .controller_client()
        .expect("controller")
        .create_topic("bench", 1, 1, 5_000)
        .await
        .expect("topic");
    let partition = Arc::new(
        client
            .partition_client("bench", 0, UnknownTopicHandling::Retry)
            .await
            .expect("partition"),
    );
    let stored = || {
        let partition = partition.clone();
        async move {
            let next = partition
                .get_offset(OffsetAt::Latest)
                .await
                .expect("offset");
            u64::try_from(next).unwrap_or(0)
        }
    };
    let destination = json!({"type": "kafka", "topic": "bench"});
    broker_throughput(
        "kafka-tansu",
        o,
        format!("kafka://{address}"),
        destination,
        stored,
    )
    .await;
}

/// Deliveries to a RabbitMQ exchange (persistent messages, publisher confirms) bound to one
/// durable queue; RabbitMQ is started as the tests start it (its own temp dir, its own node).
async fn amqp_rabbitmq(o: &Options) {
    let rabbit = Broker::start("/usr/lib/rabbitmq/bin/rabbitmq-server", |c, port, dir| {
        std::fs::write(dir.join("rabbitmq.conf"), "").expect("conf");
        std::fs::write(dir.join("enabled_plugins"), "[].").expect("plugins");
        c.env("HOME", dir)
            .env("RABBITMQ_NODENAME", format!("hookdbench{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"));
    })
    .await;
    let port = rabbit.port;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}");
    let connection = loop {
        match lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let channel = connection.create_channel().await.expect("channel");
    let durable = lapin::options::ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            "bench".into(),
            lapin::ExchangeKind::Fanout,
            durable,
            Default::default(),
        )
        .await
        .expect("exchange");
    let queue = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare("bench".into(), queue, Default::default())
        .await
        .expect("queue");
    channel
        .queue_bind(
            "bench".into(),
            "bench".into(),
            "".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("bind");
    let stored = || {
        let channel = channel.clone();
        async move {
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let q = channel
                .queue_declare("bench".into(), passive, Default::default())
                .await
                .expect("queue");
            u64::from(q.message_count())
        }
    };
    let destination = json!({"type": "amqp", "exchange": "bench"});
    let target = format!("amqp://127.0.0.1:{port}");
    broker_throughput("amqp-rabbitmq", o, target, destination, stored).await;
}

/// Throughput with 1, 2 and 3 hookd processes on one PostgreSQL database (`--db`): each count
/// gets a new database; the clients publish through every process in turn.
async fn processes(o: &Options) {
    let Some(server) = &o.db else {
        eprintln!("processes: needs --db postgres://… (a server where it may create databases)");
        return;
    };
    let (admin, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to the --db server");
    tokio::spawn(connection);
    let events = scaled(100_000, o);
    let counts = o.processes.map_or(1..=3, |n| n..=n);
    for count in counts {
        let name = format!("hookd_bench_{}_{count}", std::process::id());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the bench database");
        let url = match server.rsplit_once('/') {
            Some((host, _)) => format!("{host}/{name}"),
            None => panic!("--db must name a database: postgres://user@host:port/db"),
        };
        let db = std::path::PathBuf::from(&url);
        let first = Arc::new(Hookd::start_on(tempfile::tempdir().expect("dir"), &db).await);
        let mut all = vec![first.clone()];
        for _ in 1..count {
            let dir = tempfile::tempdir().expect("dir");
            all.push(Arc::new(Hookd::attach(dir, &db, first.key.clone()).await));
        }
        let receiver = Receiver::start(false, false).await;
        first.endpoint(&receiver.url, json!({})).await;
        let mut statements_before = 0;
        for h in &all {
            statements_before += h.statements().await;
        }
        let started = Instant::now();
        let per_process = events / count;
        let publishing: Vec<_> = all
            .iter()
            .map(|h| {
                let h = h.clone();
                tokio::spawn(async move { h.publish(per_process, 100, 4).await })
            })
            .collect();
        let mut accepted = 0.0;
        for p in publishing {
            accepted += p.await.expect("publish");
        }
        let total = (per_process * count) as u64;
        let done = receiver.wait_for(total, Duration::from_secs(900)).await;
        let delivered = total as f64 / done.duration_since(started).as_secs_f64();
        let per_delivery = settled_statements(&all, statements_before).await / total as f64;
        report(
            &format!(
                "postgres, {count} process{}",
                if count == 1 { "" } else { "es" }
            ),
            &[
                ("events", total.to_string()),
                ("accepted/s", format!("{accepted:.0}")),
                ("deliveries/s", format!("{delivered:.0}")),
                ("statements/delivery", format!("{per_delivery:.2}")),
            ],
            json!({"scenario": "processes", "processes": count, "events": total, "acceptedPerSec": accepted.round(), "deliveriesPerSec": delivered.round(), "statementsPerDelivery": per_delivery}),
        );
        drop(first);
        for h in all {
            Arc::try_unwrap(h).ok().expect("sole owner").stop().await;
        }
        admin
            .batch_execute(&format!("DROP DATABASE {name}"))
            .await
            .expect("drop the bench database");
    }
}

async fn fanout_100(o: &Options) {
    fanout(o, "fanout-100", json!({})).await;
}

/// `fanout-100` with a payload filter on every endpoint (one that every event passes, so the
/// same deliveries are made): what evaluating filters at fan-out costs.
async fn fanout_filtered(o: &Options) {
    let filter = json!({"filter": [{"path": "data.client", "op": "gte", "value": 0},
                                   {"path": "data.title", "op": "prefix", "value": "bench"}]});
    fanout(o, "fanout-filtered", filter).await;
}

/// 100 endpoints created with `settings`, every event delivered to each.
async fn fanout(o: &Options, name: &str, settings: Value) {
    let events = scaled(20_000, o);
    let hookd = Arc::new(Hookd::start().await);
    let receiver = Receiver::start(false, false).await;
    for _ in 0..100 {
        hookd.endpoint(&receiver.url, settings.clone()).await;
    }
    let started = Instant::now();
    let accepted = hookd.publish(events, 100, 4).await;
    let total = events as u64 * 100;
    let done = receiver.wait_for(total, Duration::from_secs(1800)).await;
    let delivered = total as f64 / done.duration_since(started).as_secs_f64();
    report(
        name,
        &[
            ("events", events.to_string()),
            ("accepted/s", format!("{accepted:.0}")),
            ("deliveries/s", format!("{delivered:.0}")),
        ],
        json!({"scenario": name, "events": events, "deliveries": total, "acceptedPerSec": accepted.round(), "deliveriesPerSec": delivered.round()}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// Single-event publish: `CONNECTIONS` keep-alive clients each send one event per request for
/// a while; accepted/s counts the answers, delivered/s the arrivals until the last one.
async fn ingest_single(o: &Options) {
    const CONNECTIONS: usize = 32;
    let seconds = (10.0 * o.scale.max(0.3)).max(3.0);
    let hookd = Arc::new(Hookd::start().await);
    let receiver = Receiver::start(false, false).await;
    hookd.endpoint(&receiver.url, json!({})).await;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (hookd, latencies) = (hookd.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                hookd
                    .call(
                        "/v1/events",
                        &hookd.key,
                        json!({"type": "bench.single", "data": {"client": c}}),
                    )
                    .await;
                mine.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies.lock().expect("lat").extend(mine);
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.expect("client");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().expect("lat").clone();
    lat.sort_by(f64::total_cmp);
    let rate = lat.len() as f64 / elapsed;
    let done = receiver
        .wait_for(lat.len() as u64, Duration::from_secs(600))
        .await;
    let delivered = lat.len() as f64 / done.duration_since(started).as_secs_f64();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    report(
        "ingest-single",
        &[
            ("connections", CONNECTIONS.to_string()),
            ("events", lat.len().to_string()),
            ("accepted/s", format!("{rate:.0}")),
            ("delivered/s", format!("{delivered:.0}")),
            ("p50 ms", format!("{p50:.2}")),
            ("p99 ms", format!("{p99:.2}")),
        ],
        json!({"scenario": "ingest-single", "connections": CONNECTIONS, "events": lat.len(),
               "acceptedPerSec": rate.round(), "deliveredPerSec": delivered.round(),
               "p50Ms": p50, "p99Ms": p99}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

async fn latency(o: &Options) {
    let seconds = (10.0 * o.scale.max(0.3)).max(3.0);
    let rate = 1000.0;
    let hookd = Arc::new(Hookd::start().await);
    let receiver = Receiver::start(false, true).await;
    hookd.endpoint(&receiver.url, json!({})).await;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = (rate * seconds) as usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..total {
        let at = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let (hookd, sent) = (hookd.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let published = hookd
                .call(
                    "/v1/events",
                    &hookd.key,
                    json!({"type": "bench.latency", "data": {"i": i}}),
                )
                .await;
            sent.lock()
                .expect("sent")
                .insert(published["id"].as_str().expect("id").to_owned(), t);
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    receiver
        .wait_for(total as u64, Duration::from_secs(120))
        .await;
    let sent = sent.lock().expect("sent").clone();
    let seen = receiver.first_seen.lock().expect("seen").clone();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(id, t)| {
            seen.get(id)
                .map(|a| a.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    report(
        "latency",
        &[
            ("events", total.to_string()),
            ("p50 ms", format!("{p50:.2}")),
            ("p99 ms", format!("{p99:.2}")),
            ("max ms", format!("{max:.2}")),
        ],
        json!({"scenario": "latency", "ratePerSec": rate, "events": total, "p50Ms": p50, "p99Ms": p99, "maxMs": max}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// The nine live endpoints' deliveries/s, with or without a tenth that never answers.
async fn nine_live(events: usize, with_dead: bool) -> f64 {
    let hookd = Arc::new(Hookd::start().await);
    let live = Receiver::start(false, false).await;
    for _ in 0..9 {
        hookd.endpoint(&live.url, json!({})).await;
    }
    if with_dead {
        let dead = Receiver::start(true, false).await;
        hookd.endpoint(&dead.url, json!({"timeoutMs": 5000})).await;
    }
    let started = Instant::now();
    hookd.publish(events, 100, 4).await;
    let total = events as u64 * 9;
    let done = live.wait_for(total, Duration::from_secs(900)).await;
    let rate = total as f64 / done.duration_since(started).as_secs_f64();
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
    rate
}

async fn one_dead_among_ten(o: &Options) {
    let events = scaled(10_000, o);
    let without = nine_live(events, false).await;
    let with = nine_live(events, true).await;
    let ratio = with / without;
    report(
        "one-dead-among-ten",
        &[
            ("events", events.to_string()),
            ("nine alone/s", format!("{without:.0}")),
            ("nine + dead/s", format!("{with:.0}")),
            ("ratio", format!("{ratio:.2}")),
        ],
        json!({"scenario": "one-dead-among-ten", "events": events, "withoutDeadPerSec": without.round(), "withDeadPerSec": with.round(), "ratio": ratio}),
    );
}

/// A memory figure (`VmRSS:`, `VmHWM:`) of this process, or of `pid`, from `/proc`, in KiB.
fn proc_kib(pid: Option<u32>, field: &str) -> u64 {
    let path = pid.map_or_else(
        || "/proc/self/status".to_owned(),
        |p| format!("/proc/{p}/status"),
    );
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn backlog(o: &Options) {
    let events = scaled(1_000_000, o);
    let hookd = Arc::new(Hookd::start().await);
    let receiver = Receiver::start(false, false).await;
    let ep = hookd
        .endpoint(&receiver.url, json!({"isActive": false}))
        .await;
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    hookd.publish(events, 1000, 4).await;
    hookd
        .request(
            "POST",
            &format!("/v1/endpoints/{ep}/enable"),
            &hookd.key,
            None,
        )
        .await;
    let before = proc_kib(Some(hookd.pid()), "VmRSS:");
    let started = Instant::now();
    // Recover creates the backlog: one pending delivery per event published while paused.
    let recovered = hookd
        .call(
            &format!("/v1/endpoints/{ep}/recover"),
            &hookd.key,
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(recovered["recovered"].as_u64(), Some(events as u64));
    let done = receiver
        .wait_for(events as u64, Duration::from_secs(3600))
        .await;
    let drain = events as f64 / done.duration_since(started).as_secs_f64();
    let peak = proc_kib(Some(hookd.pid()), "VmHWM:");
    report(
        "backlog",
        &[
            ("pending", events.to_string()),
            ("drain/s", format!("{drain:.0}")),
            ("RSS before MiB", (before / 1024).to_string()),
            ("peak RSS MiB", (peak / 1024).to_string()),
        ],
        json!({"scenario": "backlog", "pending": events, "drainPerSec": drain.round(), "rssBeforeMiB": before / 1024, "peakRssMiB": peak / 1024,
               "note": "RSS of the hookd process alone"}),
    );
    Arc::try_unwrap(hookd)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

/// Publish and claim + ack costs on one store, measured through the store's own interface.
async fn store_costs(store: &hookd::store::Store, tenant: hookd::model::TenantId) -> (f64, f64) {
    let events = || -> Vec<hookd::model::publish::NewEvent> {
        (0..100)
            .map(|i| hookd::model::publish::NewEvent {
                name: hookd::model::EventName::parse("bench.log").expect("name"),
                data: format!("{{\"i\":{i}}}"),
                idempotency_key: None,
                channels: Vec::new(),
                trace: None,
            })
            .collect()
    };
    let rounds = 30;
    let started = Instant::now();
    for _ in 0..rounds {
        hookd::service::publish::publish(store, tenant, events())
            .await
            .expect("publish");
    }
    let publish_ms = started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    let started = Instant::now();
    for _ in 0..rounds {
        let request = hookd::model::claim::ClaimRequest {
            now: hookd::model::now_ms(),
            limit: 100,
            per_endpoint: 100,
            unlisted_slots: 100,
            busy: Vec::new(),
            lease_margin_ms: 30_000,
        };
        let claims = store.claim(request).await.expect("claim");
        let done: Vec<_> = claims
            .into_iter()
            .map(|claim| {
                let outcome = hookd::model::AttemptOutcome {
                    at: hookd::model::now_ms(),
                    response_code: Some(204),
                    latency_ms: 1,
                    error: None,
                    error_message: None,
                    response_body: None,
                    retry_after_ms: None,
                };
                (claim, outcome)
            })
            .collect();
        hookd::service::record::record(store, done, hookd::delivery::after_attempt)
            .await
            .expect("ack");
    }
    let claim_ms = started.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    (publish_ms, claim_ms)
}

async fn big_log(o: &Options) {
    let rows = scaled(10_000_000, o);
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("big.db");
    let (store, handle) = hookd::store::Store::open(&db, Durability::Full).expect("open");
    let tenant = store.create_tenant("bench".into()).await.expect("tenant");
    let settings = hookd::model::EndpointSettings {
        name: "bench".into(),
        url: url::Url::parse("http://127.0.0.1:9/h").expect("url"),
        destination: Default::default(),
        events: vec![hookd::model::EventPattern::All],
        signature_scheme: hookd::model::SignatureScheme::Standard,
        signature_header_name: None,
        format: hookd::model::Format::Json,
        headers: Default::default(),
        retry_schedule: vec![Duration::from_secs(60)],
        disable_after: 0,
        timeout_ms: 10_000,
        rate_limit: None,
        ordering: hookd::model::Ordering::None,
        is_active: true,
        filter: None,
        channels: None,
        auth: None,
        client_certificate: None,
        url_sealed: None,
    };
    let new = hookd::model::endpoint::NewEndpoint {
        settings,
        secret: hookd::signing::generate_secret(),
    };
    let endpoint = store
        .create_endpoint(tenant.id, new)
        .await
        .expect("endpoint");
    let empty = store_costs(&store, tenant.id).await;

    // Fill the log beside the running store: one event, `rows` succeeded deliveries.
    let filled = Instant::now();
    fill_log(&db, tenant.id.0, endpoint.id.0, rows);
    let fill_secs = filled.elapsed().as_secs_f64();
    let full = store_costs(&store, tenant.id).await;
    let (publish_ratio, claim_ratio) = (full.0 / empty.0, full.1 / empty.1);
    report(
        "big-log",
        &[
            ("rows", rows.to_string()),
            (
                "publish ms/100 empty→full",
                format!("{:.2}→{:.2} (x{publish_ratio:.2})", empty.0, full.0),
            ),
            (
                "claim+ack ms/100 empty→full",
                format!("{:.2}→{:.2} (x{claim_ratio:.2})", empty.1, full.1),
            ),
        ],
        json!({"scenario": "big-log", "rows": rows, "fillSecs": fill_secs,
               "publishMsPer100": [empty.0, full.0], "claimAckMsPer100": [empty.1, full.1],
               "publishRatio": publish_ratio, "claimRatio": claim_ratio}),
    );
    drop(store);
    handle.close();
}

/// Writes one event and `rows` succeeded deliveries of it straight into the file (beside a
/// running store or before one starts).
fn fill_log(db: &std::path::Path, tenant: i64, endpoint: i64, rows: usize) {
    let mut conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy");
    let now = hookd::model::now_ms();
    conn.execute(
        "INSERT INTO events (tenant_id, type, data, deliveries, created_at) VALUES (?1, 'bench.old', '{}', 0, ?2)",
        rusqlite::params![tenant, now],
    )
    .expect("event");
    let event = conn.last_insert_rowid();
    let mut left = rows;
    while left > 0 {
        let n = left.min(200_000);
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare("INSERT INTO deliveries (event_id, endpoint_id, status, attempts, created_at) VALUES (?1, ?2, 1, 1, ?3)")
                .expect("prepare");
            for _ in 0..n {
                insert
                    .execute(rusqlite::params![event, endpoint, now])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        left -= n;
    }
}

/// The real binary: time from spawn to `/health` answering 200, and its resident memory after
/// a second of idling, on an empty file and on one with a million deliveries.
async fn start(o: &Options) {
    let rows = scaled(1_000_000, o);
    for (label, filled) in [("empty", 0), ("1M rows", rows)] {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("start.db");
        if filled > 0 {
            let (store, handle) = hookd::store::Store::open(&db, Durability::Full).expect("open");
            let tenant = store.create_tenant("bench".into()).await.expect("tenant");
            let url = url::Url::parse("http://127.0.0.1:9/h").expect("url");
            let settings = hookd::model::EndpointSettings::new(
                "bench".into(),
                url,
                vec![hookd::model::EventPattern::All],
            );
            let new = hookd::model::endpoint::NewEndpoint {
                settings,
                secret: hookd::signing::generate_secret(),
            };
            let endpoint = store
                .create_endpoint(tenant.id, new)
                .await
                .expect("endpoint");
            drop(store);
            handle.close();
            fill_log(&db, tenant.id.0, endpoint.id.0, filled);
        }
        let (child, _, to_health_ms) = spawn_hookd(&db, None).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_kib = proc_kib(Some(child.0.id()), "VmRSS:");
        child.stop();
        let size_mb = std::fs::metadata(hookd_binary()).map_or(0.0, |m| m.len() as f64 / 1e6);
        report(
            "start",
            &[
                ("binary MB", format!("{size_mb:.1}")),
                ("file", label.to_owned()),
                ("to /health ms", format!("{to_health_ms:.1}")),
                ("idle RSS MiB", format!("{:.1}", rss_kib as f64 / 1024.0)),
            ],
            json!({"scenario": "start", "binaryMB": size_mb, "file": label, "rows": filled,
                   "toHealthMs": to_health_ms, "idleRssKiB": rss_kib}),
        );
    }
}

/// The hookd binary the bench runs: this tree's, or `HOOKD_BENCH_BIN` to compare another build.
fn hookd_binary() -> std::ffi::OsString {
    std::env::var_os("HOOKD_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_hookd").into())
}

/// A hookd child process: stopped with SIGTERM by [`Running::stop`], killed if the bench
/// panics first.
struct Running(std::process::Child);

impl Running {
    /// Stops hookd with SIGTERM and waits for it to exit.
    fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The real binary serving `db` on a free port: the child, its base URL, and the time from
/// spawn to `/health` answering 200.
async fn spawn_hookd(
    db: &std::path::Path,
    config: Option<&std::path::Path>,
) -> (Running, String, f64) {
    let port = free_port();
    let started = Instant::now();
    let binary = hookd_binary();
    let mut command = std::process::Command::new(binary);
    command
        .args(["serve", "--admin-token", OPERATOR, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(db)
        .args(["--allow-http", "--allow-private-targets"]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let child = command
        .env("HOOKD_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn hookd");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let base = format!("http://127.0.0.1:{port}");
    loop {
        if let Ok((200, _)) = get(&client, &format!("{base}/health"), "").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (
        Running(child),
        base,
        started.elapsed().as_secs_f64() * 1000.0,
    )
}

/// A GET with a bearer token: the status and the body as JSON (null when not JSON).
async fn get(client: &HttpClient, url: &str, token: &str) -> Result<(u16, Value), String> {
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let res = client.request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null),
    ))
}

/// Log paging at a million rows: the real binary, one endpoint with `rows` deliveries (half
/// failed), `rows` events of two types, an incoming hook with `rows` requests and a schedule
/// with `rows` runs. Each list is read at its first, middle and last page of 100, with and
/// without its filter; the figure is the slowest page's median of five reads.
async fn paging(o: &Options) {
    let rows = scaled(1_000_000, o) as i64;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("paging.db");
    let (child, base, _) = spawn_hookd(&db, None).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let post = |path: &str, token: &str, body: Value| {
        let (client, url, token) = (client.clone(), format!("{base}{path}"), token.to_owned());
        async move {
            let req = hyper::Request::post(url)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request");
            let res = client.request(req).await.expect("hookd answers");
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            serde_json::from_slice::<Value>(&bytes).expect("JSON")
        }
    };
    let tenant = post("/v1/tenants", OPERATOR, json!({"name": "bench"})).await;
    let keys = format!("/v1/tenants/{}/keys", tenant["id"].as_str().expect("id"));
    let key = post(&keys, OPERATOR, json!({"name": "bench", "role": "admin"})).await;
    let key = key["key"].as_str().expect("key").to_owned();
    let endpoint = post(
        "/v1/endpoints",
        &key,
        json!({"name": "bench", "url": "http://127.0.0.1:9/h", "events": ["*"], "isActive": false}),
    )
    .await;
    let hook = post(
        "/v1/incoming",
        &key,
        json!({"name": "bench", "action": {"type": "store"}}),
    )
    .await;
    let schedule = post(
        "/v1/schedules",
        &key,
        json!({"scheduleType": "custom_cron", "cronExpression": "0 0 1 1 *",
               "timezone": "UTC", "format": "json", "deliveryMethod": "webhook",
               "endpointId": endpoint["id"]}),
    )
    .await;
    let id = |v: &Value| -> i64 {
        let text = v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}"));
        text[text.find('_').expect("prefix") + 1..]
            .parse()
            .expect("number")
    };
    let filled = Instant::now();
    fill_lists(
        &db,
        id(&tenant),
        (id(&endpoint), id(&hook), id(&schedule)),
        rows,
    );
    let fill_secs = filled.elapsed().as_secs_f64();
    let text_id = |v: &Value| v["id"].as_str().unwrap_or("").to_owned();
    let (ep, hook, schedule) = (text_id(&endpoint), text_id(&hook), text_id(&schedule));
    let lists = [
        (
            "endpoint log",
            format!("/v1/endpoints/{ep}/deliveries?"),
            rows,
        ),
        (
            "endpoint log, failed",
            format!("/v1/endpoints/{ep}/deliveries?status=failed&"),
            rows / 2,
        ),
        ("events", "/v1/events?".to_owned(), rows),
        (
            "events of a type",
            "/v1/events?type=bench.a&".to_owned(),
            rows / 2,
        ),
        (
            "incoming requests",
            format!("/v1/incoming/{hook}/requests?"),
            rows,
        ),
        (
            "schedule runs",
            format!("/v1/schedules/{schedule}/runs?"),
            rows,
        ),
    ];
    let mut cells = vec![("rows per list", rows.to_string())];
    let mut figures = serde_json::Map::new();
    for (label, path, total) in lists {
        let last = (total - 1) / 100;
        let mut slowest = 0f64;
        for page in [0, last / 2, last] {
            let url = format!("{base}{path}page={page}&size=100");
            let mut times = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let (status, body) = get(&client, &url, &key).await.expect("page");
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(status, 200, "{label}: {body}");
                assert_eq!(body["totalElements"], total, "{label}: exact total");
                assert!(
                    !body["content"].as_array().expect("content").is_empty(),
                    "{label} page {page}"
                );
            }
            times.sort_by(f64::total_cmp);
            slowest = slowest.max(times[2]);
        }
        cells.push((label, format!("{slowest:.1} ms")));
        figures.insert(label.to_owned(), json!(slowest));
    }
    child.stop();
    report(
        "paging",
        &cells,
        json!({"scenario": "paging", "rows": rows, "fillSecs": fill_secs, "slowestPageMs": figures}),
    );
}

/// Writes `rows` rows into each long list beside a running hookd: events of two types (the
/// tenant's only ones), one delivery per event to `endpoint` (odd ids failed), requests to
/// `hook`, runs of `schedule`.
fn fill_lists(
    db: &std::path::Path,
    tenant: i64,
    (endpoint, hook, schedule): (i64, i64, i64),
    rows: i64,
) {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy");
    let now = hookd::model::now_ms();
    // ?1 rows, ?2 the owner, ?3 now; `n` counts 1 to ?1.
    let fill = |sql: &str, owner: i64| {
        let numbers =
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?1)";
        conn.execute(
            &format!("{numbers} {sql}"),
            rusqlite::params![rows, owner, now],
        )
        .expect("fill");
    };
    fill(
        "INSERT INTO events (tenant_id, type, data, deliveries, created_at)
         SELECT ?2, CASE x % 2 WHEN 0 THEN 'bench.a' ELSE 'bench.b' END, '{}', 1, ?3 FROM n",
        tenant,
    );
    // One delivery per event (the tenant's only events), even event ids succeeded, odd failed;
    // the endpoint's counters say so too, as hookd would have kept them.
    conn.execute(
        "INSERT INTO deliveries (event_id, endpoint_id, status, attempts, created_at)
         SELECT id, ?2, 1 + id % 2, 1, created_at FROM events WHERE tenant_id = ?1 ORDER BY id",
        rusqlite::params![tenant, endpoint],
    )
    .expect("deliveries");
    conn.execute(
        "UPDATE endpoints SET succeeded = ?2 - ?2 / 2, failed = ?2 / 2 WHERE id = ?1",
        rusqlite::params![endpoint, rows],
    )
    .expect("counters");
    // hookd's writer counts added events and deliveries per block of ids (the other two lists
    // count themselves by trigger); builds from before that ignore the table.
    if let Err(e) = conn.execute_batch(&format!(
        "INSERT INTO list_blocks SELECT 2, tenant_id, type, id >> 16, count(*) FROM events
             WHERE tenant_id = {tenant} GROUP BY 2, 3, 4;
         INSERT INTO list_blocks SELECT 1, endpoint_id, CAST(status AS TEXT), id >> 16, count(*)
             FROM deliveries WHERE endpoint_id = {endpoint} GROUP BY 2, 3, 4;"
    )) {
        println!("(no block counts written: {e})");
    }
    fill(
        "INSERT INTO incoming_requests (hook_id, received_at, headers, status)
         SELECT ?2, ?3, '{}', 'accepted' FROM n",
        hook,
    );
    fill(
        "INSERT INTO schedule_runs
             (schedule_id, slot, status, started_at, period_start, period_end, event_count)
         SELECT ?2, x, 'delivered', ?3, ?3, ?3, 0 FROM n",
        schedule,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut options = Options {
        scale: 1.0,
        target: None,
        db: None,
        processes: None,
    };
    let mut chosen = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => options.scale = 0.1,
            "--scale" => {
                options.scale = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--scale takes a number")
            }
            "--target" => options.target = Some(it.next().expect("--target takes a URL")),
            "--db" => options.db = Some(it.next().expect("--db takes a postgres:// URL")),
            "--processes" => {
                options.processes = it.next().and_then(|v| v.parse().ok());
                assert!(options.processes.is_some(), "--processes takes a count");
            }
            name => chosen.push(name.to_owned()),
        }
    }
    if chosen.is_empty() {
        chosen = [
            "throughput-1",
            "fanout-100",
            "ingest-single",
            "latency",
            "one-dead-among-ten",
        ]
        .map(String::from)
        .to_vec();
    }
    println!(
        "hookd e2e bench: scale {}, durability full, {} cores",
        options.scale,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for name in chosen {
        match name.as_str() {
            "throughput-1" => throughput_1(&options).await,
            "fanout-100" => fanout_100(&options).await,
            "fanout-filtered" => fanout_filtered(&options).await,
            "ingest-single" => ingest_single(&options).await,
            "latency" => latency(&options).await,
            "one-dead-among-ten" => one_dead_among_ten(&options).await,
            "backlog" => backlog(&options).await,
            "big-log" => big_log(&options).await,
            "start" => start(&options).await,
            "paging" => paging(&options).await,
            "processes" => processes(&options).await,
            "redis-stream" => redis_stream(&options).await,
            "nats-jetstream" => nats_jetstream(&options).await,
            "amqp-rabbitmq" => amqp_rabbitmq(&options).await,
            "kafka-tansu" => kafka_tansu(&options).await,
            other => eprintln!("unknown scenario {other}"),
        }
    }
}
