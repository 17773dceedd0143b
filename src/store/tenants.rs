//! Tenants, their API keys, the operator token and the event-type catalog (who a token
//! stands for is decided in [`crate::model::auth`], by [`crate::service::auth`]).

use super::plans::{PLAN_COLUMNS, plan_row};
use super::{Store, StoreError, count};
use crate::db::sql::{Conn, Row, Value};
use crate::model::auth::{StoredCredential, hash_secret, random_token};
use crate::model::event::EventType;
use crate::model::plan::Plan;
use crate::model::{ApiKey, KeyId, Page, PageRequest, Role, Tenant, TenantId, UnixMs, now_ms};

fn tenant_row(r: &Row<'_>) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: TenantId(r.get::<i64>(0)?),
        name: r.get::<String>(1)?,
        created_at: r.get::<i64>(2)?,
        plan: plan_row(r, 3)?,
    })
}

fn key_row(r: &Row<'_>) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: KeyId(r.get::<i64>(0)?),
        tenant_id: TenantId(r.get::<i64>(1)?),
        name: r.get::<String>(2)?,
        role: Role::parse(&r.get::<String>(3)?).unwrap_or(Role::Viewer),
        created_at: r.get::<i64>(4)?,
    })
}

/// How many rows a `count(*)` query answers.
fn counted(c: &Conn<'_>, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
    let n = c.query_opt(sql, params, |r| r.get::<i64>(0))?.unwrap_or(0);
    Ok(count(n))
}

/// The page bounds as statement values: size, then offset.
fn bounds(page: PageRequest) -> [Value<'static>; 2] {
    [i64::from(page.size).into(), page.offset().into()]
}

/// Whether the tenant exists (used inside write operations).
pub(super) fn tenant_exists(c: &Conn<'_>, id: TenantId) -> Result<bool, StoreError> {
    c.exists("SELECT 1 FROM tenants WHERE id = ?1", &[id.0.into()])
}

// Everything here runs through `store::sql`, so the same statements serve SQLite and
// PostgreSQL.
impl Store {
    /// The stored operator-token hash; on first start, generates a token, stores its hash and
    /// returns the token itself (`Some`) so it can be printed once.
    pub async fn operator_token(&self) -> Result<([u8; 32], Option<String>), StoreError> {
        self.writer
            .write(|c, _| {
                let stored = c.query_opt(
                    "SELECT value FROM meta WHERE key = 'operator_token_sha256'",
                    &[],
                    |r| r.get::<String>(0),
                )?;
                if let Some(hex) = stored {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(hex, &mut hash).map_err(|e| StoreError::Corrupt {
                        what: "operator token hash",
                        detail: e.to_string(),
                    })?;
                    return Ok((hash, None));
                }
                let token = format!("hko_{}", random_token());
                let hash = hash_secret(&token);
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('operator_token_sha256', ?1)",
                    &[hex::encode(hash).into()],
                )?;
                Ok((hash, Some(token)))
            })
            .await
    }

    /// A tenant key as stored, by id; `None` when there is none. A key is read from the
    /// database once and then kept in memory (`store/key_cache.rs`) until keys are deleted.
    pub async fn key_credential(&self, id: KeyId) -> Result<Option<StoredCredential>, StoreError> {
        if let Some(known) = self.keys.get(id.0) {
            return Ok(Some(known));
        }
        let generation = self.keys.generation();
        let row = self
            .read(move |c| {
                c.query_opt(
                    "SELECT tenant_id, role, secret_hash FROM api_keys WHERE id = ?1",
                    &[id.0.into()],
                    |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<Vec<u8>>(2)?)),
                )
            })
            .await?;
        Ok(row.and_then(|(tenant, role, secret_hash)| {
            let known = StoredCredential {
                tenant_id: TenantId(tenant),
                role: Role::parse(&role)?,
                secret_hash,
                expires_at: None,
            };
            self.keys.fill(generation, id.0, known.clone());
            Some(known)
        }))
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, name: String) -> Result<Tenant, StoreError> {
        self.writer
            .write(move |c, _| {
                let now = now_ms();
                let id = c.insert(
                    "INSERT INTO tenants (name, created_at) VALUES (?1, ?2)",
                    &[name.as_str().into(), now.into()],
                )?;
                Ok(Tenant {
                    id: TenantId(id),
                    name,
                    created_at: now,
                    plan: Plan::default(),
                })
            })
            .await
    }

    /// One page of tenants, oldest first.
    pub async fn list_tenants(&self, page: PageRequest) -> Result<Page<Tenant>, StoreError> {
        self.read(move |c| {
            let total = counted(c, "SELECT count(*) FROM tenants", &[])?;
            let rows = c.query(
                &format!(
                    "SELECT id, name, created_at, {PLAN_COLUMNS} FROM tenants
                     ORDER BY id LIMIT ?1 OFFSET ?2"
                ),
                &bounds(page),
                tenant_row,
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }

    /// One tenant.
    pub async fn get_tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        self.read(move |c| {
            c.query_opt(
                &format!("SELECT id, name, created_at, {PLAN_COLUMNS} FROM tenants WHERE id = ?1"),
                &[id.0.into()],
                tenant_row,
            )?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Deletes a tenant and everything it owns.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<(), StoreError> {
        let deleted = self
            .writer
            .write(move |c, batch| {
                batch.subscribers.forget(c, id)?;
                batch.scrub = true;
                match c.execute("DELETE FROM tenants WHERE id = ?1", &[id.0.into()])? {
                    0 => Err(StoreError::NotFound),
                    _ => keys_revoked(c),
                }
            })
            .await;
        // Committed (or not): either way its keys are read again from the file.
        self.keys.forget_all();
        deleted
    }

    /// Creates a key; returns it with the full token, which is never shown again.
    pub async fn create_key(
        &self,
        tenant_id: TenantId,
        name: String,
        role: Role,
    ) -> Result<(ApiKey, String), StoreError> {
        self.writer
            .write(move |c, _| {
                if !tenant_exists(c, tenant_id)? {
                    return Err(StoreError::NotFound);
                }
                let secret = random_token();
                let now = now_ms();
                let id = c.insert(
                    "INSERT INTO api_keys (tenant_id, name, role, secret_hash, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &[
                        tenant_id.0.into(),
                        name.as_str().into(),
                        role.as_str().into(),
                        hash_secret(&secret)[..].into(),
                        now.into(),
                    ],
                )?;
                let id = KeyId(id);
                let token = format!("hk_{}_{secret}", id.0);
                let key = ApiKey {
                    id,
                    tenant_id,
                    name,
                    role,
                    created_at: now,
                };
                Ok((key, token))
            })
            .await
    }

    /// One page of a tenant's keys, oldest first.
    pub async fn list_keys(
        &self,
        tenant_id: TenantId,
        page: PageRequest,
    ) -> Result<Page<ApiKey>, StoreError> {
        self.read(move |c| {
            if !tenant_exists(c, tenant_id)? {
                return Err(StoreError::NotFound);
            }
            let total = counted(
                c,
                "SELECT count(*) FROM api_keys WHERE tenant_id = ?1",
                &[tenant_id.0.into()],
            )?;
            let [size, offset] = bounds(page);
            let rows = c.query(
                "SELECT id, tenant_id, name, role, created_at FROM api_keys
                 WHERE tenant_id = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
                &[tenant_id.0.into(), size, offset],
                key_row,
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }

    /// Deletes a key; it stops working with the commit.
    pub async fn delete_key(&self, tenant_id: TenantId, key_id: KeyId) -> Result<(), StoreError> {
        let deleted = self
            .writer
            .write(move |c, _| {
                match c.execute(
                    "DELETE FROM api_keys WHERE id = ?1 AND tenant_id = ?2",
                    &[key_id.0.into(), tenant_id.0.into()],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => keys_revoked(c),
                }
            })
            .await;
        // After the commit, before the caller is answered: the key never works again.
        self.keys.forget_all();
        deleted
    }

    /// One page of a tenant's event-type catalog, by name.
    pub async fn list_event_types(
        &self,
        tenant_id: TenantId,
        page: PageRequest,
    ) -> Result<Page<EventType>, StoreError> {
        self.read(move |c| {
            let total = counted(
                c,
                "SELECT count(*) FROM event_types WHERE tenant_id = ?1",
                &[tenant_id.0.into()],
            )?;
            let [size, offset] = bounds(page);
            let rows = c.query(
                "SELECT name, category, description FROM event_types
                 WHERE tenant_id = ?1 ORDER BY name LIMIT ?2 OFFSET ?3",
                &[tenant_id.0.into(), size, offset],
                |r| {
                    Ok(EventType {
                        name: r.get::<String>(0)?,
                        category: r.get::<Option<String>>(1)?,
                        description: r.get::<Option<String>>(2)?,
                    })
                },
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }

    /// Registers an event type; `Conflict` when the name is already registered.
    pub async fn create_event_type(
        &self,
        tenant_id: TenantId,
        event_type: EventType,
    ) -> Result<EventType, StoreError> {
        self.writer
            .write(move |c, _| {
                let now: UnixMs = now_ms();
                let inserted = c.execute(
                    "INSERT INTO event_types (tenant_id, name, category, description, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    &[
                        tenant_id.0.into(),
                        event_type.name.as_str().into(),
                        event_type.category.as_deref().into(),
                        event_type.description.as_deref().into(),
                        now.into(),
                    ],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Conflict(format!(
                        "event type '{}' is already registered",
                        event_type.name
                    )));
                }
                Ok(event_type)
            })
            .await
    }

    /// Removes an event type from the catalog.
    pub async fn delete_event_type(
        &self,
        tenant_id: TenantId,
        name: String,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, _| {
                match c.execute(
                    "DELETE FROM event_types WHERE tenant_id = ?1 AND name = ?2",
                    &[tenant_id.0.into(), name.into()],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }
}

/// Inside a write that deleted keys: on PostgreSQL, tells every process at the commit to
/// forget the keys it cached (this process forgets its own after the commit).
fn keys_revoked(c: &Conn<'_>) -> Result<(), StoreError> {
    if c.is_postgres() {
        c.execute(&format!("NOTIFY {}", super::postgres::KEYS_CHANNEL), &[])?;
    }
    Ok(())
}
