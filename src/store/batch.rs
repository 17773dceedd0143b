//! What a write batch's operations share in the store: the tenants' audiences and versions as
//! the writer's connection sees them, the derived counts they change (the ledger), and whether
//! the batch made work due or deleted secrets. The writer (`crate::db::writer`) runs the
//! batches; this is the state it tells when batches and operations start and end.

use std::sync::Arc;

use super::StoreError;
use super::ledger::Ledger;
use super::postgres::WORK_CHANNEL;
use super::subscribers::{Audiences, SubscriberCache};
use crate::db::sql::Conn;
use crate::db::writer::{AfterBatch, BatchState};

/// What a batch's operations share: flags for the writer, and the writer's caches.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Set when an operation made deliveries due: the dispatcher is woken after the commit.
    pub wake: bool,
    /// Tenants' audiences and versions as this connection sees them. Kept across batches
    /// that commit; dropped whole when one rolls back (it may hold what was undone).
    pub subscribers: SubscriberCache,
    /// What the batch's operations changed in derived counts (block counts, endpoint
    /// counters, daily usage), written just before the commit.
    pub ledger: Ledger,
    /// Set when an operation deleted or replaced secrets (signing secrets, credentials, header
    /// values): after the commit the WAL, which still holds their old pages, is emptied.
    pub scrub: bool,
    /// On PostgreSQL, this process's id: its own rows of the endpoints' counters are the ones
    /// its batches add to.
    writer: Option<i64>,
}

impl Batch {
    /// The state of the writer's first batch, reading audiences through `audiences`; `writer`
    /// is this process's id on PostgreSQL.
    pub fn new(audiences: Arc<Audiences>, writer: Option<i64>) -> Self {
        Self {
            writer,
            wake: false,
            subscribers: SubscriberCache::new(audiences),
            ledger: Ledger::default(),
            scrub: false,
        }
    }
}

impl BatchState for Batch {
    fn begin(&mut self) {
        self.wake = false;
        self.ledger = Ledger::default();
        self.scrub = false;
        self.subscribers.batch_started();
    }

    fn op_started(&mut self) {
        self.subscribers.op_started();
    }

    fn op_ended(&mut self, ok: bool) {
        if ok {
            self.ledger.keep_staged();
        } else {
            self.subscribers.op_failed();
            self.ledger.drop_staged();
        }
    }

    fn before_commit(&mut self, conn: &Conn<'_>) -> Result<(), StoreError> {
        self.ledger.write(conn, self.writer)?;
        // Other hookd processes on the database wake their dispatchers at the commit.
        if self.wake && conn.is_postgres() {
            conn.execute(&format!("NOTIFY {WORK_CHANNEL}"), &[])?;
        }
        Ok(())
    }

    fn end(&mut self, committed: bool) -> AfterBatch {
        self.subscribers.batch_ended(committed);
        AfterBatch {
            wake: self.wake,
            scrub: self.scrub,
        }
    }
}
