//! Reading a call's body: JSON or a decoded form, Slack's `url_verification` challenge, and the
//! event `data` a publish action makes of it.

use serde_json::{Value, json};

/// Why a body cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Neither JSON nor a form.
    #[error("unsupported content type '{0}'")]
    UnsupportedType(String),
    /// Declared JSON, but not valid JSON.
    #[error("the body is not valid JSON")]
    MalformedJson(#[source] serde_json::Error),
}

/// A content type's media type, lower case, without its parameters (`""` when there is none).
pub fn mime(content_type: Option<&str>) -> String {
    content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// The body as a JSON value: parsed for `application/json`, decoded into an object of strings
/// for `application/x-www-form-urlencoded`.
pub fn decode(content_type: Option<&str>, body: &[u8]) -> Result<Value, PayloadError> {
    match mime(content_type).as_str() {
        "application/json" => serde_json::from_slice(body).map_err(PayloadError::MalformedJson),
        "application/x-www-form-urlencoded" => Ok(Value::Object(
            url::form_urlencoded::parse(body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )),
        other => Err(PayloadError::UnsupportedType(other.to_owned())),
    }
}

/// Slack's `url_verification` handshake: the challenge to echo back.
pub fn challenge(value: &Value) -> Option<&str> {
    if value["type"] == "url_verification" {
        value["challenge"].as_str()
    } else {
        None
    }
}

/// The published event's `data`: the body when it is an object, else `{"payload": body}`.
pub fn event_data(value: Value) -> Value {
    if value.is_object() {
        value
    } else {
        json!({"payload": value})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_into_objects_of_strings() {
        let v = decode(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            b"a=1&b=x+y",
        )
        .expect("form");
        assert_eq!(v, json!({"a": "1", "b": "x y"}));
    }

    #[test]
    fn other_types_and_bad_json_are_refused() {
        assert!(matches!(
            decode(Some("text/plain"), b"x"),
            Err(PayloadError::UnsupportedType(t)) if t == "text/plain"
        ));
        assert!(matches!(
            decode(Some("application/json"), b"{"),
            Err(PayloadError::MalformedJson(_))
        ));
    }

    #[test]
    fn a_challenge_is_recognised_and_non_objects_are_wrapped() {
        let v = json!({"type": "url_verification", "challenge": "abc"});
        assert_eq!(challenge(&v), Some("abc"));
        assert_eq!(challenge(&json!({"type": "event"})), None);
        assert_eq!(event_data(json!([1])), json!({"payload": [1]}));
    }
}
