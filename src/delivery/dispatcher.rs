//! The dispatcher: claims due deliveries and runs them on a bounded pool of workers.
//!
//! Slots: a global semaphore bounds attempts in flight; a per-endpoint count keeps one slow
//! endpoint from taking every slot. A claim asks for at most the free slots. The dispatcher
//! sleeps until a commit adds due work or a worker frees a slot; a timer poll is only the
//! fallback (retries coming due, expired leases).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::held::Held;
use super::slots::Slots;
use super::transition::after_attempt;
use super::worker::{Rendered, render_body};
use crate::metrics::Metrics;
use crate::model::claim::{Claim, ClaimRequest, EndpointLoad};
use crate::model::results::Recorded;
use crate::model::{AttemptOutcome, EndpointId, EventId, Format, now_ms};
use crate::outbound::Outbound;
use crate::report::ErrorChain;
use crate::service::record::record;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// The window a `rateLimit` counts starts in.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// The pacing window: a tenth of the limit may start in each.
const PACE_WINDOW: Duration = Duration::from_millis(100);
/// How long an idle endpoint's slot budget is remembered.
const REMEMBER_IDLE: Duration = Duration::from_secs(10);

/// What the dispatcher tracks per endpoint: attempts in flight, its slot budget (slots
/// follow success, see [`super::slots`]) and, for rate-limited endpoints, when recent attempts
/// started.
#[derive(Debug)]
struct Load {
    in_flight: usize,
    /// Attempts finished whose results are not recorded yet.
    recording: usize,
    slots: Slots,
    /// When an attempt last started or finished.
    last_active: Instant,
    rate_limit: Option<u32>,
    starts: VecDeque<Instant>,
}

impl Load {
    fn prune(&mut self, now: Instant) {
        while self
            .starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            self.starts.pop_front();
        }
    }

    /// Starts within the last [`PACE_WINDOW`].
    fn recent(&self, now: Instant) -> impl Iterator<Item = &Instant> {
        self.starts
            .iter()
            .filter(move |t| now.duration_since(**t) < PACE_WINDOW)
    }

    /// When a saturated rate limit next allows a start, if it is saturated.
    fn frees_at(&self, now: Instant) -> Option<Instant> {
        let limit = self.rate_limit? as usize;
        if self.starts.len() >= limit {
            return self.starts.front().map(|t| *t + RATE_WINDOW);
        }
        let mut recent = self.recent(now).peekable();
        let first = **recent.peek()?;
        (recent.count() >= limit.div_ceil(10)).then_some(first + PACE_WINDOW)
    }
}

/// How long the dispatcher lets freed slots gather under load before claiming again.
const CLAIM_COALESCE: Duration = Duration::from_millis(1);

/// Most deliveries claimed in one statement.
const MAX_CLAIM: usize = 500;

/// Most outcomes recorded in one write.
const MAX_RECORD: usize = 512;

/// Record writes waiting for the writer at a time: two, so one gathers results while the
/// other commits.
const RECORDS_IN_FLIGHT: usize = 2;

/// A finished attempt on its way to the store, holding its slot until it is recorded.
struct Done {
    claim: Claim,
    outcome: AttemptOutcome,
    slot: OwnedSemaphorePermit,
}

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
    metrics: Metrics,
    telemetry: Telemetry,
    config: DispatcherConfig,
    slots: Arc<Semaphore>,
    busy: Arc<Mutex<HashMap<EndpointId, Load>>>,
    wake: Arc<Notify>,
    /// Set when shutdown's grace has run out: attempts still waiting on HTTP are dropped
    /// (their leases are released at the next start, so they are retried).
    abandon: Arc<watch::Sender<bool>>,
    /// Deliveries started and not yet recorded, and the pause while writes fail.
    held: Arc<Mutex<Held>>,
    /// Finished attempts, recorded in batches by the recorder.
    done: mpsc::UnboundedSender<Done>,
    recorder: Arc<Mutex<Option<mpsc::UnboundedReceiver<Done>>>>,
}

impl Dispatcher {
    /// A dispatcher over `store`, sending with `outbound`.
    pub fn new(
        store: Store,
        outbound: Outbound,
        metrics: Metrics,
        telemetry: Telemetry,
        config: DispatcherConfig,
    ) -> Self {
        let wake = store.work_added();
        let (done, recorder) = mpsc::unbounded_channel();
        Self {
            done,
            recorder: Arc::new(Mutex::new(Some(recorder))),
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            busy: Arc::default(),
            held: Arc::default(),
            store,
            outbound,
            metrics,
            telemetry,
            config,
            wake,
            abandon: Arc::new(watch::channel(false).0),
        }
    }

    /// Runs until `shutdown` resolves, then waits (bounded) for in-flight attempts to be
    /// recorded.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        if let Some(finished) = self.recorder.lock().ok().and_then(|mut r| r.take()) {
            tokio::spawn(record_loop(
                self.store.clone(),
                self.wake.clone(),
                self.held.clone(),
                self.busy.clone(),
                finished,
            ));
        }
        loop {
            // While writes fail, claims wait: work started now could not be recorded.
            let paused = self
                .held
                .lock()
                .ok()
                .and_then(|h| h.paused_until(Instant::now()));
            if let Some(until) = paused {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep_until(until.into()) => {}
                }
            }
            let busy = self.dispatch_due().await > 0;
            // A saturated rate limit frees a start at a known time: wake then, not at the poll.
            let poll = tokio::time::Instant::now() + self.config.poll_interval;
            let wake_at = self
                .rate_frees_at()
                .map_or(poll, |at| poll.min(tokio::time::Instant::from_std(at)));
            tokio::select! {
                () = &mut shutdown => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
            if busy {
                // Under load, let completions gather for a moment so one claim takes many rows
                // instead of one claim per freed slot.
                tokio::time::sleep(CLAIM_COALESCE).await;
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
            let busy = self.loads();
            let request = ClaimRequest {
                now: now_ms(),
                limit: free,
                per_endpoint: self.config.max_in_flight_per_endpoint,
                unlisted_slots: Slots::first(self.config.max_in_flight_per_endpoint),
                busy,
                lease_margin_ms: self.config.lease_margin.as_millis() as i64,
            };
            let claims = match self.store.claim(request).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %ErrorChain(&e), "claim failed");
                    if let Ok(mut held) = self.held.lock() {
                        held.write_failed(Instant::now());
                    }
                    return started;
                }
            };
            let claims = self.not_held(claims);
            let n = claims.len();
            // Rendered once per event and format, whatever the number of endpoints.
            let mut rendered: HashMap<(EventId, Format), Rendered> = HashMap::new();
            for claim in claims {
                let format = claim.endpoint.0.settings.format;
                let this = rendered
                    .entry((claim.event_id, format))
                    .or_insert_with(|| render_body(claim.event_id, &claim.event, format))
                    .clone();
                self.start(claim, this);
            }
            started += n;
            // Fewer than asked for: none left due, or some were held (claimed again at once
            // only while writes fail, when claims pause anyway).
            if n < free {
                return started;
            }
        }
    }

    /// The claims to start: those whose delivery is not held (see [`Held`]), each now held
    /// until its lease ends.
    fn not_held(&self, claims: Vec<Claim>) -> Vec<Claim> {
        let Ok(mut held) = self.held.lock() else {
            return claims;
        };
        let now = Instant::now();
        held.prune(now);
        claims
            .into_iter()
            .filter(|claim| {
                if held.holds(claim.delivery_id, now) {
                    tracing::debug!(delivery_id = %claim.delivery_id, "claimed again before its outcome was recorded; not sent until its lease ends");
                    return false;
                }
                let timeout = Duration::from_millis(claim.endpoint.0.settings.timeout_ms.into());
                held.started(claim.delivery_id, now + timeout + self.config.lease_margin);
                true
            })
            .collect()
    }

    fn start(&self, claim: Claim, rendered: Rendered) {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            // Unreachable: only this task takes permits, and it claimed no more than were free.
            tracing::error!(delivery_id = %claim.delivery_id, "no free slot for a claimed delivery");
            return;
        };
        let endpoint_id = claim.endpoint.0.id;
        self.started(endpoint_id, claim.endpoint.0.settings.rate_limit);
        let this = self.clone();
        let mut abandon = self.abandon.subscribe();
        self.metrics.attempt_started();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = super::attempt(&this.outbound, &claim, &rendered, &this.telemetry) => outcome,
                _ = abandon.wait_for(|a| *a) => return,
            };
            this.finished(endpoint_id, outcome.answered());
            let tenant = claim.endpoint.0.tenant_id;
            this.metrics
                .attempt_finished((endpoint_id, tenant), &outcome);
            this.wake.notify_one();
            let done = Done {
                claim,
                outcome,
                slot,
            };
            if this.done.send(done).is_err() {
                tracing::error!(
                    "the recorder has stopped; the lease will expire and the attempt will be retried"
                );
            }
        });
    }

    /// Each tracked endpoint's load and slot budget, forgetting starts older than the rate
    /// window.
    fn loads(&self) -> Vec<(EndpointId, EndpointLoad)> {
        let Ok(mut busy) = self.busy.lock() else {
            return Vec::new();
        };
        let now = Instant::now();
        let max = self.config.max_in_flight_per_endpoint;
        // An endpoint is remembered while it is busy, was busy lately, or is failing; one
        // that idles longer forgets its budget and starts again from the first slots
        // (`unlisted_slots`), so the list stays as short as the busy and failing set.
        busy.retain(|_, load| {
            load.prune(now);
            load.in_flight > 0
                || load.recording > 0
                || !load.starts.is_empty()
                || load.slots.failing()
                || now.duration_since(load.last_active) < REMEMBER_IDLE
        });
        let failing_in_flight: usize = busy
            .values()
            .filter(|l| l.slots.failing())
            .map(|l| l.in_flight)
            .sum();
        let pool = self.config.max_in_flight;
        busy.iter()
            .map(|(id, load)| {
                let cap = load.slots.cap(failing_in_flight, pool);
                let load = EndpointLoad {
                    in_flight: load.in_flight,
                    recording: load.recording,
                    started_last_second: load.starts.len(),
                    started_last_tenth: load.recent(now).count(),
                    slots: Some(cap.min(max)),
                };
                (*id, load)
            })
            .collect()
    }

    fn rate_frees_at(&self) -> Option<Instant> {
        let busy = self.busy.lock().ok()?;
        let now = Instant::now();
        busy.values().filter_map(|load| load.frees_at(now)).min()
    }

    fn started(&self, endpoint: EndpointId, rate_limit: Option<u32>) {
        let max = self.config.max_in_flight_per_endpoint;
        if let Ok(mut busy) = self.busy.lock() {
            let load = busy.entry(endpoint).or_insert_with(|| Load {
                in_flight: 0,
                recording: 0,
                slots: Slots::new(max),
                last_active: Instant::now(),
                rate_limit,
                starts: VecDeque::new(),
            });
            load.in_flight += 1;
            load.last_active = Instant::now();
            load.rate_limit = rate_limit;
            if rate_limit.is_some() {
                load.starts.push_back(Instant::now());
            }
        }
    }

    fn finished(&self, endpoint: EndpointId, answered: bool) {
        let max = self.config.max_in_flight_per_endpoint;
        if let Ok(mut busy) = self.busy.lock()
            && let Some(load) = busy.get_mut(&endpoint)
        {
            load.in_flight = load.in_flight.saturating_sub(1);
            load.recording += 1;
            load.last_active = Instant::now();
            load.slots.after(answered, max);
        }
    }
}

/// Attempts of these endpoints had their results recorded (or their record failed).
fn recorded(busy: &Mutex<HashMap<EndpointId, Load>>, endpoints: &[EndpointId]) {
    if let Ok(mut busy) = busy.lock() {
        for endpoint in endpoints {
            if let Some(load) = busy.get_mut(endpoint) {
                load.recording = load.recording.saturating_sub(1);
            }
        }
    }
}

/// Records finished attempts in batches: whatever has finished while the previous batches were
/// being written goes in the next one ([`RECORDS_IN_FLIGHT`] are written at a time, so results
/// gather instead of each going alone). Each batch frees its slots once it is recorded.
async fn record_loop(
    store: Store,
    wake: Arc<Notify>,
    held: Arc<Mutex<Held>>,
    busy: Arc<Mutex<HashMap<EndpointId, Load>>>,
    mut finished: mpsc::UnboundedReceiver<Done>,
) {
    let in_flight = Arc::new(Semaphore::new(RECORDS_IN_FLIGHT));
    while let Some(first) = finished.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_RECORD {
            match finished.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        let store = store.clone();
        let wake = wake.clone();
        let held = held.clone();
        let busy = busy.clone();
        tokio::spawn(async move {
            let mut slots = Vec::with_capacity(batch.len());
            let results: Vec<_> = batch
                .into_iter()
                .map(|d| {
                    slots.push(d.slot);
                    (d.claim, d.outcome)
                })
                .collect();
            let n = results.len();
            let ids: Vec<_> = results.iter().map(|(c, _)| c.delivery_id).collect();
            let endpoints: Vec<_> = results.iter().map(|(c, _)| c.endpoint.0.id).collect();
            let recorded = record(&store, results, after_attempt).await;
            self::recorded(&busy, &endpoints);
            if let Ok(mut held) = held.lock() {
                match &recorded {
                    // While writes fail for want of storage, a stale answer may mean that the
                    // claim's lease never committed (a claim is answered before its batch
                    // commits): the row is still due, and releasing it now would send it again
                    // at once. Such a delivery stays held until its lease ends, as when the
                    // record fails. Otherwise stale means someone else holds it, or it is gone.
                    Ok(outcomes) if store.write_failure().is_some() => held.recorded(
                        ids.into_iter()
                            .zip(outcomes)
                            .filter(|(_, r)| !matches!(r, Recorded::Stale))
                            .map(|(id, _)| id),
                    ),
                    Ok(_) => held.recorded(ids),
                    Err(_) => held.write_failed(Instant::now()),
                }
            }
            if let Err(e) = recorded {
                tracing::error!(attempts = n, error = %ErrorChain(&e), "cannot record attempts; they are retried when their leases end");
            }
            drop(slots);
            drop(permit);
            wake.notify_one();
        });
    }
}
