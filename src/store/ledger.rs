//! The ledger: every derived count a write batch changes — the long lists' block counts
//! ([`BlockCounts`]), the endpoints' counters ([`EndpointCounts`]) and the tenants' daily usage
//! ([`DailyUsage`]) — gathered from the batch's operations and written by [`Ledger::write`]
//! alone, once, just before the commit.
//!
//! These rows are shared: every process's batches change the same endpoint and the same
//! tenant's counts. Written last, in one order (endpoints, then blocks, then usage, each by
//! key), they are held only from the end of a batch to its commit, and two processes' batches
//! never wait on each other in a cycle. Each change is relative (`n = n + k`), so batches that
//! commit in any order leave the exact sum.

use super::StoreError;
use super::paging::BlockCounts;
use super::sql::{Conn, vals};
use super::staged::{Change, StagedCounts};
use super::usage::{DailyUsage, write_usage};
use crate::model::attempt::CounterChange;
use crate::model::{EndpointId, UnixMs};

/// What a batch changes in `list_blocks`, `endpoints` and `tenant_usage`.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The long lists' block counts.
    pub blocks: BlockCounts,
    /// The endpoints' delivery counters.
    pub endpoints: EndpointCounts,
    /// Events published per tenant and day.
    pub usage: DailyUsage,
}

impl Ledger {
    /// The operation that staged the latest changes succeeded: keep them for the commit.
    pub fn keep_staged(&mut self) {
        self.blocks.keep_staged();
        self.endpoints.0.keep_staged();
        self.usage.keep_staged();
    }

    /// The operation that staged the latest changes was undone: forget them.
    pub fn drop_staged(&mut self) {
        self.blocks.drop_staged();
        self.endpoints.0.drop_staged();
        self.usage.drop_staged();
    }

    /// Writes the kept changes, inside the batch's transaction, in the one order every batch
    /// uses, and forgets them.
    pub fn write(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        self.endpoints.write(c)?;
        self.blocks.write(c)?;
        write_usage(c, &mut self.usage)
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

/// The endpoints' counters (`succeeded`, `failed`, `pending`, `consecutive_failures` and the
/// latest result) as a batch changes them.
#[derive(Debug, Default)]
pub(crate) struct EndpointCounts(StagedCounts<EndpointId, EndpointChange>);

impl EndpointCounts {
    /// Folds `change` into the endpoint's.
    pub fn change(&mut self, endpoint: EndpointId, change: EndpointChange) {
        self.0.add(endpoint, change);
    }

    /// `n` deliveries were added to the endpoint, pending.
    pub fn pending_added(&mut self, endpoint: EndpointId, n: i64) {
        self.change(
            endpoint,
            EndpointChange {
                pending: n,
                ..EndpointChange::default()
            },
        );
    }

    /// The endpoint's run of consecutive failures as this batch leaves it, from the run
    /// `committed` before it.
    pub fn consecutive_failures(&self, endpoint: EndpointId, committed: u64) -> u64 {
        self.0
            .peek(&endpoint)
            .and_then(|c| c.streak)
            .map_or(committed, |s| s.after(committed))
    }

    fn write(&mut self, c: &Conn<'_>) -> Result<(), StoreError> {
        for (endpoint, k) in self.0.take_kept() {
            let (reset, failures) = match k.streak {
                None => (0, 0),
                Some(s) if s.reset => (1, s.failures),
                Some(s) => (2, s.failures),
            };
            let (at, status, code) = match k.last {
                Some((at, status, code)) => (Some(at), Some(status), code),
                None => (None, None, None),
            };
            c.execute(
                "UPDATE endpoints SET
                    succeeded = succeeded + ?2, failed = failed + ?3, pending = pending + ?4,
                    consecutive_failures = CASE CAST(?5 AS BIGINT)
                        WHEN 1 THEN CAST(?6 AS BIGINT)
                        WHEN 2 THEN consecutive_failures + CAST(?6 AS BIGINT)
                        ELSE consecutive_failures END,
                    last_response_code = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?9 AS BIGINT) ELSE last_response_code END,
                    last_delivery_status = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?8 AS TEXT) ELSE last_delivery_status END,
                    last_delivery_at = CASE WHEN CAST(?7 AS BIGINT) IS NOT NULL
                        AND (last_delivery_at IS NULL OR last_delivery_at <= CAST(?7 AS BIGINT))
                        THEN CAST(?7 AS BIGINT) ELSE last_delivery_at END
                 WHERE id = ?1",
                &vals![
                    endpoint.0,
                    k.succeeded,
                    k.failed,
                    k.pending,
                    reset,
                    failures as i64,
                    at,
                    status,
                    code
                ],
            )?;
        }
        Ok(())
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
}
