//! The per-hook rate limit: at most `incoming_rate_limit` calls in any one second.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::model::IncomingId;

/// Calls per second each incoming hook accepts; the rest are refused with a wait.
#[derive(Clone)]
pub struct IncomingLimiter {
    per_second: usize,
    windows: Arc<Mutex<HashMap<IncomingId, VecDeque<Instant>>>>,
}

impl IncomingLimiter {
    /// A limiter of `per_second` calls per hook.
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second as usize,
            windows: Arc::default(),
        }
    }

    /// Takes a slot for `hook`, or says how many seconds to wait.
    pub fn take(&self, hook: IncomingId) -> Result<(), u64> {
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let window = windows.entry(hook).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= self.per_second {
            return Err(1);
        }
        window.push_back(now);
        Ok(())
    }
}
