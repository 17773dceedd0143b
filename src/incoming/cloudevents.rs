//! CloudEvents 1.0 calls (<https://github.com/cloudevents/spec>): in structured mode (the
//! body is the event, `application/cloudevents+json`) or binary mode (the attributes are
//! `ce-*` headers, the body is the event's data). A publish hook publishes one with its own
//! `type`.

use serde_json::Value;

use super::payload::{PayloadError, decode, mime};

/// How a call carries a CloudEvent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The body is the whole event.
    Structured,
    /// The attributes are `ce-*` headers; the body is the data.
    Binary,
}

/// A CloudEvent as hookd takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// Its `id`.
    pub id: String,
    /// Its `source`.
    pub source: String,
    /// Its `type`: what a publish hook publishes it as.
    pub kind: String,
    /// Its `data` (`null` when it has none).
    pub data: Value,
}

/// Why a call is not a CloudEvent hookd takes.
#[derive(Debug, thiserror::Error)]
pub enum CloudEventError {
    /// A structured event that is not a JSON object.
    #[error("the body is not a CloudEvent in JSON")]
    Malformed(#[source] serde_json::Error),
    /// A required attribute is missing or empty.
    #[error("the CloudEvent has no {0} (a required attribute)")]
    Missing(&'static str),
    /// A spec version other than 1.0.
    #[error("the CloudEvent's specversion is '{0}'; hookd takes 1.0")]
    Version(String),
    /// Base64 data (structured mode).
    #[error("the CloudEvent carries data_base64; send JSON data instead")]
    Base64,
    /// Binary mode's body cannot be read.
    #[error("the CloudEvent's data: {0}")]
    Data(#[source] PayloadError),
}

/// The mode a call with this content type and `ce-specversion` header carries a CloudEvent in;
/// `None` for any other call.
pub fn mode(content_type: Option<&str>, specversion: Option<&str>) -> Option<Mode> {
    if mime(content_type) == "application/cloudevents+json" {
        Some(Mode::Structured)
    } else if specversion.is_some() {
        Some(Mode::Binary)
    } else {
        None
    }
}

/// A structured-mode event from its body.
pub fn structured(body: &[u8]) -> Result<CloudEvent, CloudEventError> {
    let value: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(CloudEventError::Malformed)?;
    if value.contains_key("data_base64") {
        return Err(CloudEventError::Base64);
    }
    let attribute = |name: &str| value.get(name).and_then(Value::as_str);
    let event = attributes(attribute)?;
    Ok(CloudEvent {
        data: value.get("data").cloned().unwrap_or(Value::Null),
        ..event
    })
}

/// A binary-mode event from its `ce-*` headers (`header` reads one by its lower-case name)
/// and its body, read as any call's body is (JSON or a form); without a content type, as JSON
/// (what the CloudEvents SDKs send for JSON data).
pub fn binary<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<CloudEvent, CloudEventError> {
    let event = attributes(|name| header(&format!("ce-{name}")))?;
    let data = if body.is_empty() {
        Value::Null
    } else {
        decode(content_type.or(Some("application/json")), body).map_err(CloudEventError::Data)?
    };
    Ok(CloudEvent { data, ..event })
}

/// The required attributes, each read by `attribute`.
fn attributes<'a>(
    attribute: impl Fn(&str) -> Option<&'a str>,
) -> Result<CloudEvent, CloudEventError> {
    let required = |name: &'static str| {
        attribute(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(CloudEventError::Missing(name))
    };
    let version = required("specversion")?;
    if version != "1.0" {
        return Err(CloudEventError::Version(version));
    }
    Ok(CloudEvent {
        id: required("id")?,
        source: required("source")?,
        kind: required("type")?,
        data: Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_mode_comes_from_the_content_type_or_a_specversion_header() {
        let ce = Some("application/cloudevents+json; charset=utf-8");
        assert_eq!(mode(ce, None), Some(Mode::Structured));
        assert_eq!(
            mode(Some("application/json"), Some("1.0")),
            Some(Mode::Binary)
        );
        assert_eq!(mode(Some("application/json"), None), None);
    }

    #[test]
    fn a_structured_event_is_read_with_its_data() {
        let body = json!({"specversion": "1.0", "id": "a1", "source": "/ci", "type": "ci.done",
                          "data": {"ok": true}});
        let event = structured(body.to_string().as_bytes()).expect("valid");
        assert_eq!(
            event,
            CloudEvent {
                id: "a1".into(),
                source: "/ci".into(),
                kind: "ci.done".into(),
                data: json!({"ok": true}),
            }
        );
    }

    #[test]
    fn a_binary_event_is_read_from_its_headers_and_body() {
        let headers = [
            ("ce-specversion", "1.0"),
            ("ce-id", "b2"),
            ("ce-source", "/shop"),
            ("ce-type", "order.paid"),
        ];
        let header = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let event = binary(header, Some("application/json"), br#"{"n":1}"#).expect("valid");
        assert_eq!(event.kind, "order.paid");
        assert_eq!(event.data, json!({"n": 1}));
        let no_type = |name: &str| header(name).filter(|_| name != "ce-type");
        assert!(matches!(
            binary(no_type, Some("application/json"), b"{}"),
            Err(CloudEventError::Missing("type"))
        ));
    }

    #[test]
    fn events_hookd_cannot_take_are_refused_with_the_reason() {
        let base = json!({"specversion": "1.0", "id": "a", "source": "/s", "type": "t"});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            structured(b.to_string().as_bytes())
        };
        assert!(matches!(
            with("specversion", json!("0.3")),
            Err(CloudEventError::Version(_))
        ));
        assert!(matches!(
            with("id", json!("")),
            Err(CloudEventError::Missing("id"))
        ));
        assert!(matches!(
            with("data_base64", json!("AA==")),
            Err(CloudEventError::Base64)
        ));
        assert!(matches!(
            structured(b"[1]"),
            Err(CloudEventError::Malformed(_))
        ));
    }
}
