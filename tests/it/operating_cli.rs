//! The operating commands of the real binary: backup while serving, check, token rotate, and
//! the API over TLS.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use http::StatusCode;
use serde_json::json;

use crate::support::{ADMIN, Api, Server};

fn hookd(args: &[&str], db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .arg("--db")
        .arg(db)
        .env("HOOKD_LOG", "warn")
        .output()
        .expect("run hookd")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_backup_taken_while_serving_holds_everything_and_checks_healthy() {
    if crate::support::sqlite_only(
        "a_backup_taken_while_serving_holds_everything_and_checks_healthy",
    ) {
        return;
    }
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let server = Server::start_in(dir.clone(), |_| {}).await;
    let t = server.tenant("acme").await;
    t.endpoint(json!({"url": "http://127.0.0.1:9/h", "events": ["*"]}))
        .await;
    for n in 0..50 {
        t.publish("order.paid", json!({"n": n})).await;
    }
    let copy = dir.path().join("copy.db");
    let out = hookd(
        &["backup", "--to", copy.to_str().expect("path")],
        &dir.path().join("hookd.db"),
    );
    assert!(out.status.success(), "{}", text(&out));
    // It holds secrets: readable by its owner alone.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&copy).expect("backup").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the backup is {:o}", mode & 0o777);
    // A backup never overwrites.
    let again = hookd(
        &["backup", "--to", copy.to_str().expect("path")],
        &dir.path().join("hookd.db"),
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    server.stop().await;

    let out = hookd(&["check"], &copy);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("healthy"), "{}", text(&out));
    // Served from the copy, the data is all there.
    let copy_dir = Arc::new(tempfile::tempdir().expect("dir"));
    std::fs::copy(&copy, copy_dir.path().join("hookd.db")).expect("copy");
    let restored = Server::start_in(copy_dir, |_| {}).await;
    let (_, events) = t
        .admin
        .with_base(&restored.base)
        .get("/v1/events?size=1")
        .await;
    assert_eq!(events["totalElements"], 50, "{events}");
    restored.stop().await;
}

#[test]
fn check_refuses_a_damaged_or_missing_file() {
    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, b"this is not a database at all, not even close").expect("write");
    let out = hookd(&["check"], &bad);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not a database"), "{}", text(&out));
    let out = hookd(&["check"], &dir.path().join("missing.db"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    // No backtrace, one line, whatever RUST_BACKTRACE says.
    assert!(!text(&out).contains("Stack backtrace"), "{}", text(&out));
}

#[tokio::test]
async fn token_rotate_replaces_the_operator_token() {
    let dir = Arc::new(tempfile::tempdir().expect("dir"));
    let db = crate::support::test_db(dir.path()).await;
    let out = hookd(&["migrate"], &db);
    assert!(out.status.success(), "{}", text(&out));
    let out = hookd(&["token", "rotate"], &db);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("hko_"))
        .expect("the new token is printed")
        .to_owned();
    // Served without --admin-token, the stored (rotated) token is the operator's.
    let server = Server::start_in(dir.clone(), |c| c.admin_token = None).await;
    let op = Api::new(&server.base, &token);
    assert_eq!(op.get("/v1/tenants").await.0, StatusCode::OK);
    let stale = Api::new(&server.base, ADMIN);
    assert_eq!(stale.get("/v1/tenants").await.0, StatusCode::UNAUTHORIZED);
    // While hookd serves a SQLite file, rotating is refused (it would not take effect until a
    // restart). Several processes may serve one PostgreSQL database: each takes a rotated
    // token when it restarts, and the command says so.
    let out = hookd(&["token", "rotate"], &db);
    if crate::postgres::suite_on_postgres() {
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("when they restart"), "{}", text(&out));
    } else {
        assert!(!out.status.success());
        assert!(text(&out).contains("another hookd"), "{}", text(&out));
    }
    server.stop().await;
}

#[tokio::test]
async fn the_api_serves_https_with_the_given_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert file");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key file");
    let server = Server::start_with(|c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");

    // Plain HTTP on the same port gets no answer.
    let plain = Api::new(&server.base, "");
    let refused = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("the server closes a plain connection");
    assert!(!String::from_utf8_lossy(&refused).contains("200 OK"));
    drop(plain);
    server.stop().await;
}

#[test]
fn logs_can_be_json_lines_and_text_has_no_colour_when_redirected() {
    let dir = tempfile::tempdir().expect("dir");
    let run = |format: &str, db: &str| {
        Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["migrate", "--log-format", format, "--db"])
            .arg(dir.path().join(db))
            .env("HOOKD_LOG", "info")
            .output()
            .expect("run hookd")
    };
    let json = run("json", "a.db");
    assert!(json.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "applied schema migration"),
        "{lines:?}"
    );
    let text = run("text", "b.db");
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("applied schema migration"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI escapes in a redirected log"
    );
}

#[test]
fn the_demo_shows_every_delivery_verified() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("demo")
        .env("HOOKD_LOG", "warn")
        .output()
        .expect("run hookd demo");
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.matches("receiver verified").count(), 8, "{printed}");
    assert!(printed.contains("\"succeeded\": 8"), "{printed}");
    assert!(printed.contains("done: every delivery arrived signed and verified."));
}
