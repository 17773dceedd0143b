//! `hookd copy`: a whole database into an empty one, SQLite → PostgreSQL or back.
//!
//! Both schemas hold the same tables with the same columns, so rows move column for column and
//! ids never change. The target is migrated first and must then be empty; everything is
//! written in one transaction (all or nothing), in an order that satisfies every reference,
//! and PostgreSQL's id sequences continue after the copied ids. A SQLite source or target is
//! locked as a serving hookd locks it, so a running hookd and a copy never share a file.
//! Block counts (`list_blocks`) are copied last, over whatever the target's triggers counted
//! while rows arrived, so they equal the source's. Into SQLite, the counts PostgreSQL's
//! processes kept in rows of their own are folded into the one writer's before the commit.

use std::path::PathBuf;
use std::sync::Arc;

use crate::db::sql::{Row, Value, as_refs};
use crate::store::StoreError;

/// Tables in an order where each row's references are already copied.
const TABLES: &[&str] = &[
    "meta",
    "tenants",
    "tenant_usage",
    "api_keys",
    "portal_links",
    "event_types",
    "endpoints",
    "endpoint_counts",
    "endpoint_old_secrets",
    "events",
    "deliveries",
    "attempts",
    "incoming_hooks",
    "incoming_requests",
    "schedules",
    "schedule_runs",
    "list_blocks",
    "endpoint_hours",
];

use crate::store::ID_TABLES;

/// Rows written per progress report.
const REPORT_EVERY: u64 = 100_000;

/// A database named on the command line: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Database {
    /// Reads `--db`-style text: a PostgreSQL URL, or else a file path.
    pub fn parse(text: &str) -> Self {
        if crate::db::is_postgres_url(std::path::Path::new(text)) {
            Self::Postgres(text.to_owned())
        } else {
            Self::Sqlite(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            // Never print a password.
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    let _ = u.set_password(None);
                    write!(f, "{u}")
                }
                Err(_) => write!(f, "a PostgreSQL URL"),
            },
        }
    }
}

/// An open side of the copy.
enum Side {
    Sqlite {
        conn: rusqlite::Connection,
        _lock: std::fs::File,
    },
    Postgres(tokio_postgres::Client),
}

/// Copies every row of `from` into `to`, which is created or migrated and must be empty.
/// `progress` hears each table's name and the rows copied so far. Returns the rows copied.
pub async fn copy(
    from: &Database,
    to: &Database,
    mut progress: impl FnMut(&str, u64),
) -> Result<u64, StoreError> {
    if from == to {
        return Err(StoreError::Invalid(
            "--from and --to name the same database".into(),
        ));
    }
    let source = open(from, false).await?;
    let mut target = open(to, true).await?;
    for table in TABLES {
        if table != &"list_blocks" && has_rows(&target, table).await? {
            return Err(StoreError::Conflict(format!(
                "{to} is not empty (it has {table}); copy only into a new database"
            )));
        }
    }
    begin(&mut target).await?;
    let mut copied = 0u64;
    for table in TABLES {
        if *table == "list_blocks" {
            execute(&target, "DELETE FROM list_blocks").await?;
        }
        let columns = columns(&target, table).await?;
        let n = copy_table(&source, &target, table, &columns, &mut progress).await?;
        copied += n;
        progress(table, n);
    }
    // Ids continue past the highest the source ever handed out, not past the highest it still
    // holds: ids of rows deleted before the copy never come back.
    for table in ID_TABLES {
        let used = high_water(&source, table).await?;
        continue_ids_after(&target, table, used).await?;
    }
    // A SQLite target counts as its one writer: what PostgreSQL's processes counted in rows of
    // their own becomes its.
    if let Side::Sqlite { conn, .. } = &target {
        crate::store::fold_copied_counts(conn)?;
    }
    execute(&target, "COMMIT").await?;
    Ok(copied)
}

async fn open(db: &Database, is_target: bool) -> Result<Side, StoreError> {
    match db {
        Database::Sqlite(path) => {
            if !is_target && !path.exists() {
                return Err(StoreError::Invalid(
                    format!("{} does not exist", path.display()).into(),
                ));
            }
            let lock = crate::db::lock(path)?;
            if is_target {
                crate::db::create_private(path)?;
            }
            let conn = rusqlite::Connection::open(path)?;
            if is_target {
                // Never write hookd's tables into someone else's file.
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let tables: i64 =
                    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
                if version == 0 && tables > 0 {
                    return Err(StoreError::Conflict(format!(
                        "{} is not a hookd database; copy into a new file",
                        path.display()
                    )));
                }
            }
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")?;
            if is_target {
                crate::store::migrate::migrate(&conn)?;
            } else {
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                same_version(db, version, crate::store::migrate::latest())?;
            }
            Ok(Side::Sqlite { conn, _lock: lock })
        }
        Database::Postgres(url) => {
            if is_target {
                crate::store::postgres::migrate(url).await?;
            }
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(postgres)?;
            tokio::spawn(connection);
            if !is_target {
                let version: i64 = client
                    .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
                    .await
                    .map_err(postgres)?
                    .get(0);
                same_version(db, version, crate::store::postgres::latest())?;
            }
            Ok(Side::Postgres(client))
        }
    }
}

/// A source must be at this build's schema version: an older one is upgraded by starting
/// hookd (or `hookd migrate`) on it first; a newer one needs a newer hookd.
fn same_version(db: &Database, found: i64, known: i64) -> Result<(), StoreError> {
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    if found < known {
        return Err(StoreError::Invalid(format!(
            "{db} is at schema version {found}; this hookd copies version {known}: run `hookd migrate` on it first"
        ).into()));
    }
    Ok(())
}

async fn begin(side: &mut Side) -> Result<(), StoreError> {
    match side {
        Side::Sqlite { conn, .. } => conn.execute_batch("BEGIN IMMEDIATE")?,
        Side::Postgres(client) => client.batch_execute("BEGIN").await.map_err(postgres)?,
    }
    Ok(())
}

async fn execute(side: &Side, sql: &str) -> Result<(), StoreError> {
    match side {
        Side::Sqlite { conn, .. } => conn.execute_batch(sql)?,
        Side::Postgres(client) => client.batch_execute(sql).await.map_err(postgres)?,
    }
    Ok(())
}

/// The highest id `table` has ever handed out (its rows' highest, or more when the newest rows
/// were deleted).
async fn high_water(side: &Side, table: &str) -> Result<i64, StoreError> {
    Ok(match side {
        Side::Sqlite { conn, .. } => conn.query_row(
            &format!(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0),
                            coalesce((SELECT max(id) FROM {table}), 0))"
            ),
            [table],
            |r| r.get(0),
        )?,
        Side::Postgres(client) => client
            .query_one(
                &format!(
                    "SELECT greatest(coalesce(pg_sequence_last_value(
                                         pg_get_serial_sequence('{table}', 'id')::regclass), 0),
                                     coalesce((SELECT max(id) FROM {table}), 0))"
                ),
                &[],
            )
            .await
            .map_err(postgres)?
            .get(0),
    })
}

/// Makes `table` hand out ids after `used` (and after its own rows).
async fn continue_ids_after(side: &Side, table: &str, used: i64) -> Result<(), StoreError> {
    match side {
        Side::Sqlite { conn, .. } => {
            let seq = format!("max(?2, coalesce((SELECT max(id) FROM {table}), 0))");
            let updated = conn.execute(
                &format!("UPDATE sqlite_sequence SET seq = {seq} WHERE name = ?1"),
                rusqlite::params![table, used],
            )?;
            if updated == 0 {
                conn.execute(
                    &format!("INSERT INTO sqlite_sequence (name, seq) VALUES (?1, {seq})"),
                    rusqlite::params![table, used],
                )?;
            }
        }
        Side::Postgres(client) => {
            // Set as called, so that the next copy out reads it back as the highest used.
            client
                .execute(
                    &format!(
                        "SELECT CASE WHEN used = 0 THEN setval(seq, 1, false)
                                     ELSE setval(seq, used, true) END
                         FROM (SELECT pg_get_serial_sequence('{table}', 'id') AS seq,
                                      greatest($1, (SELECT coalesce(max(id), 0) FROM {table}))
                                          AS used) wanted"
                    ),
                    &[&used],
                )
                .await
                .map_err(postgres)?;
        }
    }
    Ok(())
}

async fn has_rows(side: &Side, table: &str) -> Result<bool, StoreError> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
    Ok(match side {
        Side::Sqlite { conn, .. } => conn.query_row(&sql, [], |r| r.get(0))?,
        Side::Postgres(client) => client.query_one(&sql, &[]).await.map_err(postgres)?.get(0),
    })
}

/// The target's columns of `table`, in its order.
async fn columns(side: &Side, table: &str) -> Result<Vec<String>, StoreError> {
    Ok(match side {
        Side::Sqlite { conn, .. } => conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
        Side::Postgres(client) => client
            .query(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .map_err(postgres)?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    })
}

/// Reads every row of `table` from `source` and writes it to `target`.
async fn copy_table(
    source: &Side,
    target: &Side,
    table: &str,
    columns: &[String],
    progress: &mut impl FnMut(&str, u64),
) -> Result<u64, StoreError> {
    let list = columns.join(", ");
    let select = format!("SELECT {list} FROM {table}");
    let insert = format!(
        "INSERT INTO {table} ({list}) VALUES ({})",
        (1..=columns.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut writer = Writer::new(target, &insert).await?;
    let mut n = 0u64;
    let mut copied = |n: &mut u64| {
        *n += 1;
        if n.is_multiple_of(REPORT_EVERY) {
            progress(table, *n);
        }
    };
    match source {
        Side::Sqlite { conn, .. } => {
            let mut stmt = conn.prepare(&select)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                writer
                    .write(Row::Sqlite(row).values(columns.len())?)
                    .await?;
                copied(&mut n);
            }
        }
        Side::Postgres(client) => {
            use futures_util::TryStreamExt;
            let rows = client
                .query_raw(&select, std::iter::empty::<i64>())
                .await
                .map_err(postgres)?;
            let mut rows = std::pin::pin!(rows);
            while let Some(row) = rows.try_next().await.map_err(postgres)? {
                writer
                    .write(Row::Postgres(&row).values(columns.len())?)
                    .await?;
                copied(&mut n);
            }
        }
    }
    writer.flush().await?;
    Ok(n)
}

/// Rows sent to PostgreSQL together: their inserts are pipelined on the one connection instead
/// of each waiting for the one before (about ten times faster on loopback).
const PIPELINE: usize = 512;

/// Parameters of one row for PostgreSQL.
type PgRow = Vec<Value<'static>>;

/// Writes rows of one table to the target with one prepared insert.
enum Writer<'a> {
    Sqlite(rusqlite::CachedStatement<'a>),
    Postgres {
        client: &'a tokio_postgres::Client,
        insert: tokio_postgres::Statement,
        waiting: Vec<PgRow>,
    },
}

impl<'a> Writer<'a> {
    async fn new(target: &'a Side, insert: &str) -> Result<Self, StoreError> {
        Ok(match target {
            Side::Sqlite { conn, .. } => Self::Sqlite(conn.prepare_cached(insert)?),
            Side::Postgres(client) => Self::Postgres {
                client,
                insert: client.prepare(insert).await.map_err(postgres)?,
                waiting: Vec::with_capacity(PIPELINE),
            },
        })
    }

    async fn write(&mut self, cells: PgRow) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(stmt) => {
                stmt.execute(rusqlite::params_from_iter(&cells))?;
            }
            Self::Postgres { waiting, .. } => {
                waiting.push(cells);
                if waiting.len() >= PIPELINE {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Sends the rows still waiting (PostgreSQL only); call once a table's rows are all written.
    async fn flush(&mut self) -> Result<(), StoreError> {
        if let Self::Postgres {
            client,
            insert,
            waiting,
        } = self
        {
            let rows = std::mem::take(waiting);
            let sends = rows.iter().map(|row| {
                let refs = as_refs(row);
                let (client, insert) = (*client, &*insert);
                async move { client.execute(insert, &refs).await }
            });
            futures_util::future::try_join_all(sends)
                .await
                .map_err(postgres)?;
        }
        Ok(())
    }
}

fn postgres(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}
