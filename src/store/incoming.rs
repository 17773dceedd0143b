//! Incoming hooks and their request log. A hook is found by the SHA-256 of its token, so the
//! lookup's timing says nothing about which prefixes of a token are valid.

use crate::db::sql::{Row, vals};

use super::paging::{self, List};
use super::publish::apply_in;
use super::tenants::tenant_exists;
use super::{Store, StoreError, count};
use crate::model::auth::hash_secret;
use crate::model::incoming::{IncomingAction, IncomingHook, IncomingRequest};
use crate::model::publish::{Applied, PublishPlan, Published};
use crate::model::{
    EventId, EventName, IncomingId, IncomingRequestId, Page, PageRequest, SignatureScheme,
    TenantId, now_ms,
};

fn action_json(action: &IncomingAction) -> String {
    match action {
        IncomingAction::Publish(name) => {
            serde_json::json!({"type": "publish", "eventType": name.as_str()}).to_string()
        }
        IncomingAction::Store => serde_json::json!({"type": "store"}).to_string(),
    }
}

fn hook_row(r: &Row<'_>) -> Result<IncomingHook, StoreError> {
    let action: String = r.get(3)?;
    let action: serde_json::Value = serde_json::from_str(&action).unwrap_or_default();
    let action = match action["eventType"].as_str().map(EventName::parse) {
        Some(Ok(name)) => IncomingAction::Publish(name),
        _ => IncomingAction::Store,
    };
    let scheme: Option<String> = r.get(4)?;
    let secret: Option<String> = r.get(5)?;
    let verify = match (scheme.as_deref().and_then(SignatureScheme::parse), secret) {
        (Some(scheme), Some(secret)) => Some((scheme, secret)),
        _ => None,
    };
    Ok(IncomingHook {
        id: IncomingId(r.get(0)?),
        tenant_id: TenantId(r.get(1)?),
        name: r.get(2)?,
        action,
        verify,
        created_at: r.get(6)?,
    })
}

const HOOK_COLUMNS: &str = "id, tenant_id, name, action, verify_scheme, verify_secret, created_at";

impl Store {
    /// Creates an incoming hook; returns it with its token, which is never shown again.
    pub async fn create_incoming(
        &self,
        tenant_id: TenantId,
        name: String,
        action: IncomingAction,
        verify: Option<(SignatureScheme, String)>,
    ) -> Result<(IncomingHook, String), StoreError> {
        self.writer
            .write(move |c, _| {
                if !tenant_exists(c, tenant_id)? {
                    return Err(StoreError::NotFound);
                }
                let token = {
                    use base64::Engine;
                    let bytes: [u8; 32] = rand::random();
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
                };
                let now = now_ms();
                let id = c.insert("INSERT INTO incoming_hooks (tenant_id, name, token_hash, action, verify_scheme,
                        verify_secret, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", &vals![
                    tenant_id.0,
                    name,
                    hash_secret(&token),
                    action_json(&action),
                    verify.as_ref().map(|(s, _)| s.as_str()),
                    verify.as_ref().map(|(_, secret)| secret.as_str()),
                    now
                ])?;
                let hook = IncomingHook {
                    id: IncomingId(id),
                    tenant_id,
                    name,
                    action,
                    verify,
                    created_at: now,
                };
                Ok((hook, token))
            })
            .await
    }

    /// One page of a tenant's incoming hooks, oldest first.
    pub async fn list_incoming(
        &self,
        tenant_id: TenantId,
        page: PageRequest,
    ) -> Result<Page<IncomingHook>, StoreError> {
        self.read(move |c| {
            let total: i64 = c.query_one(
                "SELECT count(*) FROM incoming_hooks WHERE tenant_id = ?1",
                &vals![tenant_id.0],
                |r| r.get(0),
            )?;
            let rows = c.query(
                &format!(
                    "SELECT {HOOK_COLUMNS} FROM incoming_hooks WHERE tenant_id = ?1
                     ORDER BY id LIMIT ?2 OFFSET ?3"
                ),
                &vals![tenant_id.0, page.size, page.offset()],
                hook_row,
            )?;
            Ok(page.page(rows, count(total)))
        })
        .await
    }

    /// Deletes an incoming hook and its log; its URL answers 404 from the commit on.
    pub async fn delete_incoming(
        &self,
        tenant_id: TenantId,
        id: IncomingId,
    ) -> Result<(), StoreError> {
        self.writer
            .write(move |c, batch| {
                batch.scrub = true;
                match c.execute(
                    "DELETE FROM incoming_hooks WHERE id = ?1 AND tenant_id = ?2",
                    &vals![id.0, tenant_id.0],
                )? {
                    0 => Err(StoreError::NotFound),
                    _ => Ok(()),
                }
            })
            .await
    }

    /// The hook a token opens, if any.
    pub async fn find_incoming(&self, token: &str) -> Result<Option<IncomingHook>, StoreError> {
        let hash = hash_secret(token);
        self.read(move |c| {
            c.query_opt(
                &format!("SELECT {HOOK_COLUMNS} FROM incoming_hooks WHERE token_hash = ?1"),
                &vals![hash.as_slice()],
                hook_row,
            )
        })
        .await
    }

    /// Logs a call and, when `publish` is given, applies that plan in the same commit, as
    /// `POST /v1/events` does. Answers once both are durable; a stale plan comes back with
    /// nothing written.
    pub async fn record_incoming(
        &self,
        hook: IncomingId,
        request: IncomingRequest,
        publish: Option<PublishPlan>,
    ) -> Result<Applied<(IncomingRequestId, Option<Published>)>, StoreError> {
        self.writer
            .write(move |c, batch| {
                let published = match publish {
                    Some(plan) => match apply_in(c, batch, plan)? {
                        Applied::Done(p) => p.into_iter().next(),
                        Applied::Stale(plan) => return Ok(Applied::Stale(plan)),
                    },
                    None => None,
                };
                let id = c.insert(
                    "INSERT INTO incoming_requests (hook_id, received_at, content_type, headers,
                        body, status, error, event_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    &vals![
                        hook.0,
                        request.received_at,
                        request.content_type,
                        serde_json::to_string(&request.headers).unwrap_or_else(|_| "{}".into()),
                        request.body,
                        if request.accepted {
                            "accepted"
                        } else {
                            "rejected"
                        },
                        request.error,
                        published.as_ref().map(|p| p.id.0),
                    ],
                )?;
                Ok(Applied::Done((IncomingRequestId(id), published)))
            })
            .await
    }

    /// One page of a hook's request log, newest first.
    pub async fn list_incoming_requests(
        &self,
        tenant_id: TenantId,
        id: IncomingId,
        page: PageRequest,
    ) -> Result<Page<IncomingRequest>, StoreError> {
        self.read(move |c| {
            let owned = c.exists(
                "SELECT 1 FROM incoming_hooks WHERE id = ?1 AND tenant_id = ?2",
                &vals![id.0, tenant_id.0],
            )?;
            if !owned {
                return Err(StoreError::NotFound);
            }
            let (total, seek) =
                paging::locate(c, List::IncomingRequests, id.0, None, page.offset())?;
            let Some(seek) = seek else {
                return Ok(page.page(Vec::new(), total));
            };
            let rows = c.query(
                "SELECT id, received_at, content_type, headers, body, status, error, event_id
                     FROM incoming_requests WHERE hook_id = ?1 AND id < ?2
                     ORDER BY id DESC LIMIT ?3 OFFSET ?4",
                &vals![id.0, seek.below, page.size, seek.skip],
                |r| {
                    let headers: String = r.get(3)?;
                    let status: String = r.get(5)?;
                    let event: Option<i64> = r.get(7)?;
                    Ok(IncomingRequest {
                        id: IncomingRequestId(r.get(0)?),
                        received_at: r.get(1)?,
                        content_type: r.get(2)?,
                        headers: serde_json::from_str(&headers).unwrap_or_default(),
                        body: r.get(4)?,
                        accepted: status == "accepted",
                        error: r.get(6)?,
                        event_id: event.map(EventId),
                    })
                },
            )?;
            Ok(page.page(rows, total))
        })
        .await
    }
}
