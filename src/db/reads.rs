//! Where reads run: a pool of read-only SQLite connections, or of PostgreSQL clients, each
//! read on a blocking thread of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;

use super::StoreError;
use super::file::{BUSY_TIMEOUT, STATEMENT_CACHE};
use super::sql;

/// Where reads run.
#[derive(Clone)]
pub enum Reads {
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
pub struct PgReads(Option<r2d2::Pool<sql::PgManager>>);

impl PgReads {
    fn new(url: &str) -> Result<Self, StoreError> {
        let config = sql::pg_config(url).map_err(|e| StoreError::Postgres(Arc::new(e)))?;
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

impl Reads {
    /// Read-only connections to the SQLite file at `path`.
    pub fn sqlite(path: &Path) -> Result<Self, StoreError> {
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
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Self::Sqlite(pool))
    }

    /// Clients of the PostgreSQL database at `url`, opened as reads need them.
    pub fn postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::Postgres(Arc::new(PgReads::new(url)?)))
    }

    /// Whether reads go to PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs a read (in a blocking task).
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&sql::Conn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let reads = self.clone();
        tokio::task::spawn_blocking(move || match reads {
            Self::Sqlite(pool) => {
                let conn = pool.get()?;
                f(&sql::Conn::Sqlite(&conn))
            }
            Self::Postgres(pg) => pg.run(f),
        })
        .await
        .map_err(|e| StoreError::ReadTask(Arc::new(e)))?
    }
}
