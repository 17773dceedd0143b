//! The writer's cache of each tenant's compiled subscriptions ([`crate::fanout::Subscribers`])
//! and plan, so a publish neither reads nor parses endpoint patterns, nor reads the plan.
//!
//! On PostgreSQL other processes change endpoints and plans too. Each tenant has a version
//! (`hookd_tenant_versions`): a batch that uses a tenant's cache first holds that row shared,
//! until it commits, and drops the cache if the version moved; a write that changes the
//! tenant's endpoints or plan bumps it first ([`SubscriberCache::forget`]), waiting for the
//! batches that hold it. What a publish fans out to is so never older than its commit, and no
//! lock is taken across tenants.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::sql::{Conn, vals};

use super::StoreError;
use super::plans::read_plan;
use crate::fanout::{Subscribers, Subscription};
use crate::model::plan::{Feature, Plan};
use crate::model::{EndpointId, TenantId};

/// Tenants' compiled subscriptions and plans, as the writer's connection sees them. Any write
/// that changes an endpoint's patterns, activity or existence, or a plan, forgets its tenant.
#[derive(Debug, Default)]
pub(crate) struct SubscriberCache {
    subscribers: HashMap<TenantId, Arc<Subscribers>>,
    plans: HashMap<TenantId, Plan>,
    /// The version each tenant's cached entries were read at (PostgreSQL).
    versions: HashMap<TenantId, i64>,
    /// Tenants whose version row the batch holds (PostgreSQL): their entries stay current
    /// until the commit.
    held: HashSet<TenantId>,
    /// Whether the operation being applied forgot a tenant (changed endpoints or a plan).
    forgot_in_op: bool,
}

impl SubscriberCache {
    /// The tenant's subscribers, compiled on first use.
    pub fn get(
        &mut self,
        c: &Conn<'_>,
        tenant_id: TenantId,
    ) -> Result<Arc<Subscribers>, StoreError> {
        self.hold(c, tenant_id)?;
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
        self.hold(c, tenant_id)?;
        if let Some(plan) = self.plans.get(&tenant_id) {
            return Ok(*plan);
        }
        let plan = read_plan(c, tenant_id)?;
        self.plans.insert(tenant_id, plan);
        Ok(plan)
    }

    /// On PostgreSQL, holds the tenant's version row (shared) for the rest of the batch and
    /// drops its entries if another process changed them since they were read.
    fn hold(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<(), StoreError> {
        if !c.is_postgres() || self.held.contains(&tenant_id) {
            return Ok(());
        }
        let read = |c: &Conn<'_>| {
            c.query_opt(
                "SELECT version FROM hookd_tenant_versions WHERE tenant_id = ?1 FOR SHARE",
                &vals![tenant_id.0],
                |r| r.get::<i64>(0),
            )
        };
        let version = match read(c)? {
            Some(v) => Some(v),
            // A tenant copied from SQLite has no row yet (one with no tenant gets none).
            None => {
                c.execute(
                    "INSERT INTO hookd_tenant_versions (tenant_id, version)
                     SELECT id, 0 FROM tenants WHERE id = ?1 ON CONFLICT (tenant_id) DO NOTHING",
                    &vals![tenant_id.0],
                )?;
                read(c)?
            }
        };
        let Some(version) = version else {
            return Ok(());
        };
        if self.versions.get(&tenant_id) != Some(&version) {
            self.subscribers.remove(&tenant_id);
            self.plans.remove(&tenant_id);
            self.versions.insert(tenant_id, version);
        }
        self.held.insert(tenant_id);
        Ok(())
    }

    /// Drops a tenant's subscribers and plan: its endpoints or its plan are about to change.
    /// Called before the write that changes them: on PostgreSQL it bumps the tenant's version,
    /// waiting for the batches that publish with the old one, and a batch must take that row
    /// before the endpoint rows (as publishes do), or two batches could wait on each other.
    pub fn forget(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<(), StoreError> {
        if c.is_postgres() {
            c.execute(
                "INSERT INTO hookd_tenant_versions (tenant_id, version)
                 SELECT id, 1 FROM tenants WHERE id = ?1
                 ON CONFLICT (tenant_id) DO UPDATE SET version = hookd_tenant_versions.version + 1",
                &vals![tenant_id.0],
            )?;
        }
        self.subscribers.remove(&tenant_id);
        self.plans.remove(&tenant_id);
        self.versions.remove(&tenant_id);
        self.held.remove(&tenant_id);
        self.forgot_in_op = true;
        Ok(())
    }

    /// A write operation starts.
    pub fn op_started(&mut self) {
        self.forgot_in_op = false;
    }

    /// The operation failed and its savepoint undid its writes — and released the rows it
    /// held, which are taken again when next used. Only writes that change endpoints or plans
    /// change what is cached, and each forgets its tenant; when this one did, what it cached
    /// afterwards may be what was undone, so everything goes. Otherwise (a refused quota, a
    /// missing row) the caches stay.
    pub fn op_failed(&mut self) {
        self.held.clear();
        if self.forgot_in_op {
            self.clear();
        }
    }

    /// Drops every tenant's subscribers and plan (what a failed operation cached may be what
    /// its savepoint undid).
    pub fn clear(&mut self) {
        self.subscribers.clear();
        self.plans.clear();
        self.versions.clear();
    }

    /// A batch starts: it holds no tenant's row yet.
    pub fn batch_started(&mut self) {
        self.held.clear();
    }
}
