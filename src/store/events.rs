//! Events: reading the event log (publishing is [`super::publish`]).

use crate::db::sql::{Row, vals};

use super::paging::{self, List};
use super::rows::{SUMMARY_SELECT, summary_row};
use super::{Store, StoreError, count};
use crate::model::publish::Published;
use crate::model::publish::{EventDetail, StoredEvent};
use crate::model::{EventId, Page, PageRequest, TenantId};

/// The columns [`event_row`] reads, in its order.
const EVENT_SELECT: &str = "SELECT id, type, data, created_at, deliveries, channels, traceparent,
        tracestate FROM events";

fn event_row(r: &Row<'_>) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        published: Published {
            id: EventId(r.get(0)?),
            name: r.get(1)?,
            created_at: r.get(3)?,
            deliveries: count(r.get(4)?),
        },
        data: r.get(2)?,
        channels: super::rows::channels(r.get(5)?, "events.channels")?.unwrap_or_default(),
        trace: super::rows::trace(r.get(6)?, r.get(7)?)?,
    })
}

impl Store {
    /// One page of a tenant's events, newest first, optionally of one type.
    pub async fn list_events(
        &self,
        tenant_id: TenantId,
        name: Option<String>,
        page: PageRequest,
    ) -> Result<Page<StoredEvent>, StoreError> {
        self.read(move |c| {
            let (total, seek) =
                paging::locate(c, List::Events, tenant_id.0, name.as_deref(), page.offset())?;
            let Some(seek) = seek else {
                return Ok(page.page(Vec::new(), total));
            };
            let of_type = match name {
                None => "",
                Some(_) => "AND type = ?2",
            };
            let rows = c.query(
                &format!(
                    "{EVENT_SELECT} WHERE tenant_id = ?1 {of_type} AND id < ?3
                     ORDER BY id DESC LIMIT ?4 OFFSET ?5"
                ),
                &vals![tenant_id.0, name, seek.below, page.size, seek.skip],
                event_row,
            )?;
            Ok(page.page(rows, total))
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
                .query_opt(
                    &format!("{EVENT_SELECT} WHERE id = ?1 AND tenant_id = ?2"),
                    &vals![id.0, tenant_id.0],
                    event_row,
                )?
                .ok_or(StoreError::NotFound)?;
            let deliveries = c.query(
                &format!("{SUMMARY_SELECT} WHERE d.event_id = ?1 ORDER BY d.id"),
                &vals![id.0],
                summary_row,
            )?;
            Ok(EventDetail { event, deliveries })
        })
        .await
    }
}
