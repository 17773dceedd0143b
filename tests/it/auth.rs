//! Operator token, tenant keys, roles and tenant isolation.

use http::StatusCode;
use serde_json::json;

use crate::support::{Api, Server};

#[tokio::test]
async fn missing_or_bad_tokens_get_401() {
    let server = Server::start().await;
    let nobody = server.operator().with_token("");
    let (status, body) = nobody.get("/v1/tenants").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = server.operator().with_token("hk_1_not-the-secret");
    assert_eq!(wrong.get("/v1/endpoints").await.0, StatusCode::UNAUTHORIZED);
    let garbage = server.operator().with_token("garbage");
    assert_eq!(garbage.get("/v1/tenants").await.0, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn tenants_and_keys_are_managed_by_the_operator_only() {
    let server = Server::start().await;
    let op = server.operator();
    let tenant = server.tenant("acme").await;
    let (status, page) = op.get("/v1/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["totalElements"], 1);
    assert_eq!(page["content"][0]["name"], "acme");

    // A tenant admin key cannot manage tenants.
    let (status, body) = tenant.admin.get("/v1/tenants").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The operator token is not a tenant key.
    let (status, _) = op.get("/v1/endpoints").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Keys are listed without their secret.
    let (status, keys) = op.get(&format!("/v1/tenants/{}/keys", tenant.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys["totalElements"], 1);
    assert!(keys["content"][0].get("key").is_none());
    assert_eq!(keys["content"][0]["role"], "admin");
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_key_stops_working_at_once() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let token = server.key(&tenant.id, "viewer").await;
    let viewer = tenant.admin.with_token(&token);
    assert_eq!(viewer.get("/v1/endpoints").await.0, StatusCode::OK);
    let key_id = format!("key_{}", token.split('_').nth(1).expect("key id"));
    let (status, _) = server
        .operator()
        .delete(&format!("/v1/tenants/{}/keys/{key_id}", tenant.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        viewer.get("/v1/endpoints").await.0,
        StatusCode::UNAUTHORIZED
    );
    server.stop().await;
}

#[tokio::test]
async fn roles_limit_what_a_key_may_do() {
    let server = Server::start().await;
    let tenant = server.tenant("acme").await;
    let viewer = tenant
        .admin
        .with_token(&server.key(&tenant.id, "viewer").await);
    let publisher = tenant
        .admin
        .with_token(&server.key(&tenant.id, "publisher").await);
    let endpoint = json!({"name": "x", "url": "http://127.0.0.1:9/x", "events": ["*"]});
    let event = json!({"type": "a.b", "data": {}});

    assert_eq!(viewer.get("/v1/endpoints").await.0, StatusCode::OK);
    assert_eq!(viewer.get("/v1/events").await.0, StatusCode::OK);
    let (status, body) = viewer.post("/v1/events", event.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        viewer.post("/v1/endpoints", endpoint.clone()).await.0,
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        publisher.post("/v1/events", event.clone()).await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        publisher.post("/v1/endpoints", endpoint.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        publisher
            .post("/v1/event-types", json!({"name": "a.b"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    assert_eq!(
        tenant.admin.post("/v1/endpoints", endpoint).await.0,
        StatusCode::CREATED
    );
    // Nothing the refused calls tried was stored.
    let (_, endpoints) = viewer.get("/v1/endpoints").await;
    assert_eq!(endpoints["totalElements"], 1);
    let (_, events) = viewer.get("/v1/events").await;
    assert_eq!(events["totalElements"], 1);
    server.stop().await;
}

#[tokio::test]
async fn tenants_cannot_see_each_others_resources() {
    let server = Server::start().await;
    let a = server.tenant("a").await;
    let b = server.tenant("b").await;
    let ep = a
        .endpoint(json!({"url": "http://127.0.0.1:9/x", "events": ["*"]}))
        .await;
    let ep_id = ep["id"].as_str().expect("id");
    let evt = a.publish("x.y", json!({})).await;
    let evt_id = evt["id"].as_str().expect("id");
    let (_, detail) = a.admin.get(&format!("/v1/events/{evt_id}")).await;
    let dlv_id = detail["deliveries"][0]["id"]
        .as_str()
        .expect("delivery")
        .to_owned();

    for path in [
        format!("/v1/endpoints/{ep_id}"),
        format!("/v1/endpoints/{ep_id}/stats"),
        format!("/v1/endpoints/{ep_id}/deliveries"),
        format!("/v1/events/{evt_id}"),
        format!("/v1/deliveries/{dlv_id}"),
    ] {
        let (status, body) = b.admin.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    assert_eq!(
        b.admin.delete(&format!("/v1/endpoints/{ep_id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.admin
            .patch(&format!("/v1/endpoints/{ep_id}"), json!({"name": "mine"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = b.admin.get("/v1/endpoints").await;
    assert_eq!(list["totalElements"], 0);
    // b's events do not reach a's endpoint.
    let published = b.publish("x.y", json!({})).await;
    assert_eq!(published["deliveries"], 0);
    let (_, still) = a.admin.get(&format!("/v1/endpoints/{ep_id}")).await;
    assert_eq!(still["name"], "test endpoint");
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_tenant_removes_what_it_owns() {
    let server = Server::start().await;
    let t = server.tenant("gone").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/x", "events": ["*"]}))
        .await;
    t.publish("a.b", json!({})).await;
    let op = server.operator();
    assert_eq!(
        op.delete(&format!("/v1/tenants/{}", t.id)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        op.get(&format!("/v1/tenants/{}", t.id)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin.get("/v1/endpoints").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        op.delete(&format!("/v1/tenants/{}", t.id)).await.0,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_tenants_secrets_are_not_left_in_the_file() {
    if crate::support::sqlite_only("a_deleted_tenants_secrets_are_not_left_in_the_file") {
        return;
    }
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("gone").await;
    let ep = t
        .endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let secret = ep["secret"].as_str().expect("secret").to_owned();
    let (status, _) = server
        .operator()
        .delete(&format!("/v1/tenants/{}", t.id))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await;
    // After a clean stop the WAL is folded into the file; nothing of the secret remains.
    let mut bytes = std::fs::read(dir.path().join("hookd.db")).expect("db file");
    if let Ok(wal) = std::fs::read(dir.path().join("hookd.db-wal")) {
        bytes.extend(wal);
    }
    let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
    assert!(
        !found,
        "the deleted endpoint's secret is still in the database file"
    );
}

#[tokio::test]
async fn a_tenant_admin_manages_its_own_keys_which_are_the_operators_too() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (status, created) = t
        .admin
        .post("/v1/keys", json!({"name": "ci", "role": "publisher"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().expect("key shown once").to_owned();
    let publisher = Api::new(&server.base, &key);
    let (status, _) = publisher
        .post("/v1/events", json!({"type": "a.b", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "the new key publishes");
    // A publisher key, or a portal link, hands out no keys.
    let (status, _) = publisher
        .post("/v1/keys", json!({"name": "x", "role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, link) = t
        .admin
        .post("/v1/portal-links", json!({"role": "admin"}))
        .await;
    let portal = Api::new(&server.base, link["token"].as_str().expect("token"));
    let (status, _) = portal
        .post("/v1/keys", json!({"name": "x", "role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Listed without secrets, here and on the operator's route.
    let (_, own) = t.admin.get("/v1/keys").await;
    assert_eq!(own["totalElements"], 2, "{own}");
    assert!(
        own["content"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k.get("key").is_none())
    );
    let (_, operators) = server
        .operator()
        .get(&format!("/v1/tenants/{}/keys", t.id))
        .await;
    assert_eq!(operators["content"], own["content"]);
    // Another tenant's admin cannot delete it; its own admin can, at once.
    let id = created["id"].as_str().expect("id");
    let other = server.tenant("other").await;
    assert_eq!(
        other.admin.delete(&format!("/v1/keys/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.admin.delete(&format!("/v1/keys/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = publisher
        .post("/v1/events", json!({"type": "a.b", "data": {}}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = t
        .admin
        .post("/v1/keys", json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    server.stop().await;
}
