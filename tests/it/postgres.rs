//! PostgreSQL: a throwaway cluster from Debian's `postgresql` package, started by the test
//! itself (initdb and pg_ctl in a temp dir, on a free port, as the `postgres` user when the
//! tests run as root), and the schema's migrations against it. Under `CI=true` a missing
//! PostgreSQL fails the test instead of skipping it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A PostgreSQL cluster of its own, stopped when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// The newest installed PostgreSQL's `bin` directory.
fn installed() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (PostgreSQL refuses root).
fn run(tool: &Path, args: &[&str]) {
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    let out = command.args(args).output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        tool.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Starts a cluster; `None` when PostgreSQL is not installed (outside CI).
    pub fn start() -> Option<Self> {
        let Some(bin) = installed() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is not installed (Debian's `postgresql` package); .ci/run installs it"
            );
            eprintln!("skipped: PostgreSQL is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            let owner = |flag: &str| -> u32 {
                let out = Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .expect("id");
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse()
                    .expect("the postgres user")
            };
            std::os::unix::fs::chown(dir.path(), Some(owner("-u")), Some(owner("-g")))
                .expect("chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let data = dir.path().join("data");
        let data = data.to_str().expect("path");
        run(
            &bin.join("initdb"),
            &[
                "-D",
                data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let pg = Self { dir, bin, port };
        pg.resume();
        Some(pg)
    }

    /// Runs `pg_ctl` on the cluster's data directory.
    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data");
        let mut all = vec!["-D", data.to_str().expect("path")];
        all.extend_from_slice(args);
        run(&self.bin.join("pg_ctl"), &all);
    }

    /// Starts the cluster's server (again, after [`Postgres::halt`]).
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        self.pg_ctl(&[
            "-o",
            &options,
            "-l",
            log.to_str().expect("path"),
            "-w",
            "start",
        ]);
    }

    /// Stops the cluster's server at once, as an outage would.
    pub fn halt(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// A URL for database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database; returns its URL.
    pub async fn database(&self, name: &str) -> String {
        let client = connect(&self.url("postgres")).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Already stopped (a test that halted it) is fine.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.halt()));
    }
}

/// Whether this run of the suite serves every test server from PostgreSQL
/// (`HOOKD_TEST_DB=postgres`; `.ci/run` runs the suite once on each store).
pub fn suite_on_postgres() -> bool {
    std::env::var("HOOKD_TEST_DB").as_deref() == Ok("postgres")
}

/// The cluster the whole suite shares when it runs on PostgreSQL: started once, and stopped
/// (its files removed) by a watcher once this test process has exited.
pub fn shared() -> &'static Postgres {
    static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let pg = Postgres::start().expect("HOOKD_TEST_DB=postgres needs PostgreSQL installed");
        let data = pg.dir.path().join("data");
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = pg.bin.join("pg_ctl").display(),
            data = data.display(),
            dir = pg.dir.path().display(),
        );
        // `setsid -f` forks the watcher into a session of its own and returns at once.
        Command::new("setsid")
            .args(["-f", "sh", "-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("start the cluster's watcher");
        pg
    })
}

/// A new empty database on the shared cluster; returns its URL.
pub async fn fresh_database() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared().database(&format!("t{n}")).await
}

#[tokio::test]
async fn an_outage_answers_503_and_hookd_recovers_when_postgres_returns() {
    use crate::support::{Api, Server, wait_until};
    use serde_json::json;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("outage").await;
    let server = Server::start_with(|c| c.db = url.clone().into()).await;
    let t = server.tenant("acme").await;
    let receiver = crate::support::Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let (status, _) = t
        .admin
        .post("/v1/events", json!({"type": "a.b", "data": {}}))
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED);
    receiver.wait_for(1).await;
    pg.halt();
    let (status, body) = t
        .admin
        .post("/v1/events", json!({"type": "a.b", "data": {}}))
        .await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    // While the writer backs off between reconnects (up to 1 s apart), writes are still
    // answered at once, not held until its next try.
    let outage = std::time::Instant::now();
    while outage.elapsed() < std::time::Duration::from_secs(7) {
        let asked = std::time::Instant::now();
        let (status, _) = t
            .admin
            .post("/v1/events", json!({"type": "a.b", "data": {}}))
            .await;
        assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(2),
            "answered after {:?}",
            asked.elapsed()
        );
    }
    let (status, _) = t.admin.get("/v1/events").await;
    assert_eq!(status, http::StatusCode::SERVICE_UNAVAILABLE);
    pg.resume();
    let back = std::time::Instant::now();
    let t = &t;
    wait_until(
        "publishing works again",
        std::time::Duration::from_secs(30),
        || async move {
            t.admin
                .post("/v1/events", json!({"type": "after.outage", "data": {}}))
                .await
                .0
                == http::StatusCode::ACCEPTED
        },
    )
    .await;
    let published = back.elapsed();
    let (_, page) = t.admin.get("/v1/events").await;
    let total = page["totalElements"].as_u64().expect("total");
    assert!(
        total >= 2,
        "the event before the outage and the one after: {page}"
    );
    // Deliveries and health come back within seconds of the database, not tens of them.
    wait_until(
        "an event published after the outage delivered",
        std::time::Duration::from_secs(30),
        || {
            let got = receiver
                .received()
                .iter()
                .any(|r| r.json()["event"] == "after.outage");
            async move { got }
        },
    )
    .await;
    let delivered = back.elapsed();
    let health = Api::new(&server.base, "");
    wait_until("healthy again", std::time::Duration::from_secs(30), || {
        let health = health.clone();
        async move { health.get("/health").await.0 == http::StatusCode::OK }
    })
    .await;
    let healthy = back.elapsed();
    eprintln!(
        "after the database returned: publishing {published:?}, healthy {healthy:?}, delivered {delivered:?}"
    );
    for (what, took) in [("healthy", healthy), ("delivered", delivered)] {
        assert!(
            took < std::time::Duration::from_secs(8),
            "{what} only {took:?} after the database returned"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_rate_limit_holds_for_the_endpoint_across_two_processes() {
    use crate::support::{Receiver, Server};
    use serde_json::json;
    use std::time::Duration;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("rated").await;
    let one = Server::start_with(|c| c.db = url.clone().into()).await;
    let two = Server::start_with(|c| c.db = url.clone().into()).await;
    let t = one.tenant("acme").await;
    let receiver = Receiver::ok().await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "rateLimit": 10}))
        .await;
    // Both processes publish, so both have deliveries due at once.
    let batch = |from: usize| {
        let events: Vec<_> = (from..from + 20)
            .map(|n| json!({"type": "r.x", "data": {"n": n}}))
            .collect();
        json!({"events": events})
    };
    let via_two = t.admin.with_base(&two.base);
    let (a, b) = tokio::join!(
        t.admin.post("/v1/events/batch", batch(0)),
        via_two.post("/v1/events/batch", batch(20))
    );
    assert_eq!(
        (a.0, b.0),
        (http::StatusCode::ACCEPTED, http::StatusCode::ACCEPTED)
    );
    let got = receiver.wait_for(40).await;
    let times: Vec<_> = got.iter().map(|r| r.at).collect();
    // No one-second window holds many more than 10 arrivals, whichever process sent them...
    let busiest = crate::support::busiest_second(&times);
    assert!(busiest <= 13, "{busiest} arrivals in one second");
    // ...so forty take at least three seconds from first to last.
    let span = times.last().expect("last").duration_since(times[0]);
    assert!(span >= Duration::from_millis(2700), "{span:?}");
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn fifo_holds_for_the_endpoint_across_two_processes() {
    use crate::support::{Receiver, Server};
    use serde_json::json;
    use std::time::Duration;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("ordered").await;
    let one = Server::start_with(|c| c.db = url.clone().into()).await;
    let two = Server::start_with(|c| c.db = url.clone().into()).await;
    let t = one.tenant("acme").await;
    // 20 ms per request: two processes attempting at once would overlap and reorder.
    let receiver = Receiver::slow(Duration::from_millis(20)).await;
    t.endpoint(json!({"url": receiver.url, "events": ["*"], "ordering": "fifo"}))
        .await;
    let events: Vec<_> = (0..30)
        .map(|n| json!({"type": "seq.item", "data": {"n": n}}))
        .collect();
    t.admin
        .post("/v1/events/batch", json!({"events": events}))
        .await;
    let got = receiver.wait_for(30).await;
    let order: Vec<u64> = got
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(order, (0..30).collect::<Vec<u64>>());
    for pair in got.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(18), "one at a time: {gap:?}");
    }
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn a_publish_through_one_process_wakes_the_others() {
    use hookd::store::Store;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("woken").await;
    let (a, a_handle) = Store::open_postgres(&url).await.expect("a");
    let (b, b_handle) = Store::open_postgres(&url).await.expect("b");
    let tenant = b.create_tenant("t".into()).await.expect("tenant");
    b.create_endpoint(tenant.id, catch_all_endpoint())
        .await
        .expect("endpoint");
    let woken = a.work_added();
    // The listener says it is listening by waking once; wait for that first.
    tokio::time::timeout(std::time::Duration::from_secs(10), woken.notified())
        .await
        .expect("a listens");
    let notified = woken.notified();
    hookd::service::publish::publish(&b, tenant.id, vec![event_a_b()])
        .await
        .expect("publish");
    tokio::time::timeout(std::time::Duration::from_secs(10), notified)
        .await
        .expect("b's commit wakes a's dispatcher");
    close_both((a, a_handle), (b, b_handle)).await;
}

#[tokio::test]
async fn one_idempotency_key_published_through_two_processes_at_once_is_one_event() {
    use hookd::store::Store;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("idempotent").await;
    let (a, a_handle) = Store::open_postgres(&url).await.expect("a");
    let (b, b_handle) = Store::open_postgres(&url).await.expect("b");
    let tenant = a.create_tenant("t".into()).await.expect("tenant");
    let endpoint = a
        .create_endpoint(tenant.id, catch_all_endpoint())
        .await
        .expect("endpoint");
    let keyed = |i: usize| hookd::model::publish::NewEvent {
        idempotency_key: Some(format!("key-{i}")),
        ..event_a_b()
    };
    // Each key through both processes at the same moment, batched with other keys so the
    // two batches overlap: both answer, with the same event, and one delivery is queued.
    let rounds = 40;
    let (through_a, through_b) = tokio::join!(
        futures_util::future::join_all((0..rounds).map(|i| hookd::service::publish::publish(
            &a,
            tenant.id,
            vec![keyed(i)]
        ))),
        futures_util::future::join_all((0..rounds).map(|i| hookd::service::publish::publish(
            &b,
            tenant.id,
            vec![keyed(i)]
        ))),
    );
    for (i, (x, y)) in through_a.into_iter().zip(through_b).enumerate() {
        let (x, y) = (x.expect("through a"), y.expect("through b"));
        assert_eq!(x[0].id, y[0].id, "key-{i} is one event");
    }
    let counters = a
        .get_endpoint(tenant.id, endpoint.id)
        .await
        .expect("endpoint")
        .counters;
    assert_eq!(counters.pending, rounds as u64, "one delivery per key");
    close_both((a, a_handle), (b, b_handle)).await;
}

#[tokio::test]
async fn an_endpoint_or_plan_changed_through_one_process_holds_at_once_in_the_others() {
    use hookd::model::plan::PlanPatch;
    use hookd::store::Store;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("settings").await;
    let (a, a_handle) = Store::open_postgres(&url).await.expect("a");
    let (b, b_handle) = Store::open_postgres(&url).await.expect("b");
    let tenant = a.create_tenant("t".into()).await.expect("tenant");
    // b's writer compiles the tenant's subscribers (none yet) and caches them.
    let before = hookd::service::publish::publish(&b, tenant.id, vec![event_a_b()])
        .await
        .expect("publish");
    assert_eq!(before[0].deliveries, 0);
    a.create_endpoint(tenant.id, catch_all_endpoint())
        .await
        .expect("endpoint");
    let after = hookd::service::publish::publish(&b, tenant.id, vec![event_a_b()])
        .await
        .expect("publish");
    assert_eq!(
        after[0].deliveries, 1,
        "b fans out to the endpoint a created"
    );
    // A daily limit set through a holds for b's next publish (two published so far).
    let patch = PlanPatch {
        events_per_day: Some(Some(2)),
        ..PlanPatch::default()
    };
    a.set_plan(tenant.id, patch).await.expect("plan");
    let refused = hookd::service::publish::publish(&b, tenant.id, vec![event_a_b()]).await;
    assert!(
        matches!(refused, Err(hookd::store::StoreError::Plan(_))),
        "{refused:?}"
    );
    close_both((a, a_handle), (b, b_handle)).await;
}

#[tokio::test]
async fn a_key_deleted_through_one_process_stops_working_in_the_others() {
    use hookd::model::Role;
    use hookd::store::Store;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("revoked").await;
    let (a, a_handle) = Store::open_postgres(&url).await.expect("a");
    let (b, b_handle) = Store::open_postgres(&url).await.expect("b");
    let listening = b.work_added();
    tokio::time::timeout(std::time::Duration::from_secs(10), listening.notified())
        .await
        .expect("b listens");
    let tenant = a.create_tenant("t".into()).await.expect("tenant");
    let (key, token) = a
        .create_key(tenant.id, "k".into(), Role::Admin)
        .await
        .expect("key");
    // b reads the key (and keeps it), twice.
    for _ in 0..2 {
        assert!(
            crate::support::authenticate(&b, &token)
                .await
                .expect("auth")
                .is_some()
        );
    }
    a.delete_key(tenant.id, key.id).await.expect("delete");
    let b_ref = &b;
    let token_ref = &token;
    crate::support::wait_until(
        "the key stops working in b",
        std::time::Duration::from_secs(10),
        || async move {
            crate::support::authenticate(b_ref, token_ref)
                .await
                .expect("auth")
                .is_none()
        },
    )
    .await;
    close_both((a, a_handle), (b, b_handle)).await;
}

#[tokio::test]
async fn one_process_at_a_time_leads_and_another_takes_over_when_it_stops() {
    use crate::support::wait_until;
    use hookd::store::Store;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("leads").await;
    let (a, a_handle) = Store::open_postgres(&url).await.expect("a");
    let (b, b_handle) = Store::open_postgres(&url).await.expect("b");
    let (a2, b2) = (a.clone(), b.clone());
    wait_until(
        "the first process leads, the second does not",
        std::time::Duration::from_secs(10),
        || {
            let (a, b) = (a2.clone(), b2.clone());
            async move { a.leads() && !b.leads() }
        },
    )
    .await;
    // The leader stops (its beats with it): the other leads once it is taken for dead.
    drop(a);
    drop(a2);
    tokio::task::spawn_blocking(move || a_handle.close())
        .await
        .expect("a closes");
    let b3 = b.clone();
    wait_until(
        "the second process leads",
        std::time::Duration::from_secs(15),
        || {
            let b = b3.clone();
            async move { b.leads() }
        },
    )
    .await;
    drop((b, b2, b3));
    tokio::task::spawn_blocking(move || b_handle.close())
        .await
        .expect("b closes");
}

/// An endpoint subscribed to every event, at a port where nothing listens.
fn catch_all_endpoint() -> hookd::model::endpoint::NewEndpoint {
    hookd::model::endpoint::NewEndpoint {
        settings: hookd::model::EndpointSettings::new(
            "e".into(),
            url::Url::parse("http://127.0.0.1:9/h").expect("url"),
            vec![hookd::model::EventPattern::All],
        ),
        secret: hookd::signing::generate_secret(),
    }
}

/// An `a.b` event with empty data.
fn event_a_b() -> hookd::model::publish::NewEvent {
    hookd::model::publish::NewEvent {
        name: hookd::model::EventName::parse("a.b").expect("name"),
        data: "{}".into(),
        idempotency_key: None,
        channels: Vec::new(),
        trace: None,
    }
}

/// Closes two stores opened on one database.
async fn close_both(
    (a, a_handle): (hookd::store::Store, hookd::store::StoreHandle),
    (b, b_handle): (hookd::store::Store, hookd::store::StoreHandle),
) {
    drop((a, b));
    tokio::task::spawn_blocking(move || {
        a_handle.close();
        b_handle.close();
    })
    .await
    .expect("close");
}

/// A client on `url`, its connection driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A cluster with a migrated `hookd` database, and a client on it.
async fn migrated() -> Option<(Postgres, tokio_postgres::Client)> {
    let pg = Postgres::start()?;
    let url = pg.database("hookd").await;
    hookd::store::postgres::migrate(&url)
        .await
        .expect("migrate");
    let client = connect(&url).await;
    Some((pg, client))
}

#[tokio::test]
async fn migrations_apply_once_when_three_processes_start_together() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("hookd").await;
    let starters: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { hookd::store::postgres::migrate(&url).await })
        })
        .collect();
    for starter in starters {
        let version = starter.await.expect("task").expect("migrate");
        assert_eq!(version, hookd::store::postgres::latest());
    }
    let client = connect(&url).await;
    let versions: Vec<i64> = client
        .query("SELECT version FROM hookd_schema", &[])
        .await
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [hookd::store::postgres::latest()]);
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for table in [
        "deliveries",
        "events",
        "list_blocks",
        "schedule_runs",
        "tenants",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    // A fourth start finds nothing to do.
    assert_eq!(
        hookd::store::postgres::migrate(&url).await.expect("again"),
        hookd::store::postgres::latest()
    );
}

#[tokio::test]
async fn deletes_are_counted_for_paging_as_in_sqlite() {
    let Some((_pg, client)) = migrated().await else {
        return;
    };
    client
        .batch_execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (1, 't', 0);
             INSERT INTO events (id, tenant_id, type, data, deliveries, created_at)
                 VALUES (70000, 1, 'a.b', '{}', 0, 0);
             INSERT INTO incoming_hooks (id, tenant_id, name, token_hash, action, created_at)
                 VALUES (1, 1, 'h', '\\x00', '{}', 0);
             INSERT INTO incoming_requests (hook_id, received_at, headers, status)
                 VALUES (1, 0, '{}', 'accepted'), (1, 0, '{}', 'accepted');
             DELETE FROM events WHERE id = 70000;",
        )
        .await
        .expect("rows");
    let counts: Vec<(i64, String, i64, i64)> = client
        .query(
            "SELECT list, part, block, n FROM list_blocks ORDER BY list",
            &[],
        )
        .await
        .expect("counts")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        counts,
        [(2, "a.b".to_owned(), 1, -1), (3, String::new(), 0, 2)],
        "a delete counts down (the writer counted the insert), requests count themselves"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_hookd_is_refused() {
    let Some((pg, client)) = migrated().await else {
        return;
    };
    let url = pg.url("hookd");
    client
        .execute("UPDATE hookd_schema SET version = version + 1", &[])
        .await
        .expect("bump");
    let refused = hookd::store::postgres::migrate(&url).await;
    assert!(
        matches!(refused, Err(hookd::store::StoreError::TooNew { .. })),
        "{refused:?}"
    );
}

/// Every row of every table in a SQLite file, table by table, in a fixed order.
fn all_rows(db: &Path) -> Vec<(String, Vec<Vec<rusqlite::types::Value>>)> {
    let c = rusqlite::Connection::open(db).expect("open");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("tables")
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    tables
        .into_iter()
        .map(|table| {
            let width = c
                .prepare(&format!("SELECT * FROM {table}"))
                .expect("select")
                .column_count();
            let order = (1..=width).map(|i| i.to_string()).collect::<Vec<_>>();
            let mut stmt = c
                .prepare(&format!(
                    "SELECT * FROM {table} ORDER BY {}",
                    order.join(", ")
                ))
                .expect("select");
            let rows = stmt
                .query_map([], |r| (0..width).map(|i| r.get(i)).collect())
                .expect("rows")
                .collect::<Result<Vec<Vec<rusqlite::types::Value>>, _>>()
                .expect("rows");
            (table, rows)
        })
        .collect()
}

/// `hookd copy --from … --to …` with the real binary: its exit status and what it printed.
fn hookd_copy(from: &str, to: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["copy", "--from", from, "--to", to])
        .env("HOOKD_LOG", "warn")
        .output()
        .expect("run hookd copy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn a_copy_round_trips_through_postgres_and_what_was_pending_is_delivered_from_it() {
    // It starts from a SQLite file and copies it to its own cluster.
    if crate::support::sqlite_only("a_copy_round_trips_through_postgres") {
        return;
    }
    use crate::support::{Receiver, Server, verify_standard, wait_until};
    use serde_json::json;
    use std::sync::atomic::Ordering;
    let Some(pg) = Postgres::start() else { return };
    // A SQLite hookd with a tenant, an endpoint whose receiver is down (its deliveries stay
    // pending, retried every second), events, an incoming hook with a request and a schedule.
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    let (receiver, healthy) = Receiver::switchable().await;
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"],
                         "retrySchedule": ["1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"],
                         "disableAfter": 0}))
        .await;
    let secret = endpoint["secret"].as_str().expect("secret").to_owned();
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(t.publish("order.created", json!({"i": i})).await);
    }
    let (_, hook) = t
        .admin
        .post(
            "/v1/incoming",
            json!({"name": "in", "action": {"type": "store"}}),
        )
        .await;
    let hook_url = format!("{}{}", server.base, hook["url"].as_str().expect("url"));
    let (status, _, _) = t
        .admin
        .with_base("")
        .raw("POST", &hook_url, Some("application/json"), b"{}".to_vec())
        .await;
    assert_eq!(status, http::StatusCode::ACCEPTED);
    let (status, _) = t
        .admin
        .post(
            "/v1/schedules",
            json!({"scheduleType": "weekly_digest", "timezone": "Europe/Paris", "format": "json",
                   "deliveryMethod": "webhook", "endpointId": endpoint["id"]}),
        )
        .await;
    assert_eq!(status, http::StatusCode::CREATED);
    receiver.wait_for(3).await;
    // The newest tenant, endpoint and event are deleted before the copy: their ids stay used.
    let doomed = server.tenant("doomed").await;
    doomed
        .endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let doomed_event = doomed.publish("order.created", json!({})).await;
    let (status, _) = server
        .operator()
        .delete(&format!("/v1/tenants/{}", doomed.id))
        .await;
    assert_eq!(status, http::StatusCode::NO_CONTENT);
    server.stop().await;
    let original = dir.path().join("hookd.db");

    // SQLite → PostgreSQL → a new SQLite file.
    let url = pg.database("copied").await;
    let (ok, said) = hookd_copy(original.to_str().expect("path"), &url);
    assert!(ok, "{said}");
    assert!(said.contains("copied"), "{said}");
    let back_dir = std::sync::Arc::new(tempfile::tempdir().expect("dir"));
    let back = back_dir.path().join("hookd.db");
    let (ok, said) = hookd_copy(&url, back.to_str().expect("path"));
    assert!(ok, "{said}");
    let (before, after) = (all_rows(&original), all_rows(&back));
    assert_eq!(
        before.iter().map(|(t, r)| (t, r.len())).collect::<Vec<_>>(),
        after.iter().map(|(t, r)| (t, r.len())).collect::<Vec<_>>()
    );
    assert_eq!(
        before, after,
        "every row of every table is equal after the round trip"
    );

    // Refused: a target that is not empty, and a source a running hookd holds.
    let (ok, said) = hookd_copy(original.to_str().expect("path"), &url);
    assert!(!ok && said.contains("not empty"), "{said}");
    let foreign = back_dir.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE notes (text TEXT)")
        .expect("a file of someone else's");
    let (ok, said) = hookd_copy(&url, foreign.to_str().expect("path"));
    assert!(!ok && said.contains("not a hookd database"), "{said}");
    let server = Server::start_in(back_dir.clone(), |_| {}).await;
    // Through two copies, the deleted event's id was not handed out again.
    let fresh = t.on(&server).publish("order.created", json!({})).await;
    assert!(
        crate::ids::number(&fresh["id"]) > crate::ids::number(&doomed_event["id"]),
        "{} reused after the copy ({} was deleted before it)",
        fresh["id"],
        doomed_event["id"]
    );
    let elsewhere = pg.database("elsewhere").await;
    let (ok, said) = hookd_copy(back.to_str().expect("path"), &elsewhere);
    assert!(!ok && said.contains("another hookd is using"), "{said}");

    // Served from the copy: the pending deliveries arrive, same ids, signed with the same secret.
    healthy.store(true, Ordering::SeqCst);
    wait_until(
        "the pending deliveries arrive",
        std::time::Duration::from_secs(30),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .iter()
                    .filter(|r| !r.header("webhook-id").is_empty())
                    .count()
                    >= 6
            }
        },
    )
    .await;
    let got = receiver.received();
    for event in &events {
        let id = event["id"].as_str().expect("id");
        let arrived = got
            .iter()
            .rev()
            .find(|r| r.header("webhook-id") == id)
            .expect("the event arrived again");
        assert!(
            verify_standard(&secret, arrived),
            "signed with the copied secret"
        );
    }
    let (_, stats) = t
        .admin
        .with_base(&server.base)
        .get(&format!(
            "/v1/endpoints/{}/stats",
            endpoint["id"].as_str().expect("id")
        ))
        .await;
    // The three copied deliveries, and maybe already the fresh event's (published above while
    // the receiver was down, retried a second later): at least three.
    wait_until(
        "the copy's deliveries succeed",
        std::time::Duration::from_secs(30),
        || {
            let api = t.admin.with_base(&server.base);
            let path = format!(
                "/v1/endpoints/{}/stats",
                endpoint["id"].as_str().expect("id")
            );
            async move { api.get(&path).await.1["succeeded"].as_u64() >= Some(3) }
        },
    )
    .await;
    assert_eq!(stats["failed"], 0, "{stats}");
    server.stop().await;
}

#[test]
fn the_store_statements_answer_the_same_through_the_adapter_on_both_databases() {
    use hookd::db::sql::{Conn, Value};
    let Some(pg) = Postgres::start() else { return };
    // Both schemas, migrated by hookd itself.
    let url = pg.url("adapter");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        connect(&pg.url("postgres"))
            .await
            .batch_execute("CREATE DATABASE adapter")
            .await
            .expect("database");
        hookd::store::postgres::migrate(&url)
            .await
            .expect("migrate");
    });
    drop(runtime);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("hookd.db");
    let (store, handle) =
        hookd::store::Store::open(&file, hookd::config::Durability::Full).expect("open");
    drop(store);
    handle.close();
    let sqlite = rusqlite::Connection::open(&file).expect("sqlite");
    let client = postgres::Client::connect(&url, postgres::NoTls).expect("postgres");

    // Statements as the SQLite store writes them (a boolean answer, a `?` inside a literal).
    let run = |c: &Conn<'_>| {
        let mut tenants = Vec::new();
        for name in ["acme", "globex"] {
            let id = c
                .query_opt(
                    "INSERT INTO tenants (name, created_at) VALUES (?1, ?2) RETURNING id",
                    &[name.into(), 1_700_000_000_000i64.into()],
                    |r| r.get::<i64>(0),
                )
                .expect("insert")
                .expect("an id");
            tenants.push(id);
        }
        c.execute(
            "INSERT INTO api_keys (tenant_id, name, role, secret_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                tenants[0].into(),
                "ci".into(),
                "admin".into(),
                Value::Blob(vec![7; 32].into()),
                0.into(),
            ],
        )
        .expect("key");
        let changed = c
            .execute(
                "UPDATE tenants SET name = ?2 WHERE id = ?1 AND name <> '?'",
                &[tenants[1].into(), "initech".into()],
            )
            .expect("update");
        let rows = c
            .query(
                "SELECT t.id, t.name, k.role, k.secret_hash, k.id IS NULL
                 FROM tenants t LEFT JOIN api_keys k ON k.tenant_id = t.id
                 WHERE t.created_at >= ?1 ORDER BY t.id",
                &[0.into()],
                |r| {
                    Ok((
                        r.get::<i64>(0)?,
                        r.get::<String>(1)?,
                        r.get::<Option<String>>(2)?,
                        r.value(3)?,
                        r.get::<i64>(4)?,
                    ))
                },
            )
            .expect("select");
        (changed, rows)
    };
    let on_sqlite = run(&Conn::Sqlite(&sqlite));
    let mut client = hookd::db::sql::PgClient::new(client);
    let on_postgres = run(&Conn::postgres(&mut client));
    assert_eq!(on_sqlite.0, 1);
    assert_eq!(on_sqlite.1.len(), 2);
    assert_eq!(on_sqlite, on_postgres);
}

/// What the tenant side of the store answers to one fixed sequence of calls, with times left
/// out (they differ between two runs).
async fn tenant_story(store: &hookd::store::Store) -> Vec<String> {
    use hookd::model::auth::Caller;
    use hookd::model::event::EventType;
    use hookd::model::{PageRequest, Role};
    use hookd::store::StoreError;
    let page = PageRequest {
        number: 0,
        size: 10,
    };
    let mut said = Vec::new();
    let (_, printed) = store.operator_token().await.expect("operator token");
    let (_, again) = store.operator_token().await.expect("operator token");
    said.push(format!(
        "token printed once: {} {}",
        printed.is_some(),
        again.is_none()
    ));
    let acme = store.create_tenant("acme".into()).await.expect("tenant");
    let globex = store.create_tenant("globex".into()).await.expect("tenant");
    said.push(format!("tenants {:?} {:?}", acme.id, globex.id));
    let (key, token) = store
        .create_key(acme.id, "ci".into(), Role::Publisher)
        .await
        .expect("key");
    said.push(format!("key {:?} {:?} {}", key.id, key.role, key.name));
    let caller = crate::support::authenticate(store, &token)
        .await
        .expect("authenticate");
    said.push(format!(
        "authenticated as the tenant: {}",
        matches!(caller, Some(Caller::Tenant { tenant_id, .. }) if tenant_id == acme.id)
    ));
    let wrong = format!("{}x", &token[..token.len() - 1]);
    said.push(format!(
        "a wrong secret: {:?}",
        crate::support::authenticate(store, &wrong)
            .await
            .expect("check")
    ));
    let tenants = store.list_tenants(page).await.expect("list");
    said.push(format!(
        "tenants listed {:?} of {}",
        tenants.content.iter().map(|t| &t.name).collect::<Vec<_>>(),
        tenants.total_elements
    ));
    let keys = store.list_keys(acme.id, page).await.expect("keys");
    said.push(format!(
        "keys {} {:?}",
        keys.total_elements,
        keys.content.iter().map(|k| k.id).collect::<Vec<_>>()
    ));
    let kind = EventType {
        name: "order.created".into(),
        category: Some("orders".into()),
        description: None,
    };
    store
        .create_event_type(acme.id, kind.clone())
        .await
        .expect("event type");
    let twice = store.create_event_type(acme.id, kind).await;
    said.push(format!(
        "registered twice: {}",
        matches!(twice, Err(StoreError::Conflict(_)))
    ));
    said.push(format!(
        "{:?}",
        store
            .list_event_types(acme.id, page)
            .await
            .expect("types")
            .content
    ));
    store.delete_key(acme.id, key.id).await.expect("delete key");
    said.push(format!(
        "after delete: {:?}",
        crate::support::authenticate(store, &token)
            .await
            .expect("check")
    ));
    store.delete_tenant(globex.id).await.expect("delete tenant");
    said.push(format!(
        "gone: {}",
        matches!(store.get_tenant(globex.id).await, Err(StoreError::NotFound))
    ));
    said
}

/// A SQLite store and a PostgreSQL store side by side, both fresh, for comparing answers.
struct Twins {
    sqlite: hookd::store::Store,
    postgres: hookd::store::Store,
    handles: (hookd::store::StoreHandle, hookd::store::StoreHandle),
    /// The SQLite file.
    file: std::path::PathBuf,
    /// The PostgreSQL database's URL.
    url: String,
    _dir: tempfile::TempDir,
    _pg: Postgres,
}

impl Twins {
    async fn start(database: &str) -> Option<Self> {
        let pg = Postgres::start()?;
        let url = pg.database(database).await;
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("hookd.db");
        let (sqlite, sqlite_handle) =
            hookd::store::Store::open(&file, hookd::config::Durability::Full).expect("sqlite");
        let (postgres, postgres_handle) = hookd::store::Store::open_postgres(&url)
            .await
            .expect("postgres");
        Some(Self {
            sqlite,
            postgres,
            handles: (sqlite_handle, postgres_handle),
            file,
            url,
            _dir: dir,
            _pg: pg,
        })
    }

    /// Stops both writers once their queued writes are committed.
    fn close(self) {
        drop((self.sqlite, self.postgres));
        self.handles.0.close();
        self.handles.1.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_side_of_the_store_answers_the_same_on_postgres_as_on_sqlite() {
    let Some(twins) = Twins::start("store").await else {
        return;
    };
    let on_sqlite = tenant_story(&twins.sqlite).await;
    let on_postgres = tenant_story(&twins.postgres).await;
    assert_eq!(on_sqlite.len(), 11);
    assert_eq!(on_sqlite, on_postgres);
    twins.close();
}

/// Rows as a hookd that ran a while would have left them: a tenant's endpoint, old and new
/// events, and their deliveries in every status (literal SQL that both databases take).
fn retention_rows(tenant: i64) -> String {
    let mut sql = format!(
        "INSERT INTO endpoints (id, tenant_id, name, url, events, secret, signature_scheme,
             format, headers, retry_schedule, disable_after, timeout_ms, ordering, is_active,
             created_at, updated_at, succeeded, failed, pending)
         VALUES (1, {tenant}, 'e', 'http://127.0.0.1:9/', '[\"*\"]', 'whsec_x', 'standard',
             'json', '{{}}', '[]', 0, 1000, 'none', 1, 0, 0, 4, 2, 2);"
    );
    // Events 1–6 old (created at 1000), 7–8 new; deliveries in a fixed pattern of statuses.
    for id in 1..=8i64 {
        let at: i64 = if id <= 6 { 1_000 } else { 4_000_000_000_000 };
        let status = [1, 1, 2, 0, 1, 2, 1, 0][(id - 1) as usize];
        sql.push_str(&format!(
            "INSERT INTO events (id, tenant_id, type, data, deliveries, created_at)
                 VALUES ({id}, {tenant}, 'a.b', '{{}}', 1, {at});
             INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts, created_at)
                 VALUES ({id}, {id}, 1, {status}, 1, {at});"
        ));
    }
    sql
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_the_same_rows_on_postgres_as_on_sqlite() {
    let Some(twins) = Twins::start("retention").await else {
        return;
    };
    let (file, url) = (&twins.file, &twins.url);
    let tenant = twins
        .sqlite
        .create_tenant("t".into())
        .await
        .expect("tenant");
    twins
        .postgres
        .create_tenant("t".into())
        .await
        .expect("tenant");
    rusqlite::Connection::open(file)
        .expect("open")
        .execute_batch(&retention_rows(tenant.id.0))
        .expect("rows");
    let client = connect(url).await;
    client
        .batch_execute(&retention_rows(tenant.id.0))
        .await
        .expect("rows");
    // Succeeded deliveries go after 1 s of age here, failed ones never (a cut before them).
    for store in [&twins.sqlite, &twins.postgres] {
        while store.prune(5_000, 500).await.expect("prune") != Default::default() {}
    }
    let left_sqlite = {
        let c = rusqlite::Connection::open(file).expect("open");
        let ids = |table: &str| -> Vec<i64> {
            c.prepare(&format!("SELECT id FROM {table} ORDER BY id"))
                .expect("select")
                .query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("ids")
        };
        let counters: (i64, i64) = c
            .query_row("SELECT succeeded, failed FROM endpoints", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("counters");
        (ids("deliveries"), ids("events"), counters)
    };
    let mut left_postgres = (Vec::new(), Vec::new(), (0, 0));
    for (table, into) in [("deliveries", 0), ("events", 1)] {
        let ids: Vec<i64> = client
            .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
            .await
            .expect("ids")
            .iter()
            .map(|r| r.get(0))
            .collect();
        if into == 0 {
            left_postgres.0 = ids;
        } else {
            left_postgres.1 = ids;
        }
    }
    // The counters as they read: the endpoint's row and what each process added.
    let row = client
        .query_one(
            "SELECT CAST(e.succeeded + coalesce(sum(k.succeeded), 0) AS BIGINT),
                    CAST(e.failed + coalesce(sum(k.failed), 0) AS BIGINT)
             FROM endpoints e LEFT JOIN endpoint_counts k ON k.endpoint_id = e.id
             GROUP BY e.id",
            &[],
        )
        .await
        .expect("counters");
    left_postgres.2 = (row.get(0), row.get(1));
    assert_eq!(
        left_sqlite,
        (vec![3, 4, 6, 7, 8], vec![3, 4, 6, 7, 8], (1, 2)),
        "old succeeded deliveries and their events go; failed, pending and new ones stay"
    );
    assert_eq!(left_sqlite, left_postgres);
    twins.close();
}

/// Two processes on one database, with a tenant whose one endpoint has four deliveries
/// pending.
struct TwoProcesses {
    a: hookd::store::Store,
    a_handle: hookd::store::StoreHandle,
    b: hookd::store::Store,
    b_handle: hookd::store::StoreHandle,
    tenant: hookd::model::Tenant,
    endpoint: hookd::model::Endpoint,
}

impl TwoProcesses {
    async fn with_four_pending(url: &str) -> Self {
        use hookd::store::Store;
        let (a, a_handle) = Store::open_postgres(url).await.expect("a");
        let (b, b_handle) = Store::open_postgres(url).await.expect("b");
        let tenant = a.create_tenant("t".into()).await.expect("tenant");
        let endpoint = a
            .create_endpoint(tenant.id, catch_all_endpoint())
            .await
            .expect("endpoint");
        let events = (0..4).map(|_| event_a_b()).collect();
        hookd::service::publish::publish(&a, tenant.id, events)
            .await
            .expect("publish");
        Self {
            a,
            a_handle,
            b,
            b_handle,
            tenant,
            endpoint,
        }
    }
}

#[tokio::test]
async fn a_claim_counts_what_another_process_has_in_flight_and_updates_rows_in_place() {
    use hookd::model::claim::ClaimRequest;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("in_flight").await;
    let TwoProcesses {
        a,
        a_handle,
        b,
        b_handle,
        endpoint,
        ..
    } = TwoProcesses::with_four_pending(&url).await;
    let client = connect(&url).await;
    let two_at_most = || ClaimRequest {
        now: hookd::model::now_ms(),
        limit: 10,
        per_endpoint: 2,
        unlisted_slots: 2,
        busy: Vec::new(),
        lease_margin_ms: 30_000,
    };
    let held = a.claim(two_at_most()).await.expect("a claims");
    assert_eq!(held.len(), 2, "a takes the endpoint's two slots");

    // A's claim reported its two attempts in flight; b's claim then finds no room.
    let reported = format!("{{\"{}\":2}}", endpoint.id.0);
    let beat = async {
        loop {
            let rows = client
                .query("SELECT in_flight FROM hookd_processes", &[])
                .await
                .expect("processes");
            if rows.iter().any(|r| r.get::<_, String>(0) == reported) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), beat)
        .await
        .expect("a reported what it has in flight");
    let none = b.claim(two_at_most()).await.expect("b claims");
    assert!(none.is_empty(), "b counts a's attempts: {none:?}");

    // The claim moved no indexed column, so its updates were made in place.
    let in_place = async {
        loop {
            let hot: i64 = client
                .query_one(
                    "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'deliveries'",
                    &[],
                )
                .await
                .expect("statistics")
                .get(0);
            if hot >= 2 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), in_place)
        .await
        .expect("the claim's two updates were HOT");
    drop(held);
    close_both((a, a_handle), (b, b_handle)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_count_an_endpoints_results_in_rows_of_their_own_and_never_wait_on_its_row() {
    use hookd::delivery::after_attempt;
    use hookd::model::claim::ClaimRequest;
    use hookd::model::now_ms;
    use hookd::model::series::Window;
    use hookd::store::Store;
    use std::time::Duration;
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database("counts").await;
    let TwoProcesses {
        a,
        a_handle,
        b,
        b_handle,
        tenant,
        endpoint,
    } = TwoProcesses::with_four_pending(&url).await;
    let client = connect(&url).await;
    let two = || ClaimRequest {
        now: now_ms(),
        limit: 2,
        per_endpoint: 4,
        unlisted_slots: 4,
        busy: Vec::new(),
        lease_margin_ms: 30_000,
    };
    let from_a = a.claim(two()).await.expect("a claims");
    let from_b = b.claim(two()).await.expect("b claims");
    assert_eq!(
        (from_a.len(), from_b.len()),
        (2, 2),
        "each process claims two"
    );

    // Another transaction holds the endpoint's row (as a batch bumping shared counters did
    // until its commit): both processes still record their results.
    let holder = connect(&url).await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .execute(
            "UPDATE endpoints SET updated_at = updated_at WHERE id = $1",
            &[&endpoint.id.0],
        )
        .await
        .expect("hold the endpoint's row");
    let ok = |c| (c, crate::support::ok_outcome(now_ms()));
    let done_a = from_a.into_iter().map(ok).collect();
    let done_b = from_b.into_iter().map(ok).collect();
    let both = async {
        tokio::join!(
            hookd::service::record::record(&a, done_a, after_attempt),
            hookd::service::record::record(&b, done_b, after_attempt),
        )
    };
    let (ra, rb) = tokio::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("results are recorded while the endpoint's row is held");
    assert_eq!(
        ra.expect("a records").len() + rb.expect("b records").len(),
        4
    );
    holder.batch_execute("ROLLBACK").await.expect("rollback");

    // What both processes counted: the endpoint's counters, its attempts over the day, the
    // tenant's events today.
    let counted = |store: Store| async move {
        let e = store
            .get_endpoint(tenant.id, endpoint.id)
            .await
            .expect("endpoint");
        let day = store
            .endpoint_series(tenant.id, endpoint.id, Window::Day, now_ms())
            .await
            .expect("series");
        let usage = store.usage(tenant.id).await.expect("usage");
        let attempts: u64 = day.iter().map(|p| p.succeeded).sum();
        (
            e.counters.succeeded,
            e.counters.pending,
            attempts,
            usage.events_today,
        )
    };
    assert_eq!(counted(a.clone()).await, (4, 0, 4, 4), "exact, read from a");
    assert_eq!(counted(b.clone()).await, (4, 0, 4, 4), "exact, read from b");
    let rows = |sql: &'static str| async {
        client
            .query_one(sql, &[])
            .await
            .expect("rows")
            .get::<_, i64>(0)
    };
    let endpoint_rows = "SELECT count(*) FROM endpoint_counts";
    // The rows of writers no longer in the process table, in the four counted tables.
    let rows_of_gone = "SELECT
        (SELECT count(*) FROM endpoint_counts
         WHERE writer NOT IN (SELECT id FROM hookd_processes))
        + (SELECT count(*) FROM list_blocks
           WHERE writer <> 0 AND writer NOT IN (SELECT id FROM hookd_processes))
        + (SELECT count(*) FROM endpoint_hours
           WHERE writer <> 0 AND writer NOT IN (SELECT id FROM hookd_processes))
        + (SELECT count(*) FROM tenant_usage
           WHERE writer <> 0 AND writer NOT IN (SELECT id FROM hookd_processes))";
    assert_eq!(rows(endpoint_rows).await, 2, "one row per process");

    // b stops; once a live process has found it gone, its rows fold into the shared ones.
    drop(b);
    b_handle.close();
    let gone = async {
        while rows("SELECT count(*) FROM hookd_processes").await != 1 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), gone)
        .await
        .expect("a found b gone");
    let left_by_b = rows(rows_of_gone).await;
    assert!(
        left_by_b >= 3,
        "b's counter, hour and block rows: {left_by_b}"
    );
    let folded = a.fold_counts().await.expect("fold");
    assert_eq!(folded as i64, left_by_b, "b's rows fold");
    assert_eq!(rows(rows_of_gone).await, 0);
    assert_eq!(a.fold_counts().await.expect("fold"), 0, "a's own rows stay");
    assert_eq!(rows(endpoint_rows).await, 1);
    assert_eq!(
        counted(a.clone()).await,
        (4, 0, 4, 4),
        "the same counts after the fold"
    );
    drop(a);
    a_handle.close();

    // Copied to SQLite, a's rows are folded by the copy, and the counts read the same there.
    let a_rows = "SELECT (SELECT count(*) FROM endpoint_counts)
        + (SELECT count(*) FROM list_blocks WHERE writer <> 0)
        + (SELECT count(*) FROM endpoint_hours WHERE writer <> 0)
        + (SELECT count(*) FROM tenant_usage WHERE writer <> 0)";
    assert!(rows(a_rows).await >= 4, "a's rows of the four counts");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("hookd.db");
    let (ok, said) = hookd_copy(&url, file.to_str().expect("path"));
    assert!(ok, "{said}");
    let processes_rows = || -> i64 {
        rusqlite::Connection::open(&file)
            .expect("open")
            .query_row(a_rows, [], |r| r.get(0))
            .expect("rows")
    };
    assert_eq!(processes_rows(), 0, "the copy folded a's rows");
    let (sqlite, handle) =
        Store::open(&file, hookd::config::Durability::Normal).expect("the copy opens");
    assert_eq!(
        counted(sqlite.clone()).await,
        (4, 0, 4, 4),
        "exact on the copy"
    );
    drop(sqlite);
    handle.close();
}
