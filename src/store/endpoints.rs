//! Endpoints: settings, state and running counters.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::events::publish_operational;
use super::tenants::tenant_exists;
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::endpoint::EndpointCounters;
use crate::model::{
    Endpoint, EndpointId, EndpointSettings, EventPattern, Format, Ordering, Page, PageRequest,
    SignatureScheme, TenantId, now_ms, rfc3339,
};

/// A validated endpoint to create, with its secret.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its settings.
    pub settings: EndpointSettings,
    /// The signing secret.
    pub secret: String,
}

/// A change to an endpoint's settings, applied inside the write so two changes never race.
pub type EndpointPatch = Box<dyn FnOnce(&mut EndpointSettings) -> Result<(), String> + Send>;

const COLUMNS: &str = "id, tenant_id, name, url, events, signature_scheme, signature_header, \
     format, headers, retry_schedule, disable_after, timeout_ms, rate_limit, ordering, \
     is_active, disabled_at, disabled_reason, created_at, updated_at, succeeded, failed, \
     pending, consecutive_failures, last_delivery_at, last_delivery_status, last_response_code";

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

/// Reads one endpoint row selected with [`COLUMNS`].
pub(super) fn endpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Endpoint> {
    let url: String = r.get(3)?;
    let events: String = r.get(4)?;
    let patterns: Vec<String> = serde_json::from_str(&events).map_err(|_| corrupt("events"))?;
    let headers: String = r.get(8)?;
    let retry: String = r.get(9)?;
    let retry_ms: Vec<u64> = serde_json::from_str(&retry).map_err(|_| corrupt("retry"))?;
    let scheme: String = r.get(5)?;
    let format: String = r.get(7)?;
    let ordering: String = r.get(13)?;
    let settings = EndpointSettings {
        name: r.get(2)?,
        url: url::Url::parse(&url).map_err(|_| corrupt("url"))?,
        events: patterns
            .iter()
            .map(|p| EventPattern::parse(p))
            .collect::<Result<_, _>>()
            .map_err(|_| corrupt("events"))?,
        signature_scheme: SignatureScheme::parse(&scheme).ok_or_else(|| corrupt("scheme"))?,
        signature_header_name: r.get(6)?,
        format: Format::parse(&format).ok_or_else(|| corrupt("format"))?,
        headers: serde_json::from_str(&headers).map_err(|_| corrupt("headers"))?,
        retry_schedule: retry_ms.into_iter().map(Duration::from_millis).collect(),
        disable_after: r.get(10)?,
        timeout_ms: r.get(11)?,
        rate_limit: r.get(12)?,
        ordering: Ordering::parse(&ordering).ok_or_else(|| corrupt("ordering"))?,
        is_active: r.get::<_, i64>(14)? != 0,
    };
    let last_at: Option<i64> = r.get(23)?;
    let counters = EndpointCounters {
        succeeded: count(r.get(19)?),
        failed: count(r.get(20)?),
        pending: count(r.get(21)?),
        consecutive_failures: count(r.get(22)?),
        last_delivery: match last_at {
            Some(at) => Some((at, r.get(24)?, r.get(25)?)),
            None => None,
        },
    };
    Ok(Endpoint {
        id: EndpointId(r.get(0)?),
        tenant_id: TenantId(r.get(1)?),
        settings,
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        disabled_at: r.get(15)?,
        disabled_reason: r.get(16)?,
        counters,
    })
}

pub(super) struct Columns {
    pub(super) events: String,
    headers: String,
    retry: String,
}

pub(super) fn columns(s: &EndpointSettings) -> Columns {
    let events: Vec<String> = s.events.iter().map(ToString::to_string).collect();
    let retry: Vec<u64> = s
        .retry_schedule
        .iter()
        .map(|d| d.as_millis() as u64)
        .collect();
    Columns {
        events: serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()),
        headers: serde_json::to_string(&s.headers).unwrap_or_else(|_| "{}".into()),
        retry: serde_json::to_string(&retry).unwrap_or_else(|_| "[]".into()),
    }
}

/// Inserts an endpoint inside the caller's write; returns its id.
pub(super) fn insert(
    c: &Connection,
    tenant_id: TenantId,
    new: &NewEndpoint,
) -> Result<EndpointId, StoreError> {
    if !tenant_exists(c, tenant_id)? {
        return Err(StoreError::NotFound);
    }
    let s = &new.settings;
    let cols = columns(s);
    let now = now_ms();
    c.prepare_cached(
        "INSERT INTO endpoints (tenant_id, name, url, events, secret, signature_scheme,
                signature_header, format, headers, retry_schedule, disable_after,
                timeout_ms, rate_limit, ordering, is_active, disabled_at, disabled_reason,
                created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                ?16, ?17, ?18, ?18)",
    )?
    .execute(params![
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
        (!s.is_active).then_some("manual"),
        now,
    ])?;
    Ok(EndpointId(c.last_insert_rowid()))
}

/// Loads one endpoint of a tenant, inside a read or a write.
pub(super) fn load(
    c: &Connection,
    tenant_id: TenantId,
    id: EndpointId,
) -> Result<Endpoint, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row(params![id.0, tenant_id.0], endpoint_row)
    .optional()?
    .ok_or(StoreError::NotFound)
}

/// Loads one endpoint of any tenant, inside a read or a write.
pub(super) fn load_any(c: &Connection, id: EndpointId) -> Result<Endpoint, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM endpoints WHERE id = ?1"))?
        .query_row([id.0], endpoint_row)
        .optional()?
        .ok_or(StoreError::NotFound)
}

/// The secrets an endpoint signs with at `now`: the current one, then those still in a
/// rotation's grace period, newest first.
pub(super) fn secrets(c: &Connection, id: EndpointId, now: i64) -> Result<Vec<String>, StoreError> {
    let mut all = vec![secret(c, id)?];
    let old = c
        .prepare_cached(
            "SELECT secret FROM endpoint_old_secrets WHERE endpoint_id = ?1 AND expires_at > ?2
             ORDER BY expires_at DESC",
        )?
        .query_map(params![id.0, now], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    all.extend(old);
    Ok(all)
}

/// The signing secret of an endpoint, inside a read or a write.
pub(super) fn secret(c: &Connection, id: EndpointId) -> Result<String, StoreError> {
    c.prepare_cached("SELECT secret FROM endpoints WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?
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
            .write(move |c, _| {
                let id = insert(c, tenant_id, &new)?;
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
            let total: i64 = c.query_row(
                "SELECT count(*) FROM endpoints WHERE tenant_id = ?1",
                [tenant_id.0],
                |r| r.get(0),
            )?;
            let rows = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM endpoints WHERE tenant_id = ?1
                     ORDER BY id LIMIT ?2 OFFSET ?3"
                ))?
                .query_map(params![tenant_id.0, page.size, page.offset()], endpoint_row)?
                .collect::<Result<Vec<_>, _>>()?;
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
                let before = load(c, tenant_id, id)?;
                let mut s = before.settings.clone();
                patch(&mut s).map_err(StoreError::Invalid)?;
                s.check().map_err(StoreError::Invalid)?;
                let cols = columns(&s);
                let now = now_ms();
                c.prepare_cached(
                    "UPDATE endpoints SET name = ?2, url = ?3, events = ?4, signature_scheme = ?5,
                        signature_header = ?6, format = ?7, headers = ?8, retry_schedule = ?9,
                        disable_after = ?10, timeout_ms = ?11, rate_limit = ?12, ordering = ?13,
                        updated_at = ?14
                     WHERE id = ?1",
                )?
                .execute(params![
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
                ])?;
                if s.is_active != before.settings.is_active {
                    if s.is_active {
                        activate(c, batch, &before, now)?;
                    } else {
                        deactivate(c, id, now, "manual", false)?;
                        let data = serde_json::json!({
                            "endpointId": id,
                            "reason": "manual",
                            "disabledAt": rfc3339(now),
                        });
                        publish_operational(c, batch, &before, "hookd.endpoint.disabled", data)?;
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
            .write(move |c, _| {
                match c.execute(
                    "DELETE FROM endpoints WHERE id = ?1 AND tenant_id = ?2",
                    params![id.0, tenant_id.0],
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
    /// secrets whose grace has ended are deleted. Announces `hookd.endpoint.secret_rotated`.
    pub async fn rotate_secret(
        &self,
        tenant_id: TenantId,
        id: EndpointId,
        new_secret: String,
        grace_ms: i64,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, batch| {
                let endpoint = load(c, tenant_id, id)?;
                let old = secret(c, id)?;
                let now = now_ms();
                c.prepare_cached("DELETE FROM endpoint_old_secrets WHERE expires_at <= ?1")?
                    .execute([now])?;
                if grace_ms > 0 {
                    c.prepare_cached(
                        "INSERT INTO endpoint_old_secrets (endpoint_id, secret, expires_at)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![id.0, old, now + grace_ms])?;
                } else {
                    c.prepare_cached("DELETE FROM endpoint_old_secrets WHERE endpoint_id = ?1")?
                        .execute([id.0])?;
                }
                c.prepare_cached(
                    "UPDATE endpoints SET secret = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![id.0, new_secret, now])?;
                let data = serde_json::json!({
                    "endpointId": id,
                    "rotatedAt": rfc3339(now),
                    "oldSecretExpiresAt": rfc3339(now + grace_ms.max(0)),
                });
                publish_operational(c, batch, &endpoint, "hookd.endpoint.secret_rotated", data)
            })
            .await
    }

    /// Deletes secrets whose rotation grace has ended; returns how many.
    pub async fn prune_old_secrets(&self) -> Result<usize, StoreError> {
        self.writer
            .write(|c, _| {
                Ok(
                    c.prepare_cached("DELETE FROM endpoint_old_secrets WHERE expires_at <= ?1")?
                        .execute([now_ms()])?,
                )
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
}

/// Re-activates an endpoint, resets its failure count and, when it was disabled, announces
/// `hookd.endpoint.enabled`.
fn activate(
    c: &Connection,
    batch: &mut Batch,
    before: &Endpoint,
    now: i64,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE endpoints SET is_active = 1, disabled_at = NULL, disabled_reason = NULL,
            consecutive_failures = 0, updated_at = ?2
         WHERE id = ?1",
    )?
    .execute(params![before.id.0, now])?;
    batch.wake = true;
    if !before.settings.is_active {
        let data = serde_json::json!({
            "endpointId": before.id,
            "previousReason": before.disabled_reason,
            "enabledAt": rfc3339(now),
        });
        publish_operational(c, batch, before, "hookd.endpoint.enabled", data)?;
    }
    Ok(())
}

/// Disables an endpoint. With `fail_pending`, its pending deliveries become `failed` (the rule
/// for endpoints disabled by failures); otherwise they wait for it to be enabled again.
pub(super) fn deactivate(
    c: &Connection,
    id: EndpointId,
    now: i64,
    reason: &str,
    fail_pending: bool,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE endpoints SET is_active = 0, disabled_at = ?2, disabled_reason = ?3, updated_at = ?2
         WHERE id = ?1",
    )?
    .execute(params![id.0, now, reason])?;
    if fail_pending {
        let failed = c
            .prepare_cached(
                "UPDATE deliveries SET status = 2, next_attempt_at = NULL, lease_until = NULL
                 WHERE endpoint_id = ?1 AND status = 0",
            )?
            .execute([id.0])?;
        c.prepare_cached(
            "UPDATE endpoints SET failed = failed + ?2, pending = pending - ?2 WHERE id = ?1",
        )?
        .execute(params![id.0, failed as i64])?;
    }
    Ok(())
}
