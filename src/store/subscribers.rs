//! The writer's cache of each tenant's compiled subscriptions ([`crate::fanout::Subscribers`]),
//! so a publish neither reads nor parses endpoint patterns.

use std::collections::HashMap;
use std::sync::Arc;

use super::sql::{Conn, vals};

use super::StoreError;
use crate::fanout::{Subscribers, Subscription};
use crate::model::{EndpointId, TenantId};

/// Tenants' compiled subscriptions, as the writer's connection sees them. Any write that
/// changes an endpoint's patterns, activity or existence forgets its tenant.
#[derive(Debug, Default)]
pub(crate) struct SubscriberCache(HashMap<TenantId, Arc<Subscribers>>);

impl SubscriberCache {
    /// The tenant's subscribers, compiled on first use.
    pub fn get(
        &mut self,
        c: &Conn<'_>,
        tenant_id: TenantId,
    ) -> Result<Arc<Subscribers>, StoreError> {
        if let Some(s) = self.0.get(&tenant_id) {
            return Ok(s.clone());
        }
        let active = c.query(
            "SELECT id, events, filter, channels FROM endpoints
             WHERE tenant_id = ?1 AND is_active = 1 ORDER BY id",
            &vals![tenant_id.0],
            |row| {
                let id = EndpointId(row.get(0)?);
                let events: String = row.get(1)?;
                let filter = match row.get::<Option<String>>(2)? {
                    Some(text) => Some(Arc::new(super::rows::filter(&text)?)),
                    None => None,
                };
                Ok(Subscription {
                    endpoint: id,
                    patterns: super::rows::patterns(&events, "endpoints.events")?,
                    filter,
                    channels: super::rows::channels(row.get(3)?, "endpoints.channels")?,
                })
            },
        )?;
        let compiled = Arc::new(Subscribers::new(active));
        self.0.insert(tenant_id, compiled.clone());
        Ok(compiled)
    }

    /// Drops a tenant's subscribers after one of its endpoints changed.
    pub fn forget(&mut self, tenant_id: TenantId) {
        self.0.remove(&tenant_id);
    }

    /// Drops every tenant's subscribers.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}
