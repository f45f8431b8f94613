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
    /// A transaction's net SQLite changeset.
    Changes(Arc<[u8]>),
    /// A schema statement (replayed by running it).
    Ddl(Arc<str>),
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
    /// session → the session whose transaction it waits for.
    waits: HashMap<u64, u64>,
}

/// One router's overlay and row locks.
#[derive(Debug)]
pub struct WriteOrder {
    inner: Mutex<Inner>,
    /// Bumped whenever a transaction releases its locks.
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

    /// The queued records not yet applied, given the newest HLC of this
    /// router's records that the replica has applied; drops applied ones.
    pub fn unapplied(&self, applied: Option<Hlc>) -> Vec<Replay> {
        let mut inner = self.inner();
        if let Some(applied) = applied {
            while inner.queued.front().is_some_and(|q| q.hlc <= applied) {
                inner.queued.pop_front();
            }
        }
        inner.queued.iter().map(|q| q.replay.clone()).collect()
    }

    /// Records queued and maybe not applied yet.
    pub fn len(&self) -> usize {
        self.inner().queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// re-reads the log end instead; see `RouterCore::resync`).
    pub fn clear_queued(&self) {
        self.inner().queued.clear();
    }

    /// Another session holding one of `rows`, if any.
    pub fn holder_of(&self, session: u64, rows: &[RowId]) -> Option<u64> {
        let inner = self.inner();
        rows.iter()
            .filter_map(|r| inner.locks.get(r))
            .find(|&&s| s != session)
            .copied()
    }

    /// `session`'s transaction now holds `rows` (call after `holder_of`
    /// found none, in the same speculation job).
    pub fn lock(&self, session: u64, rows: Vec<RowId>) {
        let mut inner = self.inner();
        for r in rows {
            if inner.locks.insert(r.clone(), session).is_none() {
                inner.held.entry(session).or_default().push(r);
            }
        }
    }

    /// Ends `session`'s transaction: its rows are free, waiters retry.
    pub fn release(&self, session: u64) {
        let mut inner = self.inner();
        inner.waits.remove(&session);
        if let Some(rows) = inner.held.remove(&session) {
            for r in rows {
                inner.locks.remove(&r);
            }
            drop(inner);
            self.released.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Rows held by transaction blocks (for status and tests).
    pub fn locked_rows(&self) -> usize {
        self.inner().locks.len()
    }

    /// Waits until `holder`'s transaction ends. Refuses with 40P01 when the
    /// wait would close a cycle, and with 55P03 after `timeout` (if any).
    pub async fn wait_for(
        &self,
        session: u64,
        holder: u64,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut rx = self.released.subscribe();
        {
            let mut inner = self.inner();
            let mut cur = holder;
            let mut steps = 0;
            while let Some(&next) = inner.waits.get(&cur) {
                if next == session || steps > inner.waits.len() {
                    return Err(Error::Deadlock { session, holder });
                }
                cur = next;
                steps += 1;
            }
            if cur == session {
                return Err(Error::Deadlock { session, holder });
            }
            inner.waits.insert(session, holder);
        }
        let wait = async {
            loop {
                if !self.inner().held.contains_key(&holder) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let out = match timeout {
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .map_err(|_| Error::LockTimeout {
                    holder,
                    waited_ms: t.as_millis() as u64,
                }),
            None => {
                wait.await;
                Ok(())
            }
        };
        self.inner().waits.remove(&session);
        out
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
        assert_eq!(o.len(), 1);
        o.remove(hlc(3));
        assert!(o.is_empty());
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

    #[tokio::test]
    async fn a_waiter_resumes_when_the_holder_ends() {
        let o = Arc::new(WriteOrder::default());
        o.lock(1, vec![("t".into(), "1".into())]);
        let o2 = o.clone();
        let waiter =
            tokio::spawn(async move { o2.wait_for(2, 1, Some(Duration::from_secs(10))).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        o.release(1);
        assert!(waiter.await.is_ok_and(|r| r.is_ok()));
    }

    #[tokio::test]
    async fn a_cycle_is_a_deadlock_and_a_timeout_is_55p03() {
        let o = Arc::new(WriteOrder::default());
        o.lock(1, vec![("t".into(), "a".into())]);
        o.lock(2, vec![("t".into(), "b".into())]);
        let o2 = o.clone();
        let first =
            tokio::spawn(async move { o2.wait_for(1, 2, Some(Duration::from_secs(10))).await });
        // Let session 1 register its wait.
        for _ in 0..100 {
            if o.inner().waits.contains_key(&1) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let second = o.wait_for(2, 1, None).await;
        assert!(matches!(second, Err(Error::Deadlock { .. })), "{second:?}");
        o.release(2);
        assert!(first.await.is_ok_and(|r| r.is_ok()));
        let timed = o.wait_for(3, 1, Some(Duration::from_millis(20))).await;
        assert!(matches!(timed, Err(Error::LockTimeout { .. })), "{timed:?}");
    }
}
