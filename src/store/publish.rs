//! Applying a publish plan (the API, incoming webhooks, digests, `hookd.*` announcements): the
//! event rows and one delivery per planned target, inside the caller's write, so a `202`
//! always means both are committed. The plan is computed outside ([`crate::service::publish`],
//! from [`crate::fanout::Audience`]); one computed from an older version of the tenant's
//! subscriptions is handed back unapplied.

use std::sync::Arc;

use crate::db::sql::{Conn, vals};

use super::batch::Batch;
use super::ledger::Ledger;
use super::subscribers::read_audience;
use super::usage::events_on;
use super::{Store, StoreError, count};
use crate::fanout::{Audience, Fanout};
use crate::model::operational::Announcement;
use crate::model::plan::{Plan, utc_day};
use crate::model::publish::{Applied, Metering, NewEvent, PlannedEvent, PublishPlan, Published};
use crate::model::{DeliveryStatus, EndpointId, EventId, TenantId, UnixMs, now_ms};

/// Applies `plan` inside the caller's write: for each event, the event row and one delivery
/// per planned target. A key first used since `plan.repeats_since` answers with that first
/// event. Counted events past the quota's daily limit fail the whole call (the caller's
/// savepoint undoes what it wrote). A plan computed from another version of the tenant's
/// audience than this batch sees is handed back, nothing written.
pub(super) fn apply_in(
    c: &Conn<'_>,
    batch: &mut Batch,
    plan: PublishPlan,
) -> Result<Applied, StoreError> {
    if batch.subscribers.version(c, plan.tenant)? != plan.version {
        return Ok(Applied::Stale(plan));
    }
    write_plan(c, batch, &plan).map(Applied::Done)
}

/// Writes a plan's rows inside the caller's write: each event and one delivery per planned
/// target, the quota's count, the schedules it wakes.
pub(super) fn write_plan(
    c: &Conn<'_>,
    batch: &mut Batch,
    plan: &PublishPlan,
) -> Result<Vec<Published>, StoreError> {
    let (tenant_id, now) = (plan.tenant, plan.at);
    let events = &plan.events;
    let mut out = Vec::with_capacity(events.len());
    let mut repeats = 0;
    // On PostgreSQL a batch without idempotency keys goes in two statements, not two per event.
    let keyless = events.iter().all(|e| e.event.idempotency_key.is_none());
    if c.is_postgres() && events.len() > 1 && keyless {
        out = insert_together(c, batch, tenant_id, events, now)?;
    } else {
        for PlannedEvent { event, targets } in events {
            if let Some(key) = &event.idempotency_key {
                match prior(c, tenant_id, key)? {
                    Some(p) if p.created_at >= plan.repeats_since => {
                        repeats += 1;
                        out.push(p);
                        continue;
                    }
                    Some(p) => {
                        c.execute(
                            "UPDATE events SET idempotency_key = NULL WHERE id = ?1",
                            &vals![p.id.0],
                        )?;
                    }
                    None => {}
                }
            }
            let name = event.name.as_str();
            let (deliveries, channels) = (
                targets.len() as i64,
                super::rows::channels_text(&event.channels),
            );
            let (traceparent, tracestate) = super::rows::trace_columns(&event.trace);
            let row = vals![
                tenant_id.0,
                name,
                event.data,
                event.idempotency_key,
                deliveries,
                now,
                channels,
                traceparent,
                tracestate
            ];
            let event_id = match &event.idempotency_key {
                None => c.insert(
                    "INSERT INTO events (tenant_id, type, data, idempotency_key, deliveries,
                        created_at, channels, traceparent, tracestate)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    &row,
                )?,
                // Another process may publish the same key at the same moment (PostgreSQL): the
                // insert then waits for its commit, and the publish is that one's repeat.
                Some(key) => {
                    let inserted = c.query_opt(
                        "INSERT INTO events (tenant_id, type, data, idempotency_key, deliveries,
                            created_at, channels, traceparent, tracestate)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                         DO NOTHING RETURNING id",
                        &row,
                        |r| r.get::<i64>(0),
                    )?;
                    match inserted {
                        Some(id) => id,
                        None => {
                            let p = prior(c, tenant_id, key)?.ok_or(StoreError::RolledBack)?;
                            repeats += 1;
                            out.push(p);
                            continue;
                        }
                    }
                }
            };
            batch.ledger.blocks.event_added(tenant_id.0, name, event_id);
            for endpoint in targets {
                add_delivery(c, &mut batch.ledger, EventId(event_id), *endpoint, now)?;
            }
            out.push(Published {
                id: EventId(event_id),
                name: name.to_owned(),
                created_at: now,
                deliveries: targets.len() as u64,
            });
        }
    }
    if let Some(quota) = &plan.quota {
        let stored = events.len() - repeats;
        meter_events(c, batch, tenant_id, quota, stored as u64, now)?;
    }
    for schedule in &plan.wake_schedules {
        c.execute(
            "UPDATE schedules SET next_run_at = ?2
             WHERE id = ?1 AND tenant_id = ?3 AND status = 'active'",
            &vals![schedule.0, now, tenant_id.0],
        )?;
    }
    batch.wake |= out.iter().any(|p| p.deliveries > 0);
    Ok(out)
}

/// Writes hookd's own `hookd.*` announcements inside the caller's write: planned by the same
/// rule as a publish, from the audience this batch sees (so never stale), and written by the
/// same row writer; never counted, no idempotency. Not the publish use-case: recording a
/// result never re-enters it. (A schedule run's digest is planned outside, by the firing.)
pub(super) fn write_own(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    events: Vec<NewEvent>,
    fanout: Fanout,
) -> Result<Vec<Published>, StoreError> {
    let audience = batch.subscribers.audience(c, tenant_id)?;
    let plan = audience.plan(tenant_id, events, fanout, Metering::Internal, now_ms());
    write_plan(c, batch, &plan)
}

/// Counts `n` events into the tenant's day, inside the caller's write; refuses them all when
/// they would pass the plan's daily limit (the caller's savepoint then undoes the request).
fn meter_events(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    plan: &Plan,
    n: u64,
    now: UnixMs,
) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    let day = utc_day(now);
    if plan.limits.events_per_day.is_some() {
        let added = count(batch.ledger.usage.added(&(tenant_id.0, day)));
        let used = events_on(c, tenant_id, day)? + added;
        plan.events_fit(used, n, now)?;
    }
    batch.ledger.usage.add((tenant_id.0, day), n as i64);
    Ok(())
}

/// Inserts `events` (none with an idempotency key) and their deliveries in one statement each:
/// ids drawn from the tables' sequences in the events' order, each statement one round trip.
fn insert_together(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    events: &[PlannedEvent],
    now: UnixMs,
) -> Result<Vec<Published>, StoreError> {
    let json = |rows: Vec<serde_json::Value>| serde_json::Value::Array(rows).to_string();
    let rows = events
        .iter()
        .map(|p| (&p.event, &p.targets))
        .enumerate()
        .map(|(i, (e, to))| {
            let (traceparent, tracestate) = super::rows::trace_columns(&e.trace);
            serde_json::json!({
                "ord": i, "type": e.name.as_str(), "data": e.data, "deliveries": to.len(),
                "channels": super::rows::channels_text(&e.channels),
                "traceparent": traceparent, "tracestate": tracestate,
            })
        })
        .collect();
    let ids: Vec<i64> = c.query(
        "WITH x AS MATERIALIZED (
             SELECT r.*, nextval(pg_get_serial_sequence('events', 'id')) AS id
             FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb))
                 AS r(ord BIGINT, type TEXT, data TEXT, deliveries BIGINT, channels TEXT,
                      traceparent TEXT, tracestate TEXT)),
         ins AS (
             INSERT INTO events (id, tenant_id, type, data, deliveries, created_at, channels,
                 traceparent, tracestate)
             SELECT id, ?2, type, data, deliveries, ?3, channels, traceparent, tracestate FROM x)
         SELECT id FROM x ORDER BY ord",
        &vals![json(rows), tenant_id.0, now],
        |r| r.get(0),
    )?;
    let mut wanted = Vec::new();
    for (event_id, to) in ids.iter().zip(events.iter().map(|p| &p.targets)) {
        for endpoint in to {
            wanted.push(serde_json::json!({
                "ord": wanted.len(), "event_id": event_id, "endpoint_id": endpoint.0,
            }));
        }
    }
    let made = wanted.len();
    let delivery_ids: Vec<i64> = if made == 0 {
        Vec::new()
    } else {
        c.query(
            "WITH x AS MATERIALIZED (
                 SELECT r.*, nextval(pg_get_serial_sequence('deliveries', 'id')) AS id
                 FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb))
                     AS r(ord BIGINT, event_id BIGINT, endpoint_id BIGINT)),
             ins AS (
                 INSERT INTO deliveries (id, event_id, endpoint_id, status, next_attempt_at,
                     created_at)
                 SELECT id, event_id, endpoint_id, 0, ?2, ?2 FROM x)
             SELECT id FROM x ORDER BY ord",
            &vals![json(wanted), now],
            |r| r.get(0),
        )?
    };
    if delivery_ids.len() != made || ids.len() != events.len() {
        return Err(StoreError::RolledBack);
    }
    let mut delivery_ids = delivery_ids.into_iter();
    let mut out = Vec::with_capacity(events.len());
    for (PlannedEvent { event, targets: to }, id) in events.iter().zip(ids) {
        let name = event.name.as_str();
        batch.ledger.blocks.event_added(tenant_id.0, name, id);
        for (endpoint, delivery) in to.iter().zip(delivery_ids.by_ref()) {
            batch
                .ledger
                .blocks
                .delivery_added(endpoint.0, delivery, DeliveryStatus::Pending);
            batch.ledger.endpoints.pending_added(*endpoint, 1);
        }
        out.push(Published {
            id: EventId(id),
            name: name.to_owned(),
            created_at: now,
            deliveries: to.len() as u64,
        });
    }
    Ok(out)
}

/// The event published earlier with idempotency key `key`, if one was.
fn prior(c: &Conn<'_>, tenant_id: TenantId, key: &str) -> Result<Option<Published>, StoreError> {
    c.query_opt(
        "SELECT id, type, created_at, deliveries FROM events
         WHERE tenant_id = ?1 AND idempotency_key = ?2",
        &vals![tenant_id.0, key],
        |r| {
            Ok(Published {
                id: EventId(r.get(0)?),
                name: r.get(1)?,
                created_at: r.get(2)?,
                deliveries: count(r.get(3)?),
            })
        },
    )
}

/// Adds one pending delivery, due at `now`, inside the caller's write, and counts it in the
/// ledger (its endpoint's `pending` and list).
pub(super) fn add_delivery(
    c: &Conn<'_>,
    ledger: &mut Ledger,
    event_id: EventId,
    endpoint_id: EndpointId,
    now: UnixMs,
) -> Result<(), StoreError> {
    let id = c.insert(
        "INSERT INTO deliveries (event_id, endpoint_id, status, next_attempt_at, created_at)
         VALUES (?1, ?2, 0, ?3, ?3)",
        &vals![event_id.0, endpoint_id.0, now],
    )?;
    ledger
        .blocks
        .delivery_added(endpoint_id.0, id, DeliveryStatus::Pending);
    ledger.endpoints.pending_added(endpoint_id, 1);
    Ok(())
}

/// Writes one of hookd's own `hookd.*` events into `tenant_id`, inside the caller's write
/// ([`write_own`]). The endpoint it is about never receives it.
pub(super) fn announce(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    announcement: Announcement,
) -> Result<(), StoreError> {
    let event = announcement.event().map_err(StoreError::invalid_name)?;
    let fanout = Fanout::SubscribersExcept(announcement.about);
    write_own(c, batch, tenant_id, vec![event], fanout)?;
    Ok(())
}

impl Store {
    /// The audience a tenant's publishes are planned from: kept from an earlier read while
    /// it is current as far as this process knows (a stale one is found when its plan is
    /// applied); `NotFound` when there is no such tenant.
    pub async fn audience(&self, tenant_id: TenantId) -> Result<Arc<Audience>, StoreError> {
        let sqlite = !self.is_postgres();
        if let Some(audience) = self.audiences.cached(tenant_id, sqlite) {
            return Ok(audience);
        }
        // Read before the rows: the rows are then never older than the version they carry.
        let committed = self.audiences.committed(tenant_id);
        let audience = self
            .read(move |c| {
                let version = if c.is_postgres() {
                    c.query_opt(
                        "SELECT version FROM hookd_tenant_versions WHERE tenant_id = ?1",
                        &vals![tenant_id.0],
                        |r| r.get::<i64>(0),
                    )?
                    .unwrap_or(0)
                } else {
                    committed
                };
                read_audience(c, tenant_id, version)
            })
            .await?;
        let audience = Arc::new(audience);
        self.audiences.keep(tenant_id, audience.clone());
        Ok(audience)
    }

    /// Drops the tenant's kept audience: a plan computed from it was stale.
    pub fn forget_audience(&self, tenant_id: TenantId) {
        self.audiences.forget(tenant_id);
    }

    /// Applies a publish plan and answers once its events and deliveries are committed, all
    /// or nothing; a stale plan comes back unapplied.
    pub async fn apply_publish(&self, plan: PublishPlan) -> Result<Applied, StoreError> {
        self.writer
            .write(move |c, batch| apply_in(c, batch, plan))
            .await
    }
}
