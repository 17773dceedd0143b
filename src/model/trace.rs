//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` a publisher sends with an event, kept with it, and the `traceparent` each
//! attempt sends on to the receiver (the event's trace, a span of the attempt's own).

use std::fmt;

use super::Invalid;

/// The longest `tracestate` kept, as the specification asks every vendor to pass on.
const MAX_TRACESTATE: usize = 512;

/// Most members in a `tracestate`.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// An event's place in a trace: the trace, the publisher's span, its flags and any vendors'
/// state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace's id: 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The span that published the event: 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
    /// The vendors' `tracestate`, passed on as it came.
    pub state: Option<String>,
}

/// A span's id: 8 bytes, not all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

impl SpanId {
    /// A span id from 8 random bytes; all zero (invalid) becomes 1.
    pub fn from_random(bytes: [u8; 8]) -> Self {
        if bytes == [0; 8] {
            Self(1u64.to_be_bytes())
        } else {
            Self(bytes)
        }
    }
}

impl TraceContext {
    /// Parses a `traceparent` header and the `tracestate` that came with it (kept when well
    /// formed). A version above `00` is read as `00` (its first four fields), as the
    /// specification asks. An all-zero trace or parent id is none at all (the specification
    /// calls it invalid and has a vendor go on without it): `Ok(None)`.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<Option<Self>, Invalid> {
        let refused = |why: &str| {
            Invalid(format!(
                "traceparent '{}' is not a W3C traceparent ({why}): use \
                 00-<32 hex digits>-<16 hex digits>-<2 hex digits>, in lower case",
                traceparent.chars().take(80).collect::<String>()
            ))
        };
        let text = traceparent.trim();
        if !text.is_ascii() {
            return Err(refused("it holds characters outside ASCII"));
        }
        let head = text.get(..55).ok_or_else(|| refused("too short"))?;
        let version = hex_field::<1>(&head[..2]).ok_or_else(|| refused("version"))?[0];
        if version == 0xff {
            return Err(refused("version ff is invalid"));
        }
        if version == 0 && text.len() != 55
            || version > 0 && text.len() > 55 && !text[55..].starts_with('-')
        {
            return Err(refused("length"));
        }
        let dashes = [2, 35, 52].iter().all(|&i| head.as_bytes()[i] == b'-');
        if !dashes {
            return Err(refused("its fields are separated by '-'"));
        }
        let trace_id = hex_field::<16>(&head[3..35]).ok_or_else(|| refused("trace id"))?;
        let parent_id = hex_field::<8>(&head[36..52]).ok_or_else(|| refused("parent id"))?;
        let flags = hex_field::<1>(&head[53..55]).ok_or_else(|| refused("flags"))?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Ok(None);
        }
        let state = tracestate.and_then(kept_tracestate);
        Ok(Some(Self {
            trace_id,
            parent_id,
            flags,
            state,
        }))
    }

    /// The trace id as 32 lower-case hex digits (how tracing tools show it).
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The `traceparent` of a span of this trace: an attempt's, sent to the receiver so its
    /// own spans join the trace under the attempt.
    pub fn child(&self, span: SpanId) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(span.0),
            self.flags
        )
    }
}

/// Where a span hookd makes sits in its trace: the trace, its own id, its parent's (none for
/// the first span of a trace) and the trace's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanPlace {
    /// The trace's id.
    pub trace_id: [u8; 16],
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent span's id; `None` at the root of a trace.
    pub parent: Option<SpanId>,
    /// Whether the parent came from elsewhere (a caller's `traceparent`, an event's stored
    /// context), not from a span of this process.
    pub parent_remote: bool,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl SpanPlace {
    /// The first span of a new trace, sampled; an all-zero (invalid) trace id becomes 1.
    pub fn root(trace_id: [u8; 16], span: SpanId) -> Self {
        let trace_id = if trace_id == [0; 16] {
            1u128.to_be_bytes()
        } else {
            trace_id
        };
        Self {
            trace_id,
            span_id: span,
            parent: None,
            parent_remote: false,
            flags: 1,
        }
    }

    /// A span under a context that came from elsewhere: a caller's `traceparent`, or the one an
    /// event was stored with.
    pub fn under(parent: &TraceContext, span: SpanId) -> Self {
        Self {
            trace_id: parent.trace_id,
            span_id: span,
            parent: Some(SpanId(parent.parent_id)),
            parent_remote: true,
            flags: parent.flags,
        }
    }

    /// A span under this one.
    pub fn child(&self, span: SpanId) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: span,
            parent: Some(self.span_id),
            parent_remote: false,
            flags: self.flags,
        }
    }

    /// Whether the trace is sampled (flag bit 0): only sampled spans are exported.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The context this span hands on, to an event (its attempts become its children) or to
    /// a receiver: its trace, itself as the parent, and the vendors' `state`.
    pub fn context(&self, state: Option<String>) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            parent_id: self.span_id.0,
            flags: self.flags,
            state,
        }
    }
}

/// The stored form: the `traceparent` as version `00`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.child(SpanId(self.parent_id)))
    }
}

/// `N` bytes from exactly `2N` lower-case hex digits.
fn hex_field<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A `tracestate` as kept: when it is a list of at most 32 `key=value` members of printable
/// ASCII, 512 characters in all. Any other (or an empty one) is dropped, as the specification
/// lets a vendor do: the trace goes on without the vendors' state.
fn kept_tracestate(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty()
        || text.len() > MAX_TRACESTATE
        || !text.bytes().all(|b| (0x20..=0x7e).contains(&b))
    {
        return None;
    }
    let members: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    let well_formed = members.len() <= MAX_TRACESTATE_MEMBERS
        && members.iter().all(|m| {
            m.split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
        });
    well_formed.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_is_read_and_written_back_as_it_came() {
        let t = TraceContext::parse(GOOD, Some("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"))
            .expect("valid")
            .expect("a trace");
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(t.parent_id), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), GOOD);
        assert_eq!(
            t.state.as_deref(),
            Some("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7")
        );
    }

    #[test]
    fn an_attempt_keeps_the_trace_and_flags_with_a_span_of_its_own() {
        let t = TraceContext::parse(GOOD, None)
            .expect("valid")
            .expect("a trace");
        let child = t.child(SpanId([0xab; 8]));
        assert_eq!(
            child,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01"
        );
        assert_eq!(
            TraceContext::parse(&child, None)
                .expect("valid")
                .expect("a trace")
                .trace_id,
            t.trace_id
        );
        assert_eq!(SpanId::from_random([0; 8]), SpanId(1u64.to_be_bytes()));
    }

    #[test]
    fn spans_hand_their_trace_down_with_themselves_as_the_parent() {
        let caller = TraceContext::parse(GOOD, Some("a=b"))
            .expect("valid")
            .expect("a trace");
        let request = SpanPlace::under(&caller, SpanId([2; 8]));
        assert_eq!(request.trace_id, caller.trace_id);
        assert_eq!(request.parent, Some(SpanId(caller.parent_id)));
        assert!(request.sampled() && request.parent_remote);
        let step = request.child(SpanId([3; 8]));
        assert_eq!(step.parent, Some(SpanId([2; 8])));
        assert!(!step.parent_remote);
        let stored = request.context(caller.state.clone());
        assert_eq!(
            stored.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0202020202020202-01"
        );
        assert_eq!(stored.state.as_deref(), Some("a=b"));
        let root = SpanPlace::root([0; 16], SpanId([4; 8]));
        assert_eq!(root.trace_id, 1u128.to_be_bytes());
        assert_eq!((root.parent, root.sampled()), (None, true));
        let unsampled = TraceContext::parse(&GOOD.replace("-01", "-00"), None)
            .expect("valid")
            .expect("a trace");
        assert!(!SpanPlace::under(&unsampled, SpanId([5; 8])).sampled());
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later = format!("cc{}-what-comes-later", &GOOD[2..]);
        let t = TraceContext::parse(&later, None)
            .expect("a later version")
            .expect("a trace");
        assert_eq!(t.to_string(), GOOD);
        let glued = format!("cc{}x", &GOOD[2..]);
        assert!(TraceContext::parse(&glued, None).is_err());
    }

    #[test]
    fn malformed_traceparents_are_refused_with_the_reason() {
        let cases = [
            ("", "too short"),
            (&GOOD[..54], "too short"),
            (&format!("{GOOD}-"), "length"),
            (&GOOD.replace("00-4b", "ff-4b"), "version ff"),
            (&GOOD.to_uppercase(), "trace id"),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47\u{e9}-00f067aa0ba902b7-01",
                "ASCII",
            ),
            (&GOOD.replace("4bf92f", "4bg92f"), "trace id"),
            (&GOOD.replace("-01", "-1x"), "flags"),
            (&GOOD.replacen('-', "_", 1), "separated"),
        ];
        for (text, why) in cases {
            let e = TraceContext::parse(text, None).expect_err(text);
            assert!(e.0.contains(why), "{text}: {}", e.0);
        }
    }

    #[test]
    fn a_tracestate_is_kept_when_it_is_a_list_of_members_and_dropped_otherwise() {
        let parse = |s: &str| {
            TraceContext::parse(GOOD, Some(s))
                .expect("valid")
                .expect("a trace")
                .state
        };
        assert_eq!(parse("a=1,,b=2").as_deref(), Some("a=1,,b=2"));
        for dropped in [
            "  ".to_owned(),
            "novalue".to_owned(),
            "k=v,".repeat(33),
            format!("k={}", "v".repeat(600)),
            "k=caf\u{e9}".to_owned(),
        ] {
            assert_eq!(parse(&dropped), None, "{dropped}");
        }
    }

    #[test]
    fn an_all_zero_id_is_no_trace_at_all() {
        let zero_trace = GOOD.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32));
        let zero_parent = GOOD.replace("00f067aa0ba902b7", &"0".repeat(16));
        for text in [zero_trace, zero_parent] {
            assert_eq!(TraceContext::parse(&text, Some("a=b")), Ok(None), "{text}");
        }
    }
}
