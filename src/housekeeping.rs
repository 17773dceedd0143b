//! Housekeeping: periodic duties that keep the database bounded. Retention deletes finished
//! deliveries, their attempts and events past their age, in small batches; signing secrets
//! whose rotation grace has ended are deleted (they stop signing at that instant anyway); an
//! endpoint disabled by failures has its pending deliveries failed, if a stop interrupted that.

use std::future::Future;
use std::time::Duration;

use crate::model::now_ms;
use crate::store::Store;

/// Most batches one pass deletes, so a huge backlog of old rows is worked off over several
/// passes instead of holding the writer.
const MAX_BATCHES_PER_PASS: usize = 50;

/// What housekeeping keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Age after which succeeded deliveries and their events go.
    pub succeeded: Duration,
    /// Age after which failed deliveries go.
    pub failed: Duration,
}

/// Runs a pass every `interval` until `shutdown` resolves.
pub async fn run(
    store: Store,
    retention: Retention,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        if !store.leads() {
            continue;
        }
        if let Err(e) = pass(&store, retention).await {
            tracing::warn!(error = %crate::report::ErrorChain(&e), "housekeeping failed; will try again");
        }
    }
}

/// One housekeeping pass; returns how many deliveries and events it deleted.
pub async fn pass(
    store: &Store,
    retention: Retention,
) -> Result<(u64, u64), crate::store::StoreError> {
    let now = now_ms();
    let succeeded_before = now - retention.succeeded.as_millis() as i64;
    let failed_before = now - retention.failed.as_millis() as i64;
    let (mut deliveries, mut events) = (0, 0);
    for _ in 0..MAX_BATCHES_PER_PASS {
        let pruned = store.prune(succeeded_before, failed_before).await?;
        deliveries += pruned.deliveries;
        events += pruned.events;
        if pruned.deliveries == 0 && pruned.events == 0 {
            break;
        }
    }
    if deliveries + events > 0 {
        tracing::info!(deliveries, events, "retention deleted old rows");
    }
    // Endpoints disabled by failures whose pending deliveries were not all failed yet (the
    // process stopped while settling them).
    for endpoint in store.disabled_with_pending().await? {
        let failed = store.settle_disabled(endpoint).await?;
        if failed > 0 {
            tracing::info!(endpoint_id = %endpoint, failed, "failed the pending deliveries of a disabled endpoint");
        }
    }
    let secrets = store.prune_old_secrets().await?;
    if secrets > 0 {
        tracing::info!(secrets, "deleted signing secrets past their grace period");
    }
    let links = store.prune_expired_portal_links(now).await?;
    if links > 0 {
        tracing::info!(links, "deleted expired portal links");
    }
    let folded = store.fold_counts().await?;
    if folded > 0 {
        tracing::debug!(
            rows = folded,
            "folded the counters of processes that are gone"
        );
    }
    store.prune_old_usage(now).await?;
    store.prune_old_hours(now).await?;
    Ok((deliveries, events))
}
