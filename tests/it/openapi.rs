//! The API describes itself: `GET /openapi.json`, public, the same document as
//! `docs/openapi.json` (Schemathesis checks the live server against it in CI).

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Api, Server};

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token() {
    let server = Server::start().await;
    let (status, document) = Api::new(&server.base, "").get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document, hookd::api::openapi::document());
    assert!(
        document["paths"]["/v1/endpoints/{id}"]["patch"]["requestBody"].is_object(),
        "{document}"
    );
    server.stop().await;
}

/// What generated clients need to express the documented calls, checked against what the
/// live server answers.
#[tokio::test]
async fn the_document_types_rotation_creation_and_test_sends_as_the_server_answers_them() {
    let server = Server::start().await;
    let document = hookd::api::openapi::document();
    let t = server.tenant("acme").await;
    let receiver = crate::support::Receiver::ok().await;
    let schema = |op: &Value, status: &str| {
        op["responses"][status]["content"]["application/json"]["schema"].clone()
    };
    // Rotation: both request fields typed, both answer fields required.
    let rotate = &document["paths"]["/v1/endpoints/{id}/secret/rotate"]["post"];
    let body = &rotate["requestBody"]["content"]["application/json"]["schema"];
    // (Optional request fields also take `null`, meaning the same as leaving them out.)
    for field in ["gracePeriod", "secret"] {
        let types = &body["properties"][field]["anyOf"];
        assert_eq!(types[0]["type"], "string", "{body}");
        assert_eq!(types[1]["type"], "null", "{body}");
    }
    let answer = schema(rotate, "200");
    assert_eq!(answer["required"], json!(["secret", "oldSecretExpiresAt"]));
    // Creation: the answer always carries the secret.
    let create = &document["paths"]["/v1/endpoints"]["post"];
    let created = &document["components"]["schemas"]["CreatedEndpoint"];
    assert_eq!(
        schema(create, "201")["$ref"],
        "#/components/schemas/CreatedEndpoint"
    );
    assert_eq!(created["allOf"][1]["required"], json!(["secret"]));
    let endpoint = t
        .endpoint(json!({"url": receiver.url, "events": ["*"]}))
        .await;
    assert!(endpoint["secret"].is_string());
    // Test sends: every field the server answers is documented.
    let test = schema(&document["paths"]["/v1/endpoints/{id}/test"]["post"], "200");
    let id = endpoint["id"].as_str().expect("id");
    let (status, sent) = t
        .admin
        .post_empty(&format!("/v1/endpoints/{id}/test"))
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    for field in sent.as_object().expect("object").keys() {
        assert!(
            test["properties"].get(field).is_some(),
            "{field} is not documented"
        );
    }
    let (status, rotated) = t
        .admin
        .post(
            &format!("/v1/endpoints/{id}/secret/rotate"),
            json!({"gracePeriod": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    for field in ["secret", "oldSecretExpiresAt"] {
        assert!(rotated[field].is_string(), "{rotated}");
    }
    // The duration pattern is what the server takes: spaces around it are refused.
    let (status, _) = t
        .admin
        .post(
            &format!("/v1/endpoints/{id}/secret/rotate"),
            json!({"gracePeriod": " 1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}
