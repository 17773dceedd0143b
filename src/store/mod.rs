//! The store: hookd's rows and statements, on a SQLite file or a PostgreSQL database. Every
//! write goes through the one writer (`crate::db::writer`, batched transactions) with what a
//! batch shares (`batch.rs`); reads go through a pool. Its public methods speak in model types
//! and apply plans computed outside (`crate::service`); they decide nothing but whether a
//! plan's lease or version still holds.

mod batch;
mod claims;
mod deliveries;
mod endpoints;
mod events;
mod incoming;
mod integrations;
mod key_cache;
mod ledger;
mod maintenance;
pub(crate) mod migrate;
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
mod subscribers;
mod tenants;
mod usage;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};

use rusqlite::Connection;
use tokio::sync::Notify;

pub use crate::db::StoreError;
use crate::db::{BUSY_TIMEOUT, Reads, STATEMENT_CACHE, create_private, lock};
pub use crate::db::{check_location, is_postgres_url};
pub use integrations::default_events;
pub use maintenance::{CheckReport, check};

use crate::config::Durability;
use crate::db::sql;
use crate::db::writer::{WriteHealth, Writer, WriterDb};
use batch::Batch;

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

/// The open database: a write queue and a read pool.
#[derive(Clone)]
pub struct Store {
    writer: Writer<Batch>,
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

/// Folds the rows PostgreSQL processes counted in (copied into the SQLite file `conn` by
/// `hookd copy`, inside its transaction) into the one writer's: SQLite's writer counts on the
/// endpoints' rows and as writer 0, and reads nothing else. Returns the rows folded.
pub(crate) fn fold_copied_counts(conn: &Connection) -> Result<usize, StoreError> {
    ledger::fold_counts(&sql::Conn::Sqlite(conn))
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

        Self::start(
            WriterDb::Sqlite(conn),
            Reads::sqlite(path)?,
            Some(lock),
            None,
        )
    }

    /// Opens a PostgreSQL database (migrating it) with its writer and reads.
    /// Several processes may share it: each listens for the others' new work.
    pub async fn open_postgres(url: &str) -> Result<(Self, StoreHandle), StoreError> {
        postgres::migrate(url).await?;
        let reads = Reads::postgres(url)?;
        // This process's id: its lease tokens carry it, its heartbeat keeps them alive, and
        // its batches add to its own rows of the endpoints' counters.
        let process = processes::register(url).await?;
        let (store, mut handle) = Self::start(
            WriterDb::Postgres(url.to_owned()),
            reads,
            None,
            Some(process),
        )?;
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
        self.reads.is_postgres()
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
        process: Option<i64>,
    ) -> Result<(Self, StoreHandle), StoreError> {
        let wake = Arc::new(Notify::new());
        let health = WriteHealth::default();
        // On PostgreSQL keys are kept only while the listener hears other processes' deletes.
        let keys = match &db {
            WriterDb::Postgres(_) => key_cache::KeyCache::paused(),
            WriterDb::Sqlite(_) => key_cache::KeyCache::default(),
        };
        let audiences = Arc::new(subscribers::Audiences::default());
        let batch = Batch::new(audiences.clone(), process);
        let (writer, thread) = Writer::start(db, wake.clone(), health.clone(), batch)?;
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
        self.reads.run(f).await
    }
}

/// Converts a count from SQLite (never negative) to `u64`.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
