//! The one writer: a dedicated thread owns the write connection and applies queued operations
//! in batched transactions (group commit). Each operation runs inside its own savepoint, so one
//! that fails is rolled back alone; its caller is answered only after the batch commits.
//!
//! What a batch's operations share (the store's caches, the counts they stage, whether to wake
//! the dispatcher) is the caller's [`BatchState`]: the writer tells it when a batch and each
//! operation start and end, and lets it write what it gathered just before the commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot};

use super::sql::Conn;
use super::{RECONNECT_AT_MOST_EVERY, StoreError};
use crate::report::ErrorChain;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// How often the WAL is checkpointed back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// What a batch's operations share, kept by the writer's caller: told when each batch and
/// each operation starts and ends, so that what an undone operation staged is dropped with it.
pub trait BatchState: Send + 'static {
    /// A batch's transaction has begun.
    fn begin(&mut self);
    /// An operation is about to run.
    fn op_started(&mut self);
    /// The operation ran: kept (`ok`) or undone.
    fn op_ended(&mut self, ok: bool);
    /// Writes what the batch's operations gathered, inside its transaction, just before the
    /// commit.
    fn before_commit(&mut self, conn: &Conn<'_>) -> Result<(), StoreError>;
    /// The batch ended (`committed` or rolled back), before its callers are answered: what
    /// the writer does now.
    fn end(&mut self, committed: bool) -> AfterBatch;
}

/// What the writer does after a batch, as its [`BatchState`] asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfterBatch {
    /// Notify the writer's `wake` (the batch made work due).
    pub wake: bool,
    /// Empty the WAL now (the batch deleted secrets, whose old pages it still holds).
    pub scrub: bool,
}

/// How long a write that failed for want of storage keeps the store reported as failing.
/// Small writes may still commit on a nearly full disk, so one success proves nothing.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);

/// Whether writes are failing for want of storage: the latest such failure, reported for
/// `FAILURE_MEMORY` after it happened.
#[derive(Debug, Clone, Default)]
pub struct WriteHealth(Arc<std::sync::Mutex<Option<(Instant, String)>>>);

impl WriteHealth {
    /// Why writes are failing, while they are.
    pub fn failure(&self) -> Option<String> {
        let latest = self.0.lock().ok()?;
        let (at, why) = latest.as_ref()?;
        (at.elapsed() < FAILURE_MEMORY).then(|| why.clone())
    }

    /// The database is reachable again (a new PostgreSQL connection): the failure reported
    /// while it was not is over. (A SQLite file that failed stays reported for
    /// `FAILURE_MEMORY`: one small write that succeeds on a nearly full disk proves nothing.)
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

trait Op<B>: Send {
    /// Applies the operation; `false` when it failed without a savepoint to undo it, which
    /// leaves the transaction unusable. A failure for want of storage is told in `failure`.
    fn apply(&mut self, conn: &Conn<'_>, batch: &mut B, failure: &mut Option<String>) -> bool;
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

impl<B, T, F> Op<B> for TypedOp<T, F>
where
    B: BatchState,
    T: Send,
    F: FnOnce(&Conn<'_>, &mut B) -> Result<T, StoreError> + Send,
{
    fn apply(&mut self, conn: &Conn<'_>, batch: &mut B, failure: &mut Option<String>) -> bool {
        let Some(f) = self.f.take() else { return true };
        batch.op_started();
        let result = if self.mode == Mode::Guarded {
            in_savepoint(conn, |c| f(c, batch))
        } else {
            f(conn, batch)
        };
        // What a failed operation cached or counted may be what its savepoint undid.
        batch.op_ended(result.is_ok());
        if let Err(e) = &result
            && e.is_storage_failure()
        {
            *failure = Some(ErrorChain(e).to_string());
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
pub struct Writer<B> {
    tx: mpsc::Sender<Box<dyn Op<B>>>,
}

impl<B> Clone for Writer<B> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<B: BatchState> Writer<B> {
    /// Starts the writer thread on `db`, its batches sharing `batch`. `wake` is notified after
    /// commits whose batch asked for it.
    pub fn start(
        db: WriterDb,
        wake: Arc<Notify>,
        health: WriteHealth,
        batch: B,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel(4096);
        let shared = Shared { wake, health };
        let handle = std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || run(db, rx, shared, batch))
            .map_err(|e| StoreError::WriterStart(Arc::new(e)))?;
        Ok((Self { tx }, handle))
    }

    /// Applies `f` in the next batch and answers once that batch is committed. If `f` fails,
    /// what it wrote is undone and the rest of the batch commits.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut B) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Mode::Guarded).await
    }

    /// Like [`Writer::write`] without a savepoint, for hot-path operations that fail only when
    /// the database does: such a failure rolls back the whole batch.
    pub async fn write_unguarded<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut B) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(f, Mode::Unguarded).await
    }

    /// Applies `f` without a savepoint and answers before the batch commits: for writes whose
    /// loss in a crash or a failed commit is harmless, such as leases.
    pub async fn write_eager<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn<'_>, &mut B) -> Result<T, StoreError> + Send + 'static,
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
        F: FnOnce(&Conn<'_>, &mut B) -> Result<T, StoreError> + Send + 'static,
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
pub enum WriterDb {
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
}

fn run<B: BatchState>(
    db: WriterDb,
    rx: mpsc::Receiver<Box<dyn Op<B>>>,
    shared: Shared,
    mut batch: B,
) {
    let health = &shared.health;
    match db {
        WriterDb::Sqlite(conn) => {
            let mut rx = rx;
            batches(&Conn::Sqlite(&conn), &mut rx, &shared, &mut batch, |mode| {
                checkpoint(&conn, mode)
            });
        }
        WriterDb::Postgres(url) => {
            let mut rx = rx;
            let mut pause = Duration::from_millis(100);
            loop {
                match url
                    .parse::<postgres::Config>()
                    .and_then(|c| c.connect(postgres::NoTls))
                {
                    Ok(client) => {
                        pause = Duration::from_millis(100);
                        // Connected: the outage it reported is over.
                        health.recovered();
                        let mut client = super::sql::PgClient::new(client);
                        let conn = Conn::postgres(&mut client);
                        if batches(&conn, &mut rx, &shared, &mut batch, |_| true) == Ended::Closed {
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
                        pause = (pause * 2).min(RECONNECT_AT_MOST_EVERY);
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
fn refuse_until<B>(
    rx: &mut mpsc::Receiver<Box<dyn Op<B>>>,
    deadline: Instant,
    mut refuse: impl FnMut(Box<dyn Op<B>>),
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
fn batches<B: BatchState>(
    conn: &Conn<'_>,
    rx: &mut mpsc::Receiver<Box<dyn Op<B>>>,
    shared: &Shared,
    batch: &mut B,
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
    let mut ops: Vec<Box<dyn Op<B>>> = Vec::with_capacity(MAX_BATCH);
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
            let mut storage_failure = None;
            let committed = commit_batch(conn, &mut ops, batch, &mut storage_failure);
            match &committed {
                Err(e) => {
                    tracing::error!(error = %ErrorChain(e), ops = ops.len(), "commit failed");
                    if e.is_storage_failure() {
                        health.failed(ErrorChain(e).to_string());
                    }
                }
                Ok(()) => {
                    if let Some(failure) = storage_failure {
                        health.failed(failure);
                    }
                }
            }
            // Before the callers hear of it: what the batch changed is seen by what they do
            // next (a publish planned after an answered change sees the change's version).
            let after = batch.end(committed.is_ok());
            let woke = after.wake && committed.is_ok();
            // Before the callers hear of it: a deleted secret is gone from the disk once its
            // deletion is answered (or, with readers in the way, at the next checkpoint).
            if after.scrub && committed.is_ok() {
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

fn commit_batch<B: BatchState>(
    conn: &Conn<'_>,
    ops: &mut [Box<dyn Op<B>>],
    batch: &mut B,
    failure: &mut Option<String>,
) -> Result<(), StoreError> {
    match conn {
        // Take the write lock now, not at the first write: a busy file fails here, whole.
        Conn::Sqlite(_) => conn.execute("BEGIN IMMEDIATE", &[])?,
        // Every process commits its own batches, side by side: what they share is written
        // last, by the batch's state (the store's ledger, in one order).
        Conn::Postgres(_) => conn.execute("BEGIN", &[])?,
    };
    batch.begin();
    // Eager operations first: they answer before the commit, so they must see only what
    // earlier batches committed, never this batch's writes.
    let (eager, guarded): (Vec<_>, Vec<_>) = ops.iter_mut().partition(|op| op.eager());
    for op in eager.into_iter().chain(guarded) {
        if !op.apply(conn, batch, failure) {
            let _ = conn.execute("ROLLBACK", &[]);
            return Err(StoreError::RolledBack);
        }
    }
    if let Err(e) = batch.before_commit(conn) {
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
