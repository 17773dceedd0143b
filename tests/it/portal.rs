//! Portal links: a tenant admin hands out a token that acts on the tenant with a role until it
//! expires or is deleted.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::support::{Api, Server, wait_until};

#[tokio::test]
async fn a_portal_link_acts_with_its_role_until_it_is_deleted() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let (status, link) = t
        .admin
        .post("/v1/portal-links", json!({"role": "viewer"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let token = link["token"].as_str().expect("token");
    assert_eq!(link["url"], format!("/ui/#token={token}"));
    assert_eq!(link["role"], "viewer");
    let viewer = Api::new(&server.base, token);
    let (status, page) = viewer.get("/v1/endpoints").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["totalElements"], 1);
    // A viewer link reads and writes nothing.
    let (status, body) = viewer
        .post(
            "/v1/endpoints",
            json!({"name": "x", "url": "http://127.0.0.1:9/x", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nor does it reach the operator's routes, or mint links of its own.
    assert_eq!(viewer.get("/v1/tenants").await.0, StatusCode::FORBIDDEN);
    let (status, _) = t
        .admin
        .post("/v1/portal-links", json!({"role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, admin_link) = t
        .admin
        .post("/v1/portal-links", json!({"role": "admin"}))
        .await;
    let admin = Api::new(&server.base, admin_link["token"].as_str().expect("token"));
    let (status, _) = admin
        .post(
            "/v1/endpoints",
            json!({"name": "x", "url": "http://127.0.0.1:9/x", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "an admin link writes");
    let (status, body) = admin.post("/v1/portal-links", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nor may it see the other links, or revoke one (another customer's, say).
    let (status, body) = admin.get("/v1/portal-links").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = admin
        .delete(&format!(
            "/v1/portal-links/{}",
            link["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(viewer.get("/v1/endpoints").await.0, StatusCode::OK);
    // Listed without tokens; deleting one stops it at once.
    let (_, listed) = t.admin.get("/v1/portal-links").await;
    assert_eq!(listed["totalElements"], 3, "{listed}");
    assert!(listed["content"][0].get("token").is_none(), "{listed}");
    let id = link["id"].as_str().expect("id");
    let (status, _) = t.admin.delete(&format!("/v1/portal-links/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        viewer.get("/v1/endpoints").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = t.admin.delete(&format!("/v1/portal-links/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another tenant's admin cannot see or delete it.
    let other = server.tenant("other").await;
    let admin_id = admin_link["id"].as_str().expect("id");
    let (status, _) = other
        .admin
        .delete(&format!("/v1/portal-links/{admin_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn a_portal_link_stops_working_when_it_expires_and_bad_requests_are_refused() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (status, link) = t
        .admin
        .post("/v1/portal-links", json!({"expiresIn": "1s"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    let api = Api::new(&server.base, link["token"].as_str().expect("token"));
    assert_eq!(api.get("/v1/endpoints").await.0, StatusCode::OK);
    wait_until("the link expires", Duration::from_secs(10), || {
        let api = api.clone();
        async move { api.get("/v1/endpoints").await.0 == StatusCode::UNAUTHORIZED }
    })
    .await;
    for body in [
        json!({"role": "publisher"}),
        json!({"expiresIn": "31d"}),
        json!({"expiresIn": "later"}),
        json!({"scope": "all"}),
    ] {
        let (status, answer) = t.admin.post("/v1/portal-links", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    // A token that was never issued, or tampered with, is refused.
    let forged = format!("{}x", link["token"].as_str().expect("token"));
    assert_eq!(
        Api::new(&server.base, &forged).get("/v1/endpoints").await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn housekeeping_deletes_expired_portal_links_and_keeps_live_ones() {
    use hookd::config::Durability;
    use hookd::model::{Role, now_ms};
    let dir = tempfile::tempdir().expect("dir");
    let (store, handle) = crate::support::open_store(dir.path(), Durability::Normal).await;
    let tenant = store.create_tenant("t".into()).await.expect("tenant");
    let now = now_ms();
    let (_, expired) = store
        .create_portal_link(tenant.id, Role::Viewer, now - 1)
        .await
        .expect("expired link");
    let (_, live) = store
        .create_portal_link(tenant.id, Role::Viewer, now + 3_600_000)
        .await
        .expect("live link");
    assert!(
        crate::support::authenticate_at(&store, &expired, now)
            .await
            .expect("auth")
            .is_none()
    );
    assert_eq!(
        store.prune_expired_portal_links(now).await.expect("prune"),
        1
    );
    assert_eq!(
        store.prune_expired_portal_links(now).await.expect("prune"),
        0
    );
    assert!(
        crate::support::authenticate_at(&store, &live, now)
            .await
            .expect("auth")
            .is_some()
    );
    drop(store);
    tokio::task::spawn_blocking(move || handle.close())
        .await
        .expect("close");
}
