//! Each tenant's [`Audience`] (compiled subscriptions, plan, status-triggered schedules) and
//! its version, which is what makes a publish plan computed outside the writer safe to apply.
//!
//! A write that changes a tenant's endpoints, plan or schedules bumps its version first
//! ([`SubscriberCache::forget`]); applying a plan checks the version it was computed from
//! ([`SubscriberCache::version`]). On PostgreSQL the version is a row
//! (`hookd_tenant_versions`), held shared by the batch that checks it until it commits, so a
//! change by another process waits for the publishes that checked the old version. On SQLite
//! the writer alone writes: the versions live in memory ([`Audiences`]), bumped after each
//! batch that changed a tenant, and a reader reads the version before the rows, so an audience
//! is never labelled newer than what it holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::db::sql::{Conn, vals};

use super::StoreError;
use super::plans::read_plan;
use crate::fanout::{Audience, StatusTrigger, Subscribers, Subscription};
use crate::model::plan::{Feature, Plan};
use crate::model::{EndpointId, EventPattern, ScheduleId, TenantId};

/// Reads a tenant's audience on `c` (the writer's connection or a reader's), labelled
/// `version`; `NotFound` when there is no such tenant.
pub(super) fn read_audience(
    c: &Conn<'_>,
    tenant_id: TenantId,
    version: i64,
) -> Result<Audience, StoreError> {
    let plan = read_plan(c, tenant_id)?;
    // An integration's endpoint receives nothing while the plan has integrations off.
    let integrations = plan.allows(Feature::Integrations);
    let active = c.query(
        "SELECT id, events, filter, channels FROM endpoints
         WHERE tenant_id = ?1 AND is_active = 1 AND (integration IS NULL OR ?2 = 1)
         ORDER BY id",
        &vals![tenant_id.0, i64::from(integrations)],
        |row| {
            let events: String = row.get(1)?;
            let filter = match row.get::<Option<String>>(2)? {
                Some(text) => Some(Arc::new(super::rows::filter(&text)?)),
                None => None,
            };
            Ok(Subscription {
                endpoint: EndpointId(row.get(0)?),
                patterns: super::rows::patterns(&events, "endpoints.events")?,
                filter,
                channels: super::rows::channels(row.get(3)?, "endpoints.channels")?,
            })
        },
    )?;
    let triggers = c.query(
        "SELECT id, trigger_status, event_types FROM schedules
         WHERE tenant_id = ?1 AND schedule_type = 'on_status_change' AND status = 'active'
           AND trigger_status IS NOT NULL
         ORDER BY id",
        &vals![tenant_id.0],
        |r| {
            let events: Option<Vec<EventPattern>> = match r.get::<Option<String>>(2)? {
                Some(json) => Some(super::rows::patterns(&json, "schedules.event_types")?),
                None => None,
            };
            Ok(StatusTrigger {
                schedule: ScheduleId(r.get(0)?),
                status: r.get(1)?,
                events,
            })
        },
    )?;
    Ok(Audience {
        version,
        subscribers: Subscribers::new(active),
        plan,
        triggers,
    })
}

/// The audiences publishes are planned from outside the writer, cached per tenant; on SQLite
/// also the tenants' versions as committed.
#[derive(Debug, Default)]
pub(crate) struct Audiences {
    cached: Mutex<HashMap<TenantId, Arc<Audience>>>,
    /// SQLite: each tenant's version as committed (absent: 0).
    committed: Mutex<HashMap<TenantId, i64>>,
}

impl Audiences {
    /// The tenant's committed version (SQLite).
    pub fn committed(&self, tenant_id: TenantId) -> i64 {
        let versions = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        versions.get(&tenant_id).copied().unwrap_or(0)
    }

    /// The cached audience, if one is; on SQLite only one of the committed version.
    pub fn cached(&self, tenant_id: TenantId, sqlite: bool) -> Option<Arc<Audience>> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let audience = cached.get(&tenant_id)?.clone();
        (!sqlite || audience.version == self.committed(tenant_id)).then_some(audience)
    }

    /// Keeps an audience just read, unless a newer one is kept already.
    pub fn keep(&self, tenant_id: TenantId, audience: Arc<Audience>) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match cached.get(&tenant_id) {
            Some(kept) if kept.version > audience.version => {}
            _ => {
                cached.insert(tenant_id, audience);
            }
        }
    }

    /// Drops the tenant's audience: a plan computed from it was stale, or this process
    /// changed the tenant.
    pub fn forget(&self, tenant_id: TenantId) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.remove(&tenant_id);
    }

    /// A batch that changed these tenants has ended (committed or not; a bump that was undone
    /// only costs a plan computed again): bumps their versions (SQLite) and drops their
    /// audiences.
    fn changed(&self, tenants: &HashSet<TenantId>) {
        if tenants.is_empty() {
            return;
        }
        {
            let mut versions = self.committed.lock().unwrap_or_else(|e| e.into_inner());
            for t in tenants {
                *versions.entry(*t).or_insert(0) += 1;
            }
        }
        for t in tenants {
            self.forget(*t);
        }
    }
}

/// The writer's view of tenants' audiences and versions. Any write that changes an
/// endpoint's patterns, activity or existence, a plan or a status-triggered schedule forgets
/// its tenant.
#[derive(Debug)]
pub(crate) struct SubscriberCache {
    shared: Arc<Audiences>,
    audiences: HashMap<TenantId, Arc<Audience>>,
    /// The version of each tenant whose row the batch holds (PostgreSQL): it stays current
    /// until the commit.
    held: HashMap<TenantId, i64>,
    /// Tenants changed in this batch.
    changed: HashSet<TenantId>,
    /// Tenants the operation being applied is changing: their audience is read afresh each
    /// time and not kept, as the operation may write more after reading it.
    unsettled: HashSet<TenantId>,
    /// Whether the operation being applied forgot a tenant (changed endpoints or a plan).
    forgot_in_op: bool,
}

impl SubscriberCache {
    /// A cache for a new writer, sharing `shared` with the store's readers.
    pub fn new(shared: Arc<Audiences>) -> Self {
        Self {
            shared,
            audiences: HashMap::new(),
            held: HashMap::new(),
            changed: HashSet::new(),
            unsettled: HashSet::new(),
            forgot_in_op: false,
        }
    }

    /// The tenant's version as this batch sees it. On PostgreSQL the batch holds the
    /// tenant's version row (shared) from here until it commits.
    pub fn version(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<i64, StoreError> {
        if !c.is_postgres() {
            let bumped = i64::from(self.changed.contains(&tenant_id));
            return Ok(self.shared.committed(tenant_id) + bumped);
        }
        if let Some(v) = self.held.get(&tenant_id) {
            return Ok(*v);
        }
        let read = |c: &Conn<'_>| {
            c.query_opt(
                "SELECT version FROM hookd_tenant_versions WHERE tenant_id = ?1 FOR SHARE",
                &vals![tenant_id.0],
                |r| r.get::<i64>(0),
            )
        };
        let version = match read(c)? {
            Some(v) => v,
            // A tenant copied from SQLite has no row yet (one with no tenant gets none).
            None => {
                c.execute(
                    "INSERT INTO hookd_tenant_versions (tenant_id, version)
                     SELECT id, 0 FROM tenants WHERE id = ?1 ON CONFLICT (tenant_id) DO NOTHING",
                    &vals![tenant_id.0],
                )?;
                read(c)?.unwrap_or(0)
            }
        };
        self.held.insert(tenant_id, version);
        Ok(version)
    }

    /// The tenant's audience at the version this batch sees, read on first use.
    pub fn audience(
        &mut self,
        c: &Conn<'_>,
        tenant_id: TenantId,
    ) -> Result<Arc<Audience>, StoreError> {
        let version = self.version(c, tenant_id)?;
        if let Some(a) = self.audiences.get(&tenant_id)
            && a.version == version
        {
            return Ok(a.clone());
        }
        let audience = Arc::new(read_audience(c, tenant_id, version)?);
        if !self.unsettled.contains(&tenant_id) {
            self.audiences.insert(tenant_id, audience.clone());
        }
        Ok(audience)
    }

    /// The tenant's plan; `NotFound` when there is no such tenant.
    pub fn plan(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<Plan, StoreError> {
        Ok(self.audience(c, tenant_id)?.plan)
    }

    /// The tenant's endpoints, plan or status-triggered schedules are about to change: bumps
    /// its version. Called before the write that changes them: on PostgreSQL the bump waits
    /// for the batches that hold the old version, and a batch must take that row before the
    /// endpoint rows (as publishes do), or two batches could wait on each other.
    pub fn forget(&mut self, c: &Conn<'_>, tenant_id: TenantId) -> Result<(), StoreError> {
        if c.is_postgres() {
            c.execute(
                "INSERT INTO hookd_tenant_versions (tenant_id, version)
                 SELECT id, 1 FROM tenants WHERE id = ?1
                 ON CONFLICT (tenant_id) DO UPDATE SET version = hookd_tenant_versions.version + 1",
                &vals![tenant_id.0],
            )?;
        }
        self.audiences.remove(&tenant_id);
        self.held.remove(&tenant_id);
        self.changed.insert(tenant_id);
        self.unsettled.insert(tenant_id);
        self.forgot_in_op = true;
        Ok(())
    }

    /// A write operation starts.
    pub fn op_started(&mut self) {
        self.forgot_in_op = false;
        self.unsettled.clear();
    }

    /// The operation failed and its savepoint undid its writes — and released the rows it
    /// held, which are taken again when next used. Only writes that change endpoints, plans
    /// or schedules change what is cached, and each forgets its tenant; when this one did,
    /// what it cached afterwards may be what was undone, so everything goes.
    pub fn op_failed(&mut self) {
        self.held.clear();
        if self.forgot_in_op {
            self.audiences.clear();
        }
    }

    /// A batch starts: it holds no tenant's row yet.
    pub fn batch_started(&mut self) {
        self.held.clear();
    }

    /// The batch has ended, committed or rolled back: what it changed is published to the
    /// readers (a rolled-back batch's caches go whole, as they may hold what was undone).
    pub fn batch_ended(&mut self, committed: bool) {
        self.shared.changed(&self.changed);
        self.changed.clear();
        self.held.clear();
        if !committed {
            self.audiences.clear();
        }
    }
}
