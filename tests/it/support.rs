//! Test support: a real hookd on port 0 over a temp SQLite file, an HTTP client for its API,
//! and real receivers on 127.0.0.1 that record what they get.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};

use hookd::config::Config;

/// The operator token every test server uses.
pub const ADMIN: &str = "test-operator-token-0123456789";

/// The Python of the venv `.ci/venv` makes (`target/ci-venv`, or `HOOKD_TEST_PYTHON`), when it
/// can import `module`; `None` outside CI when it cannot (the test is skipped, with a note).
/// Under `CI=true` a missing package fails the test.
pub fn python_with(module: &str, what: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("HOOKD_TEST_PYTHON").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python"),
        std::path::PathBuf::from,
    );
    let has = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if has {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} has no {what}: run `bash .ci/venv`",
        python.display()
    );
    eprintln!("skipped: no {what} at {} (bash .ci/venv)", python.display());
    None
}

/// A Python test server (`tests/it/py/<script>`) that prints its port, then one JSON line per
/// thing it saw: its port, the lines so far, and the process (killed when dropped).
pub struct PyServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// What it printed after its port.
    pub lines: Arc<Mutex<Vec<Value>>>,
    _child: tokio::process::Child,
}

impl PyServer {
    /// Starts `script` with `python` and reads its port.
    pub async fn start(python: &std::path::Path, script: &str) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/py")
            .join(script);
        let mut child = tokio::process::Command::new(python)
            .arg(path)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port = out
            .next_line()
            .await
            .expect("read")
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{script} prints its port first"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let value: Value = serde_json::from_str(&line).expect("a JSON line");
                kept.lock().expect("lines").push(value);
            }
        });
        Self {
            port,
            lines,
            _child: child,
        }
    }

    /// What it printed so far.
    pub fn seen(&self) -> Vec<Value> {
        self.lines.lock().expect("lines").clone()
    }
}

/// The most arrivals in any one-second window starting at an arrival.
pub fn busiest_second(times: &[std::time::Instant]) -> usize {
    times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                .count()
        })
        .max()
        .expect("arrivals")
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The database a test server in `dir` uses: the SQLite file `hookd.db` in it, or, when the
/// suite runs on PostgreSQL, a database of its own on the shared cluster (the same one again
/// for a restart in the same `dir`).
pub async fn test_db(dir: &std::path::Path) -> std::path::PathBuf {
    if !crate::postgres::suite_on_postgres() {
        return dir.join("hookd.db");
    }
    let noted = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&noted) {
        return url.into();
    }
    let url = crate::postgres::fresh_database().await;
    std::fs::write(&noted, &url).expect("note the database");
    url.into()
}

/// Waits until a server started by the test (`what`) accepts connections on `port`.
pub async fn wait_listening(what: &str, port: u16) {
    wait_until(
        &format!("{what} listening on {port}"),
        Duration::from_secs(20),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
}

/// Opens the store a test in `dir` uses directly (see [`test_db`]).
pub async fn open_store(
    dir: &std::path::Path,
    durability: hookd::config::Durability,
) -> (hookd::store::Store, hookd::store::StoreHandle) {
    hookd::store::Store::open_any(&test_db(dir).await, durability)
        .await
        .expect("open the store")
}

/// True (and says so) when the suite runs on PostgreSQL and `test` is about the SQLite file
/// itself (its lock, its bytes, its disk): such a test runs on SQLite only.
pub fn sqlite_only(test: &str) -> bool {
    let skip = crate::postgres::suite_on_postgres();
    if skip {
        eprintln!("{test}: about the SQLite file itself; runs on SQLite only");
    }
    skip
}

/// Block counts in `list_blocks` that differ from a recount of the rows (none when exact).
const LIST_COUNTS_CHECK: &str =
    "WITH kept AS (SELECT list, owner, part, block, CAST(sum(n) AS BIGINT) FROM list_blocks
                   GROUP BY 1, 2, 3, 4 HAVING sum(n) != 0),
     counted AS (
         SELECT CAST(1 AS BIGINT), endpoint_id, CAST(status AS TEXT), id >> 16, count(*)
             FROM deliveries GROUP BY 1, 2, 3, 4
         UNION ALL SELECT 2, tenant_id, type, id >> 16, count(*)
             FROM events GROUP BY 1, 2, 3, 4
         UNION ALL SELECT 3, hook_id, '', id >> 16, count(*)
             FROM incoming_requests GROUP BY 1, 2, 3, 4
         UNION ALL SELECT 4, schedule_id, '', id >> 16, count(*)
             FROM schedule_runs GROUP BY 1, 2, 3, 4)
     SELECT CAST('kept' AS TEXT), * FROM (SELECT * FROM kept EXCEPT SELECT * FROM counted) k
     UNION ALL
     SELECT 'counted', * FROM (SELECT * FROM counted EXCEPT SELECT * FROM kept) c";

/// A hookd running in this process.
pub struct Server {
    /// `http://127.0.0.1:port`.
    pub base: String,
    _dir: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts hookd with test settings (http and loopback targets allowed, fast polling).
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts hookd with test settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_in(dir, tweak).await
    }

    /// Starts hookd on the database in `dir` (a restart when one ran there before).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, tweak: impl FnOnce(&mut Config)) -> Self {
        let db = test_db(dir.path()).await;
        // On PostgreSQL the credentials key is never made up: the test names one.
        let credentials_key_file =
            hookd::store::is_postgres_url(&db).then(|| dir.path().join("credentials.key"));
        let mut config = Config {
            db,
            credentials_key_file,
            admin_token: Some(ADMIN.to_owned()),
            allow_http: true,
            allow_private_targets: true,
            poll_interval: Duration::from_millis(50),
            shutdown_grace: Duration::from_secs(5),
            ..Config::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hookd::app::run(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("hookd runs");
        });
        Self {
            base,
            _dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The server's SQLite file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("hookd.db")
    }

    /// A client with the operator token.
    pub fn operator(&self) -> Api {
        Api::new(&self.base, ADMIN)
    }

    /// `GET /metrics` with the operator token: the exposition text.
    pub async fn metrics_text(&self) -> String {
        let (status, _, body) = self
            .operator()
            .raw("GET", "/metrics", None, Vec::new())
            .await;
        assert_eq!(status, StatusCode::OK);
        body.as_str().unwrap_or_default().to_owned()
    }

    /// Creates a tenant and an admin key for it.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let op = self.operator();
        let (status, t) = op.post("/v1/tenants", json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        let id = t["id"].as_str().expect("tenant id").to_owned();
        let admin = self.key(&id, "admin").await;
        Tenant {
            id,
            admin: Api::new(&self.base, &admin),
        }
    }

    /// Creates a key with `role` for a tenant; returns the token.
    pub async fn key(&self, tenant: &str, role: &str) -> String {
        let (status, k) = self
            .operator()
            .post(
                &format!("/v1/tenants/{tenant}/keys"),
                json!({"name": role, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{k}");
        k["key"].as_str().expect("key").to_owned()
    }

    /// Checks, in one snapshot of the file, that the block counts behind list paging (each
    /// process's rows added up) equal a recount of every long list's rows.
    pub fn assert_list_counts_exact(&self) {
        if crate::postgres::suite_on_postgres() {
            let url = std::fs::read_to_string(self._dir.path().join("postgres-url")).expect("url");
            let mismatches = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                c.query(LIST_COUNTS_CHECK, &[])
                    .expect("recount")
                    .iter()
                    .map(|r| {
                        format!(
                            "{} list {} owner {} part {} block {}: {}",
                            r.get::<_, String>(0),
                            r.get::<_, i64>(1),
                            r.get::<_, i64>(2),
                            r.get::<_, String>(3),
                            r.get::<_, i64>(4),
                            r.get::<_, i64>(5)
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .join()
            .expect("recount thread");
            assert!(mismatches.is_empty(), "list counts differ: {mismatches:?}");
            return;
        }
        let c = rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open");
        let mismatches: Vec<String> = c
            .prepare(LIST_COUNTS_CHECK)
            .expect("prepare")
            .query_map([], |r| {
                Ok(format!(
                    "{} list {} owner {} part {} block {}: {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            mismatches.is_empty(),
            "block counts drifted: {mismatches:#?}"
        );
    }

    /// Stops hookd gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("hookd stops cleanly");
        }
    }
}

/// A tenant and a client holding its admin key.
pub struct Tenant {
    /// `tnt_…`.
    pub id: String,
    /// Admin-key client.
    pub admin: Api,
}

impl Tenant {
    /// The same tenant on another (restarted) server.
    pub fn on(&self, server: &Server) -> Tenant {
        Tenant {
            id: self.id.clone(),
            admin: self.admin.with_base(&server.base),
        }
    }

    /// Creates an endpoint from `body` (merged over a name); returns its JSON.
    pub async fn endpoint(&self, body: Value) -> Value {
        let mut full = json!({"name": "test endpoint"});
        merge(&mut full, body);
        let (status, ep) = self.admin.post("/v1/endpoints", full).await;
        assert_eq!(status, StatusCode::CREATED, "{ep}");
        ep
    }

    /// Publishes one event; returns the 202 body.
    pub async fn publish(&self, event_type: &str, data: Value) -> Value {
        let (status, body) = self
            .admin
            .post("/v1/events", json!({"type": event_type, "data": data}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Publishes events in one batch; returns the answer.
    pub async fn publish_batch(&self, events: Vec<Value>) -> Value {
        let (status, body) = self
            .admin
            .post("/v1/events/batch", json!({"events": events}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// Waits until the first delivery of an event has `status`; returns that delivery with
    /// its attempts.
    pub async fn wait_delivery_status(&self, event_id: &str, status: &str) -> Value {
        let path = format!("/v1/events/{event_id}");
        wait_until(
            &format!("{event_id} to be {status}"),
            Duration::from_secs(20),
            || {
                let (api, path) = (self.admin.clone(), path.clone());
                async move { api.get(&path).await.1["deliveries"][0]["status"] == status }
            },
        )
        .await;
        let (_, event) = self.admin.get(&path).await;
        let dlv = event["deliveries"][0]["id"]
            .as_str()
            .expect("delivery id")
            .to_owned();
        let (code, delivery) = self.admin.get(&format!("/v1/deliveries/{dlv}")).await;
        assert_eq!(code, StatusCode::OK);
        delivery
    }

    /// The stats of an endpoint.
    pub async fn stats(&self, endpoint: &str) -> Value {
        let (status, body) = self
            .admin
            .get(&format!("/v1/endpoints/{endpoint}/stats"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

/// A client for hookd's API with one token.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// A client for `base` sending `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.to_owned(),
            token: token.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same token against another server (after a restart on a new port).
    pub fn with_base(&self, base: &str) -> Self {
        Self::new(base, &self.token)
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self::new(&self.base, token)
    }

    /// Sends a raw request; returns status, headers and the body as JSON (or a string).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut headers = Vec::new();
        if !self.token.is_empty() {
            headers.push(("authorization", format!("Bearer {}", self.token)));
        }
        if let Some(ct) = content_type {
            headers.push(("content-type", ct.to_owned()));
        }
        self.raw_with_headers(method, path, &headers, body).await
    }

    /// Sends a request with exactly these headers; returns status, headers and body.
    pub async fn raw_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let res = self.client.request(req).await.expect("hookd answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, value)
    }

    async fn json(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), b.to_string().into_bytes()),
            None => (None, Vec::new()),
        };
        let (status, _, value) = self.raw(method, path, ct, bytes).await;
        (status, value)
    }

    /// POST of a JSON body with these headers besides the token and content type.
    pub async fn post_with_headers(
        &self,
        path: &str,
        body: Value,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut headers = vec![
            ("authorization", format!("Bearer {}", self.token)),
            ("content-type", "application/json".to_owned()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (status, _, value) = self
            .raw_with_headers("POST", path, &headers, body.to_string().into_bytes())
            .await;
        (status, value)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.json("GET", path, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json("POST", path, Some(body)).await
    }

    /// POST with no body.
    pub async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        self.json("POST", path, None).await
    }

    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json("PATCH", path, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.json("PUT", path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.json("DELETE", path, None).await
    }
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lowercase header names to values.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// The request's path.
    pub path: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What a receiver answers: status, extra headers, body.
pub type Reply = (u16, Vec<(&'static str, String)>, String);

type Behavior = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

/// How long a receiver holds a request before it answers.
#[derive(Clone)]
enum Hold {
    /// Not at all.
    No,
    /// For a while.
    For(Duration),
    /// While the flag is set.
    While(Arc<std::sync::atomic::AtomicBool>),
}

impl Hold {
    async fn wait(&self) {
        match self {
            Self::No => {}
            Self::For(delay) => tokio::time::sleep(*delay).await,
            Self::While(held) => {
                while held.load(std::sync::atomic::Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// A real HTTP receiver on 127.0.0.1 that records every request.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:port/hook`.
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::with(|_, _| (200, vec![], "ok".into())).await
    }

    /// A receiver that answers 500 until the returned switch is set, then 200.
    pub async fn switchable() -> (Self, Arc<std::sync::atomic::AtomicBool>) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let healthy = Arc::new(AtomicBool::new(false));
        let flag = healthy.clone();
        let receiver = Self::with(move |_, _| {
            if flag.load(Ordering::SeqCst) {
                (200, vec![], "ok".into())
            } else {
                (500, vec![], "down".into())
            }
        })
        .await;
        (receiver, healthy)
    }

    /// A receiver that answers with `status` to everything.
    pub async fn status(status: u16) -> Self {
        Self::with(move |_, _| (status, vec![], format!("status {status}"))).await
    }

    /// A receiver whose answer to the n-th request (0-based) is `behavior(n, request)`.
    pub async fn with(
        behavior: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start(Arc::new(behavior), Hold::No).await
    }

    /// A receiver that holds every request for `delay` before answering 200.
    pub async fn slow(delay: Duration) -> Self {
        Self::start(
            Arc::new(|_, _| (200, vec![], "slow".into())),
            Hold::For(delay),
        )
        .await
    }

    /// A receiver that holds every request while `held` is set, then answers 200.
    pub async fn held(held: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self::start(
            Arc::new(|_, _| (200, vec![], "ok".into())),
            Hold::While(held),
        )
        .await
    }

    async fn start(behavior: Behavior, hold: Hold) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let (l, a) = (log.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, arrived, behavior, hold) =
                    (l.clone(), a.clone(), behavior.clone(), hold.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (log, arrived, behavior, hold) =
                            (log.clone(), arrived.clone(), behavior.clone(), hold.clone());
                        async move {
                            // A header sent twice reads as its values joined by ", ".
                            let mut headers: HashMap<String, String> = HashMap::new();
                            for (k, v) in req.headers() {
                                let v = v.to_str().unwrap_or("");
                                headers
                                    .entry(k.as_str().to_owned())
                                    .and_modify(|joined| *joined = format!("{joined}, {v}"))
                                    .or_insert_with(|| v.to_owned());
                            }
                            let at = std::time::Instant::now();
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await?.to_bytes();
                            let received = Received {
                                headers,
                                body,
                                path,
                                at,
                            };
                            hold.wait().await;
                            let n = {
                                let mut log = log.lock().expect("log");
                                log.push(received.clone());
                                log.len() - 1
                            };
                            arrived.notify_waiters();
                            let (status, extra, text) = behavior(n, &received);
                            let mut res = Response::builder().status(status);
                            for (k, v) in extra {
                                res = res.header(k, v);
                            }
                            Ok::<_, hyper::Error>(
                                res.body(Full::new(Bytes::from(text))).expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}/hook"),
            log,
            arrived,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Waits until at least `n` requests arrived (up to 20 s) and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            if self.count() >= n {
                return self.received();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("receiver got {} requests, expected {n}", self.count());
            }
        }
    }
}

/// Verifies a Standard Webhooks signature the way a receiver library does, independently of
/// hookd's own signing code. Returns whether any listed signature matches.
pub fn verify_standard(secret: &str, received: &Received) -> bool {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let id = received.header("webhook-id");
    let ts = received.header("webhook-timestamp");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    received
        .header("webhook-signature")
        .split(' ')
        .any(|sig| sig == expected)
}

/// Whether any `v1a,` signature in the delivery's `webhook-signature` verifies with the
/// Ed25519 public key `whpk_…`, checked with `ed25519-dalek` (not hookd's signer, `ring`).
pub fn verify_ed25519(public_key: &str, received: &Received) -> bool {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = b64
        .decode(public_key.strip_prefix("whpk_").expect("whpk_ key"))
        .expect("base64 key")
        .try_into()
        .expect("32 bytes");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).expect("a public key");
    let mut content = format!(
        "{}.{}.",
        received.header("webhook-id"),
        received.header("webhook-timestamp")
    )
    .into_bytes();
    content.extend_from_slice(&received.body);
    received
        .header("webhook-signature")
        .split(' ')
        .filter_map(|sig| sig.strip_prefix("v1a,"))
        .filter_map(|sig| b64.decode(sig).ok())
        .filter_map(|sig| ed25519_dalek::Signature::from_slice(&sig).ok())
        .any(|sig| key.verify_strict(&content, &sig).is_ok())
}

/// Verifies a GitHub-style `sha256=` signature, independently of hookd's code.
pub fn verify_github(secret: &str, header: &str, body: &[u8]) -> bool {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    header == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Who `token` stands for through the auth service (no operator token matches here).
pub async fn authenticate(
    store: &hookd::store::Store,
    token: &str,
) -> Result<Option<hookd::model::auth::Caller>, hookd::store::StoreError> {
    hookd::service::auth::authenticate(store, &[0; 32], token, hookd::model::now_ms()).await
}

/// Who `token` stands for at `now` through the auth service.
pub async fn authenticate_at(
    store: &hookd::store::Store,
    token: &str,
    now: i64,
) -> Result<Option<hookd::model::auth::Caller>, hookd::store::StoreError> {
    hookd::service::auth::authenticate(store, &[0; 32], token, now).await
}

/// An attempt answered 200 at `at`.
pub fn ok_outcome(at: i64) -> hookd::model::AttemptOutcome {
    hookd::model::AttemptOutcome {
        at,
        response_code: Some(200),
        latency_ms: 1,
        error: None,
        error_message: None,
        response_body: None,
        retry_after_ms: None,
    }
}
