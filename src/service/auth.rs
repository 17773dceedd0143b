//! Authentication: who a bearer token stands for. The operator token is checked against its
//! stored hash; a tenant key or portal link is looked up by the id it carries and judged by
//! [`crate::model::auth::decide`] (secret, expiry). The store only reads the rows.

use crate::model::UnixMs;
use crate::model::auth::{Caller, Presented, decide, secret_matches};
use crate::store::{Store, StoreError};

/// The caller `token` stands for at `now`; `None` when it stands for nobody.
pub async fn authenticate(
    store: &Store,
    operator_hash: &[u8; 32],
    token: &str,
    now: UnixMs,
) -> Result<Option<Caller>, StoreError> {
    if secret_matches(operator_hash, token) {
        return Ok(Some(Caller::Operator));
    }
    let presented = Presented::read(token);
    let stored = match presented {
        Presented::Key(id, _) => store.key_credential(id).await?,
        Presented::PortalLink(id, _) => store.portal_credential(id).await?,
        Presented::Unknown => None,
    };
    Ok(decide(presented, stored.as_ref(), now))
}
