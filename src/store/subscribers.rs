//! The writer's cache of each tenant's compiled subscriptions ([`crate::fanout::Subscribers`])
//! and plan, so a publish neither reads nor parses endpoint patterns, nor reads the plan.
//!
//! On PostgreSQL other processes change endpoints and plans too: a batch that changed them
//! moves the `hookd_tenant_settings` sequence, and every writer that sees it moved at the start
//! of its next batch (under the write lock) drops its cache.

use std::collections::HashMap;
use std::sync::Arc;

use super::sql::{Conn, vals};

use super::StoreError;
use super::plans::read_plan;
use crate::model::plan::{Feature, Plan};

/// The PostgreSQL sequence a batch moves when it changed what these caches hold.
const SETTINGS_SEQUENCE: &str = "hookd_tenant_settings";
use crate::fanout::{Subscribers, Subscription};
use crate::model::{EndpointId, TenantId};

/// Tenants' compiled subscriptions and plans, as the writer's connection sees them. Any write
/// that changes an endpoint's patterns, activity or existence, or a plan, forgets its tenant.
#[derive(Debug, Default)]
pub(crate) struct SubscriberCache {
    subscribers: HashMap<TenantId, Arc<Subscribers>>,
    plans: HashMap<TenantId, Plan>,
    /// Whether this batch forgot a tenant (other processes must then forget theirs).
    changed: bool,
    /// Whether the operation being applied forgot a tenant (changed endpoints or a plan).
    forgot_in_op: bool,
    /// The `hookd_tenant_settings` value the cache is current with (PostgreSQL).
    seen: Option<i64>,
}

impl SubscriberCache {
    /// The tenant's subscribers, compiled on first use.
    pub fn get(
        &mut self,
        c: &Conn<'_>,
        tenant_id: TenantId,
    ) -> Result<Arc<Subscribers>, StoreError> {
        if let Some(s) = self.subscribers.get(&tenant_id) {
            return Ok(s.clone());
        }
        // An integration's endpoint receives nothing while the plan has integrations off.
        let integrations = self.plan(c, tenant_id)?.allows(Feature::Integrations);
        let active = c.query(
            "SELECT id, events, filter, channels FROM endpoints
             WHERE tenant_id = ?1 AND is_active = 1 AND (integration IS NULL OR ?2 = 1)
             ORDER BY id",
            &vals![tenant_id.0, i64::from(integrations)],
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
        self.subscribers.insert(tenant_id, compiled.clone());
        Ok(compiled)
    }

    /// The tenant's plan, read on first use; `NotFound` when there is no such tenant.
    pub fn plan(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<Plan, StoreError> {
        if let Some(plan) = self.plans.get(&tenant_id) {
            return Ok(*plan);
        }
        let plan = read_plan(c, tenant_id)?;
        self.plans.insert(tenant_id, plan);
        Ok(plan)
    }

    /// Drops a tenant's subscribers and plan after one of its endpoints or its plan changed.
    pub fn forget(&mut self, tenant_id: TenantId) {
        self.subscribers.remove(&tenant_id);
        self.plans.remove(&tenant_id);
        self.changed = true;
        self.forgot_in_op = true;
    }

    /// A write operation starts.
    pub fn op_started(&mut self) {
        self.forgot_in_op = false;
    }

    /// The operation failed and its savepoint undid its writes. Only writes that change
    /// endpoints or plans change what is cached, and each forgets its tenant; when this one
    /// did, what it cached afterwards may be what was undone, so everything goes. Otherwise
    /// (a refused quota, a missing row) the caches stay.
    pub fn op_failed(&mut self) {
        if self.forgot_in_op {
            self.clear();
        }
    }

    /// Drops every tenant's subscribers and plan (what a failed operation cached may be what
    /// its savepoint undid).
    pub fn clear(&mut self) {
        self.subscribers.clear();
        self.plans.clear();
    }

    /// At a PostgreSQL batch's start, under the write lock: drops the cache when another
    /// process changed endpoints or plans since it was filled.
    pub fn catch_up(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        let now: i64 = c.query_one(
            &format!("SELECT last_value FROM {SETTINGS_SEQUENCE}"),
            &[],
            |r| r.get(0),
        )?;
        if self.seen != Some(now) {
            self.clear();
            self.seen = Some(now);
        }
        self.changed = false;
        Ok(())
    }

    /// Before a PostgreSQL batch commits: when it changed endpoints or plans, moves the
    /// sequence so other processes drop their caches.
    pub fn announce(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        if self.changed {
            let next: i64 = c.query_one(
                &format!("SELECT nextval('{SETTINGS_SEQUENCE}')"),
                &[],
                |r| r.get(0),
            )?;
            self.seen = Some(next);
            self.changed = false;
        }
        Ok(())
    }
}
