//! Public ids: a type prefix and the row's integer id (`ep_42`). A string with the wrong
//! prefix or a malformed number parses to `None`, which the API answers as "not found".

use std::fmt;

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl $name {
            /// The prefix every public id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parses the public form; `None` for any other string.
            pub fn parse(s: &str) -> Option<Self> {
                let digits = s.strip_prefix($prefix)?;
                // One spelling per id: no sign, no leading zero, at most 18 digits.
                if digits.is_empty()
                    || digits.len() > 18
                    || digits.starts_with('0')
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                digits.parse().ok().filter(|n| *n > 0).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

public_id!(
    /// A tenant: `tnt_…`.
    TenantId,
    "tnt_"
);
public_id!(
    /// A tenant API key: `key_…`.
    KeyId,
    "key_"
);
public_id!(
    /// A portal link: `prt_…`.
    PortalLinkId,
    "prt_"
);
public_id!(
    /// An outgoing endpoint: `ep_…`.
    EndpointId,
    "ep_"
);
public_id!(
    /// A published event: `evt_…`; also the `webhook-id` of every delivery of it.
    EventId,
    "evt_"
);
public_id!(
    /// One event's delivery to one endpoint: `dlv_…`.
    DeliveryId,
    "dlv_"
);

public_id!(
    /// An incoming webhook: `in_…`.
    IncomingId,
    "in_"
);
public_id!(
    /// A request an incoming webhook received: `req_…`.
    IncomingRequestId,
    "req_"
);

public_id!(
    /// A schedule: `sch_…`.
    ScheduleId,
    "sch_"
);
public_id!(
    /// One run of a schedule: `run_…`.
    RunId,
    "run_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_prefixes() {
        let id = EndpointId(42);
        assert_eq!(id.to_string(), "ep_42");
        assert_eq!(EndpointId::parse("ep_42"), Some(id));
        assert_eq!(EndpointId::parse("evt_42"), None);
        assert_eq!(EndpointId::parse("ep_"), None);
        assert_eq!(EndpointId::parse("ep_-1"), None);
        assert_eq!(EndpointId::parse("ep_0"), None);
        assert_eq!(EndpointId::parse("ep_99999999999999999999"), None);
    }
}
