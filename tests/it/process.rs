//! The real binary: signals, crash recovery, the generated operator token, schema versions.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{ADMIN, Api, Receiver, wait_until};

/// A `hookd serve` child process and the lines it printed before listening.
pub(crate) struct Hookd {
    pub child: Child,
    pub base: String,
    pub printed: Vec<String>,
    /// What it logged (warnings and errors), as it arrives.
    pub logged: Arc<Mutex<String>>,
}

impl Drop for Hookd {
    /// A test that fails before stopping its hookd does not leave it running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn spawn(db: &Path, admin_token: Option<&str>) -> Hookd {
    spawn_with(Command::new(env!("CARGO_BIN_EXE_hookd")), db, admin_token)
}

/// `hookd serve` whose files may not grow past `kib` KiB, as on a disk that fills up (writes
/// past it fail with `EFBIG`; the signal that would kill the process is ignored).
pub(crate) fn spawn_on_small_disk(db: &Path, admin_token: &str, kib: u64) -> Hookd {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_hookd"));
    spawn_with(cmd, db, Some(admin_token))
}

pub(crate) fn spawn_with(mut cmd: Command, db: &Path, admin_token: Option<&str>) -> Hookd {
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-http",
        "--allow-private-targets",
    ])
    .arg("--db")
    .arg(db)
    .env("HOOKD_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(token) = admin_token {
        cmd.args(["--admin-token", token]);
    }
    let mut child = cmd.spawn().expect("spawn hookd");
    let logged: Arc<Mutex<String>> = Arc::default();
    let stderr = child.stderr.take().expect("stderr");
    let log = logged.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut log = log.lock().expect("log");
            log.push_str(&line);
            log.push('\n');
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("hookd printed its address")
            .expect("line");
        if let Some(addr) = line.strip_prefix("hookd: listening on ") {
            break addr.to_owned();
        }
        printed.push(line);
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Hookd {
        child,
        base,
        printed,
        logged,
    }
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

pub(crate) async fn wait_health(base: &str) {
    let api = Api::new(base, "");
    wait_until("hookd healthy", Duration::from_secs(20), || {
        let api = api.clone();
        async move { api.get("/health").await.0 == StatusCode::OK }
    })
    .await;
}

pub(crate) async fn tenant_key(api: &Api) -> String {
    let (_, t) = api.post("/v1/tenants", json!({"name": "t"})).await;
    let (_, k) = api
        .post(
            &format!("/v1/tenants/{}/keys", t["id"].as_str().expect("id")),
            json!({"name": "k", "role": "admin"}),
        )
        .await;
    k["key"].as_str().expect("key").to_owned()
}

/// A client publishing batches of 20 events (their data tagged with `tag`) for each of
/// `rounds`, noting every accepted event's id, until a request fails or is refused (its
/// hookd was killed).
pub(crate) fn publish_batches(
    api: Api,
    accepted: Arc<Mutex<HashSet<String>>>,
    tag: serde_json::Value,
    rounds: std::ops::Range<usize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for round in rounds {
            let events: Vec<_> = (0..20)
                .map(|i| json!({"type": "burst.event", "data": {"client": tag, "round": round, "i": i}}))
                .collect();
            let req = api.raw(
                "POST",
                "/v1/events/batch",
                Some("application/json"),
                json!({"events": events}).to_string().into_bytes(),
            );
            let Ok((status, _, body)) = tokio::time::timeout(Duration::from_secs(5), req).await
            else {
                return;
            };
            if status != StatusCode::ACCEPTED {
                return;
            }
            let mut set = accepted.lock().expect("set");
            for e in body["events"].as_array().expect("events") {
                set.insert(e["id"].as_str().expect("id").to_owned());
            }
        }
    })
}

#[tokio::test]
async fn sigterm_stops_hookd_with_exit_code_zero() {
    let dir = tempfile::tempdir().expect("dir");
    let mut hookd = spawn(&dir.path().join("h.db"), Some(ADMIN));
    wait_health(&hookd.base).await;
    signal(&hookd.child, "-TERM");
    let status = tokio::task::spawn_blocking(move || hookd.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

/// Four clients publish batches to `hookd` until at least `at_least` events are accepted, and
/// it is killed (`SIGKILL`) under them; returns the ids of every event it accepted.
pub(crate) async fn kill_mid_burst(
    hookd: &mut Hookd,
    api: &Api,
    at_least: usize,
) -> HashSet<String> {
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|c| {
            publish_batches(
                api.clone(),
                accepted.clone(),
                json!({"c": c}),
                0..usize::MAX,
            )
        })
        .collect();
    wait_until("some events accepted", Duration::from_secs(20), || {
        let n = accepted.lock().expect("set").len();
        async move { n >= at_least }
    })
    .await;
    signal(&hookd.child, "-KILL");
    let _ = hookd.child.wait();
    // Clients see connection errors now; the api.raw panic is caught by the task boundary.
    for c in clients {
        let _ = c.await;
    }
    let accepted = accepted.lock().expect("set").clone();
    assert!(accepted.len() >= at_least);
    accepted
}

#[tokio::test]
async fn kill_during_burst_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("h.db");
    let receiver = Receiver::ok().await;
    let mut hookd = spawn(&db, Some(ADMIN));
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let key = tenant_key(&op).await;
    let api = op.with_token(&key);
    let (status, _) = api
        .post(
            "/v1/endpoints",
            json!({"name": "r", "url": receiver.url, "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let accepted = kill_mid_burst(&mut hookd, &api, 4000).await;

    let mut restarted = spawn(&db, Some(ADMIN));
    wait_until(
        "every accepted event delivered after restart",
        Duration::from_secs(60),
        || {
            let seen: HashSet<String> = receiver
                .received()
                .iter()
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            let missing = accepted.iter().filter(|id| !seen.contains(*id)).count();
            async move { missing == 0 }
        },
    )
    .await;
    signal(&restarted.child, "-TERM");
    let status = tokio::task::spawn_blocking(move || restarted.child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn an_operator_token_is_generated_once_and_survives_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("h.db");
    let mut first = spawn(&db, None);
    let line = first
        .printed
        .iter()
        .find(|l| l.contains("generated the operator token"))
        .expect("token printed on first start")
        .clone();
    let token = line.rsplit(' ').next().expect("token").to_owned();
    wait_health(&first.base).await;
    assert_eq!(
        Api::new(&first.base, &token).get("/v1/tenants").await.0,
        StatusCode::OK
    );
    signal(&first.child, "-TERM");
    let _ = first.child.wait();
    let stored = std::fs::read(&db).expect("db file");
    assert!(
        !stored.windows(token.len()).any(|w| w == token.as_bytes()),
        "token stored only hashed"
    );

    let mut second = spawn(&db, None);
    assert!(
        second.printed.iter().all(|l| !l.contains("generated")),
        "printed only once"
    );
    wait_health(&second.base).await;
    assert_eq!(
        Api::new(&second.base, &token).get("/v1/tenants").await.0,
        StatusCode::OK
    );
    signal(&second.child, "-TERM");
    let _ = second.child.wait();
}

#[test]
fn a_database_from_a_newer_hookd_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("h.db");
    let conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch("PRAGMA user_version = 999;")
        .expect("set version");
    drop(conn);
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["migrate", "--db"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("newer hookd"), "{stderr}");
}

#[test]
fn an_older_database_is_upgraded() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("h.db");
    rusqlite::Connection::open(&db).expect("create empty file (version 0)");
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["migrate", "--db"])
        .arg(&db)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(&db).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert!(version >= 1);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'deliveries'",
            [],
            |r| r.get(0),
        )
        .expect("tables");
    assert_eq!(tables, 1);
}

#[test]
fn environment_variables_configure_hookd() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("from-env.db");
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("migrate")
        .env("HOOKD_DB", &db)
        .env("HOOKD_DURABILITY", "normal")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(db.exists(), "HOOKD_DB chose the file");
    let bad = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("migrate")
        .env("HOOKD_DB", &db)
        .env("HOOKD_DURABILITY", "sometimes")
        .output()
        .expect("run");
    assert!(
        !bad.status.success(),
        "an invalid HOOKD_DURABILITY is refused"
    );
}

#[tokio::test]
async fn health_is_degraded_while_the_database_cannot_take_writes() {
    if crate::support::sqlite_only("health_is_degraded_while_the_database_cannot_take_writes") {
        return;
    }
    let server = crate::support::Server::start().await;
    let t = server.tenant("acme").await;
    let api = Api::new(&server.base, "");
    let (status, body) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");

    // Another process holds the write lock (an operator's sqlite3 shell, a backup tool).
    let blocker = rusqlite::Connection::open(server.db_path()).expect("open");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let (status, body) = api.get("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "degraded");
    assert!(body["database"].as_str().expect("why").len() > 10);
    // A publish meanwhile is refused whole: 503, nothing stored.
    let (status, body) = t
        .admin
        .post("/v1/events", json!({"type": "a.b", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable");

    blocker.execute_batch("ROLLBACK").expect("unlock");
    drop(blocker);
    wait_until("healthy again", Duration::from_secs(20), || {
        let api = api.clone();
        async move { api.get("/health").await.0 == StatusCode::OK }
    })
    .await;
    let (_, events) = t.admin.get("/v1/events").await;
    assert_eq!(events["totalElements"], 0);
    server.stop().await;
}

#[tokio::test]
async fn a_full_disk_answers_storage_unavailable_and_health_reads_degraded() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("hookd.db");
    let mut hookd = spawn_on_small_disk(&db, ADMIN, 4096);
    wait_health(&hookd.base).await;
    let op = Api::new(&hookd.base, ADMIN);
    let admin = op.with_token(&tenant_key(&op).await);
    let (status, body) = admin
        .post(
            "/v1/endpoints",
            json!({"name": "e", "url": "http://127.0.0.1:9/h", "events": ["*"], "retrySchedule": ["1d"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let filler = "x".repeat(4000);
    let mut refused = None;
    for _ in 0..200 {
        let events: Vec<_> = (0..200)
            .map(|n| json!({"type": "fill.up", "data": {"n": n, "filler": filler}}))
            .collect();
        let (status, body) = admin
            .post("/v1/events/batch", json!({"events": events}))
            .await;
        if status != StatusCode::ACCEPTED {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("the disk filled up");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    // Still serving, and saying what is wrong.
    let (status, health) = Api::new(&hookd.base, "").get("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["status"], "degraded");
    let (status, _) = admin.get("/v1/events?size=1").await;
    assert_eq!(status, StatusCode::OK, "reads still work");
    signal(&hookd.child, "-TERM");
    let _ = hookd.child.wait();
}

/// The resident size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn memory_taken_by_a_burst_of_connections_is_returned_after_they_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hookd = spawn(&dir.path().join("hookd.db"), Some(ADMIN));
    wait_health(&hookd.base).await;
    let pid = hookd.child.id();
    let before = rss_kib(pid);
    let addr = hookd.base.trim_start_matches("http://").to_owned();
    let mut open = Vec::new();
    for _ in 0..1_500 {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        open.push(stream);
    }
    for stream in &mut open {
        let mut buf = [0u8; 512];
        assert!(stream.read(&mut buf).await.expect("answer") > 0);
    }
    let peak = rss_kib(pid);
    assert!(
        peak > before,
        "the connections took memory ({before} → {peak} KiB)"
    );
    drop(open);
    let half_way = before + (peak - before) / 2;
    wait_until(
        "hookd returns most of what the connections took",
        Duration::from_secs(30),
        || async move { rss_kib(pid) <= half_way },
    )
    .await;
    signal(&hookd.child, "-TERM");
    assert!(hookd.child.wait().expect("wait").success());
}

/// Arrivals of one delivery closer together than this would mean two processes attempted it
/// at once: a second attempt comes only after the first one's lease (the endpoint's 1 s
/// timeout and the 1 s margin) has ended.
const APART: Duration = Duration::from_secs(1);

#[tokio::test]
async fn three_processes_on_postgres_lose_nothing_when_one_is_killed() {
    let Some(pg) = crate::postgres::Postgres::start() else {
        return;
    };
    let url = pg.database("shared").await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("hookd.toml");
    std::fs::write(
        &config,
        "lease_margin = \"1s\"\npoll_interval = \"200ms\"\n",
    )
    .expect("config");
    let start = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
        cmd.env("HOOKD_CONFIG", &config);
        spawn_with(cmd, Path::new(&url), Some(ADMIN))
    };
    let mut hookds = vec![start(), start(), start()];
    for h in &hookds {
        wait_health(&h.base).await;
    }
    // The receiver takes 20 ms per request, so overlapping attempts of one delivery show.
    let receiver = Receiver::slow(Duration::from_millis(20)).await;
    let op = Api::new(&hookds[0].base, ADMIN);
    let key = tenant_key(&op).await;
    let (status, _) = op
        .with_token(&key)
        .post(
            "/v1/endpoints",
            json!({"name": "r", "url": receiver.url, "events": ["*"], "timeoutMs": 1000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Two clients per process publish batches; the first process is killed under them.
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut clients = Vec::new();
    for (p, h) in hookds.iter().enumerate() {
        for c in 0..2 {
            let api = Api::new(&h.base, &key);
            let tag = json!({"p": p, "c": c});
            clients.push(publish_batches(api, accepted.clone(), tag, 0..60));
        }
    }
    wait_until("deliveries under way", Duration::from_secs(30), || {
        let (n, got) = (
            accepted.lock().expect("set").len(),
            receiver.received().len(),
        );
        async move { n >= 1000 && got >= 200 }
    })
    .await;
    signal(&hookds[0].child, "-KILL");
    let _ = hookds[0].child.wait();
    for c in clients {
        let _ = c.await;
    }
    let accepted = accepted.lock().expect("set").clone();
    assert!(accepted.len() >= 1000, "{} accepted", accepted.len());

    wait_until(
        "every accepted event delivered by the two left",
        Duration::from_secs(60),
        || {
            let seen: HashSet<String> = receiver
                .received()
                .iter()
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            let missing = accepted.iter().filter(|id| !seen.contains(*id)).count();
            async move { missing == 0 }
        },
    )
    .await;
    let mut arrivals: std::collections::HashMap<String, Vec<std::time::Instant>> =
        std::collections::HashMap::new();
    for r in receiver.received() {
        arrivals
            .entry(r.header("webhook-id").to_owned())
            .or_default()
            .push(r.at);
    }
    let again: Vec<_> = arrivals.iter().filter(|(_, at)| at.len() > 1).collect();
    for (id, at) in &again {
        let mut at = at.to_vec();
        at.sort();
        for pair in at.windows(2) {
            assert!(
                pair[1] - pair[0] >= APART,
                "{id} was attempted twice within {:?}: two processes at once",
                pair[1] - pair[0]
            );
        }
    }
    eprintln!(
        "{} events accepted, {} delivered again after the kill (at least once)",
        accepted.len(),
        again.len()
    );
    for mut h in hookds.drain(1..) {
        signal(&h.child, "-TERM");
        let status = tokio::task::spawn_blocking(move || h.child.wait())
            .await
            .expect("join")
            .expect("wait");
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    }
}

#[tokio::test]
async fn a_database_served_without_its_credentials_key_says_so_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("h.db");
    let mut first = spawn(&db, Some(ADMIN));
    wait_health(&first.base).await;
    let key = tenant_key(&Api::new(&first.base, ADMIN)).await;
    let (status, ep) = Api::new(&first.base, &key)
        .post(
            "/v1/endpoints",
            json!({"name": "e", "url": "http://127.0.0.1:9/h", "events": ["*"],
                   "auth": {"type": "basic", "username": "u", "password": "p"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    signal(&first.child, "-TERM");
    let _ = first.child.wait();
    let key_file = dir.path().join("h.db.credentials-key");
    // Restarted with its key: nothing to say.
    let mut second = spawn(&db, Some(ADMIN));
    wait_health(&second.base).await;
    signal(&second.child, "-TERM");
    let _ = second.child.wait();
    let said = second.logged.lock().expect("log").clone();
    assert!(!said.contains("credentials key"), "{said}");
    // Without it (a restored database): a new key is made, and hookd says what is wrong.
    std::fs::remove_file(&key_file).expect("remove the key");
    let mut third = spawn(&db, Some(ADMIN));
    let logged = third.logged.clone();
    wait_until(
        "hookd says the key does not fit",
        Duration::from_secs(10),
        || {
            let logged = logged.clone();
            async move {
                logged
                    .lock()
                    .expect("log")
                    .contains("does not open the endpoints' stored credentials")
            }
        },
    )
    .await;
    signal(&third.child, "-TERM");
    let _ = third.child.wait();
}
