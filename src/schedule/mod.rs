//! Schedules: when scheduled digests fire. So far only the timing rules are built
//! ([`timing`]: cron expressions in their standard meaning, evaluated in an IANA time zone
//! across DST changes); the schedule store, the scheduler loop, digest rendering and email
//! are the rest of the schedules issue.

pub mod timing;
