//! What every connection of one router shares: the log, the acks, the clock,
//! its replica and the SQLite worker pools; appending records and waiting for
//! the ack mode and read consistency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replica::ReplicaState;
use wal_bus::{AckBoard, HlcClock, Log, Offset, Record, RecordBody};

use crate::config::{AckMode, OnAckTimeout, ReplicationConfig, RouterConfig};
use crate::db::DbPool;
use crate::error::{Error, Result};

/// One router's shared state.
pub struct RouterCore {
    /// Origin id written into records (`r1`, `r2`, …).
    pub name: String,
    pub log: Arc<dyn Log>,
    pub acks: Arc<AckBoard>,
    pub clock: Arc<HlcClock>,
    /// The replica this router reads from and speculates on.
    pub replica: Arc<ReplicaState>,
    /// Every replica of the node, for status.
    pub all_replicas: Vec<Arc<ReplicaState>>,
    pub replication: ReplicationConfig,
    pub config: RouterConfig,
    pub writer: DbPool,
    pub readers: DbPool,
    /// Authentication for new connections (`[router.auth]`).
    pub startup: Arc<crate::auth::Startup>,
    /// One permit per open client connection (`max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// This router's queued-but-maybe-unapplied writes and row locks.
    pub order: crate::write_order::WriteOrder,
    /// Generated-key ranges reserved for this router.
    pub keys: crate::keys::Keys,
    /// Set when an append failed: the overlay may be missing or holding a
    /// record, so the next write first waits for the replica to reach the
    /// log end (which settles it either way).
    resync: std::sync::atomic::AtomicBool,
    seq: AtomicU64,
    next_session: AtomicU64,
}

/// Unapplied records a router keeps in its overlay before a write waits for
/// its replica to apply some: each speculation replays all of them while
/// holding the replica's write gate, so a long overlay slows the applier.
/// pgbench w_update / w_insert, 8 clients, async, release: 2,337 / 2,510 TPS
/// with 64, 2,407 / 2,876 with 16 (BENCHMARKS.md).
pub const MAX_OVERLAY: usize = 16;

/// A record queued on the log by [`RouterCore::enqueue`].
pub struct Queued {
    hlc: wal_bus::Hlc,
    durable: wal_bus::AppendFuture,
}

/// One row of `tributary_replicas` / `tributary status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ReplicaStatus {
    pub name: String,
    pub path: String,
    pub applied_offset: u64,
    pub log_end: u64,
    pub lag_records: u64,
    pub lag_ms: u64,
    pub state: String,
    /// Log entries skipped because they were not Tributary records.
    pub skipped_entries: u64,
    /// `healthy`, or `unhealthy` while left out of sync waits.
    pub health: String,
    /// Wall-clock ms of the replica's last ack (0: none yet).
    pub last_ack_ms: u64,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RouterCore {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        log: Arc<dyn Log>,
        acks: Arc<AckBoard>,
        clock: Arc<HlcClock>,
        replica: Arc<ReplicaState>,
        all_replicas: Vec<Arc<ReplicaState>>,
        replication: ReplicationConfig,
        config: RouterConfig,
    ) -> Result<RouterCore> {
        let writer = DbPool::start(
            &format!("{name}-spec"),
            &replica.path,
            1,
            crate::db::open_writer,
            Some(replica.write_gate()),
        )?;
        let readers = DbPool::start(
            &format!("{name}-read"),
            &replica.path,
            config.read_threads,
            crate::db::open_reader,
            None,
        )?;
        let startup = crate::auth::Startup::from_config(&config.auth)
            .map_err(|reason| Error::Internal(format!("router.auth: {reason}")))?;
        let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        Ok(RouterCore {
            startup: Arc::new(startup),
            connections,
            name,
            log,
            acks,
            clock,
            replica,
            all_replicas,
            replication,
            config,
            writer,
            readers,
            order: crate::write_order::WriteOrder::default(),
            keys: crate::keys::Keys::default(),
            resync: std::sync::atomic::AtomicBool::new(false),
            seq: AtomicU64::new(0),
            next_session: AtomicU64::new(1),
        })
    }

    pub fn new_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    fn check_replica(&self) -> Result<()> {
        match self.replica.stopped() {
            Some(reason) => Err(Error::ReplicaStopped {
                replica: self.replica.name.clone(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Queues a record made here on the log and, with `replay`, in the
    /// overlay. Must run inside a job on the speculation pool (`writer`):
    /// those jobs run one at a time, which makes queue order, HLC order,
    /// overlay order and log order one order.
    pub fn enqueue(
        &self,
        session: u64,
        body: RecordBody,
        replay: Option<crate::write_order::Replay>,
    ) -> Result<Queued> {
        let hlc = self.clock.now()?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            id: format!("{}-{session:x}-{seq}", self.name),
            origin: self.name.clone(),
            hlc,
            ts_ms: hlc.wall_ms(),
            body,
        };
        let durable = self.log.enqueue(record.encode())?;
        if let Some(replay) = replay {
            self.order.push(hlc, replay);
        }
        Ok(Queued { hlc, durable })
    }

    /// Waits for a queued record to be durable; returns the log position
    /// after it (the offset a replica must reach to have applied it).
    pub async fn durable(&self, queued: Queued) -> Result<Offset> {
        let started = Instant::now();
        match queued.durable.await {
            Ok(offset) => {
                metrics::histogram!("tributary_router_append_seconds", "router" => self.name.clone())
                    .record(started.elapsed().as_secs_f64());
                Ok(offset + 1)
            }
            Err(e) => {
                // The record may or may not be in the log (a broker timeout
                // is ambiguous): drop it from the overlay and let the next
                // write wait for the replica to reach the log end.
                self.order.remove(queued.hlc);
                self.resync.store(true, Ordering::Release);
                Err(e.into())
            }
        }
    }

    /// Before a write: waits while the overlay is full, and after a failed
    /// append until the replica has reached the log end.
    pub async fn ready_to_write(&self) -> Result<()> {
        if self.resync.swap(false, Ordering::AcqRel) {
            tracing::warn!(router = %self.name, "an append failed; waiting for the replica to reach the log end");
            self.order.clear_queued();
            if let Err(e) = self.wait_applied(self.log.end()).await {
                self.resync.store(true, Ordering::Release);
                return Err(e);
            }
        }
        if self.order.pending(self.replica.applied_hlc(&self.name)) >= MAX_OVERLAY {
            let started = Instant::now();
            self.wait_applied(self.replica.applied() + 1).await?;
            metrics::histogram!("tributary_router_pipeline_wait_seconds", "router" => self.name.clone())
                .record(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

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
            let now = now_ms();
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

    /// Waits until this router's replica has applied everything before `target`.
    pub async fn wait_applied(&self, target: Offset) -> Result<()> {
        self.check_replica()?;
        if self.replica.applied() >= target {
            return Ok(());
        }
        let name = self.replica.name.clone();
        let timeout = Duration::from_millis(self.config.read_timeout_ms);
        let wait = self
            .acks
            .wait_until(|s| s.replicas.get(&name).is_some_and(|a| a.applied >= target));
        if tokio::time::timeout(timeout, wait).await.is_ok() {
            return Ok(());
        }
        self.check_replica()?;
        Err(Error::ReadTimeout {
            replica: name,
            target,
            applied: self.replica.applied(),
            waited_ms: self.config.read_timeout_ms,
        })
    }

    /// Status of every replica of this node.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let end = self.log.end();
        let now = now_ms();
        self.acks.rejoin_caught_up(end);
        let unhealthy = self.acks.unhealthy();
        let acks = self.acks.snapshot();
        self.all_replicas
            .iter()
            .map(|r| {
                let applied = r.applied();
                let lag_ms = if applied >= end {
                    0
                } else {
                    self.log
                        .appended_at_ms(applied)
                        .map_or(0, |t| now.saturating_sub(t))
                };
                ReplicaStatus {
                    name: r.name.clone(),
                    path: r.path.display().to_string(),
                    applied_offset: applied,
                    log_end: end,
                    lag_records: end.saturating_sub(applied),
                    lag_ms,
                    state: r
                        .stopped()
                        .map_or_else(|| "applying".to_owned(), |e| format!("stopped: {e}")),
                    skipped_entries: r.skipped(),
                    health: match unhealthy.get(&r.name) {
                        Some(since) => format!("unhealthy for {} ms", now.saturating_sub(*since)),
                        None => "healthy".to_owned(),
                    },
                    last_ack_ms: acks.replicas.get(&r.name).map_or(0, |a| a.at_ms),
                }
            })
            .collect()
    }
}
