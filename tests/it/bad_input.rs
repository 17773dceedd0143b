//! Bad input: each gets a clear JSON error and changes nothing.

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Server, Tenant};

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.len() > 10, "a sentence, not a code: {message}");
}

async fn endpoint_count(t: &Tenant) -> u64 {
    t.admin.get("/v1/endpoints").await.1["totalElements"]
        .as_u64()
        .expect("total")
}

async fn event_count(t: &Tenant) -> u64 {
    t.admin.get("/v1/events").await.1["totalElements"]
        .as_u64()
        .expect("total")
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_content_type_415() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (status, _, body) = t
        .admin
        .raw(
            "POST",
            "/v1/events",
            Some("application/json"),
            b"{\"type\": \"a.b\", ".to_vec(),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    let (status, _, body) = t
        .admin
        .raw(
            "POST",
            "/v1/events",
            Some("text/plain"),
            b"{\"type\":\"a.b\",\"data\":{}}".to_vec(),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (status, _, body) = t.admin.raw("POST", "/v1/events", None, Vec::new()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
    assert_eq!(event_count(&t).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn trailing_bytes_truncations_non_objects_and_blank_bodies_are_refused() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let endpoint = t
        .endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let id = endpoint["id"].as_str().expect("id");
    let rotate = format!("/v1/endpoints/{id}/secret/rotate");
    let enable = format!("/v1/endpoints/{id}/enable");
    let cases: Vec<(&str, &str, &[u8], StatusCode, &str)> = vec![
        // Bytes after the object are not ignored.
        (
            "POST",
            "/v1/events",
            b"{\"type\":\"a.b\",\"data\":{}}x",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/events",
            b"{\"type\":\"a.b\",\"data\":{}} {}",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/endpoints",
            b"{\"url\":\"http://127.0.0.1:9/x\",\"events\":[\"*\"]}]",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            &rotate,
            b"{}x",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        // Cut short anywhere: 400, not 422.
        (
            "POST",
            "/v1/events",
            b"{\"type\":\"a.b\",\"data\":{\"n\":1}",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/events",
            b"{\"type\":\"a.b\",\"data\":{\"n\":",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/endpoints",
            b"{\"url\":\"http://127.0.0",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            "/v1/events/batch",
            b"{\"events\":[{\"type\":\"a.b\",\"data\":{}}",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        // Every body is an object: a list or a bare value is not one.
        (
            "POST",
            &enable,
            b"[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            &rotate,
            b"[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            "/v1/events",
            b"[\"a.b\", {}]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "POST",
            &rotate,
            b"null",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        // Blank is not empty: spaces are no JSON.
        (
            "POST",
            &enable,
            b"   ",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "POST",
            &rotate,
            b"\n",
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, _, answer) = t
            .admin
            .raw(method, path, Some("application/json"), body.to_vec())
            .await;
        assert_eq!(
            got,
            status,
            "{method} {path} {}: {answer}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            answer["error"]["code"],
            code,
            "{method} {path} {}: {answer}",
            String::from_utf8_lossy(body)
        );
    }
    // Nothing was changed by any of them; an action with no body, or `{}`, still works.
    assert_eq!(event_count(&t).await, 0);
    assert_eq!(endpoint_count(&t).await, 1);
    assert_eq!(
        t.admin.raw("POST", &enable, None, Vec::new()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        t.admin
            .raw("POST", &enable, Some("application/json"), b" {} ".to_vec())
            .await
            .0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let key = server.key(&t.id, "admin").await;
    // Two different tokens, and the same one twice.
    for second in ["Bearer someone-else".to_owned(), format!("Bearer {key}")] {
        let (status, _, body) = t
            .admin
            .raw_with_headers(
                "GET",
                "/v1/endpoints",
                &[
                    ("authorization", format!("Bearer {key}")),
                    ("authorization", second),
                ],
                Vec::new(),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_request");
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422_naming_the_field() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let (status, body) = t
        .admin
        .post(
            "/v1/events",
            json!({"type": "a.b", "data": {}, "colour": "red"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("colour"),
        "{body}"
    );
    let (status, body) = t
        .admin
        .post("/v1/endpoints", json!({"name": "x", "url": "http://127.0.0.1:9/h", "events": ["*"], "timeoutMs": "fast"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("timeoutMs"),
        "{body}"
    );
    let (status, body) = t.admin.post("/v1/events", json!({"type": "a.b"})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = t
        .admin
        .post("/v1/events", json!({"type": "a.b", "data": [1]}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(event_count(&t).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn invalid_endpoints_are_refused_and_nothing_is_stored() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let base = json!({"name": "x", "url": "http://127.0.0.1:9/h", "events": ["*"]});
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = base.clone();
        b.as_object_mut().expect("object").remove(field);
        b
    };
    let cases = [
        ("missing events", without("events")),
        ("empty events", with("events", json!([]))),
        ("bad pattern", with("events", json!(["Project.*"]))),
        ("missing url", without("url")),
        ("missing name", without("name")),
        ("not a url", with("url", json!("not a url"))),
        ("ftp url", with("url", json!("ftp://127.0.0.1/x"))),
        (
            "credentials in url",
            with("url", json!("http://user:pw@127.0.0.1/x")),
        ),
        ("bad duration", with("retrySchedule", json!(["5 minutes"]))),
        ("bad unit", with("retrySchedule", json!(["5y"]))),
        (
            "header with CR/LF",
            with("headers", json!({"x-a": "b\r\nx-evil: 1"})),
        ),
        (
            "hop-by-hop header",
            with("headers", json!({"connection": "close"})),
        ),
        (
            "signature header override",
            with("headers", json!({"webhook-signature": "v1,x"})),
        ),
        ("bad header name", with("headers", json!({"x a": "b"}))),
        ("bad scheme", with("signatureScheme", json!("md5"))),
        ("bad format", with("format", json!("xml"))),
        ("bad ordering", with("ordering", json!("lifo"))),
        ("timeout too small", with("timeoutMs", json!(1))),
        ("rate limit zero", with("rateLimit", json!(0))),
        (
            "short standard secret",
            with("secret", json!("whsec_c2hvcnQ=")),
        ),
        (
            "secret without prefix",
            with("secret", json!("plain-secret-value")),
        ),
        ("negative disableAfter", with("disableAfter", json!(-1))),
    ];
    for (what, body) in cases {
        let (status, answer) = t.admin.post("/v1/endpoints", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_failed", "{what}");
    }
    assert_eq!(endpoint_count(&t).await, 0);

    // A PATCH that fails validation changes nothing either.
    let (_, ep) = t.admin.post("/v1/endpoints", base.clone()).await;
    let path = format!("/v1/endpoints/{}", ep["id"].as_str().expect("id"));
    let (status, _) = t
        .admin
        .patch(
            &path,
            json!({"name": "changed", "retrySchedule": ["bogus"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = t
        .admin
        .patch(&path, json!({"name": "changed", "events": []}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(t.admin.get(&path).await.1["name"], "x");
    server.stop().await;
}

#[tokio::test]
async fn plain_http_and_private_targets_are_refused_by_default() {
    let server = Server::start_with(|c| {
        c.allow_http = false;
        c.allow_private_targets = false;
    })
    .await;
    let t = server.tenant("acme").await;
    for url in [
        "http://127.0.0.1:9/h",
        "https://127.0.0.1/h",
        "https://10.0.0.8/h",
        "https://192.168.1.1/h",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/h",
        "https://localhost/h",
    ] {
        let (status, body) = t
            .admin
            .post(
                "/v1/endpoints",
                json!({"name": "x", "url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
    }
    assert_eq!(endpoint_count(&t).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_nothing_is_stored() {
    let server = Server::start_with(|c| c.max_body_bytes = 4096).await;
    let t = server.tenant("acme").await;
    let big = "x".repeat(5000);
    let (status, body) = t
        .admin
        .post("/v1/events", json!({"type": "a.b", "data": {"big": big}}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(event_count(&t).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    for path in [
        "/v1/endpoints/ep_999",
        "/v1/endpoints/nonsense",
        "/v1/endpoints/evt_1",
        "/v1/events/evt_999",
        "/v1/events/ep_1",
        "/v1/deliveries/dlv_999",
        "/v1/deliveries/dlv_x",
        "/v1/endpoints/ep_999/stats",
        "/v1/nothing-here",
    ] {
        let (status, body) = t.admin.get(path).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = server.operator().get("/v1/tenants/tnt_999").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = t.admin.post_empty("/v1/endpoints/ep_999/enable").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn page_sizes_outside_1_to_100_are_422() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    for q in ["size=101", "size=0", "size=-1", "page=-1", "page=x"] {
        let (status, body) = t.admin.get(&format!("/v1/endpoints?{q}")).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    assert_eq!(
        t.admin.get("/v1/endpoints?size=100").await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn tenant_and_key_input_is_validated() {
    let server = Server::start().await;
    let op = server.operator();
    let (status, body) = op.post("/v1/tenants", json!({"name": ""})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let t = server.tenant("acme").await;
    let (status, body) = op
        .post(
            &format!("/v1/tenants/{}/keys", t.id),
            json!({"name": "k", "role": "root"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (_, keys) = op.get(&format!("/v1/tenants/{}/keys", t.id)).await;
    assert_eq!(keys["totalElements"], 1);
    let (_, tenants) = op.get("/v1/tenants").await;
    assert_eq!(tenants["totalElements"], 1);
    server.stop().await;
}

#[tokio::test]
async fn ids_have_one_spelling_and_anything_else_is_a_json_404() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let ep = t
        .endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    let id = ep["id"].as_str().expect("id");
    let padded = id.replacen("ep_", "ep_0", 1);
    let (status, body) = t.admin.get(&format!("/v1/endpoints/{padded}")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let key = server.key(&t.id, "viewer").await;
    let key_id = key.split('_').nth(1).expect("key id");
    let (status, body) = server
        .operator()
        .delete(&format!("/v1/tenants/{}/keys/key_0{key_id}", t.id))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let viewer = t.admin.with_token(&key);
    assert_eq!(
        viewer.get("/v1/endpoints").await.0,
        StatusCode::OK,
        "the padded delete deleted nothing"
    );
    // A path that is not UTF-8 names nothing either.
    let (status, body) = t.admin.get("/v1/endpoints/ep_%FF%FE").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        t.admin.get(&format!("/v1/endpoints/{id}")).await.0,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn a_caller_without_the_role_gets_403_whatever_the_body() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let viewer = t.admin.with_token(&server.key(&t.id, "viewer").await);
    for path in [
        "/v1/endpoints",
        "/v1/schedules",
        "/v1/incoming",
        "/v1/event-types",
    ] {
        let (status, body) = viewer.post(path, json!({})).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, _, body) = viewer
            .raw(
                "POST",
                path,
                Some("application/json"),
                b"{not json".to_vec(),
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = server.operator().post("/v1/events", json!({})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = t.admin.post("/v1/tenants", json!({})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(endpoint_count(&t).await, 0);
    server.stop().await;
}

/// Reads from `stream` until the server closes it; panics if it stays open for 20 s.
async fn wait_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    seen
}

#[tokio::test]
async fn slow_heads_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start_with(|c| {
        c.header_read_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Slowloris: half a request head, then nothing.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    wait_closed(&mut slow).await;
    // Idle keep-alive: one request answered, then the connection is closed.
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let answered = wait_closed(&mut idle).await;
    assert!(
        String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"),
        "the request itself was answered"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_stating_its_length_twice_is_refused_and_ends_the_connection() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let token = server.key(&t.id, "publisher").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = r#"{"type":"a.b","data":{}}"#;
    let clean = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let chunk = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let both = format!(
        "POST /v1/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{chunk}",
        chunk.len()
    );
    // One clean publish, then the ambiguous one, sent together on one connection.
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream
        .write_all(format!("{clean}{both}").as_bytes())
        .await
        .expect("write");
    let answered = String::from_utf8_lossy(&wait_closed(&mut stream).await).into_owned();
    let statuses: Vec<&str> = answered
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| answered[at..].lines().next())
        .collect();
    assert_eq!(
        statuses,
        ["HTTP/1.1 202 Accepted", "HTTP/1.1 400 Bad Request"],
        "{answered}"
    );
    assert!(answered.contains("\"malformed_request\""), "{answered}");
    assert!(answered.contains("Transfer-Encoding"), "{answered}");
    assert_eq!(
        event_count(&t).await,
        1,
        "only the clean publish was accepted"
    );
    server.stop().await;
}

/// What JSON Schema says of numbers and objects holds here: `5000.0` is the whole number 5000,
/// and a nested object given as a list of its fields is refused (serde would read one).
#[tokio::test]
async fn whole_numbers_as_json_counts_them_and_objects_never_as_lists() {
    let server = Server::start().await;
    let t = server.tenant("acme").await;
    let endpoint = json!({"name": "x", "url": "http://127.0.0.1:9/h", "events": ["*"],
        "timeoutMs": 5000.0, "rateLimit": 7.0, "disableAfter": 3.0});
    let (status, created) = t.admin.post("/v1/endpoints", endpoint).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["timeoutMs"], 5000);
    assert_eq!(created["rateLimit"], 7);
    assert_eq!(created["disableAfter"], 3);
    for (field, value) in [
        ("timeoutMs", json!(5000.5)),
        ("rateLimit", json!(-1)),
        ("disableAfter", json!(1e12)),
    ] {
        let body =
            json!({"name": "y", "url": "http://127.0.0.1:9/h", "events": ["*"], field: value});
        let (status, answer) = t.admin.post("/v1/endpoints", body).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{message}");
    }
    assert_eq!(endpoint_count(&t).await, 1);

    let operator = server.operator();
    let tenant = format!("/v1/tenants/{}", t.id);
    let (status, plan) = operator
        .patch(&tenant, json!({"limits": {"endpoints": 10.0}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["limits"]["endpoints"], 10);
    let (status, plan) = operator
        .patch(&tenant, json!({"limits": null, "features": null}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "null is the same as leaving it out: {plan}"
    );
    assert_eq!(plan["limits"]["endpoints"], 10);
    for body in [
        json!({"limits": [null, null]}),
        json!({"features": [false, false, false]}),
    ] {
        let (status, answer) = operator.patch(&tenant, body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    assert_eq!(operator.get(&tenant).await.1["features"]["incoming"], true);
    let lists = [
        ("/v1/events/batch", json!({"events": [["a.b", {}]]})),
        ("/v1/incoming", json!({"name": "in", "action": ["store"]})),
        (
            "/v1/endpoints",
            json!({"name": "z", "url": "http://127.0.0.1:9/h", "events": ["*"],
            "auth": ["basic", "user", "password"]}),
        ),
        (
            "/v1/endpoints",
            json!({"name": "z", "url": "http://127.0.0.1:9/h", "events": ["*"],
            "clientCertificate": ["cert", "key"]}),
        ),
    ];
    for (path, body) in lists {
        let (status, answer) = t.admin.post(path, body).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    assert_eq!(event_count(&t).await, 0);
    assert_eq!(endpoint_count(&t).await, 1);
    server.stop().await;
}
