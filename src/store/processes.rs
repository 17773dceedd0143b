//! The hookd processes sharing a PostgreSQL database: each registers in `hookd_processes` and
//! beats every second; a live one releases the leases of a process that stopped beating (killed,
//! or cut off from the database), so its deliveries are claimed again within seconds instead of
//! at the end of each lease.
//!
//! The live process with the lowest id leads: it alone runs housekeeping and fires schedules
//! (see [`super::Store::leads`]). Leadership is read from the beats, not held as a lock: when the
//! leader stops beating, the next one leads within [`DEAD_AFTER`]. Two leaders for a moment
//! are harmless (a schedule's run is unique per slot; retention deletes what is there).
//!
//! A process's lease tokens carry its id in their high bits ([`LEASE_BITS`]): the leases a dead
//! process held are found by their token alone, with no table of leases to keep.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::StoreError;
use super::postgres::{WORK_CHANNEL, postgres};
use crate::model::{UnixMs, now_ms};
use crate::report::ErrorChain;

/// How often a process beats.
pub(super) const BEAT_EVERY: Duration = Duration::from_secs(1);

/// A process whose latest beat is older than this is taken for dead.
pub(super) const DEAD_AFTER: Duration = Duration::from_secs(5);

/// Low bits of a lease token that count the process's claims; the bits above hold its id.
pub(super) const LEASE_BITS: u32 = 36;

/// The lease tokens of process `id`: `[first, end)`.
pub(super) fn lease_range(id: i64) -> (i64, i64) {
    (id << LEASE_BITS, (id + 1) << LEASE_BITS)
}

/// Registers this process; returns its id (never reused: a sequence draws it).
pub(super) async fn register(url: &str) -> Result<i64, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(postgres)?;
    let connection = tokio::spawn(connection);
    let now = now_ms();
    let id: i64 = client
        .query_one(
            "INSERT INTO hookd_processes (started_at, beat_at) VALUES ($1, $1) RETURNING id",
            &[&now],
        )
        .await
        .map_err(postgres)?
        .get(0);
    drop(client);
    let _ = connection.await;
    Ok(id)
}

/// Beats for process `id` every [`BEAT_EVERY`], reporting its attempts in flight (`in_flight`,
/// for the other processes' claims), and releases dead processes' leases, waking `wake` (and
/// the other processes) when it released any; sets `leads` after each beat (and clears it
/// while beats fail). Runs until aborted, reconnecting.
pub(super) async fn beat(
    url: String,
    id: i64,
    wake: Arc<Notify>,
    leads: Arc<AtomicBool>,
    in_flight: Arc<std::sync::Mutex<String>>,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((mut client, connection)) => {
                let connection = tokio::spawn(connection);
                loop {
                    // The pause grows while beats fail, connected or not.
                    let report = in_flight
                        .lock()
                        .map(|r| r.clone())
                        .unwrap_or_else(|_| "{}".to_owned());
                    match beat_once(&mut client, id, now_ms(), &report).await {
                        Ok((released, leader)) => {
                            leads.store(leader, Ordering::Relaxed);
                            pause = Duration::from_millis(100);
                            if released > 0 {
                                wake.notify_one();
                            }
                        }
                        Err(e) => {
                            leads.store(false, Ordering::Relaxed);
                            tracing::warn!(error = %ErrorChain(&e), "a heartbeat failed; reconnecting");
                            break;
                        }
                    }
                    tokio::time::sleep(BEAT_EVERY).await;
                }
                connection.abort();
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "the heartbeat cannot connect to PostgreSQL");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(crate::db::RECONNECT_AT_MOST_EVERY);
    }
}

/// One beat at `now`: records this process as alive (again, if another took it for dead and
/// removed it) with its attempts in flight, then, in one transaction, removes the processes that stopped beating and
/// releases every lease they held. Returns how many deliveries it released, and whether this
/// process leads (it is the live one with the lowest id).
async fn beat_once(
    client: &mut tokio_postgres::Client,
    id: i64,
    now: UnixMs,
    in_flight: &str,
) -> Result<(u64, bool), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO hookd_processes (id, started_at, beat_at, in_flight)
             VALUES ($1, $2, $2, $3)
             ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at,
                in_flight = excluded.in_flight",
            &[&id, &now, &in_flight],
        )
        .await?;
    let tx = client.transaction().await?;
    // Deleting them first means one live process alone releases each dead one's leases.
    let dead: Vec<i64> = tx
        .query(
            "DELETE FROM hookd_processes WHERE beat_at < $1 AND id <> $2 RETURNING id",
            &[&(now - DEAD_AFTER.as_millis() as i64), &id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Their rows of the shared counts are folded by housekeeping.
    tx.execute(
        "INSERT INTO hookd_gone_writers (id) SELECT unnest($1::BIGINT[]) ON CONFLICT DO NOTHING",
        &[&dead],
    )
    .await?;
    let leader: Option<i64> = tx
        .query_one(
            "SELECT min(id) FROM hookd_processes WHERE beat_at >= $1",
            &[&(now - DEAD_AFTER.as_millis() as i64)],
        )
        .await?
        .get(0);
    let mut released = 0;
    for process in &dead {
        let (first, end) = lease_range(*process);
        // Due now, and no longer in flight for the claims' counts.
        released += tx
            .execute(
                "UPDATE deliveries SET next_attempt_at = $1, lease_until = NULL
                 WHERE status = 0 AND lease_until IS NOT NULL AND lease >= $2 AND lease < $3",
                &[&now, &first, &end],
            )
            .await?;
    }
    if released > 0 {
        tx.batch_execute(&format!("NOTIFY {WORK_CHANNEL}")).await?;
    }
    tx.commit().await?;
    if !dead.is_empty() {
        tracing::warn!(
            processes = ?dead,
            deliveries = released,
            "released the leases of hookd processes that stopped beating"
        );
    }
    Ok((released, leader == Some(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_has_its_own_lease_tokens() {
        let (a0, a1) = lease_range(1);
        let (b0, b1) = lease_range(2);
        assert_eq!(a1, b0);
        assert!(a0 < a1 && b0 < b1);
        // Tokens drawn before processes had ids (a sequence from 1) are below every range.
        assert!(a0 > 1 << 35);
        // Room for ids far beyond any number of restarts.
        assert!(lease_range(1 << 26).1 > 0);
    }
}
