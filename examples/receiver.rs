//! A receiver that verifies hookd's signatures and prints each delivery.
//!
//! ```text
//! cargo run --example receiver -- 127.0.0.1:9000 whsec_… [standard|github]
//! ```
//! Point an endpoint at `http://127.0.0.1:9000/webhooks` (hookd needs `--allow-http
//! --allow-private-targets` for a local receiver).

#[path = "support/verify.rs"]
mod verify;

use std::sync::Arc;

use hookd::model::SignatureScheme;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(secret)) = (args.first(), args.get(1)) else {
        eprintln!("usage: receiver <127.0.0.1:port> <secret> [standard|github]");
        std::process::exit(2);
    };
    let scheme = match args.get(2).map(String::as_str) {
        None | Some("standard") => SignatureScheme::Standard,
        Some("github") => SignatureScheme::Github,
        Some(other) => {
            eprintln!("unknown scheme {other}: use standard or github");
            std::process::exit(2);
        }
    };
    if let Err(e) = hookd::signing::check_secret(scheme, secret) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    let local = listener.local_addr().expect("address");
    println!(
        "receiver: verifying {scheme:?} signatures at {}",
        verify::url(local)
    );
    verify::serve(
        listener,
        scheme,
        secret.clone(),
        Arc::new(|d: verify::Verified| println!("verified {}: {}", d.id, d.body)),
    )
    .await;
}
