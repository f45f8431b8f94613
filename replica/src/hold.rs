//! Apply holds: stopping a replica's applier at an exact log offset, so a
//! reader (`tributary verify`) can open a read transaction that sees the
//! file exactly as of that offset on every replica.
//!
//! A hold at N lets the applier apply every record before N and nothing
//! after: it applies a batch's prefix below the lowest hold and keeps the
//! rest until the hold moves or is released. A hold can never take back
//! what is applied or being applied, so asking for N behind the replica
//! holds it where it will be after its current batch and says where.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wal_bus::{LogEntry, Offset};

use crate::applier::ReplicaState;
use crate::error::{Error, Result};

/// A hold lapses after this long even if its holder never releases it (a
/// client that hangs between verify's steps must not stop apply for good).
pub const HOLD_LAPSES_AFTER: Duration = Duration::from_secs(600);

/// The holds on one replica and how far its applier has claimed records.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    next_id: u64,
    /// Offset and deadline of each hold.
    by_id: BTreeMap<u64, (Offset, Instant)>,
    /// The applied offset the applier will reach once its current batch
    /// commits (equal to the applied offset while it is idle).
    claimed: Offset,
    /// The applier is waiting for a hold to move: it has a record at or
    /// past the lowest hold and may apply nothing more. Cleared by every
    /// change of the holds until the applier looks again.
    parked: bool,
}

impl Holds {
    pub(crate) fn starting_at(applied: Offset) -> Holds {
        Holds {
            claimed: applied,
            ..Holds::default()
        }
    }

    /// The lowest hold that has not lapsed.
    fn lowest(&self) -> Option<Offset> {
        let now = Instant::now();
        self.by_id
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(at, _)| *at)
            .min()
    }

    /// When the next hold lapses.
    fn next_lapse(&self) -> Option<Instant> {
        self.by_id.values().map(|(_, until)| *until).min()
    }
}

/// Keeps a replica's applier from applying records at or after
/// [`ApplyHold::at`]; released when dropped.
#[derive(Debug)]
pub struct ApplyHold {
    state: Arc<ReplicaState>,
    id: u64,
    at: Offset,
    lapse: Duration,
}

impl ReplicaState {
    fn holds(&self) -> std::sync::MutexGuard<'_, Holds> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds the applier at `at`, or where its current batch ends if that
    /// is later; [`ApplyHold::at`] says which.
    pub fn hold(self: &Arc<Self>, at: Offset) -> ApplyHold {
        self.hold_for(at, HOLD_LAPSES_AFTER)
    }

    /// As [`Self::hold`], lapsing after `lapse` (renewed by each move).
    pub fn hold_for(self: &Arc<Self>, at: Offset, lapse: Duration) -> ApplyHold {
        let mut h = self.holds();
        let at = at.max(h.claimed);
        let id = h.next_id;
        h.next_id += 1;
        h.by_id.insert(id, (at, Instant::now() + lapse));
        h.parked = false;
        drop(h);
        self.hold_changed.send_replace(());
        ApplyHold {
            state: self.clone(),
            id,
            at,
            lapse,
        }
    }

    /// When the applier, parked, must look again because a hold lapses.
    pub(crate) fn next_lapse(&self) -> Option<Instant> {
        self.holds().next_lapse()
    }

    /// How many of `batch`'s entries the applier may apply now; claims them.
    pub(crate) fn claim(&self, batch: &[LogEntry]) -> usize {
        let mut h = self.holds();
        let n = match h.lowest() {
            None => batch.len(),
            Some(limit) => batch.iter().take_while(|e| e.offset < limit).count(),
        };
        if let Some(last) = batch[..n].last() {
            h.claimed = last.offset + 1;
        }
        h.parked = n < batch.len();
        n
    }
}

impl ApplyHold {
    /// The offset the replica stops at.
    pub fn at(&self) -> Offset {
        self.at
    }

    /// Moves the hold to `at`, or to where the replica already is if that
    /// is later; returns the offset it now stops at.
    pub fn move_to(&mut self, at: Offset) -> Offset {
        let mut h = self.state.holds();
        let at = at.max(h.claimed);
        h.by_id.insert(self.id, (at, Instant::now() + self.lapse));
        h.parked = false;
        drop(h);
        self.at = at;
        self.state.hold_changed.send_replace(());
        at
    }

    /// Waits until the replica has applied everything it may under this
    /// hold: up to `at`, or up to a gap in the log's offsets just before it.
    pub async fn reached(&self, timeout: Duration) -> Result<Offset> {
        let state = &self.state;
        let mut rx = state.progress.subscribe();
        let wait = async {
            loop {
                if let Some(reason) = state.stopped() {
                    return Err(Error::Stopped {
                        replica: state.name.clone(),
                        reason,
                    });
                }
                let applied = state.applied();
                let parked = {
                    let h = state.holds();
                    h.parked && h.claimed == applied
                };
                if applied >= self.at || parked {
                    return Ok(applied);
                }
                let _ = rx.changed().await;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(Error::WaitTimeout {
                replica: state.name.clone(),
                target: self.at,
                applied: state.applied(),
                waited_ms: timeout.as_millis() as u64,
            }),
        }
    }
}

impl Drop for ApplyHold {
    fn drop(&mut self) {
        let mut h = self.state.holds();
        h.by_id.remove(&self.id);
        h.parked = false;
        drop(h);
        self.state.hold_changed.send_replace(());
    }
}
