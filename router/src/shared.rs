//! What every connection of one router shares ([`Shared`]): the log, the
//! acks, the clock, its replica, the SQLite worker pools, the write order and
//! key ranges; queueing records on the log and waiting for them to be
//! durable and applied. Ack-mode waits are in `ack_wait.rs`, the status view
//! in `status.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replica::ReplicaState;
use wal_bus::{AckBoard, HlcClock, Log, Offset, Record, RecordBody};

use crate::config::{ReplicationConfig, RouterConfig};
use crate::db::DbPool;
use crate::error::Result;

/// One router's shared state.
pub struct Shared {
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
    /// Reads of the router's own replica (describes, catalog, COPY TO).
    pub readers: DbPool,
    /// Where a query's read goes among the node's replicas.
    pub balance: crate::balance::Balancer,
    /// Authentication for new connections (`[router.auth]`).
    pub startup: Arc<crate::auth::Startup>,
    /// One permit per open client connection (`max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// This router's queued-but-maybe-unapplied writes and row locks.
    pub order: crate::write_order::WriteOrder,
    /// Generated-key ranges reserved for this router.
    pub keys: crate::keys::Keys,
    /// Statements over `router.slow_query_ms`.
    pub slow: crate::slow_query::SlowLog,
    /// Under a sharded placement, a speculation connection per replica of
    /// the node (by index in `all_replicas`), opened when first needed and
    /// used only inside speculation jobs (see `placement`).
    pub spec_conns: Vec<std::sync::Mutex<Option<rusqlite::Connection>>>,
    /// Routers of other nodes, for shard groups with no replica here.
    pub peers: crate::placement::peers::Peers,
    /// The runtime, for speculation jobs that wait on a peer.
    pub runtime: tokio::runtime::Handle,
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

/// A record queued on the log by [`Shared::enqueue`].
pub struct Queued {
    hlc: wal_bus::Hlc,
    durable: wal_bus::AppendFuture,
}

/// What [`Shared::new`] needs.
pub struct SharedOptions {
    /// Origin id written into records (`r1`, `r2`, …).
    pub name: String,
    pub log: Arc<dyn Log>,
    pub acks: Arc<AckBoard>,
    pub clock: Arc<HlcClock>,
    /// The replica this router reads from and speculates on.
    pub replica: Arc<ReplicaState>,
    /// Every replica of the node, for status and sync waits.
    pub all_replicas: Vec<Arc<ReplicaState>>,
    pub replication: ReplicationConfig,
    pub config: RouterConfig,
}

impl Shared {
    pub fn new(options: SharedOptions) -> Result<Shared> {
        let SharedOptions {
            name,
            log,
            acks,
            clock,
            replica,
            all_replicas,
            replication,
            config,
        } = options;
        let writer = DbPool::start(
            &format!("{name}-spec"),
            &replica.path,
            1,
            crate::db::open_writer,
            Some(crate::placement::speculation_gates(&replica, &all_replicas)),
        )?;
        let readers = DbPool::start(
            &format!("{name}-read"),
            &replica.path,
            config.read_threads,
            crate::db::open_reader,
            None,
        )?;
        let mut targets = Vec::new();
        let mut home = 0;
        for r in &all_replicas {
            let pool = if Arc::ptr_eq(r, &replica) {
                home = targets.len();
                readers.clone()
            } else {
                // Other replicas serve balanced reads and, under a sharded
                // placement, their groups' reads.
                DbPool::start(
                    &format!("{name}-read-{}", r.name),
                    &r.path,
                    config.read_threads,
                    crate::db::open_reader,
                    None,
                )?
            };
            targets.push((r.clone(), pool));
        }
        if targets.is_empty() {
            targets.push((replica.clone(), readers.clone()));
        }
        let balance = crate::balance::Balancer::new(&name, targets, home, config.read_balance);
        let startup = crate::auth::Startup::from_config(&config.auth)?;
        let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        let slow = crate::slow_query::SlowLog::new(
            config.slow_query_ms,
            config.slow_query_params,
            config.slow_query_keep,
            &name,
            &replica.name,
        );
        let spec_conns = all_replicas.iter().map(|_| Default::default()).collect();
        let peers = crate::placement::peers::Peers::new(&config);
        Ok(Shared {
            peers,
            runtime: tokio::runtime::Handle::current(),
            spec_conns,
            slow,
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
            balance,
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
        self.enqueue_then(session, body, |_| replay)
    }

    /// As `enqueue`, with the overlay's replay made from the body once it
    /// is encoded, so a transaction's rows are not copied (a large one's
    /// rows are most of the router's memory while it is in flight).
    pub fn enqueue_then(
        &self,
        session: u64,
        body: RecordBody,
        replay: impl FnOnce(RecordBody) -> Option<crate::write_order::Replay>,
    ) -> Result<Queued> {
        self.enqueue_keyed(session, body, None, replay)
    }

    /// As `enqueue_then`, the record carrying the transaction's
    /// idempotency key when it has one.
    pub fn enqueue_keyed(
        &self,
        session: u64,
        body: RecordBody,
        idempotency: Option<wal_bus::Idempotency>,
        replay: impl FnOnce(RecordBody) -> Option<crate::write_order::Replay>,
    ) -> Result<Queued> {
        let hlc = self.clock.now()?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{session:x}-{seq}", self.name);
        let mut record = Record::new(id, &self.name, hlc, body);
        record.idempotency = idempotency;
        let durable = self.log.enqueue(record.encode())?;
        if let Some(replay) = replay(record.body) {
            self.order.push(hlc, replay);
        }
        Ok(Queued { hlc, durable })
    }

    /// This router's queued records its replica has not applied yet, in log
    /// order (exact while the caller holds the replica's write gate).
    pub fn overlay(&self) -> Vec<crate::write_order::Replay> {
        let applied = self.replica.applied_hlc(&self.name);
        self.order.prune(self.prune_hlc());
        self.order.unapplied_after(applied)
    }

    /// The newest of this router's records that every replica it
    /// speculates on has applied: the overlay keeps everything after it.
    /// Under a sharded placement a group's replica may be behind the
    /// router's own, and its speculation must still replay what it lacks.
    fn prune_hlc(&self) -> Option<wal_bus::Hlc> {
        let own = self.replica.applied_hlc(&self.name);
        let (_, placement) = self.replica.placement();
        if !placement.is_sharded() {
            return own;
        }
        let groups =
            crate::placement::group_replicas(&placement, &self.replica, &self.all_replicas);
        let mut min = own?;
        for i in groups.into_iter().flatten() {
            min = min.min(self.all_replicas[i].applied_hlc(&self.name)?);
        }
        Some(min)
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
        self.order.prune(self.prune_hlc());
        if self
            .order
            .pending_after(self.replica.applied_hlc(&self.name))
            >= MAX_OVERLAY
        {
            let started = Instant::now();
            self.wait_applied(self.replica.applied() + 1).await?;
            metrics::histogram!("tributary_router_pipeline_wait_seconds", "router" => self.name.clone())
                .record(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Whether the placement in force has a shard group with no replica in
    /// this process (its statements go to a peer).
    pub fn has_remote_groups(&self) -> bool {
        let (_, placement) = self.replica.placement();
        placement.is_sharded()
            && crate::placement::group_replicas(&placement, &self.replica, &self.all_replicas)
                .iter()
                .any(Option::is_none)
    }

    /// Under a sharded placement, waits until the replica speculating for
    /// each group has applied everything before `target` and everything
    /// this router's replica has (so all of them apply the same placement).
    pub async fn wait_groups_applied(&self, target: Offset) -> Result<()> {
        let (_, placement) = self.replica.placement();
        if !placement.is_sharded() {
            return Ok(());
        }
        let target = target.max(self.replica.applied());
        let timeout = Duration::from_millis(self.config.read_timeout_ms);
        let groups =
            crate::placement::group_replicas(&placement, &self.replica, &self.all_replicas);
        for i in groups.into_iter().flatten() {
            self.all_replicas[i].wait_applied(target, timeout).await?;
        }
        Ok(())
    }

    /// Waits until this router's replica has applied everything before
    /// `target` (within `read_timeout_ms`).
    pub async fn wait_applied(&self, target: Offset) -> Result<()> {
        let timeout = Duration::from_millis(self.config.read_timeout_ms);
        Ok(self.replica.wait_applied(target, timeout).await?)
    }
}
