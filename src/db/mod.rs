//! The database underneath the store, knowing none of hookd's tables: one way to write and run
//! a statement on SQLite or PostgreSQL ([`sql`]), what can go wrong doing it ([`StoreError`]),
//! the one writer that applies queued operations in batched transactions ([`writer`]), the
//! pools reads run on ([`Reads`]), and a SQLite file's place, lock and backup
//! ([`check_location`], [`lock`], [`backup`]). The store holds hookd's rows and statements on
//! top of it.

mod error;
mod file;
mod reads;
pub mod sql;
pub mod writer;

use std::time::Duration;

pub use error::StoreError;
pub use file::{
    BUSY_TIMEOUT, STATEMENT_CACHE, backup, check_location, create_private, is_postgres_url, lock,
    open_existing, sqlite_file,
};
pub use reads::Reads;

/// The longest wait between tries to reach PostgreSQL again (the writer, the listener): a
/// database that returns is in use again within this.
pub const RECONNECT_AT_MOST_EVERY: Duration = Duration::from_secs(1);
