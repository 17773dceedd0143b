//! Endpoints: settings, state and running counters.

use crate::db::sql::{Conn, vals};
use crate::model::endpoint::{EndpointPatch, NewEndpoint};

use super::batch::Batch;
use super::ledger::Ledger;
use super::publish::announce;
use super::rows::{columns, endpoint_columns, endpoint_row};
use super::usage::endpoint_count;
use super::{Store, StoreError, count};
use crate::model::counts::EndpointChange;
use crate::model::endpoint::Sealed;
use crate::model::operational;
use crate::model::{
    DisableReason, Endpoint, EndpointId, Page, PageRequest, TenantId, UnixMs, now_ms,
};

/// Pending deliveries of a disabled endpoint failed in one write.
const SETTLE_CHUNK: usize = 1000;

/// Inserts an endpoint inside the caller's write; returns its id.
pub(super) fn insert(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    new: &NewEndpoint,
) -> Result<EndpointId, StoreError> {
    // First: on PostgreSQL this holds the tenant's version row, so endpoints are added one
    // at a time per tenant across processes and the count below is exact.
    batch.subscribers.forget(c, tenant_id)?;
    // Answers `NotFound` when there is no such tenant.
    let plan = batch.subscribers.plan(c, tenant_id)?;
    if plan.limits.endpoints.is_some() {
        plan.endpoint_fits(endpoint_count(c, tenant_id)?)?;
    }
    let s = &new.settings;
    let cols = columns(s);
    let now = now_ms();
    let id = c.insert(
        "INSERT INTO endpoints (tenant_id, name, url, events, secret, signature_scheme,
                signature_header, format, headers, retry_schedule, disable_after,
                timeout_ms, rate_limit, ordering, is_active, disabled_at, disabled_reason,
                created_at, updated_at, filter, channels, auth, client_certificate, url_sealed,
                destination)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                ?16, ?17, ?18, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
        &vals![
            tenant_id.0,
            s.name,
            s.url.as_str(),
            cols.events,
            new.secret,
            s.signature_scheme.as_str(),
            s.signature_header_name,
            s.format.as_str(),
            cols.headers,
            cols.retry,
            s.disable_after,
            s.timeout_ms,
            s.rate_limit,
            s.ordering.as_str(),
            s.is_active,
            (!s.is_active).then_some(now),
            (!s.is_active).then_some(DisableReason::Manual.as_str()),
            now,
            cols.filter,
            cols.channels,
            s.auth.as_ref().map(|a| a.0.as_str()),
            s.client_certificate.as_ref().map(|c| c.0.as_str()),
            s.url_sealed.as_ref().map(|u| u.0.as_str()),
            cols.destination,
        ],
    )?;
    Ok(EndpointId(id))
}

/// Loads one endpoint of a tenant, inside a read or a write.
pub(super) fn load(
    c: &Conn<'_>,
    tenant_id: TenantId,
    id: EndpointId,
) -> Result<Endpoint, StoreError> {
    c.query_opt(
        &format!(
            "SELECT {} FROM endpoints WHERE id = ?1 AND tenant_id = ?2",
            endpoint_columns(c)
        ),
        &vals![id.0, tenant_id.0],
        endpoint_row,
    )?
    .ok_or(StoreError::NotFound)
}

/// Loads one endpoint of any tenant, inside a read or a write.
pub(super) fn load_any(c: &Conn<'_>, id: EndpointId) -> Result<Endpoint, StoreError> {
    c.query_opt(
        &format!(
            "SELECT {} FROM endpoints WHERE id = ?1",
            endpoint_columns(c)
        ),
        &vals![id.0],
        endpoint_row,
    )?
    .ok_or(StoreError::NotFound)
}

/// The secrets an endpoint signs with at `now`: the current one, then those still in a
/// rotation's grace period, newest first.
pub(super) fn secrets(c: &Conn<'_>, id: EndpointId, now: i64) -> Result<Vec<String>, StoreError> {
    let mut all = vec![secret(c, id)?];
    let old = c.query(
        "SELECT secret FROM endpoint_old_secrets WHERE endpoint_id = ?1 AND expires_at > ?2
             ORDER BY expires_at DESC",
        &vals![id.0, now],
        |r| r.get::<String>(0),
    )?;
    all.extend(old);
    Ok(all)
}

/// The signing secret of an endpoint, inside a read or a write.
pub(super) fn secret(c: &Conn<'_>, id: EndpointId) -> Result<String, StoreError> {
    c.query_opt(
        "SELECT secret FROM endpoints WHERE id = ?1",
        &vals![id.0],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound)
}

impl Store {
    /// Creates an endpoint.
    pub async fn create_endpoint(
        &self,
        tenant_id: TenantId,
        new: NewEndpoint,
    ) -> Result<Endpoint, StoreError> {
        self.writer
            .write(move |c, batch| {
                let id = insert(c, batch, tenant_id, &new)?;
                load(c, tenant_id, id)
            })
            .await
    }

    /// One endpoint of a tenant.
    pub async fn get_endpoint(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
    ) -> Result<Endpoint, StoreError> {
        self.read(move |c| load(c, tenant_id, id)).await
    }

    /// One page of a tenant's endpoints, oldest first.
    pub async fn list_endpoints(
        &self,
        tenant_id: TenantId,
        page: PageRequest,
    ) -> Result<Page<Endpoint>, StoreError> {
        self.read(move |c| {
            let total: i64 = c.query_one(
                "SELECT count(*) FROM endpoints WHERE tenant_id = ?1",
                &vals![tenant_id.0],
                |r| r.get(0),
            )?;
            let rows = c.query(
                &format!(
                    "SELECT {} FROM endpoints WHERE tenant_id = ?1
                     ORDER BY id LIMIT ?2 OFFSET ?3",
                    endpoint_columns(c)
                ),
                &vals![tenant_id.0, page.size, page.offset()],
                endpoint_row,
            )?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }

    /// Applies a change to an endpoint's settings. Switching `isActive` off pauses it
    /// (`disabledReason: manual`; pending deliveries wait); switching it on re-activates it.
    /// `Err(Invalid)` carries the patch's own validation message.
    pub async fn update_endpoint(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
        patch: EndpointPatch,
    ) -> Result<Endpoint, StoreError> {
        self.writer
            .write(move |c, batch| {
                // Old header values and credentials leave the disk with the change.
                batch.scrub = true;
                let before = load(c, tenant_id, id)?;
                let mut s = before.settings.clone();
                patch(&mut s).map_err(StoreError::Invalid)?;
                s.check().map_err(StoreError::Invalid)?;
                let cols = columns(&s);
                let now = now_ms();
                // Before the endpoint's row: see `SubscriberCache::forget`.
                batch.subscribers.forget(c, tenant_id)?;
                c.execute(
                    "UPDATE endpoints SET name = ?2, url = ?3, events = ?4, signature_scheme = ?5,
                        signature_header = ?6, format = ?7, headers = ?8, retry_schedule = ?9,
                        disable_after = ?10, timeout_ms = ?11, rate_limit = ?12, ordering = ?13,
                        updated_at = ?14, filter = ?15, channels = ?16, auth = ?17,
                        client_certificate = ?18, url_sealed = ?19, destination = ?20
                     WHERE id = ?1",
                    &vals![
                        id.0,
                        s.name,
                        s.url.as_str(),
                        cols.events,
                        s.signature_scheme.as_str(),
                        s.signature_header_name,
                        s.format.as_str(),
                        cols.headers,
                        cols.retry,
                        s.disable_after,
                        s.timeout_ms,
                        s.rate_limit,
                        s.ordering.as_str(),
                        now,
                        cols.filter,
                        cols.channels,
                        s.auth.as_ref().map(|a| a.0.as_str()),
                        s.client_certificate.as_ref().map(|c| c.0.as_str()),
                        s.url_sealed.as_ref().map(|u| u.0.as_str()),
                        cols.destination,
                    ],
                )?;
                if s.is_active != before.settings.is_active {
                    if s.is_active {
                        activate(c, batch, &before, now)?;
                    } else {
                        let reason = DisableReason::Manual;
                        deactivate(c, batch, before.id, before.tenant_id, now, reason)?;
                        let disabled = operational::disabled(id, reason, None, now);
                        announce(c, batch, tenant_id, disabled)?;
                    }
                }
                load(c, tenant_id, id)
            })
            .await
    }

    /// Deletes an endpoint with its deliveries.
    pub async fn delete_endpoint(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.subscribers.forget(c, tenant_id)?;
                batch.scrub = true;
                match c.execute(
                    "DELETE FROM endpoints WHERE id = ?1 AND tenant_id = ?2",
                    &vals![id.0, tenant_id.0],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    /// Re-activates an endpoint and resets its consecutive-failure count.
    pub async fn enable_endpoint(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
    ) -> Result<Endpoint, StoreError> {
        self.writer
            .write(move |c, batch| {
                let before = load(c, tenant_id, id)?;
                activate(c, batch, &before, now_ms())?;
                load(c, tenant_id, id)
            })
            .await
    }

    /// Replaces an endpoint's secret. The old one keeps signing (beside the new) for `grace_ms`;
    /// any older secret, and secrets whose grace has ended, are deleted. Announces
    /// `hookd.endpoint.secret_rotated`. Returns when the old secret stops signing.
    pub async fn rotate_secret(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
        new_secret: String,
        grace_ms: i64,
    ) -> Result<UnixMs, StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.scrub = true;
                load(c, tenant_id, id)?;
                let old = secret(c, id)?;
                let now = now_ms();
                // At most two secrets sign: the new one and the one it replaces. Older ones
                // end now, whatever grace they were given.
                c.execute(
                    "DELETE FROM endpoint_old_secrets WHERE endpoint_id = ?1 OR expires_at <= ?2",
                    &vals![id.0, now],
                )?;
                if grace_ms > 0 {
                    c.execute(
                        "INSERT INTO endpoint_old_secrets (endpoint_id, secret, expires_at)
                         VALUES (?1, ?2, ?3)",
                        &vals![id.0, old, now + grace_ms],
                    )?;
                }
                c.execute(
                    "UPDATE endpoints SET secret = ?2, updated_at = ?3 WHERE id = ?1",
                    &vals![id.0, new_secret, now],
                )?;
                let ends = now + grace_ms.max(0);
                let rotated = operational::secret_rotated(id, now, ends);
                announce(c, batch, tenant_id, rotated)?;
                Ok(ends)
            })
            .await
    }

    /// Deletes secrets whose rotation grace has ended; returns how many.
    pub async fn prune_old_secrets(&self) -> Result<usize, StoreError> {
        self.writer
            .write(|c, batch| {
                let pruned = c.execute(
                    "DELETE FROM endpoint_old_secrets WHERE expires_at <= ?1",
                    &vals![now_ms()],
                )?;
                batch.scrub |= pruned > 0;
                Ok(pruned)
            })
            .await
    }

    /// The current signing secret of an endpoint.
    pub async fn endpoint_secret(&self, id: EndpointId) -> Result<String, StoreError> {
        self.read(move |c| secret(c, id)).await
    }

    /// Every secret an endpoint signs with now, the current one first.
    pub async fn endpoint_secrets(&self, id: EndpointId) -> Result<Vec<String>, StoreError> {
        self.read(move |c| secrets(c, id, now_ms())).await
    }

    /// One stored sealed credential, if any endpoint has one (to check the key at start).
    pub async fn some_sealed_credential(&self) -> Result<Option<Sealed>, StoreError> {
        self.read(|c| {
            c.query_opt(
                "SELECT coalesce(auth, client_certificate) FROM endpoints
                 WHERE auth IS NOT NULL OR client_certificate IS NOT NULL LIMIT 1",
                &[],
                |r| Ok(Sealed(r.get(0)?)),
            )
        })
        .await
    }
}

/// Re-activates an endpoint, resets its failure count and, when it was disabled, announces
/// `hookd.endpoint.enabled`.
fn activate(
    c: &Conn<'_>,
    batch: &mut Batch,
    before: &Endpoint,
    now: UnixMs,
) -> Result<(), StoreError> {
    batch.subscribers.forget(c, before.tenant_id)?;
    c.execute(
        "UPDATE endpoints SET is_active = 1, disabled_at = NULL, disabled_reason = NULL,
            consecutive_failures = 0, updated_at = ?2
         WHERE id = ?1",
        &vals![before.id.0, now],
    )?;
    batch.wake = true;
    if let Some(enabled) = operational::on_enabled(before, now) {
        announce(c, batch, before.tenant_id, enabled)?;
    }
    Ok(())
}

/// Disables an endpoint. Its pending deliveries are left as they are: they wait for it to be
/// enabled again, or [`Store::settle_disabled`] fails them in chunks when the reason says so.
pub(super) fn deactivate(
    c: &Conn<'_>,
    batch: &mut Batch,
    endpoint: EndpointId,
    tenant: TenantId,
    now: UnixMs,
    reason: DisableReason,
) -> Result<(), StoreError> {
    batch.subscribers.forget(c, tenant)?;
    c.execute("UPDATE endpoints SET is_active = 0, disabled_at = ?2, disabled_reason = ?3, updated_at = ?2
         WHERE id = ?1", &vals![endpoint.0, now, reason.as_str()])?;
    Ok(())
}

/// Fails up to `limit` pending deliveries of an endpoint that is disabled for a reason that
/// fails them; returns how many.
fn settle_chunk(
    c: &Conn<'_>,
    ledger: &mut Ledger,
    id: EndpointId,
    limit: usize,
) -> Result<usize, StoreError> {
    let reason: Option<Option<String>> = c.query_opt(
        "SELECT disabled_reason FROM endpoints WHERE id = ?1 AND is_active = 0",
        &vals![id.0],
        |r| r.get(0),
    )?;
    let reason = reason.flatten().as_deref().and_then(DisableReason::parse);
    if !reason.is_some_and(DisableReason::fails_pending) {
        return Ok(0);
    }
    let settled = c.query(
        "UPDATE deliveries SET status = 2, next_attempt_at = NULL, lease_until = NULL,
                lease = NULL
             WHERE id IN (SELECT id FROM deliveries
                          WHERE endpoint_id = ?1 AND status = 0 ORDER BY id LIMIT ?2)
             RETURNING id",
        &vals![id.0, limit as i64],
        |r| r.get::<i64>(0),
    )?;
    for delivery in &settled {
        ledger.blocks.delivery_moved(
            id.0,
            *delivery,
            crate::model::DeliveryStatus::Pending,
            crate::model::DeliveryStatus::Failed,
        );
    }
    let failed = settled.len();
    ledger.endpoints.change(
        id,
        EndpointChange {
            failed: failed as i64,
            pending: -(failed as i64),
            ..EndpointChange::default()
        },
    );
    Ok(failed)
}

impl Store {
    /// Fails the pending deliveries of an endpoint disabled by failures (or `410`), in chunks
    /// of `SETTLE_CHUNK` rows, each its own write, so a big backlog never holds the writer.
    /// Does nothing when the endpoint was enabled again meanwhile. Returns how many failed.
    pub async fn settle_disabled(&self, id: EndpointId) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let failed = self
                .writer
                .write(move |c, batch| settle_chunk(c, &mut batch.ledger, id, SETTLE_CHUNK))
                .await?;
            total += failed as u64;
            if failed < SETTLE_CHUNK {
                return Ok(total);
            }
        }
    }

    /// Disabled endpoints that still have pending deliveries: [`Store::settle_disabled`]
    /// decides, for each, whether they fail (settling may have been interrupted).
    pub async fn disabled_with_pending(&self) -> Result<Vec<EndpointId>, StoreError> {
        self.read(|c| {
            c.query(
                "SELECT id FROM endpoints WHERE is_active = 0 AND pending + coalesce(
                     (SELECT sum(k.pending) FROM endpoint_counts k
                      WHERE k.endpoint_id = endpoints.id), 0) > 0",
                &[],
                |r| Ok(EndpointId(r.get(0)?)),
            )
        })
        .await
    }

    /// Folds the counts' rows of PostgreSQL processes that are gone into the shared ones
    /// (housekeeping); every count reads the same before and after. Returns the rows folded.
    /// On SQLite this does nothing: its one writer counts as writer 0, and what a copy
    /// brought from PostgreSQL it folds before its commit.
    pub async fn fold_counts(&self) -> Result<usize, StoreError> {
        if !self.is_postgres() {
            return Ok(0);
        }
        self.writer
            .write(|c, _| super::ledger::fold_counts(c))
            .await
    }
}
