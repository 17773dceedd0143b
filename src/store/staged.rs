//! Counts a write batch's operations change, kept in memory and written once before the
//! batch commits: an operation's changes are staged until it succeeds, and dropped if its
//! savepoint undoes it.

use std::collections::HashMap;
use std::hash::Hash;

/// Changes to counters keyed by `K`.
#[derive(Debug)]
pub(crate) struct StagedCounts<K> {
    staged: HashMap<K, i64>,
    kept: HashMap<K, i64>,
}

impl<K> Default for StagedCounts<K> {
    fn default() -> Self {
        Self {
            staged: HashMap::new(),
            kept: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> StagedCounts<K> {
    /// Changes `key`'s count by `by` (staged).
    pub fn add(&mut self, key: K, by: i64) {
        *self.staged.entry(key).or_default() += by;
    }

    /// What the batch changed `key` by so far, staged and kept.
    pub fn added(&self, key: &K) -> i64 {
        self.staged.get(key).copied().unwrap_or(0) + self.kept.get(key).copied().unwrap_or(0)
    }

    /// The operation that staged the latest changes succeeded: keep them for the commit.
    pub fn keep_staged(&mut self) {
        for (key, by) in self.staged.drain() {
            *self.kept.entry(key).or_default() += by;
        }
    }

    /// The operation that staged the latest changes was undone: forget them.
    pub fn drop_staged(&mut self) {
        self.staged.clear();
    }

    /// The kept changes that are not zero, forgotten as they are taken.
    pub fn take_kept(&mut self) -> impl Iterator<Item = (K, i64)> + '_ {
        self.kept.drain().filter(|(_, by)| *by != 0)
    }
}
