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
    seq: AtomicU64,
    next_session: AtomicU64,
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
        Ok(RouterCore {
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

    /// Appends a record made here; returns the log position after it (the
    /// offset a replica must reach to have applied it).
    pub async fn append(&self, session: u64, body: RecordBody) -> Result<Offset> {
        let hlc = self.clock.now()?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            id: format!("{}-{session:x}-{seq}", self.name),
            origin: self.name.clone(),
            hlc,
            ts_ms: hlc.wall_ms(),
            body,
        };
        let started = Instant::now();
        let offset = self.log.append(record.encode()).await?;
        metrics::histogram!("tributary_router_append_seconds", "router" => self.name.clone())
            .record(started.elapsed().as_secs_f64());
        Ok(offset + 1)
    }

    /// Waits for the ack mode's condition on `target`; a NOTICE text is
    /// returned when the wait timed out and the config says degrade.
    pub async fn await_acks(&self, target: Offset, mode: AckMode) -> Result<Option<String>> {
        // Sync waits for every replica known to the board: this node's and,
        // on a shared log, those whose acks arrive from other nodes.
        let local = self.all_replicas.len();
        let needed = match mode {
            AckMode::Async => return Ok(None),
            AckMode::SemiSync => self.replication.semi_sync_k,
            AckMode::Sync => local.max(self.acks.replica_count()),
        };
        let timeout = Duration::from_millis(self.replication.ack_timeout_ms);
        let wait = self.acks.wait_until(|s| match mode {
            AckMode::Sync => s.replicas.len() >= local && s.all_at_least(target),
            _ => s.count_at_least(target) >= needed,
        });
        if tokio::time::timeout(timeout, wait).await.is_ok() {
            return Ok(None);
        }
        let acked = self.acks.snapshot().count_at_least(target);
        let err = Error::AckTimeout {
            offset: target - 1,
            mode: mode.as_str(),
            acked,
            needed,
            waited_ms: self.replication.ack_timeout_ms,
        };
        metrics::counter!("tributary_router_ack_timeouts_total", "mode" => mode.as_str())
            .increment(1);
        match self.replication.on_ack_timeout {
            OnAckTimeout::Error => Err(err),
            OnAckTimeout::Degrade => Ok(Some(format!("{err}; replied as async"))),
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
                }
            })
            .collect()
    }
}
