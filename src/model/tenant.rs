//! Tenants and their API keys.

use serde::Serialize;

use super::plan::Plan;
use super::{KeyId, PortalLinkId, TenantId, UnixMs};

/// A tenant: everything else (keys, endpoints, events) belongs to exactly one.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: UnixMs,
    /// Its features and limits.
    pub plan: Plan,
}

/// What a tenant API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read and publish events.
    Publisher,
    /// Everything in its tenant.
    Admin,
}

impl Role {
    /// Parses `admin`, `publisher` or `viewer`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "publisher" => Some(Self::Publisher),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Publisher => "publisher",
            Self::Viewer => "viewer",
        }
    }
}

/// A tenant API key as it is listed: never the key itself.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Its id.
    pub id: KeyId,
    /// The tenant it acts for.
    pub tenant_id: TenantId,
    /// Its display name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub created_at: UnixMs,
}

/// A portal link as it is listed: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLink {
    /// Its id.
    pub id: PortalLinkId,
    /// The tenant it signs in to.
    pub tenant_id: TenantId,
    /// What its token may do.
    pub role: Role,
    /// When it was created.
    pub created_at: UnixMs,
    /// When its token stops working.
    pub expires_at: UnixMs,
}
