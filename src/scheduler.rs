//! The scheduler: fires due schedules. Each run is written by the store in one transaction
//! with its digest event, so this loop only decides when to look.

use std::future::Future;
use std::time::Duration;

use crate::model::now_ms;
use crate::store::Store;

/// Looks for due schedules every `interval` until `shutdown` resolves.
pub async fn run(store: Store, interval: Duration, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = fire_due(&store).await {
            tracing::warn!(error = %e, "firing schedules failed; will try again");
        }
    }
}

/// Fires everything due now, in batches; returns how many runs it made.
pub async fn fire_due(store: &Store) -> Result<usize, crate::store::StoreError> {
    let mut total = 0;
    loop {
        let ran = store.fire_due_schedules(now_ms()).await?;
        total += ran;
        if ran == 0 {
            return Ok(total);
        }
    }
}
