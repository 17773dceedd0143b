//! Pure types shared by every layer: ids, durations, tenants, endpoints, events and
//! deliveries. Nothing here does I/O; parsing a value here is what makes it valid elsewhere.

/// Gives an enum its stored and API text form: `parse` and `as_str`.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ }) => {
        impl $ty {
            /// Parses the stored and API form.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
            /// The stored and API form.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text,)+ }
            }
        }
    };
}

pub mod attempt;
pub mod auth;
pub mod claim;
pub mod counts;
pub mod credentials;
pub mod delivery;
pub mod destination;
pub mod duration;
pub mod endpoint;
pub mod event;
pub mod filter;
pub mod ids;
pub mod incoming;
pub mod operational;
pub mod paging;
pub mod plan;
pub mod publish;
pub mod replay;
pub mod results;
pub mod run;
pub mod schedule;
pub mod series;
pub mod tenant;
pub mod timing;
pub mod trace;

pub use delivery::{
    AttemptOutcome, AttemptRecord, DeliveryDetail, DeliveryFilter, DeliveryStatus, DeliverySummary,
    ErrorClass, TenantQueue,
};
pub use endpoint::{DisableReason, Endpoint, EndpointSettings, Format, Ordering, SignatureScheme};
pub use event::{EventName, EventPattern};
pub use ids::{
    DeliveryId, EndpointId, EventId, IncomingId, IncomingRequestId, KeyId, PortalLinkId, RunId,
    ScheduleId, TenantId,
};
pub use tenant::{ApiKey, Role, Tenant};

/// Milliseconds since the Unix epoch: every stored time uses this unit.
pub type UnixMs = i64;

/// The current wall-clock time in unix milliseconds.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats unix milliseconds as an RFC 3339 UTC timestamp with millisecond precision.
pub fn rfc3339(ms: UnixMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A value hookd refuses, with the sentence that says why, as the caller is shown it (the
/// API answers it as a `validation_failed`; the CLI prints it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(why: String) -> Self {
        Self(why)
    }
}

impl From<&str> for Invalid {
    fn from(why: &str) -> Self {
        Self(why.to_owned())
    }
}

impl From<Invalid> for String {
    fn from(invalid: Invalid) -> Self {
        invalid.0
    }
}

/// Parses an RFC 3339 timestamp (any offset) into unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixMs> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// One page of a list, in the shape every list route answers with.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items on this page.
    pub content: Vec<T>,
    /// How many items all pages hold together.
    pub total_elements: u64,
    /// How many pages of `size` that makes.
    pub total_pages: u64,
    /// The page size asked for.
    pub size: u32,
    /// The 0-based number of this page.
    pub number: u32,
}

/// Which page of a list to read: 0-based `number`, `size` items (1–100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The 0-based page number.
    pub number: u32,
    /// Items per page, 1 to [`PageRequest::MAX_SIZE`].
    pub size: u32,
}

impl PageRequest {
    /// The largest page a list route serves.
    pub const MAX_SIZE: u32 = 100;

    /// Rows to skip before this page.
    pub fn offset(&self) -> i64 {
        i64::from(self.number) * i64::from(self.size)
    }

    /// Wraps one page of items with the totals.
    pub fn page<T>(&self, content: Vec<T>, total: u64) -> Page<T> {
        Page {
            content,
            total_elements: total,
            total_pages: total.div_ceil(u64::from(self.size)),
            size: self.size,
            number: self.number,
        }
    }
}
