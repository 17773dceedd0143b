//! Property tests with a bounded number of cases: parsers never panic and refuse what is not
//! canonical, durations and ids round-trip, standard cron means what it says in any zone,
//! signatures verify exactly what was signed.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use proptest::prelude::*;

use hookd::model::duration;
use hookd::model::timing::CronSpec;
use hookd::model::{EndpointId, EventName, EventPattern, SignatureScheme};
use hookd::signing::Signer;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_round_trip_through_their_written_form(ms in 0u64..=366 * 86_400_000) {
        let d = std::time::Duration::from_millis(ms);
        prop_assert_eq!(duration::parse(&duration::format(d)), Ok(d));
    }

    #[test]
    fn duration_parsing_never_panics_and_only_accepts_number_and_unit(s in "\\PC{0,12}") {
        if let Ok(d) = duration::parse(&s) {
            prop_assert!(d.as_millis() <= 366 * 86_400_000);
            let t = s.trim();
            prop_assert!(t.starts_with(|c: char| c.is_ascii_digit()), "{}", t);
            prop_assert!(["ms", "s", "m", "h", "d"].iter().any(|u| t.ends_with(u)), "{}", t);
        }
    }

    #[test]
    fn ids_have_exactly_one_spelling(s in "(ep_|evt_|ep)[0-9a-z_+-]{0,21}") {
        if let Some(id) = EndpointId::parse(&s) {
            prop_assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn every_positive_id_round_trips(n in 1i64..=999_999_999_999_999_999) {
        prop_assert_eq!(EndpointId::parse(&EndpointId(n).to_string()), Some(EndpointId(n)));
    }

    #[test]
    fn event_names_and_patterns_never_panic(s in "\\PC{0,40}") {
        let _ = EventName::parse(&s);
        let _ = EventPattern::parse(&s);
    }

    #[test]
    fn a_prefix_pattern_matches_exactly_the_names_under_it(
        prefix in "[a-z]{1,8}",
        rest in "[a-z0-9_]{1,8}",
        other in "[a-z]{1,8}",
    ) {
        let pattern = EventPattern::parse(&format!("{prefix}.*")).expect("pattern");
        let under = format!("{prefix}.{rest}");
        prop_assert!(pattern.matches(&under));
        prop_assume!(other != prefix);
        let elsewhere = format!("{other}.{rest}");
        prop_assert!(!pattern.matches(&elsewhere));
    }

    #[test]
    fn cron_parsing_never_panics(s in "[0-9*/,\\- a-zA-Z?]{0,30}") {
        let _ = CronSpec::parse(&s);
    }

    /// `M H * * D` fires at minute M of hour H on weekday D (0 and 7 = Sunday), in the zone.
    #[test]
    fn standard_cron_fires_when_it_says_in_any_zone(
        minute in 0u32..60,
        hour in 0u32..24,
        weekday in 0u32..=7,
        zone in prop::sample::select(vec!["UTC", "America/New_York", "Asia/Kolkata", "Europe/Berlin"]),
        start_day in 0i64..730,
    ) {
        let spec = CronSpec::parse(&format!("{minute} {hour} * * {weekday}")).expect("cron");
        let tz: chrono_tz::Tz = zone.parse().expect("zone");
        let after = Utc.timestamp_opt(1_767_225_600 + start_day * 86_400, 0).single().expect("time");
        let next = spec.next_after(tz, after).expect("fires");
        prop_assert!(next > after);
        // Within a week, or two when a spring-forward day skips the one time that week.
        prop_assert!(next - after <= chrono::Duration::days(15));
        let local = next.with_timezone(&tz);
        prop_assert_eq!(local.weekday().num_days_from_sunday(), weekday % 7);
        // On a spring-forward day a time that does not exist is skipped, never moved.
        prop_assert_eq!((local.hour(), local.minute()), (hour, minute));
    }

    #[test]
    fn a_signature_verifies_its_message_and_nothing_else(
        body in prop::collection::vec(any::<u8>(), 0..512),
        flip in any::<prop::sample::Index>(),
        id in "msg_[a-z0-9]{1,12}",
        timestamp in 1_600_000_000i64..1_900_000_000,
    ) {
        let secret = hookd::signing::generate_secret();
        let signer = Signer::new(SignatureScheme::Standard, &[secret.as_str()]).expect("signer");
        let signature = signer.sign(&id, timestamp, &body);
        prop_assert!(signer.verify(&id, timestamp, &body, &signature, timestamp, 300).is_ok());
        if !body.is_empty() {
            let mut changed = body.clone();
            changed[flip.index(body.len())] ^= 0x01;
            prop_assert!(signer.verify(&id, timestamp, &changed, &signature, timestamp, 300).is_err());
        }
        prop_assert!(signer.verify(&id, timestamp + 1, &body, &signature, timestamp, 300).is_err());
        prop_assert!(signer.verify(&id, timestamp, &body, &signature, timestamp + 301, 300).is_err());
    }
}
