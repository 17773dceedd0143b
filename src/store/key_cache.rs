//! Tenant API keys as last read, so a request is authenticated without a database read.
//!
//! A key is read from the file once, then checked from memory. Deleting a key (or its tenant)
//! forgets it once the delete has committed; a read that started before then never puts the
//! old row back (each forget moves a generation counter, and a read only fills the cache when
//! the generation it started in is still current). Only keys that exist are cached.
//!
//! On PostgreSQL other processes delete keys too: each process hears of it through its
//! listener (`store::postgres::listen`), caches nothing until it first listens, and forgets
//! every key each time it listens again after losing its connection.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::model::auth::StoredCredential;

/// At most this many keys are remembered; past it the cache starts over.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
struct Keys {
    generation: u64,
    by_id: HashMap<i64, StoredCredential>,
}

/// The keys read so far.
#[derive(Debug, Default)]
pub(crate) struct KeyCache(RwLock<Keys>, AtomicBool);

impl KeyCache {
    /// A cache that keeps nothing until [`KeyCache::resume`] (a process on PostgreSQL, until
    /// its listener hears other processes' deletes).
    pub fn paused() -> Self {
        let cache = Self::default();
        cache.1.store(true, Ordering::SeqCst);
        cache
    }

    /// Keeps keys again, from nothing (deletes elsewhere are heard again).
    pub fn resume(&self) {
        self.forget_all();
        self.1.store(false, Ordering::SeqCst);
    }

    /// The key with this id, if it has been read and not forgotten since.
    pub fn get(&self, id: i64) -> Option<StoredCredential> {
        self.0.read().ok()?.by_id.get(&id).cloned()
    }

    /// The current generation: take it before reading a key from the file.
    pub fn generation(&self) -> u64 {
        self.0.read().map_or(u64::MAX, |k| k.generation)
    }

    /// Remembers a key read in `generation`, unless something was forgotten since.
    pub fn fill(&self, generation: u64, id: i64, key: StoredCredential) {
        if self.1.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut keys) = self.0.write()
            && keys.generation == generation
        {
            if keys.by_id.len() >= MAX_KEYS {
                keys.by_id.clear();
            }
            keys.by_id.insert(id, key);
        }
    }

    /// Forgets every key (after a key or a tenant is deleted).
    pub fn forget_all(&self) {
        let mut keys = match self.0.write() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.generation += 1;
        keys.by_id.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StoredCredential {
        StoredCredential {
            tenant_id: crate::model::TenantId(1),
            role: crate::model::Role::Admin,
            secret_hash: vec![1, 2, 3],
            expires_at: None,
        }
    }

    #[test]
    fn a_read_that_started_before_a_forget_never_fills_the_cache() {
        let cache = KeyCache::default();
        let before = cache.generation();
        cache.forget_all();
        cache.fill(before, 7, key());
        assert!(cache.get(7).is_none());
        cache.fill(cache.generation(), 7, key());
        assert_eq!(cache.get(7).map(|k| k.tenant_id.0), Some(1));
        cache.forget_all();
        assert!(cache.get(7).is_none());
    }
}
