//! Integrations: the one endpoint per type (`slack`, `discord`, `webhook`) per tenant that the
//! `/v1/integrations` routes manage. Other endpoints, even of the same format, are untouched.

use crate::db::sql::vals;

use super::endpoints::{insert, load};
use super::rows::columns;
use super::{Store, StoreError};
use crate::model::endpoint::NewEndpoint;
use crate::model::{Endpoint, EndpointId, EventPattern, TenantId, now_ms};

impl Store {
    /// The endpoints the integration routes manage, with their type.
    pub async fn integrations(
        &self,
        tenant_id: TenantId,
    ) -> Result<Vec<(String, Endpoint)>, StoreError> {
        self.read(move |c| {
            let rows: Vec<(String, i64)> = c.query(
                "SELECT integration, id FROM endpoints
                     WHERE tenant_id = ?1 AND integration IS NOT NULL",
                &vals![tenant_id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            rows.into_iter()
                .map(|(kind, id)| Ok((kind, load(c, tenant_id, EndpointId(id))?)))
                .collect()
        })
        .await
    }

    /// Connects an integration in one write: creates its endpoint from `new` (answering
    /// `true`), or, when the tenant has one of this type, points it at the new URL and events
    /// (`false`).
    pub async fn connect_integration(
        &self,
        tenant_id: TenantId,
        kind: &'static str,
        new: NewEndpoint,
    ) -> Result<(Endpoint, bool), StoreError> {
        self.writer
            .write(move |c, batch| {
                let existing: Option<i64> = c
                    .query_opt("SELECT id FROM endpoints WHERE tenant_id = ?1 AND integration = ?2", &vals![tenant_id.0, kind], |r| r.get(0))?;
                let now = now_ms();
                match existing {
                    Some(id) => {
                        batch.subscribers.forget(c, tenant_id)?;
                        // The URL it replaces may be a credential (Slack, Discord).
                        batch.scrub = true;
                        let cols = columns(&new.settings);
                        c.execute("UPDATE endpoints SET url = ?2, events = ?3, updated_at = ?4, url_sealed = ?5 WHERE id = ?1", &vals![id, new.settings.url.as_str(), cols.events, now, new.settings.url_sealed.as_ref().map(|u| u.0.as_str())])?;
                        Ok((load(c, tenant_id, EndpointId(id))?, false))
                    }
                    None => {
                        let id = insert(c, batch, tenant_id, &new)?;
                        c.execute("UPDATE endpoints SET integration = ?2 WHERE id = ?1", &vals![id.0, kind])?;
                        Ok((load(c, tenant_id, id)?, true))
                    }
                }
            })
            .await
    }

    /// Disconnects an integration by deleting its endpoint; `NotFound` when none is connected.
    pub async fn disconnect_integration(
        &self,
        tenant_id: TenantId,
        kind: &'static str,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.subscribers.forget(c, tenant_id)?;
                batch.scrub = true;
                match c.execute(
                    "DELETE FROM endpoints WHERE tenant_id = ?1 AND integration = ?2",
                    &vals![tenant_id.0, kind],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }
}

/// Events an integration subscribes to when none are given.
pub fn default_events() -> Vec<EventPattern> {
    vec![EventPattern::All]
}
