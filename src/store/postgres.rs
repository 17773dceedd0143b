//! PostgreSQL: the schema (`schema.postgres.sql`) and its migrations, applied at start and safe
//! when several hookd processes start at once (under an advisory lock), and the notification
//! channel that wakes every process's dispatcher.
//!
//! The store's statements run on PostgreSQL through `store::sql`. Migrations and the listener
//! use `tokio-postgres` directly, asynchronously.

use std::sync::Arc;

use tokio::sync::Notify;

use super::StoreError;
use super::key_cache::KeyCache;
use super::migrate::sections;

const SCHEMA: &str = include_str!("../../schema.postgres.sql");

/// The advisory lock key every hookd takes while it migrates ("hookd" in ASCII).
const MIGRATION_LOCK: i64 = 0x0068_6f6f_6b64;

/// The channel a commit that made deliveries due notifies.
pub(super) const WORK_CHANNEL: &str = "hookd_work";

/// The channel a commit that deleted API keys (or a tenant) notifies: every process forgets
/// the keys it cached.
pub(super) const KEYS_CHANNEL: &str = "hookd_keys";

/// Listens to the other processes (`LISTEN`), reconnecting: wakes `wake` whenever a commit
/// made deliveries due, and forgets every cached key whenever one deleted keys. On each
/// (re)connect it does both, for what was committed while no one listened.
pub(super) async fn listen(url: String, wake: Arc<Notify>, keys: Arc<KeyCache>) {
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let messages = tokio::spawn({
                    let (wake, keys) = (wake.clone(), keys.clone());
                    async move {
                        while let Some(message) =
                            std::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            match message {
                                Ok(tokio_postgres::AsyncMessage::Notification(n))
                                    if n.channel() == KEYS_CHANNEL =>
                                {
                                    keys.forget_all();
                                }
                                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                                    wake.notify_one();
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {WORK_CHANNEL}; LISTEN {KEYS_CHANNEL}"))
                    .await
                    .is_ok()
                {
                    pause = std::time::Duration::from_millis(100);
                    keys.resume();
                    wake.notify_one();
                }
                // Cached keys stay while the listener reconnects (every request would otherwise
                // wait on a database that may be down); reconnected, it forgets them all, so
                // a delete it did not hear holds from then on.
                let _ = messages.await;
                tracing::warn!("the PostgreSQL listener lost its connection; reconnecting");
            }
            Err(e) => {
                tracing::warn!(error = %crate::report::ErrorChain(&e), "the PostgreSQL listener cannot connect");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(crate::db::RECONNECT_AT_MOST_EVERY);
    }
}

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

pub(super) fn postgres(e: tokio_postgres::Error) -> StoreError {
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
