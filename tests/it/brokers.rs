//! Broker destinations against real brokers started here from Debian's packages: Redis
//! Streams (`redis-server`). Under `CI=true` a missing broker fails the test; elsewhere the
//! test is skipped with a note.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::process::{kill_mid_burst, signal, spawn, tenant_key, wait_health};
use crate::support::{
    ADMIN, Api, Received, Server, test_db, verify_standard, wait_listening, wait_until,
};

/// A `redis-server` on 127.0.0.1 with nothing saved to disk, killed when dropped.
pub(crate) struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    password: Option<String>,
    _dir: tempfile::TempDir,
}

/// Whether Debian's `redis-server` is here; under `CI=true` its absence fails the test.
fn have_redis() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is not installed (Debian's redis-server package; .ci/run installs it)"
        );
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl RedisServer {
    /// Starts one, with `password` for its default user when given; `None` when skipped.
    pub(crate) async fn start(password: Option<&str>) -> Option<Self> {
        if !have_redis() {
            return None;
        }
        let mut server = Self {
            port: free_port(),
            child: None,
            password: password.map(str::to_owned),
            _dir: tempfile::tempdir().expect("dir"),
        };
        server.run().await;
        Some(server)
    }

    async fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
        wait_listening("redis-server", self.port).await;
    }

    /// Kills it (`SIGKILL`): its data is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let url = match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => self.url(),
        };
        redis::Client::open(url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis")
    }

    /// Runs one command.
    pub(crate) async fn command(&self, args: &[&str]) -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut self.connection().await)
            .await
            .expect("redis command")
    }

    /// The stream's entries, oldest first: each its id and its fields as a received request
    /// (the fields as headers, `body` as the body).
    pub(crate) async fn entries(&self, stream: &str) -> Vec<(String, Received)> {
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
                let received = Received {
                    headers,
                    body,
                    path: String::new(),
                    at: std::time::Instant::now(),
                };
                (id, received)
            })
            .collect()
    }

    /// Waits until the stream holds `n` entries; returns them.
    pub(crate) async fn wait_entries(&self, stream: &str, n: usize) -> Vec<(String, Received)> {
        wait_until(
            &format!("{n} entries in stream {stream}"),
            Duration::from_secs(30),
            || async move { self.entries(stream).await.len() >= n },
        )
        .await;
        self.entries(stream).await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_endpoint(redis: &RedisServer, stream: &str) -> Value {
    json!({
        "url": redis.url(),
        "destination": {"type": "redis", "stream": stream},
        "events": ["*"],
        "retrySchedule": ["1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"],
    })
}

#[tokio::test]
async fn a_redis_stream_gets_every_delivery_signed_as_an_http_one_is() {
    let Some(redis) = RedisServer::start(Some("s3cret-pass")).await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("redis").await;
    let mut body = redis_endpoint(&redis, "orders");
    body["auth"] = json!({"type": "basic", "username": "default", "password": "s3cret-pass"});
    body["destination"]["maxLen"] = json!(1000);
    body["headers"] = json!({"x-team": "billing"});
    body["events"] = json!(["order.*"]);
    let ep = t.endpoint(body).await;
    assert_eq!(
        ep["destination"],
        json!({"type": "redis", "stream": "orders", "maxLen": 1000})
    );
    assert_eq!(ep["url"], redis.url());
    assert_eq!(ep["authConfigured"], true);
    let secret = ep["secret"].as_str().expect("secret");

    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(t.publish("order.paid", json!({"n": i})).await["id"].clone());
    }
    let entries = redis.wait_entries("orders", 3).await;
    for (id, (entry, received)) in ids.iter().zip(&entries) {
        assert_eq!(received.header("webhook-id"), id.as_str().expect("id"));
        assert!(verify_standard(secret, received), "{received:?}");
        assert_eq!(received.header("content-type"), "application/json");
        assert_eq!(received.header("x-team"), "billing");
        assert!(!received.header("webhook-timestamp").is_empty());
        let event = received.json();
        assert_eq!(event["event"], "order.paid");
        assert_eq!(event["id"], *id);
        // The attempt log names the entry the message became.
        let delivery = t
            .wait_delivery_status(id.as_str().expect("id"), "succeeded")
            .await;
        assert_eq!(delivery["attempts"][0]["responseBody"], entry.as_str());
        assert_eq!(delivery["attempts"][0]["error"], Value::Null);
        assert_eq!(delivery["request"]["method"], "XADD");
    }
    let stats = t.stats(ep["id"].as_str().expect("id")).await;
    assert_eq!(stats["succeeded"], 3, "{stats}");

    // A wrong password is an `auth` failure of the attempt, with Redis's reason.
    let mut wrong = redis_endpoint(&redis, "orders");
    wrong["auth"] = json!({"type": "basic", "username": "default", "password": "nope"});
    wrong["events"] = json!(["wrong.*"]);
    t.endpoint(wrong).await;
    let event = t.publish("wrong.password", json!({})).await;
    let id = event["id"].as_str().expect("id");
    wait_until("an auth failure", Duration::from_secs(20), || {
        let api = t.admin.clone();
        async move {
            let (_, e) = api.get(&format!("/v1/events/{id}")).await;
            let Some(dlv) = e["deliveries"][0]["id"].as_str() else {
                return false;
            };
            let (_, d) = api.get(&format!("/v1/deliveries/{dlv}")).await;
            d["attempts"][0]["error"] == "auth"
        }
    })
    .await;
    server.stop().await;
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

#[tokio::test]
async fn a_refusing_or_stopped_redis_gets_retries_until_it_takes_the_message() {
    let Some(mut redis) = RedisServer::start(None).await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("redis").await;
    t.endpoint(redis_endpoint(&redis, "jobs")).await;
    // The stream's key holds a string: Redis answers WRONGTYPE.
    redis.command(&["SET", "jobs", "not a stream"]).await;
    let event = t.publish("job.queued", json!({"k": 1})).await;
    let id = event["id"].as_str().expect("id").to_owned();
    let has = |class: &'static str| {
        let (api, id) = (t.admin.clone(), id.clone());
        move || {
            let (api, id) = (api.clone(), id.clone());
            async move {
                attempts(&api, &id)
                    .await
                    .iter()
                    .any(|a| a["error"] == class)
            }
        }
    };
    wait_until(
        "a refused attempt",
        Duration::from_secs(20),
        has("broker_refused"),
    )
    .await;
    let refused = attempts(&t.admin, &id).await;
    assert!(
        refused[0]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("WRONGTYPE")),
        "{refused:?}"
    );
    // Down: the attempts cannot connect.
    redis.kill();
    wait_until("a connect failure", Duration::from_secs(20), has("connect")).await;
    // Back, empty: the next retry is stored.
    redis.restart().await;
    let delivery = t.wait_delivery_status(&id, "succeeded").await;
    let entries = redis.wait_entries("jobs", 1).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1.header("webhook-id"), id);
    let classes: Vec<&str> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["error"].as_str().unwrap_or("ok"))
        .collect();
    let first = |c: &str| classes.iter().position(|x| *x == c).expect(c);
    assert!(first("broker_refused") < first("connect"), "{classes:?}");
    assert_eq!(classes.last(), Some(&"ok"), "{classes:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_fifo_redis_endpoint_gets_events_in_publish_order() {
    let Some(redis) = RedisServer::start(None).await else {
        return;
    };
    let server = Server::start().await;
    let t = server.tenant("redis").await;
    let mut body = redis_endpoint(&redis, "ordered");
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
    let entries = redis.wait_entries("ordered", published.len()).await;
    let streamed: Vec<String> = entries
        .iter()
        .map(|(_, r)| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(streamed, published);
    server.stop().await;
}

#[tokio::test]
async fn killing_hookd_mid_burst_loses_no_message_to_redis() {
    let Some(redis) = RedisServer::start(None).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = test_db(dir.path()).await;
    let mut hookd = spawn(&db, Some(ADMIN));
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let api = op.with_token(&tenant_key(&op).await);
    let mut body = redis_endpoint(&redis, "burst");
    body["name"] = json!("r");
    let (status, ep) = api.post("/v1/endpoints", body).await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");

    let accepted = kill_mid_burst(&mut hookd, &api, 2000).await;

    let mut restarted = spawn(&db, Some(ADMIN));
    wait_until(
        "every accepted event in the stream after the restart",
        Duration::from_secs(60),
        || {
            let (redis, accepted) = (&redis, &accepted);
            async move {
                let seen: HashSet<String> = redis
                    .entries("burst")
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
            "not built yet",
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
