//! Housekeeping: periodic duties that keep the database tidy. For now it deletes signing
//! secrets whose rotation grace period has ended (they stop signing at that instant anyway;
//! this removes them from the file).

use std::future::Future;
use std::time::Duration;

use crate::store::Store;

/// Runs every `interval` until `shutdown` resolves.
pub async fn run(store: Store, interval: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        match store.prune_old_secrets().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                secrets = n,
                "deleted signing secrets past their grace period"
            ),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; will try again"),
        }
    }
}
