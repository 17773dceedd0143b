//! Portal links: expiring, revocable tokens a tenant admin hands its own customer. A link's
//! token (`hkp_<id>_<secret>`, stored hashed like keys) acts on the tenant's routes with the
//! link's role until it expires or is deleted.

use super::tenants::tenant_exists;
use super::{Store, StoreError, count};
use crate::db::sql::vals;
use crate::model::auth::{StoredCredential, hash_secret, random_token};
use crate::model::tenant::PortalLink;
use crate::model::{Page, PageRequest, PortalLinkId, Role, TenantId, UnixMs, now_ms};

impl Store {
    /// Creates a portal link; returns it and its token (shown once).
    pub async fn create_portal_link(
        &self,
        tenant_id: TenantId,
        role: Role,
        expires_at: UnixMs,
    ) -> Result<(PortalLink, String), StoreError> {
        self.writer
            .write(move |c, _| {
                if !tenant_exists(c, tenant_id)? {
                    return Err(StoreError::NotFound);
                }
                let secret = random_token();
                let now = now_ms();
                let id = c.insert(
                    "INSERT INTO portal_links (tenant_id, role, secret_hash, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &vals![
                        tenant_id.0,
                        role.as_str(),
                        hash_secret(&secret),
                        now,
                        expires_at
                    ],
                )?;
                let link = PortalLink {
                    id: PortalLinkId(id),
                    tenant_id,
                    role,
                    created_at: now,
                    expires_at,
                };
                Ok((link, format!("hkp_{id}_{secret}")))
            })
            .await
    }

    /// One page of a tenant's portal links that have not expired, newest first.
    pub async fn list_portal_links(
        &self,
        tenant_id: TenantId,
        page: PageRequest,
    ) -> Result<Page<PortalLink>, StoreError> {
        let now = now_ms();
        self.read(move |c| {
            let total: i64 = c.query_one(
                "SELECT count(*) FROM portal_links WHERE tenant_id = ?1 AND expires_at > ?2",
                &vals![tenant_id.0, now],
                |r| r.get(0),
            )?;
            let rows = c.query(
                "SELECT id, role, created_at, expires_at FROM portal_links
                 WHERE tenant_id = ?1 AND expires_at > ?2
                 ORDER BY id DESC LIMIT ?3 OFFSET ?4",
                &vals![tenant_id.0, now, page.size, page.offset()],
                |r| {
                    let role: String = r.get(1)?;
                    Ok(PortalLink {
                        id: PortalLinkId(r.get(0)?),
                        tenant_id,
                        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                            what: "portal link role",
                            detail: role.clone(),
                        })?,
                        created_at: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                },
            )?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }

    /// Deletes a portal link: its token stops working at once.
    pub async fn delete_portal_link(
        &self,
        tenant_id: TenantId,
        id: PortalLinkId,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, _| {
                let n = c.execute(
                    "DELETE FROM portal_links WHERE id = ?1 AND tenant_id = ?2",
                    &vals![id.0, tenant_id.0],
                )?;
                if n == 0 {
                    Err(StoreError::NotFound)
                } else {
                    Ok(())
                }
            })
            .await
    }

    /// Deletes the portal links that expired at or before `now`; returns how many.
    pub async fn prune_expired_portal_links(&self, now: UnixMs) -> Result<usize, StoreError> {
        self.writer
            .write(move |c, _| {
                c.execute(
                    "DELETE FROM portal_links WHERE expires_at <= ?1",
                    &vals![now],
                )
            })
            .await
    }

    /// A portal link as stored, by id; `None` when there is none (deleted, or never made).
    pub async fn portal_credential(
        &self,
        id: PortalLinkId,
    ) -> Result<Option<StoredCredential>, StoreError> {
        self.read(move |c| {
            c.query_opt(
                "SELECT tenant_id, role, secret_hash, expires_at FROM portal_links WHERE id = ?1",
                &vals![id.0],
                |r| {
                    let (tenant, role) = (r.get::<i64>(0)?, r.get::<String>(1)?);
                    let (secret_hash, expires_at) = (r.get(2)?, r.get(3)?);
                    Ok(Role::parse(&role).map(|role| StoredCredential {
                        tenant_id: TenantId(tenant),
                        role,
                        secret_hash,
                        expires_at: Some(expires_at),
                    }))
                },
            )
        })
        .await
        .map(Option::flatten)
    }
}
