//! Ids are never handed out twice: receivers de-duplicate on `webhook-id` (the event id), so a
//! reused id would make them drop a new event as one they already had.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Receiver, Server, Tenant};

/// The number in an id such as `evt_12`.
pub(crate) fn number(id: &Value) -> u64 {
    id.as_str()
        .and_then(|s| s.rsplit('_').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an id: {id}"))
}

/// A tenant with an endpoint to `receiver`, one event published and delivered: the ids of
/// tenant, endpoint, event and delivery.
async fn one_of_each(server: &Server, name: &str, receiver: &Receiver) -> (Tenant, [u64; 4]) {
    let t = server.tenant(name).await;
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    let event = t.publish("id.check", json!({"tenant": name})).await;
    let delivery = t
        .wait_delivery_status(event["id"].as_str().expect("id"), "succeeded")
        .await;
    let ids = [
        number(&json!(t.id)),
        number(&endpoint["id"]),
        number(&event["id"]),
        number(&delivery["id"]),
    ];
    (t, ids)
}

#[tokio::test]
async fn no_id_is_handed_out_again_after_deletions_and_restarts() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let receiver = Receiver::ok().await;
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let (_, kept) = one_of_each(&server, "kept", &receiver).await;
    let (gone, newest) = one_of_each(&server, "gone", &receiver).await;
    assert!(newest.iter().zip(kept).all(|(n, k)| *n > k));
    // The newest tenant goes, with its endpoint, event and delivery: the highest ids of each.
    let (status, _) = server
        .operator()
        .delete(&format!("/v1/tenants/{}", gone.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (again, after_delete) = one_of_each(&server, "after-delete", &receiver).await;
    assert_newer("after a delete", newest, after_delete);
    // And again across a restart, after deleting the newest once more.
    let (status, _) = server
        .operator()
        .delete(&format!("/v1/tenants/{}", again.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await;
    let server = Server::start_in(dir, |_| {}).await;
    let (_, after_restart) = one_of_each(&server, "after-restart", &receiver).await;
    assert_newer("after a restart", after_delete, after_restart);
    server.stop().await;
}

/// Each of `new` (tenant, endpoint, event, delivery) is past the one handed out before.
fn assert_newer(when: &str, old: [u64; 4], new: [u64; 4]) {
    for (what, (old, new)) in ["tenant", "endpoint", "event", "delivery"]
        .iter()
        .zip(old.iter().zip(new))
    {
        assert!(
            new > *old,
            "{when}, a new {what} took id {new}; {old} was handed out before"
        );
    }
}
