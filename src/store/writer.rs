//! The one writer: a dedicated thread owns the write connection and applies queued operations
//! in batched transactions (group commit). Each operation runs inside its own savepoint, so one
//! that fails is rolled back alone; its caller is answered only after the batch commits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot};

use super::StoreError;
use super::ledger::Ledger;
use super::postgres::WORK_CHANNEL;
use super::sql::Conn;
use super::subscribers::{Audiences, SubscriberCache};
use crate::report::ErrorChain;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// How often the WAL is checkpointed back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// What a batch's operations share: flags for the writer, and the writer's caches.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Set when an operation made deliveries due: the dispatcher is woken after the commit.
    pub wake: bool,
    /// Tenants' audiences and versions as this connection sees them. Kept across batches
    /// that commit; dropped whole when one rolls back (it may hold what was undone).
    pub subscribers: SubscriberCache,
    /// Why an operation failed for want of storage, if one did.
    pub storage_failure: Option<String>,
    /// What the batch's operations changed in derived counts (block counts, endpoint
    /// counters, daily usage), written just before the commit.
    pub ledger: Ledger,
    /// Set when an operation deleted or replaced secrets (signing secrets, credentials, header
    /// values): after the commit the WAL, which still holds their old pages, is emptied.
    pub scrub: bool,
}

/// How long a write that failed for want of storage keeps the store reported as failing.
/// Small writes may still commit on a nearly full disk, so one success proves nothing.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// Whether writes are failing for want of storage: the latest such failure, reported for
/// [`FAILURE_MEMORY`] after it happened.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteHealth(Arc<std::sync::Mutex<Option<(Instant, String)>>>);

impl WriteHealth {
    /// Why writes are failing, while they are.
    pub fn failure(&self) -> Option<String> {
        let latest = self.0.lock().ok()?;
        let (at, why) = latest.as_ref()?;
        (at.elapsed() < FAILURE_MEMORY).then(|| why.clone())
    }

    /// The database is reachable again (a new PostgreSQL connection): the failure reported
    /// while it was not is over. (A SQLite file that failed stays reported for
    /// [`FAILURE_MEMORY`]: one small write that succeeds on a nearly full disk proves nothing.)
    fn recovered(&self) {
        if let Ok(mut latest) = self.0.lock() {
            *latest = None;
        }
    }

    fn failed(&self, why: String) {
        if let Ok(mut latest) = self.0.lock() {
            *latest = Some((Instant::now(), why));
        }
    }
}

trait Op: Send {
    /// Applies the operation; `false` when it failed without a savepoint to undo it, which
    /// leaves the transaction unusable.
    fn apply(&mut self, conn: &Conn<'_>, batch: &mut Batch) -> bool;
    /// Whether it is answered before the commit (see [`Mode::Eager`]).
    fn eager(&self) -> bool;
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// How an operation runs in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In its own savepoint, answered after the commit: a failure is undone alone.
    Guarded,
    /// Without a savepoint, answered after the commit: a failure rolls back the batch.
    Unguarded,
    /// Without a savepoint, answered as soon as it is applied, before the commit. Only for
    /// writes whose loss in a crash is harmless (a lease: the row is simply claimed again).
    /// Applied before the batch's other operations, so what it answers was all committed
    /// before: a claim never hands out a delivery that its own batch may yet roll back.
    Eager,
}

struct TypedOp<T, F> {
    f: Option<F>,
    mode: Mode,
    result: Option<Result<T, StoreError>>,
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> Op for TypedOp<T, F>
where
    T: Send,
    F: FnOnce(&Conn<'_>, &mut Batch) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Conn<'_>, batch: &mut Batch) -> bool {
        let Some(f) = self.f.take() else { return true };
        batch.subscribers.op_started();
        let result = if self.mode == Mode::Guarded {
            in_savepoint(conn, |c| f(c, batch))
        } else {
            f(conn, batch)
        };
        if result.is_ok() {
            batch.ledger.keep_staged();
        }
        if let Err(e) = &result {
            // What the failed operation cached or counted may be what its savepoint undid.
            batch.subscribers.op_failed();
            batch.ledger.drop_staged();
            if e.is_storage_failure() {
                batch.storage_failure = Some(ErrorChain(e).to_string());
            }
        }
        let usable = self.mode == Mode::Guarded || result.is_ok();
        if self.mode == Mode::Eager
            && let Some(reply) = self.reply.take()
        {
            let _ = reply.send(result);
        } else {
            self.result = Some(result);
        }
        usable
    }

    fn eager(&self) -> bool {
        self.mode == Mode::Eager
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let Some(reply) = self.reply else { return };
        let answer = match (committed, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::RolledBack),
        };
        let _ = reply.send(answer);
    }
}

fn in_savepoint<T>(
    conn: &Conn<'_>,
    f: impl FnOnce(&Conn<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute("SAVEPOINT op", &[])?;
    match f(conn) {
        Ok(value) => {
            conn.execute("RELEASE op", &[])?;
            Ok(value)
        }
        Err(e) => {
            conn.execute("ROLLBACK TO op", &[])?;
            conn.execute("RELEASE op", &[])?;
            Err(e)
        }
    }
}

/// A handle that queues writes for the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Op>>,
}

impl Writer {
    /// Starts the writer thread on `conn`. `wake` is notified after commits that made work due.
    pub fn start(
        db: WriterDb,
        wake: Arc<Notify>,
        health: WriteHealth,
        audiences: Arc<Audiences>,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel(4096);
        let shared = Shared {
            wake,
            health,
            audiences,
        };
        let handle = std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || run(db, rx, shared))
            .map_err(|e| StoreError::WriterStart(Arc::new(e)))?;
        Ok((Self { tx }, handle))
    }

    /// Applies `f` in the next batch and answers once that batch is committed. If `f` fails,
    /// what it wrote is undone and the rest of the batch commits.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut Batch) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Mode::Guarded).await
    }

    /// Like [`Writer::write`] without a savepoint, for hot-path operations that fail only when
    /// the database does: such a failure rolls back the whole batch.
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut Batch) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Mode::Unguarded).await
    }

    /// Applies `f` without a savepoint and answers before the batch commits: for writes whose
    /// loss in a crash or a failed commit is harmless, such as leases.
    pub async fn write_eager<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut Batch) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Mode::Eager).await
    }

    /// Operations waiting in the queue (for tests that line up a batch).
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn submit<T, F>(&self, f: F, mode: Mode) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut Batch) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let op = TypedOp {
            f: Some(f),
            mode,
            result: None,
            reply: Some(reply),
        };
        self.tx
            .send(Box::new(op))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// The database a writer thread owns.
pub(crate) enum WriterDb {
    /// A SQLite connection (checkpointed by the writer).
    Sqlite(Connection),
    /// A PostgreSQL URL: the writer connects from its own thread (the synchronous client
    /// must not start inside the async runtime).
    Postgres(String),
}

/// What the writer thread shares with the store.
struct Shared {
    /// Notified after commits that made work due.
    wake: Arc<Notify>,
    /// Whether writes fail for want of storage.
    health: WriteHealth,
    /// The audiences publishes are planned from, and (SQLite) the tenants' versions.
    audiences: Arc<Audiences>,
}

fn run(db: WriterDb, rx: mpsc::Receiver<Box<dyn Op>>, shared: Shared) {
    let health = &shared.health;
    match db {
        WriterDb::Sqlite(conn) => {
            let mut rx = rx;
            batches(&Conn::Sqlite(&conn), &mut rx, &shared, |mode| {
                checkpoint(&conn, mode)
            });
        }
        WriterDb::Postgres(url) => {
            let mut rx = rx;
            let mut pause = Duration::from_millis(100);
            loop {
                match postgres::Client::connect(&url, postgres::NoTls) {
                    Ok(client) => {
                        pause = Duration::from_millis(100);
                        // Connected: the outage it reported is over.
                        health.recovered();
                        let mut client = super::sql::PgClient::new(client);
                        let conn = Conn::postgres(&mut client);
                        if batches(&conn, &mut rx, &shared, |_| true) == Ended::Closed {
                            return;
                        }
                        tracing::warn!("the writer lost its PostgreSQL connection; reconnecting");
                    }
                    Err(e) => {
                        tracing::error!(error = %ErrorChain(&e), "the writer cannot connect to PostgreSQL");
                        health.failed(format!("cannot connect to PostgreSQL: {}", ErrorChain(&e)));
                        // Writes meanwhile are answered as unavailable as they arrive, not
                        // left waiting for the next try.
                        let e = Arc::new(e);
                        refuse_until(&mut rx, Instant::now() + pause, |op| {
                            op.finish(Err(StoreError::Postgres(e.clone())));
                        });
                        pause = (pause * 2).min(super::RECONNECT_AT_MOST_EVERY);
                        if rx.is_closed() && rx.is_empty() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Until `deadline`, hands every operation that arrives to `refuse` at once.
fn refuse_until(
    rx: &mut mpsc::Receiver<Box<dyn Op>>,
    deadline: Instant,
    mut refuse: impl FnMut(Box<dyn Op>),
) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        return;
    };
    rt.block_on(async {
        let until = tokio::time::Instant::from_std(deadline);
        loop {
            tokio::select! {
                op = rx.recv() => match op {
                    Some(op) => refuse(op),
                    None => return,
                },
                () = tokio::time::sleep_until(until) => return,
            }
        }
    });
}

/// Why [`batches`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Every sender is gone: the store closed.
    Closed,
    /// The database connection broke (PostgreSQL); the writer reconnects.
    Broken,
}

/// Applies queued operations in batches on `conn` until every sender is gone; `checkpoint`
/// is called every few seconds and once at the end.
fn batches(
    conn: &Conn<'_>,
    rx: &mut mpsc::Receiver<Box<dyn Op>>,
    shared: &Shared,
    mut checkpoint: impl FnMut(Checkpoint) -> bool,
) -> Ended {
    let (wake, health) = (&shared.wake, &shared.health);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "writer cannot build its timer");
            return Ended::Closed;
        }
    };
    let mut last_checkpoint = Instant::now();
    // A scrub that readers kept from finishing, tried again at each checkpoint until it does.
    let mut scrub_pending = false;
    let mut batch = Batch {
        wake: false,
        subscribers: SubscriberCache::new(shared.audiences.clone()),
        storage_failure: None,
        ledger: Ledger::default(),
        scrub: false,
    };
    let mut ops: Vec<Box<dyn Op>> = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = rt.block_on(async { tokio::time::timeout(CHECKPOINT_EVERY, rx.recv()).await });
        match first {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => break,
            Err(_) => {}
        }
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        if !ops.is_empty() {
            batch.wake = false;
            batch.storage_failure = None;
            batch.ledger = Ledger::default();
            batch.scrub = false;
            let committed = commit_batch(conn, &mut ops, &mut batch);
            match &committed {
                Err(e) => {
                    tracing::error!(error = %ErrorChain(e), ops = ops.len(), "commit failed");
                    if e.is_storage_failure() {
                        health.failed(ErrorChain(e).to_string());
                    }
                }
                Ok(()) => {
                    if let Some(failure) = batch.storage_failure.take() {
                        health.failed(failure);
                    }
                }
            }
            // Before the callers hear of it: a publish planned after an answered change
            // sees the change's version.
            batch.subscribers.batch_ended(committed.is_ok());
            let woke = batch.wake && committed.is_ok();
            // Before the callers hear of it: a deleted secret is gone from the disk once its
            // deletion is answered (or, with readers in the way, at the next checkpoint).
            if batch.scrub && committed.is_ok() {
                scrub_pending = !checkpoint(Checkpoint::Scrub);
                last_checkpoint = Instant::now();
            }
            for op in ops.drain(..) {
                op.finish(committed.clone());
            }
            if woke {
                wake.notify_one();
            }
            if conn.is_broken() {
                return Ended::Broken;
            }
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            if scrub_pending {
                scrub_pending = !checkpoint(Checkpoint::Scrub);
            } else {
                checkpoint(Checkpoint::Restart);
            }
            last_checkpoint = Instant::now();
        }
    }
    checkpoint(Checkpoint::Truncate);
    Ended::Closed
}

fn commit_batch(
    conn: &Conn<'_>,
    ops: &mut [Box<dyn Op>],
    batch: &mut Batch,
) -> Result<(), StoreError> {
    match conn {
        // Take the write lock now, not at the first write: a busy file fails here, whole.
        Conn::Sqlite(_) => conn.execute("BEGIN IMMEDIATE", &[])?,
        // Every process commits its own batches, side by side: what they share is written
        // last, in one order (the ledger), or held per tenant (the subscriber caches).
        Conn::Postgres(_) => conn.execute("BEGIN", &[])?,
    };
    batch.subscribers.batch_started();
    // Eager operations first: they answer before the commit, so they must see only what
    // earlier batches committed, never this batch's writes.
    let (eager, guarded): (Vec<_>, Vec<_>) = ops.iter_mut().partition(|op| op.eager());
    for op in eager.into_iter().chain(guarded) {
        if !op.apply(conn, batch) {
            let _ = conn.execute("ROLLBACK", &[]);
            return Err(StoreError::RolledBack);
        }
    }
    if let Err(e) = batch.ledger.write(conn) {
        let _ = conn.execute("ROLLBACK", &[]);
        return Err(e);
    }
    // Other hookd processes on the database wake their dispatchers at the commit.
    if batch.wake
        && conn.is_postgres()
        && let Err(e) = conn.execute(&format!("NOTIFY {WORK_CHANNEL}"), &[])
    {
        let _ = conn.execute("ROLLBACK", &[]);
        return Err(e);
    }
    if let Err(e) = conn.execute("COMMIT", &[]) {
        let _ = conn.execute("ROLLBACK", &[]);
        return Err(e);
    }
    Ok(())
}

/// How a checkpoint ends the WAL.
#[derive(Debug, Clone, Copy)]
enum Checkpoint {
    /// Restart it from the beginning (periodic: it stays bounded and is reused in place).
    Restart,
    /// Truncate it to nothing (at shutdown: no old page images, such as deleted secrets,
    /// stay behind in it).
    Truncate,
    /// Truncate it to nothing after secrets were deleted, waiting only briefly for readers
    /// (the writer waits meanwhile); tried again at later checkpoints until it succeeds.
    Scrub,
}

/// Moves the WAL back into the database file; whether it completed. Readers are waited for
/// only briefly: a busy checkpoint is simply tried again next time.
fn checkpoint(conn: &Connection, mode: Checkpoint) -> bool {
    let (sql, wait) = match mode {
        Checkpoint::Restart => ("PRAGMA wal_checkpoint(RESTART)", Duration::from_millis(50)),
        Checkpoint::Truncate => ("PRAGMA wal_checkpoint(TRUNCATE)", Duration::from_secs(2)),
        Checkpoint::Scrub => (
            "PRAGMA wal_checkpoint(TRUNCATE)",
            Duration::from_millis(200),
        ),
    };
    let _ = conn.busy_timeout(wait);
    // The first column is 1 when readers or writers kept it from finishing.
    let done = match conn.query_row(sql, [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::debug!(error = %e, "checkpoint skipped");
            false
        }
    };
    let _ = conn.busy_timeout(super::BUSY_TIMEOUT);
    done
}
