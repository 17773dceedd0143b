//! Changes to derived counts (endpoint counters, list block counts, daily usage), as pure
//! data: how a batch's operations fold their changes together (staged until an operation
//! succeeds, dropped if it is undone), and how results change an endpoint's run of
//! consecutive failures so that batches committing in any order leave it exact. The store's
//! ledger (`store/ledger.rs`) writes what a batch kept, once, before it commits.

use std::collections::HashMap;
use std::hash::Hash;

use super::UnixMs;
use super::attempt::{CounterChange, Transition};
use super::{AttemptOutcome, DeliveryStatus};

/// A change that later changes to the same key fold into.
pub trait Change: Default {
    /// Folds `later` (applied after `self`) into `self`.
    fn then(&mut self, later: Self);
    /// Whether applying it would change nothing.
    fn is_none(&self) -> bool;
}

impl Change for i64 {
    fn then(&mut self, later: Self) {
        *self += later;
    }

    fn is_none(&self) -> bool {
        *self == 0
    }
}

/// Changes keyed by `K` (counts, by default).
#[derive(Debug)]
pub struct StagedCounts<K, V = i64> {
    staged: HashMap<K, V>,
    kept: HashMap<K, V>,
}

impl<K, V> Default for StagedCounts<K, V> {
    fn default() -> Self {
        Self {
            staged: HashMap::new(),
            kept: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Ord, V: Change> StagedCounts<K, V> {
    /// Folds `change` into `key`'s (staged).
    pub fn add(&mut self, key: K, change: V) {
        self.staged.entry(key).or_default().then(change);
    }

    /// The operation that staged the latest changes succeeded: keep them for the commit.
    pub fn keep_staged(&mut self) {
        for (key, change) in self.staged.drain() {
            self.kept.entry(key).or_default().then(change);
        }
    }

    /// The operation that staged the latest changes was undone: forget them.
    pub fn drop_staged(&mut self) {
        self.staged.clear();
    }

    /// What the batch changed `key` by so far, kept and staged, if anything.
    pub fn peek(&self, key: &K) -> Option<V>
    where
        V: Clone,
    {
        let (kept, staged) = (self.kept.get(key), self.staged.get(key));
        if kept.is_none() && staged.is_none() {
            return None;
        }
        let mut change = kept.cloned().unwrap_or_default();
        if let Some(staged) = staged {
            change.then(staged.clone());
        }
        Some(change)
    }

    /// The kept changes that change something, in key order (every batch writes shared rows
    /// in one order, so batches of several processes never wait on each other in a cycle),
    /// forgotten as they are taken.
    pub fn take_kept(&mut self) -> Vec<(K, V)> {
        let mut kept: Vec<_> = self.kept.drain().filter(|(_, c)| !c.is_none()).collect();
        kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        kept
    }
}

impl<K: Hash + Eq> StagedCounts<K, i64> {
    /// What the batch changed `key` by so far, staged and kept.
    pub fn added(&self, key: &K) -> i64 {
        self.staged.get(key).copied().unwrap_or(0) + self.kept.get(key).copied().unwrap_or(0)
    }
}

/// How an endpoint's run of consecutive failures ends after a batch's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Streak {
    /// A result succeeded: the run starts again from `failures`.
    pub reset: bool,
    /// Failures since the last success (or, without one, added to the run).
    pub failures: u64,
}

impl Streak {
    /// How one result, with counters `k`, changes a run that stood at `before`: a success (or
    /// a shorter run) sets it, whatever other processes add meanwhile; a longer run adds to it.
    pub fn of(before: u64, k: CounterChange) -> Option<Self> {
        let after = k.consecutive_failures;
        if k.succeeded > 0 || after < before {
            Some(Self {
                reset: true,
                failures: after,
            })
        } else if after > before {
            Some(Self {
                reset: false,
                failures: after - before,
            })
        } else {
            None
        }
    }

    /// The run after these results, from the run `before` them.
    pub fn after(self, before: u64) -> u64 {
        if self.reset {
            self.failures
        } else {
            before + self.failures
        }
    }
}

/// The latest result an endpoint's counters show: when it finished, `succeeded` or
/// `failed`, and the response's status code.
pub(crate) type LastResult = (UnixMs, &'static str, Option<u16>);

/// What a batch changes in one endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EndpointChange {
    pub succeeded: i64,
    pub failed: i64,
    pub pending: i64,
    /// How the results change the run of consecutive failures, if there were results.
    pub streak: Option<Streak>,
    /// The latest result, if there were results.
    pub last: Option<LastResult>,
}

impl EndpointChange {
    /// What a finished delivery made pending again for one more attempt changes: one fewer
    /// of its old status, one more pending.
    pub fn of_reopened(finished: DeliveryStatus) -> Self {
        let succeeded = i64::from(finished == DeliveryStatus::Succeeded);
        Self {
            succeeded: -succeeded,
            failed: succeeded - 1,
            pending: 1,
            ..Self::default()
        }
    }

    /// What one recorded attempt changes in its endpoint's counters: the transition's
    /// counts, one pending delivery less when it settled, the run of failures from the run
    /// `consecutive_before` it, and the latest result.
    pub fn of_result(consecutive_before: u64, t: &Transition, outcome: &AttemptOutcome) -> Self {
        let k = t.counters;
        let status = if outcome.is_success() {
            "succeeded"
        } else {
            "failed"
        };
        Self {
            succeeded: k.succeeded as i64,
            failed: k.failed as i64,
            pending: -(k.settled as i64),
            streak: Streak::of(consecutive_before, k),
            last: Some((t.finished_at, status, outcome.response_code)),
        }
    }
}

impl Change for EndpointChange {
    fn then(&mut self, later: Self) {
        self.succeeded += later.succeeded;
        self.failed += later.failed;
        self.pending += later.pending;
        self.streak = match (self.streak, later.streak) {
            (earlier, None) => earlier,
            (_, Some(later)) if later.reset => Some(later),
            (None, Some(later)) => Some(later),
            (Some(earlier), Some(later)) => Some(Streak {
                reset: earlier.reset,
                failures: earlier.failures + later.failures,
            }),
        };
        if later
            .last
            .is_some_and(|(at, _, _)| self.last.is_none_or(|(was, _, _)| was <= at))
        {
            self.last = later.last;
        }
    }

    fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ok: bool, at: UnixMs) -> EndpointChange {
        EndpointChange {
            succeeded: i64::from(ok),
            failed: 0,
            pending: -1,
            streak: Some(Streak {
                reset: ok,
                failures: u64::from(!ok),
            }),
            last: Some((at, if ok { "succeeded" } else { "failed" }, Some(200))),
        }
    }

    fn counters(succeeded: u64, consecutive_failures: u64) -> CounterChange {
        CounterChange {
            succeeded,
            failed: 0,
            settled: 0,
            consecutive_failures,
        }
    }

    #[test]
    fn a_result_sets_the_run_on_success_and_adds_to_it_on_failure() {
        let reset = |failures| {
            Some(Streak {
                reset: true,
                failures,
            })
        };
        let add = |failures| {
            Some(Streak {
                reset: false,
                failures,
            })
        };
        // A success sets the run to nothing, even one that was nothing (another process
        // may have added failures meanwhile).
        assert_eq!(Streak::of(4, counters(1, 0)), reset(0));
        assert_eq!(Streak::of(0, counters(1, 0)), reset(0));
        // A failure for good adds one; a retry that counts nothing changes nothing.
        assert_eq!(Streak::of(4, counters(0, 5)), add(1));
        assert_eq!(Streak::of(4, counters(0, 4)), None);
        // A shorter run without a success is set, not added.
        assert_eq!(Streak::of(4, counters(0, 2)), reset(2));
        // What other processes added in between stays when the run grows.
        assert_eq!(add(1).map(|s| s.after(9)), Some(10));
    }

    #[test]
    fn a_reopened_delivery_moves_one_count_from_its_status_to_pending() {
        let moved = |status| {
            let k = EndpointChange::of_reopened(status);
            (k.succeeded, k.failed, k.pending, k.streak, k.last)
        };
        assert_eq!(moved(DeliveryStatus::Failed), (0, -1, 1, None, None));
        assert_eq!(moved(DeliveryStatus::Succeeded), (-1, 0, 1, None, None));
    }

    #[test]
    fn results_fold_into_one_change_whatever_the_order_of_batches() {
        // fail, fail, succeed, fail: the run is 1 after them, whatever it was before.
        let mut k = EndpointChange::default();
        for (ok, at) in [(false, 1), (false, 2), (true, 3), (false, 4)] {
            k.then(result(ok, at));
        }
        assert_eq!(k.streak.map(|s| s.after(7)), Some(1));
        assert_eq!((k.succeeded, k.pending), (1, -4));
        assert_eq!(k.last.map(|l| l.0), Some(4));
        // Only failures: the run grows from where it was.
        let mut k = EndpointChange::default();
        k.then(result(false, 5));
        k.then(result(false, 6));
        assert_eq!(k.streak.map(|s| s.after(3)), Some(5));
        // An older result folded later does not become the latest.
        k.then(result(true, 1));
        assert_eq!(k.last.map(|l| l.0), Some(6));
        assert_eq!(k.streak.map(|s| s.after(3)), Some(0));
        // Pending alone changes no run.
        let mut k = EndpointChange::default();
        k.then(EndpointChange {
            pending: 2,
            ..EndpointChange::default()
        });
        assert_eq!(k.streak, None);
        assert!(!k.is_none());
        assert!(EndpointChange::default().is_none());
    }

    #[test]
    fn a_recorded_attempt_changes_its_endpoints_counters_by_its_transition() {
        let outcome = |code: u16| AttemptOutcome {
            at: 5,
            response_code: Some(code),
            latency_ms: 1,
            error: None,
            error_message: None,
            response_body: None,
            retry_after_ms: None,
        };
        let transition = |k: CounterChange| Transition {
            status: crate::model::DeliveryStatus::Pending,
            next_attempt_at: None,
            exhausted: false,
            finished_at: 9,
            counters: k,
            disable: None,
            announce: Vec::new(),
        };
        let delivered = CounterChange {
            settled: 1,
            ..counters(1, 0)
        };
        let ok = EndpointChange::of_result(3, &transition(delivered), &outcome(200));
        assert_eq!(
            ok,
            EndpointChange {
                succeeded: 1,
                failed: 0,
                pending: -1,
                streak: Some(Streak {
                    reset: true,
                    failures: 0
                }),
                last: Some((9, "succeeded", Some(200))),
            }
        );
        // A failure that will be retried: nothing settles, the run grows by one.
        let retried = CounterChange {
            succeeded: 0,
            failed: 0,
            settled: 0,
            consecutive_failures: 4,
        };
        let refused = AttemptOutcome {
            error: Some(crate::model::ErrorClass::HttpStatus),
            ..outcome(500)
        };
        let failed = EndpointChange::of_result(3, &transition(retried), &refused);
        assert_eq!((failed.failed, failed.pending), (0, 0));
        assert_eq!(
            failed.streak,
            Some(Streak {
                reset: false,
                failures: 1
            })
        );
        assert_eq!(failed.last, Some((9, "failed", Some(500))));
    }
}
