//! The store: the only module that holds SQL. One SQLite file; one writer thread applies every
//! write in batched transactions (`writer.rs`); reads go through a pool of read-only
//! connections. Its public methods speak in model types, so that another store (PostgreSQL,
//! many nodes) can offer the same interface later.

mod claims;
pub mod copy;
mod deliveries;
mod endpoints;
mod events;
mod incoming;
mod integrations;
mod key_cache;
mod ledger;
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
pub mod sql;
mod staged;
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
pub use deliveries::Recorded;
pub use endpoints::{EndpointPatch, NewEndpoint};
pub use events::{EventDetail, StoredEvent};
pub use integrations::default_events;
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

/// What went wrong in the store. Causes are kept as sources (shared, so one failed commit
/// can answer every operation of its batch).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// SQLite answered a statement with an error.
    #[error("database error")]
    Database(#[source] Arc<rusqlite::Error>),
    /// The database cannot take writes now (disk full, read-only, I/O error, locked by another
    /// process); nothing was written.
    #[error("storage unavailable")]
    Unavailable(#[source] Arc<rusqlite::Error>),
    /// PostgreSQL answered with an error, or could not be reached.
    #[error("PostgreSQL error")]
    Postgres(#[source] Arc<tokio_postgres::Error>),
    /// No read connection could be had from the pool.
    #[error("no read connection")]
    Pool(#[source] Arc<r2d2::Error>),
    /// A read's task ended without an answer.
    #[error("a read task failed")]
    ReadTask(#[source] Arc<tokio::task::JoinError>),
    /// The writer thread is not running (shutting down, or it could not start).
    #[error("the writer has stopped")]
    WriterStopped,
    /// The writer thread could not be started.
    #[error("cannot start the writer thread")]
    WriterStart(#[source] Arc<std::io::Error>),
    /// Another operation in the same batch failed and the whole batch was rolled back.
    #[error("the write was rolled back with its batch")]
    RolledBack,
    /// A publish was planned again and again while the tenant's endpoints, plan or schedules
    /// kept changing under it; nothing was written.
    #[error("the tenant's subscriptions changed while its events were planned")]
    StalePlan,
    /// The file is used by another hookd (it holds the lock file).
    #[error("another hookd is using {path} (it holds {lock})")]
    Locked {
        /// The database file.
        path: String,
        /// The lock file.
        lock: String,
    },
    /// The lock file beside the database cannot be opened.
    #[error("cannot open the lock file {path}")]
    LockFile {
        /// The lock file.
        path: String,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A file hookd makes (the database, a backup) cannot be created.
    #[error("cannot create {path}")]
    CreateFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A stored value hookd cannot read back: an error, never a guess.
    #[error("stored {what} cannot be read: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The row does not exist (or belongs to another tenant).
    #[error("not found")]
    NotFound,
    /// A row the write refers to does not exist (or belongs to another tenant); the sentence
    /// says which.
    #[error("{0}")]
    Missing(String),
    /// The write conflicts with what is stored; the sentence says how.
    #[error("{0}")]
    Conflict(String),
    /// The change would leave the row invalid; the sentence says why.
    #[error(transparent)]
    Invalid(#[from] crate::model::Invalid),
    /// The tenant's plan does not allow the write; nothing was written.
    #[error(transparent)]
    Plan(#[from] crate::model::plan::PlanRefusal),
    /// The file was written by a newer hookd.
    #[error(
        "the database was written by a newer hookd (schema version {found}; this build knows up to {known}); upgrade hookd or use another file"
    )]
    TooNew {
        /// The file's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
}

impl StoreError {
    /// Whether the storage cannot serve now (the caller may try again later), as opposed to
    /// a fault in hookd or in the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_)
            | Self::Pool(_)
            | Self::WriterStopped
            | Self::RolledBack
            | Self::StalePlan
            | Self::Locked { .. }
            | Self::LockFile { .. } => true,
            Self::Postgres(e) => postgres_unavailable(e),
            _ => false,
        }
    }

    /// Whether the write lost to another writer's (a deadlock or serialization failure on
    /// PostgreSQL): nothing of it was written, and the same write may well succeed at once.
    pub fn lost_to_another_writer(&self) -> bool {
        match self {
            Self::Postgres(e) => e.as_db_error().is_some_and(|db| {
                let code = db.code();
                *code == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                    || *code == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            }),
            _ => false,
        }
    }

    /// Whether the storage itself failed (disk full, I/O error, read-only file), as opposed to
    /// being busy for a moment under another process's lock.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            Self::Unavailable(e) => !matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    /// A hookd event name that does not parse: a fault in hookd, reported as stored data.
    pub(crate) fn invalid_name(detail: crate::model::Invalid) -> Self {
        Self::Corrupt {
            what: "event name",
            detail: detail.0,
        }
    }
}

/// Whether a PostgreSQL error means the database cannot serve now (unreachable, shutting down,
/// out of connections or resources, or a transaction that lost a conflict and may be tried
/// again), as opposed to a fault in a statement.
fn postgres_unavailable(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
        Some(db) => {
            let code = db.code().code();
            ["08", "53", "57", "40"]
                .iter()
                .any(|class| code.starts_with(class))
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::SystemIoFailure
                        | rusqlite::ErrorCode::DatabaseBusy
                ) =>
            {
                Self::Unavailable(Arc::new(e))
            }
            _ => Self::Database(Arc::new(e)),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        Self::Pool(Arc::new(e))
    }
}

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
