//! The store: the only module that holds SQL. One SQLite file; one writer thread applies every
//! write in batched transactions (`writer.rs`); reads go through a pool of read-only
//! connections. Its public methods speak in model types, so that another store (PostgreSQL,
//! many nodes) can offer the same interface later.

mod claims;
pub mod copy;
mod deliveries;
mod endpoints;
mod error;
mod events;
mod incoming;
mod integrations;
mod key_cache;
mod ledger;
mod location;
mod maintenance;
mod migrate;
mod paging;
mod plans;
mod portal;
pub mod postgres;
mod processes;
mod publish;
mod replay;
mod retention;
mod rows;
mod runs;
mod schedules;
mod series;
pub mod sql;
mod subscribers;
mod tenants;
mod usage;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

pub use claims::{Claim, ClaimRequest, ClaimedEvent, EndpointLoad};
pub use deliveries::{Recorded, ResultsApplied, ResultsPlan};
pub use endpoints::{EndpointPatch, NewEndpoint};
pub use error::StoreError;
pub use events::{EventDetail, StoredEvent};
pub use integrations::default_events;
pub use location::check_location;
pub use maintenance::{CheckReport, backup, check};
pub use portal::PortalLink;
pub use retention::Pruned;
pub use runs::{EmailAfter, EmailJob, NewRun, Period, PeriodEvent, RunCommit, RunOutput};
pub use schedules::SchedulePatch;
pub use tenants::EventType;
pub use usage::Usage;

use crate::config::Durability;
use writer::{WriteHealth, Writer, WriterDb};

/// Prepared statements kept per connection: more than the store has distinct statements, so
/// none is parsed twice.
const STATEMENT_CACHE: usize = 128;

/// The longest wait between tries to reach PostgreSQL again (the writer, the listener): a
/// database that returns is in use again within this.
pub(crate) const RECONNECT_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Tables whose `id` the database generates and hookd shows (`tnt_`, `evt_`, `dlv_` …): never
/// handed out twice, on either store.
pub(crate) const ID_TABLES: &[&str] = &[
    "tenants",
    "api_keys",
    "portal_links",
    "endpoints",
    "events",
    "deliveries",
    "incoming_hooks",
    "incoming_requests",
    "schedules",
    "schedule_runs",
];

/// How long a connection waits on a lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The open database: a write queue and a read pool.
#[derive(Clone)]
pub struct Store {
    writer: Writer,
    /// The audiences publishes are planned from (see [`Store::audience`]).
    audiences: Arc<subscribers::Audiences>,
    keys: Arc<key_cache::KeyCache>,
    reads: Reads,
    wake: Arc<Notify>,
    leases: Arc<LeaseTokens>,
    health: WriteHealth,
    /// Whether this process runs the duties one process runs at a time (always, on SQLite).
    leads: Arc<AtomicBool>,
    /// This process's attempts in flight per endpoint after its latest claim, as JSON: each
    /// claim reports it to the other processes' claims, and the heartbeat again (PostgreSQL).
    in_flight: Arc<std::sync::Mutex<String>>,
}

/// Fencing tokens for leases, drawn outside any transaction so a rolled-back claim never
/// hands its token out again. One process owns a file (the lock), so tokens only need to
/// grow within it; starting from the clock keeps them growing across restarts too.
struct LeaseTokens(AtomicI64);

impl LeaseTokens {
    fn starting_now() -> Self {
        // Room for a million claims per millisecond before the next start's tokens.
        Self(AtomicI64::new(crate::model::now_ms() << 20))
    }

    /// The tokens of PostgreSQL process `id` (see [`processes::LEASE_BITS`]): tokens from
    /// one process's range are drawn by it alone, so they only need to grow within it.
    fn for_process(id: i64) -> Self {
        Self(AtomicI64::new(processes::lease_range(id).0 + 1))
    }

    fn next(&self) -> i64 {
        self.0.fetch_add(1, AtomicOrdering::Relaxed)
    }
}

/// Takes the lock file beside a database file (`<file>.lock`), as a serving hookd does: held
/// until the returned file is dropped; refused while another process holds it.
fn lock(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let mut options = std::fs::File::options();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let lock = options.open(&lock_path).map_err(|e| StoreError::LockFile {
        path: lock_path.display().to_string(),
        source: Arc::new(e),
    })?;
    // A lock is shared by every process holding its open file, and a child process forked
    // by this one holds it from the fork until its exec closes it: a lock released moments
    // ago may be held that briefly still. So a refusal is retried for a moment.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => {
                return Err(StoreError::Locked {
                    path: path.display().to_string(),
                    lock: lock_path.display().to_string(),
                });
            }
        }
    }
}

/// How long a held lock file is tried again before the file is reported in use.
const LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// Creates `path` empty and readable by its owner alone, unless it exists. SQLite gives the
/// files it makes beside a database (`-wal`, `-shm`) the database file's mode, so they are
/// private too: they hold secrets (signing secrets, tokens' hashes, sealed credentials).
pub(crate) fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::File::options();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::CreateFile {
            path: path.display().to_string(),
            source: Arc::new(e),
        }),
    }
}

/// Keeps the writer thread joinable: [`StoreHandle::close`] waits for queued writes to commit.
pub struct StoreHandle {
    thread: std::thread::JoinHandle<()>,
    _lock: Option<std::fs::File>,
    listener: Option<Listener>,
    heartbeat: Option<Listener>,
}

impl StoreHandle {
    /// Waits for the writer to finish once every [`Store`] clone is dropped.
    pub fn close(self) {
        drop(self.listener);
        drop(self.heartbeat);
        let _ = self.thread.join();
    }
}

/// A PostgreSQL background task (the listener, the heartbeat), stopped with the store's
/// handle.
struct Listener(tokio::task::JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`) rather than
/// a SQLite file.
pub fn is_postgres_url(db: &Path) -> bool {
    let db = db.to_string_lossy();
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

impl Store {
    /// Opens the database `db` names: a PostgreSQL URL, or else a SQLite file.
    pub async fn open_any(
        db: &Path,
        durability: Durability,
    ) -> Result<(Self, StoreHandle), StoreError> {
        if is_postgres_url(db) {
            Self::open_postgres(&db.to_string_lossy()).await
        } else {
            Self::open(db, durability)
        }
    }

    /// Opens (creating and migrating) the database file and starts the writer.
    pub fn open(path: &Path, durability: Durability) -> Result<(Self, StoreHandle), StoreError> {
        check_location(path)?;
        // One hookd per file: a second one would release the first one's leases at start.
        let lock = lock(path)?;
        create_private(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA journal_size_limit = 67108864;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -16000;",
        )?;
        conn.execute_batch(match durability {
            Durability::Full => "PRAGMA synchronous = FULL;",
            Durability::Normal => "PRAGMA synchronous = NORMAL;",
        })?;
        migrate::migrate(&conn)?;
        claims::release_leases(&sql::Conn::Sqlite(&conn))?;

        let manager = SqliteConnectionManager::file(path)
            .with_flags(
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .with_init(|c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                c.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -4000;")
            });
        let reads = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;

        Self::start(WriterDb::Sqlite(conn), Reads::Sqlite(reads), Some(lock))
    }

    /// Opens a PostgreSQL database (migrating it) with its writer and reads.
    /// Several processes may share it: each listens for the others' new work.
    pub async fn open_postgres(url: &str) -> Result<(Self, StoreHandle), StoreError> {
        postgres::migrate(url).await?;
        let reads = Reads::Postgres(Arc::new(PgReads::new(url)?));
        let (store, mut handle) = Self::start(WriterDb::Postgres(url.to_owned()), reads, None)?;
        // This process's id: its lease tokens carry it, and its heartbeat keeps them alive.
        let process = processes::register(url).await?;
        let mut store = store;
        store.leases = Arc::new(LeaseTokens::for_process(process));
        // Until its first beat shows whether it does.
        store.leads = Arc::new(AtomicBool::new(false));
        handle.listener = Some(Listener(tokio::spawn(postgres::listen(
            url.to_owned(),
            store.wake.clone(),
            store.keys.clone(),
        ))));
        handle.heartbeat = Some(Listener(tokio::spawn(processes::beat(
            url.to_owned(),
            process,
            store.wake.clone(),
            store.leads.clone(),
            store.in_flight.clone(),
        ))));
        Ok((store, handle))
    }

    /// Whether this process runs housekeeping and fires schedules: on PostgreSQL, one live
    /// process at a time does (see `processes`); on SQLite, the one process does.
    pub fn leads(&self) -> bool {
        self.leads.load(AtomicOrdering::Relaxed)
    }

    /// Whether the store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.reads, Reads::Postgres(_))
    }

    /// Runs `f` in a transaction of its own (PostgreSQL only: outside the writer's batches),
    /// committed before it answers.
    async fn in_transaction<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.read(move |c| {
            c.execute("BEGIN", &[])?;
            match f(c) {
                Ok(value) => {
                    c.execute("COMMIT", &[])?;
                    Ok(value)
                }
                Err(e) => {
                    let _ = c.execute("ROLLBACK", &[]);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Starts the writer on `db` and puts the store together.
    fn start(
        db: WriterDb,
        reads: Reads,
        lock: Option<std::fs::File>,
    ) -> Result<(Self, StoreHandle), StoreError> {
        let wake = Arc::new(Notify::new());
        let health = WriteHealth::default();
        // On PostgreSQL keys are kept only while the listener hears other processes' deletes.
        let keys = match &db {
            WriterDb::Postgres(_) => key_cache::KeyCache::paused(),
            WriterDb::Sqlite(_) => key_cache::KeyCache::default(),
        };
        let audiences = Arc::new(subscribers::Audiences::default());
        let (writer, thread) = Writer::start(db, wake.clone(), health.clone(), audiences.clone())?;
        let store = Self {
            writer,
            audiences,
            keys: Arc::new(keys),
            reads,
            wake,
            health,
            leases: Arc::new(LeaseTokens::starting_now()),
            leads: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::new(std::sync::Mutex::new("{}".to_owned())),
        };
        Ok((
            store,
            StoreHandle {
                thread,
                _lock: lock,
                listener: None,
                heartbeat: None,
            },
        ))
    }

    /// Notified after every commit that made deliveries due.
    pub fn work_added(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Why writes are failing for want of storage (disk full, read-only, I/O errors): the
    /// latest such failure, for 30 s after it happened.
    pub fn write_failure(&self) -> Option<String> {
        self.health.failure()
    }

    /// Checks that a write commits now; the health route's probe.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        self.writer
            .write(|c, _| {
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('health_probe', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[crate::model::now_ms().to_string().into()],
                )?;
                Ok(())
            })
            .await
    }

    /// Runs a read on either database (in a blocking task).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let reads = self.reads.clone();
        tokio::task::spawn_blocking(move || match reads {
            Reads::Sqlite(pool) => {
                let conn = pool.get()?;
                f(&sql::Conn::Sqlite(&conn))
            }
            Reads::Postgres(pg) => pg.run(f),
        })
        .await
        .map_err(|e| StoreError::ReadTask(Arc::new(e)))?
    }
}

/// Where reads run.
#[derive(Clone)]
enum Reads {
    /// Read-only SQLite connections.
    Sqlite(r2d2::Pool<SqliteConnectionManager>),
    /// PostgreSQL clients, opened as reads need them.
    Postgres(Arc<PgReads>),
}

/// At most this many PostgreSQL connections per process for reads and claims (the writer and
/// the listener hold one each besides): several processes must fit the server's
/// `max_connections`.
const PG_READ_CONNECTIONS: u32 = 16;

/// PostgreSQL clients for reads and claims: an r2d2 pool, as on the SQLite side, opened as
/// reads need them.
struct PgReads(Option<r2d2::Pool<sql::PgManager>>);

impl PgReads {
    fn new(url: &str) -> Result<Self, StoreError> {
        let mut config: ::postgres::Config =
            url.parse().map_err(|e| StoreError::Postgres(Arc::new(e)))?;
        // Statements stay prepared on pooled clients, but each run is planned for its values:
        // a generic plan of the claim (per-endpoint rooms, LIMIT from a subquery) is far slower.
        config.options("-c plan_cache_mode=force_custom_plan");
        let manager = sql::PgManager(r2d2_postgres::PostgresConnectionManager::new(
            config,
            ::postgres::NoTls,
        ));
        let pool = r2d2::Pool::builder()
            .max_size(PG_READ_CONNECTIONS)
            .min_idle(Some(0))
            .connection_timeout(BUSY_TIMEOUT)
            .build_unchecked(manager);
        Ok(Self(Some(pool)))
    }

    /// Runs `f` on a pooled client (call from a blocking thread).
    fn run<T>(
        &self,
        f: impl FnOnce(&sql::Conn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pool = self.0.as_ref().ok_or(StoreError::WriterStopped)?;
        let mut client = pool.get()?;
        f(&sql::Conn::postgres(&mut client))
    }
}

impl Drop for PgReads {
    /// Closes the pool's clients on a thread of their own: the synchronous client blocks when
    /// it closes, which it may not do on the async runtime that drops the store.
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

/// Converts a count from SQLite (never negative) to `u64`.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
