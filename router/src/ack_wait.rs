//! Waiting for a write's ack mode: semi-sync (k replicas applied it) and
//! sync (every healthy replica did), with silent replicas left out of the
//! wait until they catch up, and the configured timeout behaviour.

use std::time::{Duration, Instant};

use wal_bus::Offset;

use crate::config::{AckMode, OnAckTimeout};
use crate::error::{Error, Result};
use crate::shared::Shared;

impl Shared {
    /// Waits for the ack mode's condition on `target`; a NOTICE text is
    /// returned when the wait timed out and the config says degrade, or
    /// when a silent replica was left out of the wait.
    ///
    /// Sync waits for every healthy replica known to the board (this
    /// node's and, on a shared log, those acking from other nodes). A
    /// replica still behind `target` that has acked nothing for
    /// `replica_silent_ms` is marked unhealthy: this and later writes stop
    /// waiting for it until it has applied up to the log end again.
    pub async fn await_acks(&self, target: Offset, mode: AckMode) -> Result<Option<String>> {
        if mode == AckMode::Async {
            return Ok(None);
        }
        let local = self.all_replicas.len();
        let started = Instant::now();
        let timeout = Duration::from_millis(self.replication.ack_timeout_ms);
        let silent_ms = self.replication.replica_silent_ms;
        for name in self.acks.rejoin_caught_up(self.log.end()) {
            tracing::info!(replica = %name, "replica caught up; back in the sync wait set");
        }
        let mut skipped: Vec<String> = self.acks.unhealthy().into_keys().collect();
        loop {
            let unhealthy = self.acks.unhealthy();
            let needed = match mode {
                AckMode::SemiSync => self.replication.semi_sync_k,
                _ => local.max(self.acks.replica_count()) - unhealthy.len().min(local),
            };
            let cond = |s: &wal_bus::AckSnapshot| {
                let healthy = s
                    .replicas
                    .iter()
                    .filter(|(n, _)| !unhealthy.contains_key(*n));
                match mode {
                    AckMode::Sync => {
                        s.replicas.len() >= local
                            && healthy.clone().all(|(_, a)| a.applied >= target)
                    }
                    _ => healthy.filter(|(_, a)| a.applied >= target).count() >= needed,
                }
            };
            // Wake up at the silence threshold to look for silent replicas.
            let left = timeout.saturating_sub(started.elapsed());
            let step = left.min(Duration::from_millis(silent_ms.max(1)));
            if tokio::time::timeout(step, self.acks.wait_until(cond))
                .await
                .is_ok()
            {
                return Ok((!skipped.is_empty()).then(|| {
                    format!(
                        "replica(s) {} silent for over {silent_ms} ms: not waited for (they rejoin once caught up)",
                        skipped.join(", ")
                    )
                }));
            }
            if started.elapsed() >= timeout {
                let (applied, missing): (Vec<_>, Vec<_>) = self
                    .acks
                    .snapshot()
                    .replicas
                    .into_iter()
                    .filter(|(n, _)| !unhealthy.contains_key(n))
                    .partition(|(_, a)| a.applied >= target);
                let err = Error::AckTimeout {
                    offset: target - 1,
                    mode: mode.as_str(),
                    needed,
                    applied: applied.into_iter().map(|(n, _)| n).collect(),
                    missing: missing.into_iter().map(|(n, _)| n).collect(),
                    waited_ms: self.replication.ack_timeout_ms,
                };
                metrics::counter!("tributary_router_ack_timeouts_total", "mode" => mode.as_str())
                    .increment(1);
                return match self.replication.on_ack_timeout {
                    OnAckTimeout::Error => Err(err),
                    OnAckTimeout::Degrade => Ok(Some(format!("{err}; replied as async"))),
                };
            }
            let now = wal_bus::now_ms();
            for (name, ack) in self.acks.snapshot().replicas {
                if ack.applied < target
                    && now.saturating_sub(ack.at_ms) >= silent_ms
                    && self.acks.mark_unhealthy(&name)
                {
                    tracing::warn!(replica = %name, applied = ack.applied, target, silent_ms,
                        "replica silent; leaving the sync wait set until it catches up");
                    metrics::counter!("tributary_replica_marked_unhealthy_total", "replica" => name.clone())
                        .increment(1);
                    skipped.push(name);
                }
            }
        }
    }
}
