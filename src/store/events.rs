//! Publishing: an event and its fan-out (one delivery per matching active endpoint) are
//! written in one operation, so a `202` always means both are committed.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::deliveries::{DeliverySummary, summary_row};
use super::writer::Batch;
use super::{Store, StoreError, count};
use crate::model::{
    Endpoint, EndpointId, EventId, EventName, EventPattern, Page, PageRequest, TenantId, UnixMs,
    now_ms,
};

/// How long an idempotency key answers with its first event.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;

/// An event to publish.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Its type.
    pub name: EventName,
    /// Its `data`, as JSON text.
    pub data: String,
    /// A key that makes publishing it again within 24h a no-op.
    pub idempotency_key: Option<String>,
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

/// A stored event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// The publish answer's fields.
    pub published: Published,
    /// Its `data`, as JSON text.
    pub data: String,
}

/// An event with its deliveries.
#[derive(Debug, Clone)]
pub struct EventDetail {
    /// The event.
    pub event: StoredEvent,
    /// One per endpoint it fanned out to.
    pub deliveries: Vec<DeliverySummary>,
}

/// Which endpoints a publish delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fanout {
    /// Every active endpoint subscribed to the event's type.
    Subscribers,
    /// Every subscriber but this one (the subject of an operational event).
    SubscribersExcept(EndpointId),
    /// This endpoint alone, if active, whatever it subscribes to (a schedule's own target).
    Only(EndpointId),
}

struct Subscriber {
    id: i64,
    patterns: Vec<EventPattern>,
}

fn subscribers(c: &Connection, tenant_id: TenantId) -> Result<Vec<Subscriber>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, events FROM endpoints WHERE tenant_id = ?1 AND is_active = 1",
    )?;
    let rows = stmt.query_map([tenant_id.0], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, events) = row?;
        let names: Vec<String> = serde_json::from_str(&events)
            .map_err(|e| StoreError::Database(format!("endpoint {id} events: {e}")))?;
        let patterns = names
            .iter()
            .filter_map(|n| EventPattern::parse(n).ok())
            .collect();
        out.push(Subscriber { id, patterns });
    }
    Ok(out)
}

/// Inserts events and their deliveries inside the caller's write; the heart of publishing.
/// `fanout` says which of the tenant's active endpoints may get a delivery.
pub(super) fn publish_in(
    c: &Connection,
    tenant_id: TenantId,
    events: &[NewEvent],
    fanout: Fanout,
) -> Result<Vec<Published>, StoreError> {
    let now = now_ms();
    let subs = subscribers(c, tenant_id)?;
    let mut pending_added: HashMap<i64, i64> = HashMap::new();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        if let Some(key) = &event.idempotency_key {
            let prior = c
                .prepare_cached(
                    "SELECT id, type, created_at, deliveries FROM events
                     WHERE tenant_id = ?1 AND idempotency_key = ?2",
                )?
                .query_row(params![tenant_id.0, key], |r| {
                    Ok(Published {
                        id: EventId(r.get(0)?),
                        name: r.get(1)?,
                        created_at: r.get(2)?,
                        deliveries: count(r.get(3)?),
                    })
                })
                .optional()?;
            match prior {
                Some(p) if p.created_at > now - IDEMPOTENCY_WINDOW_MS => {
                    out.push(p);
                    continue;
                }
                Some(p) => {
                    c.prepare_cached("UPDATE events SET idempotency_key = NULL WHERE id = ?1")?
                        .execute([p.id.0])?;
                }
                None => {}
            }
        }
        let name = event.name.as_str();
        let targets: Vec<i64> = subs
            .iter()
            .filter(|s| match fanout {
                Fanout::Subscribers => s.patterns.iter().any(|p| p.matches(name)),
                Fanout::SubscribersExcept(e) => {
                    s.id != e.0 && s.patterns.iter().any(|p| p.matches(name))
                }
                Fanout::Only(e) => s.id == e.0,
            })
            .map(|s| s.id)
            .collect();
        c.prepare_cached(
            "INSERT INTO events (tenant_id, type, data, idempotency_key, deliveries, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            tenant_id.0,
            name,
            event.data,
            event.idempotency_key,
            targets.len() as i64,
            now
        ])?;
        let event_id = c.last_insert_rowid();
        let mut insert = c.prepare_cached(
            "INSERT INTO deliveries (event_id, endpoint_id, status, next_attempt_at, created_at)
             VALUES (?1, ?2, 0, ?3, ?3)",
        )?;
        for endpoint in &targets {
            insert.execute(params![event_id, endpoint, now])?;
            *pending_added.entry(*endpoint).or_default() += 1;
        }
        out.push(Published {
            id: EventId(event_id),
            name: name.to_owned(),
            created_at: now,
            deliveries: targets.len() as u64,
        });
    }
    super::schedules::note_statuses(c, tenant_id, events, now)?;
    let mut bump = c.prepare_cached("UPDATE endpoints SET pending = pending + ?2 WHERE id = ?1")?;
    for (endpoint, n) in pending_added {
        bump.execute(params![endpoint, n])?;
    }
    Ok(out)
}

/// Publishes one of hookd's own `hookd.*` events about `endpoint` into its tenant, inside the
/// caller's write, through the same path as the API's publish. The endpoint it is about
/// never receives it.
pub(super) fn publish_operational(
    c: &Connection,
    batch: &mut Batch,
    endpoint: &Endpoint,
    name: &str,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    let event = NewEvent {
        name: EventName::parse(name).map_err(StoreError::Database)?,
        data: data.to_string(),
        idempotency_key: None,
    };
    let published = publish_in(
        c,
        endpoint.tenant_id,
        &[event],
        Fanout::SubscribersExcept(endpoint.id),
    )?;
    batch.wake |= published.iter().any(|p| p.deliveries > 0);
    Ok(())
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        published: Published {
            id: EventId(r.get(0)?),
            name: r.get(1)?,
            created_at: r.get(3)?,
            deliveries: count(r.get(4)?),
        },
        data: r.get(2)?,
    })
}

impl Store {
    /// Publishes events, all or nothing, and answers once they and their deliveries are
    /// committed.
    pub async fn publish(
        &self,
        tenant_id: TenantId,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Published>, StoreError> {
        self.writer
            .write(move |c, batch| {
                let published = publish_in(c, tenant_id, &events, Fanout::Subscribers)?;
                batch.wake |= published.iter().any(|p| p.deliveries > 0);
                Ok(published)
            })
            .await
    }

    /// One page of a tenant's events, newest first, optionally of one type.
    pub async fn list_events(
        &self,
        tenant_id: TenantId,
        name: Option<String>,
        page: PageRequest,
    ) -> Result<Page<StoredEvent>, StoreError> {
        self.read(move |c| {
            let total: i64 = c.query_row(
                "SELECT count(*) FROM events WHERE tenant_id = ?1 AND (?2 IS NULL OR type = ?2)",
                params![tenant_id.0, name],
                |r| r.get(0),
            )?;
            let rows = c
                .prepare_cached(
                    "SELECT id, type, data, created_at, deliveries FROM events
                     WHERE tenant_id = ?1 AND (?2 IS NULL OR type = ?2)
                     ORDER BY id DESC LIMIT ?3 OFFSET ?4",
                )?
                .query_map(
                    params![tenant_id.0, name, page.size, page.offset()],
                    event_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }

    /// One event with its deliveries.
    pub async fn get_event(
        &self,
        tenant_id: TenantId,
        id: EventId,
    ) -> Result<EventDetail, StoreError> {
        self.read(move |c| {
            let event = c
                .prepare_cached(
                    "SELECT id, type, data, created_at, deliveries FROM events
                     WHERE id = ?1 AND tenant_id = ?2",
                )?
                .query_row(params![id.0, tenant_id.0], event_row)
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let deliveries = c
                .prepare_cached(&format!(
                    "{} WHERE d.event_id = ?1 ORDER BY d.id",
                    super::deliveries::SUMMARY_SELECT
                ))?
                .query_map([id.0], summary_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(EventDetail { event, deliveries })
        })
        .await
    }
}
