//! Changes a write batch's operations make to derived counts, kept in memory and written once
//! before the batch commits: an operation's changes are staged until it succeeds, and dropped
//! if its savepoint undoes it.

use std::collections::HashMap;
use std::hash::Hash;

/// A change that later changes to the same key fold into.
pub(crate) trait Change: Default {
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
pub(crate) struct StagedCounts<K, V = i64> {
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
