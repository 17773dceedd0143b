//! What can go wrong in the store, and which failures mean "not now" rather than "never".

use std::sync::Arc;

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
    #[error("what the request was decided from kept changing while it was decided")]
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
    /// The folder a SQLite database goes in does not exist.
    #[error(
        "the folder {0} for the database does not exist; create it, or give --db a file in an existing folder"
    )]
    NoFolder(String),
    /// What should be the database's folder is a file.
    #[error("{0} is not a folder; --db must name a file in a folder")]
    NotFolder(String),
    /// `--db` names a folder.
    #[error("{0} is a folder; --db names a database file in it, like {0}/hookd.db")]
    DbIsFolder(String),
    /// This user may not write in the database's folder.
    #[error(
        "hookd cannot write in {folder} (the database, its lock file and the credentials key go there); make it writable for this user, or give --db a file elsewhere"
    )]
    FolderNotWritable {
        /// The folder.
        folder: String,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// `--db` names a file that is not a SQLite database.
    #[error("{0} is not a SQLite database; give --db a hookd database, or the name of a new file")]
    NotDatabase(String),
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
