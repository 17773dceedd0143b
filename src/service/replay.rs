//! Replay by hand: one more attempt of a delivery now. Whether and how is decided here from
//! the delivery's state read outside the writer ([`crate::model::replay`]); the store applies
//! the decision only while the delivery is still as seen, and hands it back otherwise (an
//! attempt finished or started meanwhile, the endpoint was disabled), to be decided again.

use crate::model::publish::Applied;
use crate::model::{DeliveryId, DeliverySummary, TenantId};
use crate::store::{Store, StoreError};

/// How many times a retry is decided before giving up while the delivery keeps changing
/// under it (an attempt starting and finishing between each read and write).
const DECISIONS: usize = 8;

/// Queues one more attempt of a tenant's delivery now. `Conflict` while an attempt is in
/// flight or the endpoint is disabled; `NotFound` for another tenant's delivery.
pub async fn retry(
    store: &Store,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<DeliverySummary, StoreError> {
    for _ in 0..DECISIONS {
        let planned = store
            .retry_facts(tenant, id)
            .await?
            .plan()
            .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
        match store.apply_retry(planned).await? {
            Applied::Done(summary) => return Ok(summary),
            Applied::Stale(_) => continue,
        }
    }
    Err(StoreError::StalePlan)
}
