//! The dispatcher: claims due deliveries and runs them on a bounded pool of workers.
//!
//! Slots: a global semaphore bounds attempts in flight; a per-endpoint count keeps one slow
//! endpoint from taking every slot. A claim asks for at most the free slots. The dispatcher
//! sleeps until a commit adds due work or a worker frees a slot; a timer poll is only the
//! fallback (retries coming due, expired leases).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use crate::model::{EndpointId, now_ms};
use crate::outbound::Outbound;
use crate::store::{Claim, ClaimRequest, Store};

/// Most deliveries claimed in one statement.
const MAX_CLAIM: usize = 500;

/// The dispatcher's settings.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Attempts in flight at once.
    pub max_in_flight: usize,
    /// Attempts in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Fallback poll when nothing wakes it.
    pub poll_interval: Duration,
    /// Lease beyond an endpoint's timeout.
    pub lease_margin: Duration,
    /// How long shutdown waits for in-flight attempts.
    pub shutdown_grace: Duration,
}

/// Claims due deliveries and runs their attempts.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    outbound: Outbound,
    config: DispatcherConfig,
    slots: Arc<Semaphore>,
    busy: Arc<Mutex<HashMap<EndpointId, usize>>>,
    wake: Arc<Notify>,
    /// Set when shutdown's grace has run out: attempts still waiting on HTTP are dropped
    /// (their leases are released at the next start, so they are retried).
    abandon: Arc<watch::Sender<bool>>,
}

impl Dispatcher {
    /// A dispatcher over `store`, sending with `outbound`.
    pub fn new(store: Store, outbound: Outbound, config: DispatcherConfig) -> Self {
        let wake = store.work_added();
        Self {
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            busy: Arc::default(),
            store,
            outbound,
            config,
            wake,
            abandon: Arc::new(watch::channel(false).0),
        }
    }

    /// Runs until `shutdown` resolves, then waits (bounded) for in-flight attempts to be
    /// recorded.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            self.dispatch_due().await;
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
        let all = self.config.max_in_flight as u32;
        match tokio::time::timeout(self.config.shutdown_grace, self.slots.acquire_many(all)).await {
            Ok(_) => tracing::info!("dispatcher stopped; no attempts in flight"),
            Err(_) => {
                tracing::warn!(
                    in_flight = self.config.max_in_flight - self.slots.available_permits(),
                    "dispatcher stopped with attempts still in flight; they will be retried after restart"
                );
                let _ = self.abandon.send(true);
            }
        }
    }

    /// Claims and starts due deliveries until none are due or no slot is free; returns how
    /// many it started.
    pub async fn dispatch_due(&self) -> usize {
        let mut started = 0;
        loop {
            let free = self.slots.available_permits().min(MAX_CLAIM);
            if free == 0 {
                return started;
            }
            let busy: Vec<(EndpointId, usize)> = self
                .busy
                .lock()
                .map(|b| b.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default();
            let request = ClaimRequest {
                now: now_ms(),
                limit: free,
                per_endpoint: self.config.max_in_flight_per_endpoint,
                busy,
                lease_margin_ms: self.config.lease_margin.as_millis() as i64,
            };
            let claims = match self.store.claim(request).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claim failed");
                    return started;
                }
            };
            let n = claims.len();
            for claim in claims {
                self.start(claim);
            }
            started += n;
            if n < free {
                return started;
            }
        }
    }

    fn start(&self, claim: Claim) {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            // Unreachable: only this task takes permits, and it claimed no more than were free.
            tracing::error!(delivery_id = %claim.delivery_id, "no free slot for a claimed delivery");
            return;
        };
        let endpoint_id = claim.endpoint.0.id;
        self.adjust_busy(endpoint_id, true);
        let this = self.clone();
        let mut abandon = self.abandon.subscribe();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = super::attempt(&this.outbound, &claim) => outcome,
                _ = abandon.wait_for(|a| *a) => return,
            };
            this.adjust_busy(endpoint_id, false);
            this.wake.notify_one();
            if let Err(e) = this
                .store
                .record_attempt(claim.delivery_id, claim.attempt, outcome)
                .await
            {
                tracing::error!(delivery_id = %claim.delivery_id, error = %e, "cannot record attempt; the lease will expire and it will be retried");
            }
            drop(permit);
            this.wake.notify_one();
        });
    }

    fn adjust_busy(&self, endpoint: EndpointId, up: bool) {
        if let Ok(mut busy) = self.busy.lock() {
            let n = busy.entry(endpoint).or_default();
            if up {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    busy.remove(&endpoint);
                }
            }
        }
    }
}
