//! What the dispatcher holds back while the store cannot take writes.
//!
//! A lease is written with the claim, but the claim is answered before its batch commits; when
//! that batch, or the one recording the attempt's outcome, fails (a full disk), the database
//! forgets the lease and the row is due again at once. Claimed again and again, one delivery
//! would be sent in a tight loop. So the dispatcher remembers each delivery it started until
//! its outcome is recorded, and when recording fails, for the rest of the lease it was given:
//! a claim that returns such a delivery does not start it. And while writes fail, the
//! dispatcher waits between claims, longer each time, instead of sending work it cannot record.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::model::DeliveryId;

/// The first wait after a failed write.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest wait between claims while writes keep failing.
const LONGEST_PAUSE: Duration = Duration::from_secs(2);

/// Deliveries started and not yet recorded, and the pause after failed writes.
#[derive(Debug, Default)]
pub struct Held {
    /// Each held delivery, until the end of the lease it was started with.
    until: HashMap<DeliveryId, Instant>,
    /// The current pause and when it ends, while writes are failing.
    pause: Option<(Duration, Instant)>,
}

impl Held {
    /// Notes that `id` was started under a lease that ends at `lease_end`.
    pub fn started(&mut self, id: DeliveryId, lease_end: Instant) {
        self.until.insert(id, lease_end);
    }

    /// Whether `id` must not be started at `now`: an attempt under a lease that has not ended
    /// is in flight, or its outcome could not be recorded.
    pub fn holds(&self, id: DeliveryId, now: Instant) -> bool {
        self.until.get(&id).is_some_and(|end| *end > now)
    }

    /// The outcomes of `ids` were recorded: they are no longer held, and writes work again.
    pub fn recorded(&mut self, ids: impl IntoIterator<Item = DeliveryId>) {
        for id in ids {
            self.until.remove(&id);
        }
        self.pause = None;
    }

    /// A write failed at `now` (a claim or a record): the outcomes of deliveries already
    /// started stay held until their leases end, and claims pause, twice as long as the last
    /// pause, up to [`LONGEST_PAUSE`].
    pub fn write_failed(&mut self, now: Instant) {
        let pause = self
            .pause
            .map_or(FIRST_PAUSE, |(last, _)| (last * 2).min(LONGEST_PAUSE));
        self.pause = Some((pause, now + pause));
    }

    /// Until when claims wait, if they must.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        self.pause.map(|(_, end)| end).filter(|end| *end > now)
    }

    /// Forgets holds whose leases have ended.
    pub fn prune(&mut self, now: Instant) {
        self.until.retain(|_, end| *end > now);
    }

    /// Deliveries held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_held_from_its_start_until_recorded() {
        let now = Instant::now();
        let mut held = Held::default();
        held.started(DeliveryId(1), now + Duration::from_secs(40));
        assert!(held.holds(DeliveryId(1), now));
        assert!(!held.holds(DeliveryId(2), now));
        held.recorded([DeliveryId(1)]);
        assert!(!held.holds(DeliveryId(1), now));
    }

    #[test]
    fn an_unrecorded_delivery_is_held_until_its_lease_ends() {
        let now = Instant::now();
        let end = now + Duration::from_secs(40);
        let mut held = Held::default();
        held.started(DeliveryId(7), end);
        held.write_failed(now);
        assert!(held.holds(DeliveryId(7), end - Duration::from_millis(1)));
        assert!(!held.holds(DeliveryId(7), end));
        held.prune(end);
        assert_eq!(held.len(), 0);
    }

    #[test]
    fn claims_pause_longer_after_each_failed_write_and_not_after_a_success() {
        let now = Instant::now();
        let mut held = Held::default();
        assert_eq!(held.paused_until(now), None);
        let mut pauses = Vec::new();
        for _ in 0..8 {
            held.write_failed(now);
            pauses.push(held.paused_until(now).expect("paused") - now);
        }
        assert_eq!(pauses[0], FIRST_PAUSE);
        assert_eq!(pauses[1], FIRST_PAUSE * 2);
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*pauses.last().expect("last"), LONGEST_PAUSE);
        assert_eq!(held.paused_until(now + LONGEST_PAUSE), None, "a pause ends");
        held.recorded([]);
        assert_eq!(held.paused_until(now), None);
        held.write_failed(now);
        assert_eq!(
            held.paused_until(now),
            Some(now + FIRST_PAUSE),
            "starts over"
        );
    }
}
