//! The live state of one replica that routers, status and start-up read:
//! how far it has applied (and waiting for that), why it stopped, the
//! policy in force, and its write gate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use resolver::Policy;
use wal_bus::{Hlc, Offset};

use crate::error::{Error, Result};
use crate::gate::WriteGate;

/// Live state of one replica, shared with routers and status.
#[derive(Debug)]
pub struct ReplicaState {
    pub name: String,
    pub path: PathBuf,
    pub(crate) applied: AtomicU64,
    /// Woken whenever `applied` moves or the loop stops (see [`Self::wait_applied`]).
    pub(crate) progress: tokio::sync::watch::Sender<()>,
    /// Why the apply loop stopped, if it did.
    pub(crate) stopped: Mutex<Option<String>>,
    /// The conflict policy in force at the applied offset, and its version.
    pub(crate) policy: Mutex<(u64, Arc<Policy>)>,
    /// The table placement in force at the applied offset, and its version.
    pub(crate) placement: Mutex<(u64, Arc<wal_bus::Placement>)>,
    /// Log entries skipped because they were not Tributary records.
    pub(crate) skipped: AtomicU64,
    /// Held by whoever writes to the file in this process (the applier, a
    /// router's speculation). SQLite's own busy handler sleeps 1, 2, 5 … ms
    /// between retries; waiting on a mutex wakes the next writer at once.
    pub(crate) write_gate: Arc<WriteGate>,
    /// Per origin, the HLC of the newest of its records this replica has
    /// applied (or consumed). Updated before the write gate is released, so
    /// whoever holds the gate sees it agree with the file. One origin's
    /// records reach the log in HLC order (its router queues them that
    /// way), so "applied" for any of them is `hlc <= this`.
    pub(crate) origin_hlc: Mutex<HashMap<String, Hlc>>,
    /// Apply holds (see `hold.rs`).
    pub(crate) holds: Mutex<crate::hold::Holds>,
    /// Woken whenever a hold is taken, moved or released.
    pub(crate) hold_changed: tokio::sync::watch::Sender<()>,
}

impl ReplicaState {
    /// The HLC of the newest record from `origin` applied here, if any
    /// (exact while the caller holds the write gate).
    pub fn applied_hlc(&self, origin: &str) -> Option<Hlc> {
        self.origin_hlc
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .copied()
    }

    /// Offset of the next record this replica will apply.
    pub fn applied(&self) -> Offset {
        self.applied.load(Ordering::Acquire)
    }

    /// Waits until this replica has applied everything before `target`:
    /// the one way any caller (reads, the overlay, start-up) waits for a
    /// local replica. Fails at once if the apply loop has stopped.
    pub async fn wait_applied(&self, target: Offset, timeout: std::time::Duration) -> Result<()> {
        let stopped = |reason| Error::Stopped {
            replica: self.name.clone(),
            reason,
        };
        // A stopped replica serves nothing, even what it had applied.
        if let Some(reason) = self.stopped() {
            return Err(stopped(reason));
        }
        if self.applied() >= target {
            return Ok(());
        }
        let mut rx = self.progress.subscribe();
        let wait = async {
            loop {
                if let Some(reason) = self.stopped() {
                    return Err(stopped(reason));
                }
                if self.applied() >= target {
                    return Ok(());
                }
                // The sender lives as long as `self`.
                let _ = rx.changed().await;
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(Error::WaitTimeout {
                replica: self.name.clone(),
                target,
                applied: self.applied(),
                waited_ms: timeout.as_millis() as u64,
            }),
        }
    }

    /// Publishes a new applied offset to waiters.
    pub(crate) fn advance(&self, applied: Offset) {
        self.applied.store(applied, Ordering::Release);
        self.progress.send_replace(());
    }

    /// Records why the apply loop stopped and wakes every waiter.
    pub(crate) fn stop(&self, reason: String) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.progress.send_replace(());
    }

    /// The policy version in force and the policy.
    pub fn policy(&self) -> (u64, Arc<Policy>) {
        self.policy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The placement version in force and the placement.
    pub fn placement(&self) -> (u64, Arc<wal_bus::Placement>) {
        self.placement
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Log entries skipped as foreign (not Tributary records).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The in-process lock around write transactions on this replica's file.
    pub fn write_gate(&self) -> Arc<WriteGate> {
        self.write_gate.clone()
    }

    /// `Some(reason)` once the apply loop has stopped on an error.
    pub fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
