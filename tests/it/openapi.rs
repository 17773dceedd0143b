//! The API describes itself: `GET /openapi.json`, public, the same document as
//! `docs/openapi.json` (Schemathesis checks the live server against it in CI).

use http::StatusCode;

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
