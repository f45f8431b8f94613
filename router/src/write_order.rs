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
//!   ROLLBACK, as PostgreSQL does, and a key-share lock on each parent row
//!   its foreign keys reference (see `speculate::references` for the
//!   modes). A statement of another session whose
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

/// How a row is locked, PostgreSQL's row-lock modes in small: a write
/// conflicts with every other write; a key write (delete, or a change of
/// a referenced column) also with key shares; a key share (the parent row
/// of a foreign key written) only with key writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    KeyShare,
    Write,
    KeyWrite,
}

/// One row lock a statement needs.
pub type Lock = (RowId, Mode);

#[derive(Debug)]
struct Queued {
    hlc: Hlc,
    replay: Replay,
}

#[derive(Debug, Default)]
struct Inner {
    queued: VecDeque<Queued>,
    /// Write locks: the holder and its strongest mode.
    locks: HashMap<RowId, (u64, Mode)>,
    held: HashMap<u64, Vec<RowId>>,
    /// Key-share locks: the sessions holding each row.
    shares: HashMap<RowId, Vec<u64>>,
    shared_by: HashMap<u64, Vec<RowId>>,
    /// Per row, the sessions waiting to write it, first come first served
    /// (a key share waits without queueing: shares do not exclude each
    /// other, so there is nothing to hand over).
    queues: HashMap<RowId, VecDeque<u64>>,
    /// Per waiting session, the locks it waits for.
    wanting: HashMap<u64, Vec<Lock>>,
}

impl Inner {
    /// The sessions other than `session` whose locks conflict with `want`.
    fn blockers<'a>(&'a self, session: u64, want: &'a Lock) -> impl Iterator<Item = u64> + 'a {
        let (row, mode) = want;
        let writer = self
            .locks
            .get(row)
            .filter(|(h, held)| {
                *h != session && (*mode != Mode::KeyShare || *held == Mode::KeyWrite)
            })
            .map(|(h, _)| *h);
        let sharers = self
            .shares
            .get(row)
            .filter(|_| *mode == Mode::KeyWrite)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |s| *s != session);
        writer.into_iter().chain(sharers)
    }

    /// A session other than `session` holding a lock that conflicts with
    /// one of `wants`.
    fn holder(&self, session: u64, wants: &[Lock]) -> Option<u64> {
        wants.iter().find_map(|w| self.blockers(session, w).next())
    }

    /// Whether `session` waits, through a chain of holders, for itself.
    fn in_cycle(&self, session: u64) -> bool {
        let mut stack = vec![session];
        let mut seen = std::collections::HashSet::new();
        while let Some(s) = stack.pop() {
            let Some(wants) = self.wanting.get(&s) else {
                continue;
            };
            for w in wants {
                for h in self.blockers(s, w) {
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
        if let Some(wants) = self.wanting.remove(&session) {
            for (r, _) in wants {
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

    /// Forgets the queued records up to `applied` (every replica that
    /// speculates for this router has applied them).
    pub fn prune(&self, applied: Option<Hlc>) {
        drop(self.pruned(applied));
    }

    /// The queued records after `applied`, without forgetting any.
    pub fn unapplied_after(&self, applied: Option<Hlc>) -> Vec<Replay> {
        self.inner()
            .queued
            .iter()
            .filter(|q| applied.is_none_or(|a| q.hlc > a))
            .map(|q| q.replay.clone())
            .collect()
    }

    /// Every queued record with its HLC, oldest first (a peer speculating
    /// for this router keeps those its replica has not applied).
    pub fn queued_with_hlc(&self) -> Vec<(Hlc, Replay)> {
        self.inner()
            .queued
            .iter()
            .map(|q| (q.hlc, q.replay.clone()))
            .collect()
    }

    /// How many queued records are after `applied`.
    pub fn pending_after(&self, applied: Option<Hlc>) -> usize {
        self.inner()
            .queued
            .iter()
            .filter(|q| applied.is_none_or(|a| q.hlc > a))
            .count()
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

    /// Another session holding a lock that conflicts with `wants`, if any.
    pub fn holder_of(&self, session: u64, wants: &[Lock]) -> Option<u64> {
        self.inner().holder(session, wants)
    }

    /// `session` now holds `wants` (call after `holder_of` found none, in
    /// the same speculation job).
    pub fn lock(&self, session: u64, wants: Vec<Lock>) {
        let mut inner = self.inner();
        for (r, mode) in wants {
            if mode == Mode::KeyShare {
                if inner.locks.get(&r).is_some_and(|(h, _)| *h == session) {
                    continue;
                }
                let sharers = inner.shares.entry(r.clone()).or_default();
                if !sharers.contains(&session) {
                    sharers.push(session);
                    inner.shared_by.entry(session).or_default().push(r);
                }
                continue;
            }
            match inner.locks.get_mut(&r) {
                Some((_, held)) => *held = (*held).max(mode),
                None => {
                    inner.locks.insert(r.clone(), (session, mode));
                    inner.held.entry(session).or_default().push(r);
                }
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
        let shared = inner.shared_by.remove(&session);
        for r in shared.iter().flatten() {
            if let Some(sharers) = inner.shares.get_mut(r) {
                sharers.retain(|s| *s != session);
                if sharers.is_empty() {
                    inner.shares.remove(r);
                }
            }
        }
        let Some(rows) = inner.held.remove(&session) else {
            if shared.is_some() {
                drop(inner);
                self.released.send_modify(|n| *n = n.wrapping_add(1));
            }
            return;
        };
        for r in rows {
            inner.locks.remove(&r);
            let next = inner.queues.get_mut(&r).and_then(VecDeque::pop_front);
            if let Some(w) = next {
                let mode = inner
                    .wanting
                    .get(&w)
                    .and_then(|wants| wants.iter().find(|(x, _)| *x == r))
                    .map_or(Mode::Write, |(_, m)| *m);
                inner.locks.insert(r.clone(), (w, mode));
                inner.held.entry(w).or_default().push(r.clone());
                if inner.queues.get(&r).is_some_and(VecDeque::is_empty) {
                    inner.queues.remove(&r);
                }
            }
        }
        drop(inner);
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Rows locked, in any mode (for status and tests).
    pub fn locked_rows(&self) -> usize {
        let inner = self.inner();
        inner.locks.len()
            + inner
                .shares
                .keys()
                .filter(|r| !inner.locks.contains_key(*r))
                .count()
    }

    /// Waits until no other session holds a lock conflicting with `wants`
    /// (rows to write may be handed to this session on the way). Refuses with 40P01 when the wait closes
    /// a cycle of sessions waiting for each other, and with 55P03 after
    /// `timeout` (if any).
    pub async fn wait_for_rows(
        &self,
        session: u64,
        wants: Vec<Lock>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut rx = self.released.subscribe();
        let first_holder = {
            let mut inner = self.inner();
            let Some(holder) = inner.holder(session, &wants) else {
                return Ok(());
            };
            for (r, mode) in &wants {
                if *mode != Mode::KeyShare && inner.locks.get(r).is_some_and(|(h, _)| *h != session)
                {
                    inner
                        .queues
                        .entry(r.clone())
                        .or_default()
                        .push_back(session);
                }
            }
            inner.wanting.insert(session, wants.clone());
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
                    match inner.holder(session, &wants) {
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
mod tests;
