//! Replica acks: how far each replica has applied the log.
//!
//! A replica publishes its applied offset after each commit; routers wait on
//! the board for the ack mode's condition (k replicas, or all of them, at or
//! past an offset). In one process the board is in memory; a distributed log
//! backend carries the same acks between processes.

use crate::wall::now_ms;
use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::log::Offset;

/// One replica's last ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAck {
    /// Offset of the next record the replica will apply.
    pub applied: Offset,
    /// Wall-clock ms of the ack.
    pub at_ms: u64,
}

/// Every replica's last ack, by replica name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckSnapshot {
    pub replicas: BTreeMap<String, ReplicaAck>,
}

impl AckSnapshot {
    /// How many replicas have applied everything before `target`.
    pub fn count_at_least(&self, target: Offset) -> usize {
        self.replicas
            .values()
            .filter(|a| a.applied >= target)
            .count()
    }
}

/// Shared board of replica acks.
#[derive(Debug)]
pub struct AckBoard {
    tx: watch::Sender<AckSnapshot>,
    /// Records rejected whole at apply (first-writer-wins), by offset; every
    /// replica rejects the same ones, so one replica's word is enough.
    rejected: Mutex<BTreeMap<Offset, String>>,
    /// New rejections, for forwarding to other processes.
    rejections: tokio::sync::broadcast::Sender<(Offset, String)>,
    /// Replicas left out of sync waits for being silent, with since when (ms).
    unhealthy: Mutex<BTreeMap<String, u64>>,
}

/// Rejections remembered for routers still waiting on them.
const REJECTIONS_KEPT: usize = 100_000;

impl Default for AckBoard {
    fn default() -> Self {
        AckBoard {
            tx: watch::channel(AckSnapshot::default()).0,
            rejected: Mutex::new(BTreeMap::new()),
            rejections: tokio::sync::broadcast::channel(1024).0,
            unhealthy: Mutex::new(BTreeMap::new()),
        }
    }
}

impl AckBoard {
    /// Records that `replica` has applied everything before `applied`.
    pub fn publish(&self, replica: &str, applied: Offset) {
        self.tx.send_modify(|snap| {
            let ack = ReplicaAck {
                applied,
                at_ms: now_ms(),
            };
            match snap.replicas.get_mut(replica) {
                Some(a) => *a = ack,
                None => {
                    snap.replicas.insert(replica.to_owned(), ack);
                }
            }
        });
        metrics::gauge!("tributary_replica_applied_offset", "replica" => replica.to_owned())
            .set(applied as f64);
        metrics::gauge!("tributary_replica_last_ack_ms", "replica" => replica.to_owned())
            .set(now_ms() as f64);
    }

    /// Records that the record at `offset` was rejected (call before the ack).
    pub fn reject(&self, offset: Offset, reason: String) {
        let mut r = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        if r.insert(offset, reason.clone()).is_none() {
            let _ = self.rejections.send((offset, reason));
        }
        while r.len() > REJECTIONS_KEPT {
            r.pop_first();
        }
    }

    /// Why the record at `offset` was rejected, if it was.
    pub fn rejection(&self, offset: Offset) -> Option<String> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&offset)
            .cloned()
    }

    /// Every change of the board (for forwarding local acks elsewhere).
    pub fn subscribe(&self) -> watch::Receiver<AckSnapshot> {
        self.tx.subscribe()
    }

    /// New rejections as they are recorded.
    pub fn subscribe_rejections(&self) -> tokio::sync::broadcast::Receiver<(Offset, String)> {
        self.rejections.subscribe()
    }

    pub fn snapshot(&self) -> AckSnapshot {
        self.tx.borrow().clone()
    }

    /// Number of replicas known to the board.
    pub fn replica_count(&self) -> usize {
        self.tx.borrow().replicas.len()
    }

    /// Leaves `replica` out of sync waits until it catches up; true if it
    /// was healthy until now.
    pub fn mark_unhealthy(&self, replica: &str) -> bool {
        let mut u = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        let new = !u.contains_key(replica);
        if new {
            u.insert(replica.to_owned(), now_ms());
            metrics::gauge!("tributary_replica_healthy", "replica" => replica.to_owned()).set(0.0);
        }
        new
    }

    /// Unhealthy replicas and since when (ms since the epoch).
    pub fn unhealthy(&self) -> BTreeMap<String, u64> {
        self.unhealthy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Brings back every unhealthy replica that has applied up to
    /// `log_end`; returns their names.
    pub fn rejoin_caught_up(&self, log_end: Offset) -> Vec<String> {
        let mut u = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        // Called on every semi-sync and sync write: nothing to do, no copy.
        if u.is_empty() {
            return Vec::new();
        }
        let back: Vec<String> = {
            let snap = self.tx.borrow();
            u.keys()
                .filter(|name| {
                    snap.replicas
                        .get(*name)
                        .is_some_and(|a| a.applied >= log_end)
                })
                .cloned()
                .collect()
        };
        for name in &back {
            u.remove(name);
            metrics::gauge!("tributary_replica_healthy", "replica" => name.clone()).set(1.0);
        }
        back
    }

    /// Resolves once `cond` holds for the board (callers bound it with a timeout).
    pub async fn wait_until(&self, mut cond: impl FnMut(&AckSnapshot) -> bool) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|snap| cond(snap)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_k_replicas() {
        let board = Arc::new(AckBoard::default());
        board.publish("a", 0);
        board.publish("b", 0);
        let b2 = board.clone();
        let waiter = tokio::spawn(async move { b2.wait_until(|s| s.count_at_least(5) >= 2).await });
        board.publish("a", 5);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        board.publish("b", 7);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .ok()
            .and_then(|r| r.ok())
            .expect("waiter finished");
        assert_eq!(board.snapshot().count_at_least(5), 2);
    }
}
