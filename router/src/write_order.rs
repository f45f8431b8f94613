//! The order of one router's writes, which gives every session of the router
//! at least PostgreSQL's READ COMMITTED for read-modify-write statements.
//!
//! Two pieces:
//!
//! - the *overlay*: every record this router has queued on the log that its
//!   replica may not have applied yet, in log order. Each speculation
//!   replays the overlay first, so a write is computed on top of every write
//!   this router appended before it (`x = x + 1` never loses an increment,
//!   and within one router no apply ever meets a stale before-image). All
//!   queueing happens inside a job on the router's one speculation
//!   connection, so queue order, overlay order and log order are the same.
//! - *row locks*: a transaction block holds the rows it wrote until COMMIT or
//!   ROLLBACK, as PostgreSQL does. A statement of another session whose
//!   changes touch a held row waits for that transaction to end and is then
//!   speculated again from scratch on the new state (PostgreSQL re-checks
//!   the row; re-running the whole statement is at least as strong). Waits
//!   form a graph; a cycle is refused with 40P01 like PostgreSQL's deadlock
//!   detector.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use wal_bus::{Change, Hlc};

use crate::error::{Error, Result};

/// What a speculation replays for a queued record.
#[derive(Debug, Clone)]
pub enum Replay {
    /// A transaction's row changes (replayed through cached statements:
    /// SQLite's changeset apply re-reads the schema and re-prepares its
    /// statements on every call, 18% of the router's CPU under pgbench).
    Rows(Arc<[Change]>),
    /// A schema statement (replayed by running it).
    Ddl(Arc<str>),
    /// A transaction block's steps, in order.
    Block(Arc<[Replay]>),
}

/// A row, as a lock names it: table and canonical key.
pub type RowId = (String, String);

/// The rows a set of changes touches.
pub fn row_ids(changes: &[Change]) -> Vec<RowId> {
    changes
        .iter()
        .map(|c| {
            // BTreeMap keys: the JSON text is canonical.
            let key = serde_json::to_string(&c.key).unwrap_or_default();
            (c.table.clone(), key)
        })
        .collect()
}

#[derive(Debug)]
struct Queued {
    hlc: Hlc,
    replay: Replay,
}

#[derive(Debug, Default)]
struct Inner {
    queued: VecDeque<Queued>,
    locks: HashMap<RowId, u64>,
    held: HashMap<u64, Vec<RowId>>,
    /// Per row, the sessions waiting for it, first come first served.
    queues: HashMap<RowId, VecDeque<u64>>,
    /// Per waiting session, the rows it waits for.
    wanting: HashMap<u64, Vec<RowId>>,
}

impl Inner {
    /// The session holding one of `rows`, other than `session`.
    fn holder(&self, session: u64, rows: &[RowId]) -> Option<u64> {
        rows.iter()
            .filter_map(|r| self.locks.get(r))
            .find(|&&s| s != session)
            .copied()
    }

    /// Whether `session` waits, through a chain of holders, for itself.
    fn in_cycle(&self, session: u64) -> bool {
        let mut stack = vec![session];
        let mut seen = std::collections::HashSet::new();
        while let Some(s) = stack.pop() {
            let Some(rows) = self.wanting.get(&s) else {
                continue;
            };
            for r in rows {
                if let Some(&h) = self.locks.get(r)
                    && h != s
                {
                    if h == session {
                        return true;
                    }
                    if seen.insert(h) {
                        stack.push(h);
                    }
                }
            }
        }
        false
    }

    fn stop_waiting(&mut self, session: u64) {
        if let Some(rows) = self.wanting.remove(&session) {
            for r in rows {
                if let Some(q) = self.queues.get_mut(&r) {
                    q.retain(|s| *s != session);
                    if q.is_empty() {
                        self.queues.remove(&r);
                    }
                }
            }
        }
    }
}

/// One router's overlay and row locks.
#[derive(Debug)]
pub struct WriteOrder {
    inner: Mutex<Inner>,
    /// Bumped whenever locks change hands.
    released: watch::Sender<u64>,
}

impl Default for WriteOrder {
    fn default() -> Self {
        WriteOrder {
            inner: Mutex::new(Inner::default()),
            released: watch::channel(0).0,
        }
    }
}

impl WriteOrder {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The queue without the records the replica has applied, given the
    /// newest HLC of this router's records it applied.
    fn pruned(&self, applied: Option<Hlc>) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner();
        if let Some(applied) = applied {
            while inner.queued.front().is_some_and(|q| q.hlc <= applied) {
                inner.queued.pop_front();
            }
        }
        inner
    }

    /// The queued records not yet applied (see [`WriteOrder::pending`]).
    pub fn unapplied(&self, applied: Option<Hlc>) -> Vec<Replay> {
        self.pruned(applied)
            .queued
            .iter()
            .map(|q| q.replay.clone())
            .collect()
    }

    /// Records queued and not applied yet, given the newest HLC of this
    /// router's records the replica has applied (drops applied ones).
    pub fn pending(&self, applied: Option<Hlc>) -> usize {
        self.pruned(applied).queued.len()
    }

    /// Adds a record just queued on the log (call in queue order).
    pub fn push(&self, hlc: Hlc, replay: Replay) {
        self.inner().queued.push_back(Queued { hlc, replay });
    }

    /// Forgets a record whose append failed.
    pub fn remove(&self, hlc: Hlc) {
        self.inner().queued.retain(|q| q.hlc != hlc);
    }

    /// Forgets everything queued (after an append failure the router
    /// re-reads the log end instead; see `Shared::resync`).
    pub fn clear_queued(&self) {
        self.inner().queued.clear();
    }

    /// Another session holding one of `rows`, if any.
    pub fn holder_of(&self, session: u64, rows: &[RowId]) -> Option<u64> {
        self.inner().holder(session, rows)
    }

    /// `session` now holds `rows` (call after `holder_of` found none, in
    /// the same speculation job).
    pub fn lock(&self, session: u64, rows: Vec<RowId>) {
        let mut inner = self.inner();
        for r in rows {
            if inner.locks.insert(r.clone(), session).is_none() {
                inner.held.entry(session).or_default().push(r);
            }
        }
    }

    /// Ends `session`'s hold on its rows (its transaction ended, or an
    /// autocommit write was queued): each row goes to the first session
    /// waiting for it, as PostgreSQL's lock queue does, so one waiter
    /// retries per row instead of all of them.
    pub fn release(&self, session: u64) {
        let mut inner = self.inner();
        inner.stop_waiting(session);
        let Some(rows) = inner.held.remove(&session) else {
            return;
        };
        for r in rows {
            inner.locks.remove(&r);
            let next = inner.queues.get_mut(&r).and_then(VecDeque::pop_front);
            if let Some(w) = next {
                inner.locks.insert(r.clone(), w);
                inner.held.entry(w).or_default().push(r.clone());
                if inner.queues.get(&r).is_some_and(VecDeque::is_empty) {
                    inner.queues.remove(&r);
                }
            }
        }
        drop(inner);
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Rows held (for status and tests).
    pub fn locked_rows(&self) -> usize {
        self.inner().locks.len()
    }

    /// Waits until no other session holds any of `rows` (they may be handed
    /// to this session on the way). Refuses with 40P01 when the wait closes
    /// a cycle of sessions waiting for each other, and with 55P03 after
    /// `timeout` (if any).
    pub async fn wait_for_rows(
        &self,
        session: u64,
        rows: Vec<RowId>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut rx = self.released.subscribe();
        let first_holder = {
            let mut inner = self.inner();
            let Some(holder) = inner.holder(session, &rows) else {
                return Ok(());
            };
            for r in &rows {
                if inner.locks.get(r).is_some_and(|h| *h != session) {
                    inner
                        .queues
                        .entry(r.clone())
                        .or_default()
                        .push_back(session);
                }
            }
            inner.wanting.insert(session, rows.clone());
            holder
        };
        // Leaves the queues however the wait ends, a cancelled query
        // (dropped future) included.
        struct Leave<'a>(&'a WriteOrder, u64);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.inner().stop_waiting(self.1);
            }
        }
        let _leave = Leave(self, session);
        let wait = async {
            loop {
                {
                    let inner = self.inner();
                    match inner.holder(session, &rows) {
                        None => return Ok(()),
                        Some(holder) if inner.in_cycle(session) => {
                            return Err(Error::Deadlock { session, holder });
                        }
                        Some(_) => {}
                    }
                }
                if rx.changed().await.is_err() {
                    return Ok(());
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .unwrap_or(Err(Error::LockTimeout {
                    holder: first_holder,
                    waited_ms: t.as_millis() as u64,
                })),
            None => wait.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hlc(n: u64) -> Hlc {
        Hlc::new(n, 0)
    }

    #[test]
    fn applied_records_leave_the_overlay_in_order() {
        let o = WriteOrder::default();
        for n in 1..=3 {
            o.push(hlc(n), Replay::Ddl(format!("ddl {n}").into()));
        }
        assert_eq!(o.unapplied(None).len(), 3);
        assert_eq!(o.unapplied(Some(hlc(2))).len(), 1);
        assert_eq!(o.pending(None), 1);
        o.remove(hlc(3));
        assert_eq!(o.pending(None), 0);
    }

    #[test]
    fn locks_belong_to_one_session_until_released() {
        let o = WriteOrder::default();
        let rows = vec![("t".to_owned(), "{\"id\":1}".to_owned())];
        assert_eq!(o.holder_of(1, &rows), None);
        o.lock(1, rows.clone());
        assert_eq!(o.holder_of(1, &rows), None, "own lock");
        assert_eq!(o.holder_of(2, &rows), Some(1));
        o.release(1);
        assert_eq!(o.holder_of(2, &rows), None);
        assert_eq!(o.locked_rows(), 0);
    }

    fn row(k: &str) -> Vec<RowId> {
        vec![("t".to_owned(), k.to_owned())]
    }

    async fn registered(o: &WriteOrder, session: u64) {
        for _ in 0..1000 {
            if o.inner().wanting.contains_key(&session) {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn released_rows_go_to_waiters_first_come_first_served() {
        let o = Arc::new(WriteOrder::default());
        o.lock(1, row("1"));
        let (o2, o3) = (o.clone(), o.clone());
        let second = tokio::spawn(async move { o2.wait_for_rows(2, row("1"), None).await });
        registered(&o, 2).await;
        let third = tokio::spawn(async move { o3.wait_for_rows(3, row("1"), None).await });
        registered(&o, 3).await;
        o.release(1);
        // Session 2 was first: it holds the row now, 3 keeps waiting.
        assert!(second.await.is_ok_and(|r| r.is_ok()));
        assert_eq!(o.holder_of(3, &row("1")), Some(2));
        assert!(!third.is_finished());
        o.release(2);
        assert!(third.await.is_ok_and(|r| r.is_ok()));
        assert_eq!(o.holder_of(4, &row("1")), Some(3));
        o.release(3);
        assert_eq!(o.locked_rows(), 0);
    }

    #[tokio::test]
    async fn a_cycle_is_a_deadlock_and_a_timeout_is_55p03() {
        let o = Arc::new(WriteOrder::default());
        o.lock(1, row("a"));
        o.lock(2, row("b"));
        let o2 = o.clone();
        let first = tokio::spawn(async move {
            o2.wait_for_rows(1, row("b"), Some(Duration::from_secs(10)))
                .await
        });
        registered(&o, 1).await;
        let second = o.wait_for_rows(2, row("a"), None).await;
        assert!(matches!(second, Err(Error::Deadlock { .. })), "{second:?}");
        // Session 2's transaction is rolled back: 1 gets row b.
        o.release(2);
        assert!(first.await.is_ok_and(|r| r.is_ok()));
        let timed = o
            .wait_for_rows(3, row("a"), Some(Duration::from_millis(20)))
            .await;
        assert!(matches!(timed, Err(Error::LockTimeout { .. })), "{timed:?}");
        assert!(o.inner().wanting.is_empty() && o.inner().queues.is_empty());
    }
}
