//! The publish path every event takes (the API, incoming webhooks, digests, `hookd.*`
//! announcements): the event row and one delivery per target, inside the caller's write, so a
//! `202` always means both are committed. Which endpoints are targets is [`crate::fanout`]'s
//! rule, over subscriptions compiled once per tenant and cached here.

use super::sql::{Conn, vals};

use super::ledger::Ledger;
use super::usage::events_on;
use super::writer::Batch;
use super::{StoreError, count};
use crate::fanout::{Fanout, Subscribers};
use crate::model::event::idempotency_holds;
use crate::model::operational::Announcement;
use crate::model::plan::utc_day;
use crate::model::schedule::{covers, reported_status};
use crate::model::{
    DeliveryStatus, EndpointId, EventId, EventName, EventPattern, TenantId, UnixMs, now_ms,
};

/// An event to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its type.
    pub name: EventName,
    /// Its `data`, as JSON text.
    pub data: String,
    /// A key that makes publishing it again within 24h a no-op.
    pub idempotency_key: Option<String>,
    /// The channels it is published on (checked with `check_channels`).
    pub channels: Vec<String>,
}

/// What a publish answers for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's id.
    pub id: EventId,
    /// Its type.
    pub name: String,
    /// When it was (first) published.
    pub created_at: UnixMs,
    /// How many endpoints it fanned out to.
    pub deliveries: u64,
}

/// Whether a publish counts towards the tenant's daily events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metering {
    /// The tenant's own events (the API, incoming webhooks): counted, and refused past the
    /// plan's daily limit.
    Counted,
    /// hookd's own (`hookd.*` announcements, digests): neither counted nor refused.
    Internal,
}

/// Publishes events inside the caller's write: for each, the event row and one delivery per
/// target of `fanout`. An idempotency key seen within the window answers with the first event.
/// Counted events past the plan's daily limit fail the whole call (the caller's savepoint
/// undoes what it wrote).
pub(super) fn publish_in(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    events: &[NewEvent],
    fanout: Fanout,
    metering: Metering,
) -> Result<Vec<Published>, StoreError> {
    let now = now_ms();
    let subscribers = batch.subscribers.get(c, tenant_id)?;
    let mut out = Vec::with_capacity(events.len());
    let mut repeats = 0;
    // On PostgreSQL a batch without idempotency keys goes in two statements, not two per event.
    if c.is_postgres() && events.len() > 1 && events.iter().all(|e| e.idempotency_key.is_none()) {
        out = insert_together(c, batch, tenant_id, events, &subscribers, fanout, now)?;
    } else {
        for event in events {
            if let Some(key) = &event.idempotency_key {
                match prior(c, tenant_id, key)? {
                    Some(p) if idempotency_holds(p.created_at, now) => {
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
            let targets = subscribers.targets(name, &event.data, &event.channels, fanout);
            let (deliveries, channels) = (
                targets.len() as i64,
                super::rows::channels_text(&event.channels),
            );
            let row = vals![
                tenant_id.0,
                name,
                event.data,
                event.idempotency_key,
                deliveries,
                now,
                channels
            ];
            let event_id = match &event.idempotency_key {
                None => c.insert(
                    "INSERT INTO events (tenant_id, type, data, idempotency_key, deliveries,
                        created_at, channels)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    &row,
                )?,
                // Another process may publish the same key at the same moment (PostgreSQL): the
                // insert then waits for its commit, and the publish is that one's repeat.
                Some(key) => {
                    let inserted = c.query_opt(
                        "INSERT INTO events (tenant_id, type, data, idempotency_key, deliveries,
                            created_at, channels)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
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
            for endpoint in &targets {
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
    if metering == Metering::Counted {
        let stored = events.len() - repeats;
        meter_events(c, batch, tenant_id, stored as u64, now)?;
    }
    fire_status_schedules(c, tenant_id, events, now)?;
    batch.wake |= out.iter().any(|p| p.deliveries > 0);
    Ok(out)
}

/// Counts `n` events into the tenant's day, inside the caller's write; refuses them all when
/// they would pass the plan's daily limit (the caller's savepoint then undoes the request).
pub(super) fn meter_events(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    n: u64,
    now: UnixMs,
) -> Result<(), StoreError> {
    if n == 0 {
        return Ok(());
    }
    let plan = batch.subscribers.plan(c, tenant_id)?;
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
    events: &[NewEvent],
    subscribers: &Subscribers,
    fanout: Fanout,
    now: UnixMs,
) -> Result<Vec<Published>, StoreError> {
    let json = |rows: Vec<serde_json::Value>| serde_json::Value::Array(rows).to_string();
    let targets: Vec<Vec<EndpointId>> = events
        .iter()
        .map(|e| subscribers.targets(e.name.as_str(), &e.data, &e.channels, fanout))
        .collect();
    let rows = events
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(i, (e, to))| {
            serde_json::json!({
                "ord": i, "type": e.name.as_str(), "data": e.data, "deliveries": to.len(),
                "channels": super::rows::channels_text(&e.channels),
            })
        })
        .collect();
    let ids: Vec<i64> = c.query(
        "WITH x AS MATERIALIZED (
             SELECT r.*, nextval(pg_get_serial_sequence('events', 'id')) AS id
             FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb))
                 AS r(ord BIGINT, type TEXT, data TEXT, deliveries BIGINT, channels TEXT)),
         ins AS (
             INSERT INTO events (id, tenant_id, type, data, deliveries, created_at, channels)
             SELECT id, ?2, type, data, deliveries, ?3, channels FROM x)
         SELECT id FROM x ORDER BY ord",
        &vals![json(rows), tenant_id.0, now],
        |r| r.get(0),
    )?;
    let mut wanted = Vec::new();
    for (event_id, to) in ids.iter().zip(&targets) {
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
    for ((event, id), to) in events.iter().zip(ids).zip(&targets) {
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
/// in the endpoint's `pending`).
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

/// Publishes one of hookd's own `hookd.*` events into `tenant_id`, inside the caller's write,
/// through the same path as the API's publish. The endpoint it is about never receives it.
pub(super) fn announce(
    c: &Conn<'_>,
    batch: &mut Batch,
    tenant_id: TenantId,
    announcement: Announcement,
) -> Result<(), StoreError> {
    let event = NewEvent {
        name: EventName::parse(announcement.name).map_err(StoreError::invalid_name)?,
        data: announcement.data.to_string(),
        idempotency_key: None,
        channels: Vec::new(),
    };
    let fanout = Fanout::SubscribersExcept(announcement.about);
    publish_in(c, batch, tenant_id, &[event], fanout, Metering::Internal)?;
    Ok(())
}

/// Makes `on_status_change` schedules due now when a published event reports their status
/// (several such events before the scheduler runs make one run).
fn fire_status_schedules(
    c: &Conn<'_>,
    tenant_id: TenantId,
    events: &[NewEvent],
    now: UnixMs,
) -> Result<(), StoreError> {
    let any = c.exists(
        "SELECT 1 FROM schedules WHERE tenant_id = ?1 AND schedule_type = 'on_status_change'
           AND status = 'active'",
        &vals![tenant_id.0],
    )?;
    if !any {
        return Ok(());
    }
    for event in events {
        let name = event.name.as_str();
        let Some(status) = reported_status(name, &event.data) else {
            continue;
        };
        let waiting: Vec<(i64, Option<String>)> = c.query(
            "SELECT id, event_types FROM schedules WHERE tenant_id = ?1
                   AND schedule_type = 'on_status_change' AND trigger_status = ?2
                   AND status = 'active'",
            &vals![tenant_id.0, status],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (id, event_types) in waiting {
            let patterns: Option<Vec<EventPattern>> = match event_types {
                Some(json) => Some(super::rows::patterns(&json, "schedules.event_types")?),
                None => None,
            };
            if covers(patterns.as_deref(), name) {
                c.execute(
                    "UPDATE schedules SET next_run_at = ?2 WHERE id = ?1",
                    &vals![id, now],
                )?;
            }
        }
    }
    Ok(())
}
