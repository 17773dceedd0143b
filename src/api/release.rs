//! Giving memory back after a burst of connections.
//!
//! Each connection's buffers come from the allocator; when thousands close at once, glibc keeps
//! the freed pages in its arenas, so the process stays at its peak size. The watcher here looks
//! at the number of open connections every few seconds and, once many have closed since the
//! last look, asks the allocator to return its free pages to the system (`malloc_trim`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// How often the number of open connections is looked at.
const EVERY: Duration = Duration::from_secs(5);
/// Closed connections worth a trim: below this, what they held is too little to matter.
const WORTH_IT: usize = 256;

/// Whether to return memory now: `peak` connections were open at once since the last trim and
/// `open` are open now.
pub fn worth_trimming(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= WORTH_IT && open <= peak / 2
}

/// The most connections open at once since memory was last returned.
#[derive(Default)]
pub struct Peak(AtomicUsize);

impl Peak {
    /// Notes that `open` connections are open now (call as one opens).
    pub fn opened(&self, open: usize) {
        self.0.fetch_max(open, Ordering::Relaxed);
    }
}

/// Watches the open connections (`max` less the `permits` left) until the semaphore is
/// closed, returning memory once a burst has mostly closed.
pub async fn watch(permits: Arc<Semaphore>, max: usize, peak: Arc<Peak>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !permits.is_closed() {
        ticks.tick().await;
        let open = max.saturating_sub(permits.available_permits());
        if worth_trimming(peak.0.load(Ordering::Relaxed), open) {
            let _ = tokio::task::spawn_blocking(trim).await;
            peak.0.store(open, Ordering::Relaxed);
        }
    }
}

// The crate's one `unsafe`: a call into the C library with no arguments to get wrong.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes the arena locks
    // itself and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::worth_trimming;

    #[test]
    fn a_trim_follows_a_burst_that_has_mostly_closed() {
        assert!(worth_trimming(2_000, 0));
        assert!(worth_trimming(2_000, 1_000));
        assert!(!worth_trimming(2_000, 1_500), "most are still open");
        assert!(!worth_trimming(100, 0), "too few to matter");
        assert!(!worth_trimming(0, 0));
    }
}
