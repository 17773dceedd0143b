//! Slots follow success: how many attempts one endpoint may have in flight.
//!
//! An endpoint starts with a few slots ([`START_SLOTS`]) and gains one with every answer it
//! gives, up to the per-endpoint cap, so a healthy endpoint ramps up within its first
//! round trips. An attempt that gets no answer (timeout, refused or reset connection, TLS or
//! DNS failure, a response cut short) halves its slots and marks it failing; endpoints that are
//! failing share at most half of the global pool. So however many endpoints stop answering,
//! they cannot take the slots of the ones that do.

/// Slots a new (or newly seen) endpoint starts with.
pub const START_SLOTS: usize = 4;

/// One endpoint's slot budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    limit: usize,
    failing: bool,
}

impl Slots {
    /// A new endpoint's budget under a per-endpoint cap of `max`.
    pub fn new(max: usize) -> Self {
        Self {
            limit: Self::first(max),
            failing: false,
        }
    }

    /// The slots an endpoint starts with under a per-endpoint cap of `max`.
    pub fn first(max: usize) -> usize {
        START_SLOTS.min(max).max(1)
    }

    /// Adjusts the budget after an attempt: `answered` is whether any HTTP response came.
    pub fn after(&mut self, answered: bool, max: usize) {
        if answered {
            self.failing = false;
            self.limit = (self.limit + 1).min(max.max(1));
        } else {
            self.failing = true;
            self.limit = (self.limit / 2).max(1);
        }
    }

    /// Whether its last attempt got no answer.
    pub fn failing(&self) -> bool {
        self.failing
    }

    /// How many attempts it may have in flight now. `failing_in_flight` is what all failing
    /// endpoints hold together; once that reaches half of `pool`, failing endpoints start no
    /// more until slots free up.
    pub fn cap(&self, failing_in_flight: usize, pool: usize) -> usize {
        if self.failing && failing_in_flight >= pool.div_ceil(2) {
            0
        } else {
            self.limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_ramp_up_and_silence_halves() {
        let mut s = Slots::new(128);
        assert_eq!(s.cap(0, 512), START_SLOTS);
        for _ in 0..200 {
            s.after(true, 128);
        }
        assert_eq!(s.cap(0, 512), 128, "capped at the per-endpoint maximum");
        let halvings: Vec<usize> = (0..9)
            .map(|_| {
                s.after(false, 128);
                s.cap(0, 512)
            })
            .collect();
        assert_eq!(halvings, [64, 32, 16, 8, 4, 2, 1, 1, 1]);
        assert!(s.failing());
        s.after(true, 128);
        assert!(!s.failing(), "one answer clears it");
        assert_eq!(s.cap(0, 512), 2);
    }

    #[test]
    fn failing_endpoints_share_at_most_half_the_pool() {
        let mut failing = Slots::new(128);
        failing.after(false, 128);
        let healthy = Slots::new(128);
        assert_eq!(failing.cap(255, 512), 2);
        assert_eq!(failing.cap(256, 512), 0);
        assert_eq!(
            healthy.cap(512, 512),
            START_SLOTS,
            "the others are not held back"
        );
    }

    #[test]
    fn a_tiny_cap_still_allows_one() {
        let mut s = Slots::new(1);
        assert_eq!(s.cap(0, 8), 1);
        s.after(true, 1);
        assert_eq!(s.cap(0, 8), 1);
    }
}
