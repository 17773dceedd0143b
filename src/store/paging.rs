//! Pages deep in a long list without stepping through every row before them.
//!
//! Lists are newest first, by id. `list_blocks` (`schema.sql`, migration 5) holds how many rows
//! each owner's list has per block of 65,536 ids (a row per writer, added up). A page at offset
//! `k` adds the blocks up from the newest until it passes `k` ([`seek`], `model/paging.rs`),
//! then reads ids below that block's end, skipping at most one block's worth in the index. The
//! same sums give the exact total, so no list ever counts its rows.
//!
//! Who keeps the counts: deletes everywhere, and the cold lists (incoming requests, schedule
//! runs), by triggers; the hot writes (deliveries and events added, a delivery's status
//! changed) by [`BlockCounts`], which sums a batch's changes in memory and writes each block
//! once before the commit. (A trigger on the hot tables would make every insert open a
//! statement journal, which costs more than the insert itself inside a big batch.)

use std::borrow::Cow;

use crate::db::sql::{Conn, vals};

use super::StoreError;
use crate::model::counts::StagedCounts;

use crate::model::DeliveryStatus;
use crate::model::paging::{BLOCK_BITS, Seek, seek};

/// The long lists whose rows are counted in blocks (the `list` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum List {
    /// An endpoint's deliveries, by status.
    Deliveries = 1,
    /// A tenant's events, by type.
    Events = 2,
    /// An incoming hook's request log.
    IncomingRequests = 3,
    /// A schedule's runs.
    ScheduleRuns = 4,
}

/// A list's exact length and where the page at `offset` starts in it. `part` narrows the
/// list to one status or type.
pub(super) fn locate(
    c: &Conn<'_>,
    list: List,
    owner: i64,
    part: Option<&str>,
    offset: i64,
) -> Result<(u64, Option<Seek>), StoreError> {
    let blocks = c.query(
        "SELECT block, CAST(sum(n) AS BIGINT) FROM list_blocks
         WHERE list = ?1 AND owner = ?2 AND (CAST(?3 AS TEXT) IS NULL OR part = ?3)
         GROUP BY block HAVING sum(n) > 0 ORDER BY block DESC",
        &vals![list as i64, owner, part],
        |r| Ok((r.get::<i64>(0)?, super::count(r.get(1)?))),
    )?;
    let total = blocks.iter().map(|(_, n)| n).sum();
    Ok((total, seek(&blocks, u64::try_from(offset).unwrap_or(0))))
}

/// A block's key in `list_blocks`: list, owner, part, block. Status parts are static, so
/// counting a delivery allocates nothing.
type BlockKey = (List, i64, Cow<'static, str>, i64);

/// Row-count changes to `list_blocks` made by a batch's operations, written once before the
/// batch commits. An operation's changes are staged until it succeeds, and dropped if its
/// savepoint undoes it.
#[derive(Debug, Default)]
pub(crate) struct BlockCounts(StagedCounts<BlockKey>);

/// The `part` a delivery status is counted under.
fn status_part(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "0",
        DeliveryStatus::Succeeded => "1",
        DeliveryStatus::Failed => "2",
    }
}

impl BlockCounts {
    fn change(&mut self, list: List, owner: i64, part: Cow<'static, str>, id: i64, by: i64) {
        self.0.add((list, owner, part, id >> BLOCK_BITS), by);
    }

    /// A delivery was added to an endpoint's log with `status`.
    pub fn delivery_added(&mut self, endpoint: i64, id: i64, status: DeliveryStatus) {
        self.change(
            List::Deliveries,
            endpoint,
            status_part(status).into(),
            id,
            1,
        );
    }

    /// A delivery's status changed.
    pub fn delivery_moved(
        &mut self,
        endpoint: i64,
        id: i64,
        from: DeliveryStatus,
        to: DeliveryStatus,
    ) {
        if from != to {
            self.change(List::Deliveries, endpoint, status_part(from).into(), id, -1);
            self.change(List::Deliveries, endpoint, status_part(to).into(), id, 1);
        }
    }

    /// An event of type `name` was added to a tenant's log.
    pub fn event_added(&mut self, tenant: i64, name: &str, id: i64) {
        self.change(List::Events, tenant, name.to_owned().into(), id, 1);
    }

    /// The operation that staged the latest changes succeeded: keep them for the commit.
    pub fn keep_staged(&mut self) {
        self.0.keep_staged();
    }

    /// The operation that staged the latest changes was undone: forget them.
    pub fn drop_staged(&mut self) {
        self.0.drop_staged();
    }

    /// Writes the kept changes to `writer`'s rows, inside the batch's transaction, and
    /// forgets them.
    pub fn write(&mut self, c: &Conn<'_>, writer: i64) -> Result<(), StoreError> {
        for ((list, owner, part, block), by) in self.0.take_kept() {
            c.execute(
                "INSERT INTO list_blocks (list, owner, part, block, n, writer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (list, owner, part, block, writer)
                 DO UPDATE SET n = list_blocks.n + excluded.n",
                &[
                    (list as i64).into(),
                    owner.into(),
                    (&*part).into(),
                    block.into(),
                    by.into(),
                    writer.into(),
                ],
            )?;
        }
        Ok(())
    }
}

/// Forgets the counts of blocks that are empty (after retention, or of deleted owners).
pub(super) fn forget_empty_blocks(c: &Conn<'_>) -> Result<usize, StoreError> {
    c.execute("DELETE FROM list_blocks WHERE n = 0", &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_changes_are_written_dropped_ones_never_and_deletes_count_themselves() {
        let db = rusqlite::Connection::open_in_memory().expect("open");
        crate::store::migrate::migrate(&db).expect("schema");
        let c = Conn::Sqlite(&db);
        db.execute_batch(
            "INSERT INTO tenants (id, name, created_at) VALUES (1, 't', 0);
             INSERT INTO events (id, tenant_id, type, data, deliveries, created_at) VALUES
                 (1, 1, 'a.b', '{}', 0, 0), (70000, 1, 'a.b', '{}', 0, 0),
                 (70001, 1, 'c.d', '{}', 0, 0);",
        )
        .expect("rows");
        let mut counts = BlockCounts::default();
        counts.event_added(1, "a.b", 1);
        counts.event_added(1, "a.b", 70_000);
        counts.event_added(1, "c.d", 70_001);
        counts.keep_staged();
        counts.event_added(1, "e.f", 70_002);
        counts.drop_staged();
        counts.write(&c, 0).expect("write");
        let (total, first) = locate(&c, List::Events, 1, None, 0).expect("locate");
        assert_eq!(total, 3, "the undone operation's event is not counted");
        assert_eq!(
            first,
            Some(Seek {
                below: 2 << 16,
                skip: 0
            })
        );
        let (total, last) = locate(&c, List::Events, 1, Some("a.b"), 1).expect("locate");
        assert_eq!(total, 2);
        assert_eq!(
            last,
            Some(Seek {
                below: 1 << 16,
                skip: 0
            })
        );
        c.execute("DELETE FROM events WHERE id = 1", &[])
            .expect("delete");
        assert_eq!(locate(&c, List::Events, 1, None, 0).expect("locate").0, 2);
        assert_eq!(forget_empty_blocks(&c).expect("forget"), 1);
    }
}
