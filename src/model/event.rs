//! Event names (`project.created`) and the patterns endpoints subscribe with
//! (`project.*`, `*`).

use super::Invalid;
use std::fmt;

/// How long an idempotency key answers with its first event.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3_600_000;

/// The earliest time an idempotency key's first use still holds at `now`: a publish with a
/// key first used at or after it answers with that first event instead of publishing again.
pub fn repeats_since(now: super::UnixMs) -> super::UnixMs {
    now - IDEMPOTENCY_WINDOW_MS + 1
}

/// The prefix of hookd's own operational events, which `*` does not match.
pub const OPERATIONAL_PREFIX: &str = "hookd.";

/// A well-formed event name: `[a-z0-9_]+` segments joined by dots, at most 200 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(String);

impl EventName {
    /// Parses a name; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 200 {
            return Err(format!("event type '{s}' must be 1 to 200 characters").into());
        }
        let ok = s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "event type '{s}' must be lowercase segments of [a-z0-9_] joined by dots, like project.created"
            ).into())
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an endpoint subscribes to: one name, every name under a prefix, or everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPattern {
    /// `*`: every name except the operational `hookd.*` events.
    All,
    /// `a.b.*`: every name under `a.b.` at any depth; holds `a.b.`.
    Prefix(String),
    /// One exact name.
    Exact(String),
}

impl EventPattern {
    /// Parses `*`, `name.*` or `name`.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s == "*" {
            return Ok(Self::All);
        }
        if let Some(stem) = s.strip_suffix(".*") {
            EventName::parse(stem).map_err(|_| {
                format!("pattern '{s}' must be '*', a name, or a name followed by '.*'")
            })?;
            return Ok(Self::Prefix(format!("{stem}.")));
        }
        EventName::parse(s).map(|n| Self::Exact(n.0))
    }

    /// Whether an event of this name goes to a subscriber of this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => !name.starts_with(OPERATIONAL_PREFIX),
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Self::Exact(exact) => exact == name,
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Exact(exact) => f.write_str(exact),
        }
    }
}

/// At most this many channels on one event or endpoint.
pub const MAX_CHANNELS: usize = 10;

/// Checks a list of channel names: at most [`MAX_CHANNELS`], each 1–128 characters of
/// `[A-Za-z0-9_.:-]` (`board.42`, `project:7`). The error names the bad one
/// (`channels[2]: …`).
pub fn check_channels(channels: &[String]) -> Result<(), Invalid> {
    if channels.len() > MAX_CHANNELS {
        return Err(format!("channels: at most {MAX_CHANNELS}").into());
    }
    for (i, c) in channels.iter().enumerate() {
        let ok = (1..=128).contains(&c.len())
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !ok {
            return Err(format!(
                "channels[{i}]: '{c}' must be 1 to 128 characters of letters, digits, _ . : -"
            )
            .into());
        }
    }
    Ok(())
}

/// Whether an event carrying `event` channels goes to an endpoint listening to `listening`
/// (`None`: every event, whatever its channels).
pub fn channels_meet(listening: Option<&[String]>, event: &[String]) -> bool {
    listening.is_none_or(|wanted| wanted.iter().any(|w| event.contains(w)))
}

/// One entry of a tenant's event-type catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType {
    /// The event name.
    pub name: String,
    /// A grouping for display.
    pub category: Option<String>,
    /// What the event means.
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dotted_lowercase_segments() {
        assert!(EventName::parse("project.created").is_ok());
        assert!(EventName::parse("a_1.b2").is_ok());
        for bad in ["", "Project.created", "a..b", ".a", "a.", "a b", "a-b"] {
            assert!(EventName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_as_documented() {
        let all = EventPattern::parse("*").unwrap();
        assert!(all.matches("project.created"));
        assert!(!all.matches("hookd.endpoint.disabled"));
        let prefix = EventPattern::parse("project.*").unwrap();
        assert!(prefix.matches("project.a"));
        assert!(prefix.matches("project.a.b"));
        assert!(!prefix.matches("project"));
        assert!(!prefix.matches("projects.a"));
        let ops = EventPattern::parse("hookd.*").unwrap();
        assert!(ops.matches("hookd.endpoint.disabled"));
        let exact = EventPattern::parse("post.created").unwrap();
        assert!(exact.matches("post.created"));
        assert!(!exact.matches("post.created.x"));
        assert!(EventPattern::parse("project.*.x").is_err());
        assert!(EventPattern::parse("**").is_err());
    }
}
