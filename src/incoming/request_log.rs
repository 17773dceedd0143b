//! What the request log keeps of a call: the headers worth keeping (never `authorization` or
//! cookies) and the head of the body.

use std::collections::BTreeMap;

use http::HeaderMap;

/// Body bytes kept in the request log.
pub const LOGGED_BODY_BYTES: usize = 64 * 1024;

/// The headers worth keeping in the log.
const LOGGED_HEADERS: [&str; 12] = [
    "content-type",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-request-id",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "x-slack-request-timestamp",
];

/// A header's value, when it is present and text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers the log keeps.
pub fn logged_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    LOGGED_HEADERS
        .iter()
        .filter_map(|name| header(headers, name).map(|v| ((*name).to_owned(), v.to_owned())))
        .collect()
}

/// The head of the body the log keeps (lossy UTF-8).
pub fn logged_body(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(LOGGED_BODY_BYTES)]).into_owned()
}
