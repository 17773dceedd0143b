//! PostgreSQL: the schema (`schema.postgres.sql`) and its migrations, applied at start and safe
//! when several hookd processes start at once.
//!
//! The store itself opens on PostgreSQL with `Store::open_postgres` (the operations moved
//! onto `store::sql` run there); serving from PostgreSQL (`--db postgres://…`) and several
//! processes on one database are not built yet. Migrations use `tokio-postgres` directly,
//! asynchronously, since they run before the writer starts.

use std::sync::Arc;

use super::StoreError;
use super::migrate::sections;

const SCHEMA: &str = include_str!("../../schema.postgres.sql");

/// The advisory lock key every hookd takes while it migrates ("hookd" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_6f6f_6b64;

/// The newest PostgreSQL schema version this build knows.
pub fn latest() -> i64 {
    sections(SCHEMA).last().map(|(v, _)| *v).unwrap_or(0)
}

/// Brings the database at `url` up to [`latest`] in one transaction under an advisory lock:
/// processes that start together wait for each other, and each migration runs once. Refuses a
/// database from a newer hookd. Returns the version the database is at.
pub async fn migrate(url: &str) -> Result<i64, StoreError> {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(postgres)?;
    let connection = tokio::spawn(connection);
    let tx = client.transaction().await.map_err(postgres)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(postgres)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hookd_schema (version BIGINT NOT NULL)")
        .await
        .map_err(postgres)?;
    let current: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
        .await
        .map_err(postgres)?
        .get(0);
    let known = latest();
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in sections(SCHEMA) {
        if version > current {
            tx.batch_execute(sql).await.map_err(postgres)?;
            tracing::info!(version, "applied PostgreSQL schema migration");
        }
    }
    tx.execute("DELETE FROM hookd_schema", &[])
        .await
        .map_err(postgres)?;
    tx.execute(
        "INSERT INTO hookd_schema (version) VALUES ($1)",
        &[&current.max(known)],
    )
    .await
    .map_err(postgres)?;
    tx.commit().await.map_err(postgres)?;
    drop(client);
    let _ = connection.await;
    Ok(current.max(known))
}

fn postgres(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_schema_is_numbered_from_one_without_gaps() {
        let versions: Vec<i64> = sections(SCHEMA).iter().map(|(v, _)| *v).collect();
        assert_eq!(versions, (1..=latest()).collect::<Vec<_>>());
    }
}
