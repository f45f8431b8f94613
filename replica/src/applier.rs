//! The apply loop: one dedicated thread per replica tails the log and applies
//! batches of records, each batch in one SQLite transaction together with the
//! new applied offset, then publishes the ack.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use wal_bus::now_ms;

use resolver::Policy;
use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, Hlc, HlcClock, Log, LogEntry, Offset, Record};

use crate::apply::SchemaCache;
use crate::error::{Error, Result, SqliteContext};
use crate::gate::WriteGate;
use crate::meta::{
    applied_offset, bump_skipped, cluster_id, open_connection, set_applied_offset, set_cluster_id,
    skipped_count, stored_policy,
};
use crate::snapshot::Prepared;
pub use crate::state::ReplicaState;

mod records;

/// Records at least this large whose type is `txn` are applied change by
/// change as they are parsed, not decoded whole first: a decoded change
/// takes several times its JSON size, on every replica at once.
const STREAMED_RECORD_BYTES: usize = 1 << 20;

/// Apply transactions between passive checkpoints of the replica's WAL.
const COMMITS_PER_CHECKPOINT: u32 = 256;

/// A running replica: its state and its apply thread.
pub struct ReplicaHandle {
    pub state: Arc<ReplicaState>,
    thread: Option<JoinHandle<()>>,
}

/// How a record's row changes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Done,
    /// First-writer-wins (or a counter overflow) rejected the record; its
    /// effects are rolled back to the record's savepoint.
    Rejected,
}

impl ReplicaHandle {
    /// Waits for the apply thread to finish (after cancellation).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Everything the apply thread owns.
struct Applier {
    name: String,
    path: PathBuf,
    conn: Connection,
    cache: SchemaCache,
    clock: Option<Arc<HlcClock>>,
    policy: Arc<Policy>,
    policy_version: u64,
    /// The rows this replica keeps under the placement in force.
    filter: crate::placement::GroupFilter,
    placement_version: u64,
    state: Arc<ReplicaState>,
    acks: Arc<AckBoard>,
    /// Rejections of the batch being applied, published after its commit.
    rejections: Vec<(Offset, String)>,
    /// Foreign entries skipped in the batch being applied.
    skipped_in_batch: u64,
    /// Origin timestamp of the last record applied (for the lag metric).
    last_ts_ms: u64,
    /// Commits since the last checkpoint.
    commits: u32,
    /// Newest HLC per origin in the batch being applied.
    batch_origins: HashMap<String, Hlc>,
    /// Idempotency keys remembered since expired ones were last deleted.
    keys_since_prune: u32,
}

/// What [`spawn_applier`] needs.
pub struct ApplierOptions {
    /// The replica's name (in acks, status and metrics).
    pub name: String,
    /// Its SQLite file.
    pub path: PathBuf,
    pub log: Arc<dyn Log>,
    /// Where the applied offset is published after each commit.
    pub acks: Arc<AckBoard>,
    /// When given, observes every applied record's HLC so that writes
    /// accepted later on this node are stamped after everything it has seen.
    pub clock: Option<Arc<HlcClock>>,
    /// Stops the apply loop.
    pub cancel: CancellationToken,
    /// The runtime the apply thread waits for log batches on.
    pub runtime: Handle,
    /// Snapshot directory a new or damaged replica is rebuilt from.
    pub snapshots: Option<PathBuf>,
}

/// Opens the replica file and starts its apply thread.
pub fn spawn_applier(options: ApplierOptions) -> Result<ReplicaHandle> {
    let ApplierOptions {
        name,
        path,
        log,
        acks,
        clock,
        cancel,
        runtime: rt,
        snapshots,
    } = options;
    let (name, path, snapshots) = (name.as_str(), path.as_path(), snapshots.as_deref());
    let cluster = log.cluster_id();
    let prepared =
        crate::snapshot::prepare(name, path, snapshots, &cluster, log.start(), log.end())?;
    if let Prepared::Restored { offset, from } = &prepared {
        tracing::info!(replica = name, offset, snapshot = %from.display(), "replica rebuilt from snapshot; tailing the log");
    }
    let conn = open_connection(path)?;
    match cluster_id(&conn).ctx(path, "reading the cluster id")? {
        Some(found) if found != cluster => {
            return Err(Error::ForeignCluster {
                path: path.to_path_buf(),
                found,
                expected: cluster,
            });
        }
        Some(_) => {}
        None => set_cluster_id(&conn, &cluster).ctx(path, "storing the cluster id")?,
    }
    // The applier is the only connection that commits. SQLite's automatic
    // checkpoint would run inside COMMIT, holding the write gate the
    // router's speculation waits on (perf: ~12% of the apply thread), so the
    // applier checkpoints itself after releasing the gate.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .ctx(path, "turning off automatic checkpoints")?;
    let applied = applied_offset(&conn).ctx(path, "reading the applied offset")?;
    let end = log.end();
    if applied > end {
        return Err(Error::Config {
            key: "replica.path",
            reason: format!(
                "{} has applied up to offset {applied} but the log ends at {end}: it belongs to another log",
                path.display()
            ),
        });
    }
    let (policy_version, policy_text) =
        stored_policy(&conn).ctx(path, "reading the stored policy")?;
    let policy = Arc::new(if policy_text.is_empty() {
        Policy::default()
    } else {
        Policy::parse(&policy_text, "stored policy").map_err(|e| Error::Config {
            key: "policy",
            reason: format!(
                "the policy stored in {} does not parse: {e}",
                path.display()
            ),
        })?
    });
    let (placement_version, placement) =
        crate::placement::stored_placement(&conn).ctx(path, "reading the stored placement")?;
    let placement = Arc::new(placement);
    let filter = crate::placement::GroupFilter {
        group: placement.group_of(name),
        placement: placement.clone(),
    };
    let state = Arc::new(ReplicaState {
        name: name.to_owned(),
        path: path.to_path_buf(),
        applied: AtomicU64::new(applied),
        progress: tokio::sync::watch::channel(()).0,
        stopped: Mutex::new(None),
        policy: Mutex::new((policy_version, policy.clone())),
        placement: Mutex::new((placement_version, placement)),
        skipped: AtomicU64::new(skipped_count(&conn).ctx(path, "reading the skipped count")?),
        write_gate: Arc::new(WriteGate::default()),
        origin_hlc: Mutex::new(HashMap::new()),
        holds: Mutex::new(crate::hold::Holds::starting_at(applied)),
        hold_changed: tokio::sync::watch::channel(()).0,
    });
    acks.publish(name, applied);
    tracing::info!(replica = name, path = %path.display(), applied, log_end = end, "replica starting");
    let mut applier = Applier {
        name: name.to_owned(),
        path: path.to_path_buf(),
        conn,
        cache: SchemaCache::default(),
        clock,
        policy,
        policy_version,
        filter,
        placement_version,
        state: state.clone(),
        acks: acks.clone(),
        rejections: Vec::new(),
        skipped_in_batch: 0,
        last_ts_ms: 0,
        commits: 0,
        batch_origins: HashMap::new(),
        keys_since_prune: 0,
    };
    let thread_state = state.clone();
    let thread = std::thread::Builder::new()
        .name(format!("apply-{name}"))
        .spawn(move || {
            let end_of = log.clone();
            let mut sub = match wal_bus::tail(log, applied) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(replica = %applier.name, error = %e, "cannot tail the log");
                    thread_state.stop(e.to_string());
                    return;
                }
            };
            let mut catch_up = crate::progress::CatchUp::begin(&applier.name, applied, end_of.end());
            // Entries read but not yet applied because a hold stops short of them.
            let mut held_back: Vec<LogEntry> = Vec::new();
            loop {
                let mut holds = thread_state.hold_changed.subscribe();
                let next = if held_back.is_empty() {
                    rt.block_on(async {
                        tokio::select! {
                            _ = cancel.cancelled() => None,
                            b = sub.next_batch() => Some(b),
                        }
                    })
                } else {
                    Some(Ok(std::mem::take(&mut held_back)))
                };
                let result = match next {
                    None => break,
                    Some(Err(e)) => Err(Error::Log(e)),
                    Some(Ok(mut batch)) => {
                        let allowed = thread_state.claim(&batch);
                        if allowed < batch.len() {
                            held_back = batch.split_off(allowed);
                        }
                        if batch.is_empty() {
                            // Parked: tell hold waiters, then wait for the hold to move.
                            thread_state.progress.send_replace(());
                            let lapse = thread_state.next_lapse();
                            let moved = rt.block_on(async {
                                let lapsed = async {
                                    match lapse {
                                        Some(t) => tokio::time::sleep_until(t.into()).await,
                                        None => std::future::pending().await,
                                    }
                                };
                                tokio::select! {
                                    _ = cancel.cancelled() => false,
                                    _ = holds.changed() => true,
                                    _ = lapsed => true,
                                }
                            });
                            if !moved {
                                break;
                            }
                            continue;
                        }
                        applier.apply_batch(&batch)
                    }
                };
                match result {
                    Ok(new_applied) => {
                        thread_state.skipped.fetch_add(applier.skipped_in_batch, Ordering::Relaxed);
                        applier.skipped_in_batch = 0;
                        for (offset, reason) in applier.rejections.drain(..) {
                            applier.acks.reject(offset, reason);
                        }
                        thread_state.advance(new_applied);
                        acks.publish(&applier.name, new_applied);
                        metrics::gauge!("tributary_replica_lag_records", "replica" => applier.name.clone())
                            .set(end_of.end().saturating_sub(new_applied) as f64);
                        applier.maybe_checkpoint();
                        if let Some(c) = &mut catch_up
                            && c.update(new_applied)
                        {
                            catch_up = None;
                        }
                    }
                    Err(e) => {
                        applier.skipped_in_batch = 0;
                        tracing::error!(replica = %applier.name, error = %e, "replica stopped; fix the cause and restart the node");
                        thread_state.stop(e.to_string());
                        break;
                    }
                }
            }
            tracing::debug!(replica = %applier.name, "apply loop ended");
        })
        .map_err(|e| Error::Config {
            key: "replica",
            reason: format!("cannot start apply thread: {e}"),
        })?;
    Ok(ReplicaHandle {
        state,
        thread: Some(thread),
    })
}

impl Applier {
    /// Copies the WAL back into the database file every so many commits,
    /// outside the write gate (a passive checkpoint never blocks writers).
    fn maybe_checkpoint(&mut self) {
        self.commits += 1;
        if self.commits < COMMITS_PER_CHECKPOINT {
            return;
        }
        self.commits = 0;
        let started = Instant::now();
        let done: rusqlite::Result<(i64, i64, i64)> =
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
        match done {
            Ok((_, frames, copied)) => {
                metrics::histogram!("tributary_replica_checkpoint_seconds", "replica" => self.name.clone())
                    .record(started.elapsed().as_secs_f64());
                tracing::trace!(replica = %self.name, frames, copied, "checkpoint");
            }
            // Not fatal: the next one retries and the WAL keeps the data.
            Err(e) => tracing::warn!(replica = %self.name, error = %e, "checkpoint failed"),
        }
    }

    /// Applies a batch in one transaction; returns the new applied offset.
    fn apply_batch(&mut self, batch: &[LogEntry]) -> Result<Offset> {
        let Some(last) = batch.last() else {
            return applied_offset(&self.conn).ctx(&self.path, "reading the applied offset");
        };
        let gate = self.state.write_gate.clone();
        let _held = gate.lock();
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .ctx(&self.path, "beginning an apply transaction")?;
        self.rejections.clear();
        self.batch_origins.clear();
        let policy_before = (self.policy_version, self.policy.clone());
        let placement_before = (self.placement_version, self.filter.clone());
        if let Err(e) = self.apply_entries(batch) {
            let _ = self.conn.execute_batch("ROLLBACK");
            (self.policy_version, self.policy) = policy_before;
            (self.placement_version, self.filter) = placement_before;
            self.cache.clear();
            return Err(e);
        }
        let new_applied = last.offset + 1;
        let stored = set_applied_offset(&self.conn, new_applied)
            .and_then(|()| self.conn.execute_batch("COMMIT"))
            .ctx(&self.path, "committing an apply transaction");
        if let Err(e) = stored {
            let _ = self.conn.execute_batch("ROLLBACK");
            (self.policy_version, self.policy) = policy_before;
            (self.placement_version, self.filter) = placement_before;
            return Err(e);
        }
        *self.state.policy.lock().unwrap_or_else(|p| p.into_inner()) =
            (self.policy_version, self.policy.clone());
        *self
            .state
            .placement
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            (self.placement_version, self.filter.placement.clone());
        // Published while the gate is held: a speculation (which holds it)
        // sees these agree with the file it reads.
        {
            let mut origins = self
                .state
                .origin_hlc
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (origin, hlc) in self.batch_origins.drain() {
                let cur = origins.entry(origin).or_insert(hlc);
                *cur = (*cur).max(hlc);
            }
        }
        self.state.advance(new_applied);
        metrics::counter!("tributary_replica_records_applied_total", "replica" => self.name.clone())
            .increment(batch.len() as u64);
        // From the origin's timestamp (taken just before its append) to this commit.
        let lag = now_ms().saturating_sub(self.last_ts_ms);
        metrics::histogram!("tributary_replica_apply_lag_seconds", "replica" => self.name.clone())
            .record(lag as f64 / 1000.0);
        Ok(new_applied)
    }

    fn apply_entries(&mut self, batch: &[LogEntry]) -> Result<()> {
        for entry in batch {
            if entry.payload.len() >= STREAMED_RECORD_BYTES
                && let Ok(Some(head)) = wal_bus::txn_head(&entry.payload)
            {
                self.note_origin(&head);
                self.apply_record(entry.offset, &head, Some(&entry.payload))?;
                continue;
            }
            let record = match Record::decode(&entry.payload) {
                Ok(r) => r,
                // A newer format must not be misapplied: stop and say so.
                Err(source @ wal_bus::Error::UnsupportedVersion { .. }) => {
                    return Err(Error::BadRecord {
                        offset: entry.offset,
                        source,
                    });
                }
                // Anything else is not ours (another producer wrote to the
                // log topic): skip it, loudly, and count it.
                Err(e) => {
                    tracing::error!(replica = %self.name, offset = entry.offset, error = %e,
                        "skipping a log entry that is not a Tributary record");
                    metrics::counter!("tributary_replica_foreign_entries_total", "replica" => self.name.clone()).increment(1);
                    bump_skipped(&self.conn).ctx(&self.path, "counting a skipped entry")?;
                    self.skipped_in_batch += 1;
                    continue;
                }
            };
            self.note_origin(&record);
            self.apply_record(entry.offset, &record, None)?;
        }
        Ok(())
    }

    /// The node's clock, the batch's newest timestamp per origin and the
    /// lag metric's origin time learn of a record about to be applied.
    fn note_origin(&mut self, record: &Record) {
        if let Some(clock) = &self.clock {
            clock.observe(record.hlc);
        }
        let newest = self
            .batch_origins
            .entry(record.origin.clone())
            .or_insert(record.hlc);
        *newest = (*newest).max(record.hlc);
        self.last_ts_ms = record.ts_ms;
    }
}
