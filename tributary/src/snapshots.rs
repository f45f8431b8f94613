//! Snapshots (taking one of the most advanced local replica, the node's
//! periodic ones) and the file-log retention they drive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeConfig;
use anyhow::Context;
use replica::ReplicaState;
use replica::snapshot::{self, Snapshot};
use tokio_util::sync::CancellationToken;
use wal_bus::Log;

/// Snapshots the most advanced of `replicas` (name, path) into `dir`, then
/// keeps the newest `keep`.
pub fn take(replicas: &[(String, PathBuf)], dir: &Path, keep: usize) -> anyhow::Result<Snapshot> {
    let mut best: Option<(&str, &Path, u64)> = None;
    for (name, path) in replicas {
        if !path.exists() {
            continue;
        }
        // The applied offset only: the copy itself is checked in full.
        let applied = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| replica::applied_offset(&c));
        match applied {
            Ok(applied) if best.is_none_or(|b| applied > b.2) => {
                best = Some((name, path, applied));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(replica = %name, error = %e, "not snapshotting an unreadable replica")
            }
        }
    }
    let (name, path, _) = best.context("no sound replica file to snapshot")?;
    let snap = snapshot::take(path, dir).with_context(|| format!("snapshotting replica {name}"))?;
    let removed = snapshot::prune(dir, keep)?;
    tracing::info!(replica = name, snapshot = %snap.path.display(), offset = snap.offset,
        bytes = snap.bytes, pruned = removed.len(), "snapshot taken");
    metrics::counter!("tributary_snapshots_total").increment(1);
    metrics::gauge!("tributary_snapshot_offset").set(snap.offset as f64);
    Ok(snap)
}

/// Removes log segments that the newest snapshot and every local replica
/// have moved past, within the configured retention.
pub fn apply_retention(
    config: &NodeConfig,
    log: &dyn Log,
    replicas: &[Arc<ReplicaState>],
) -> anyhow::Result<u64> {
    // Snapshots are of one replica, so under a sharded placement they
    // seed only its shard group: keep the whole log, from which every
    // group's replicas can be rebuilt.
    if replicas.iter().any(|r| r.placement().1.is_sharded()) {
        return Ok(0);
    }
    let Some(newest) = snapshot::list(&config.snapshot_dir())?.pop() else {
        return Ok(0);
    };
    let applied = replicas.iter().map(|r| r.applied()).min().unwrap_or(0);
    let upto = newest.offset.min(applied);
    Ok(log.trim_before(upto, &config.log.retention())?)
}

/// The node's background job: a snapshot every `[snapshots] interval_s`
/// and, on the file log, retention once a minute.
pub async fn periodic(
    config: NodeConfig,
    log: Arc<dyn Log>,
    replicas: Vec<Arc<ReplicaState>>,
    cancel: CancellationToken,
) {
    let every = match config.snapshots.interval_s {
        0 => Duration::from_secs(60),
        s => Duration::from_secs(s.min(60)),
    };
    let mut since_snapshot = Duration::ZERO;
    let paths: Vec<(String, PathBuf)> = replicas
        .iter()
        .map(|r| (r.name.clone(), r.path.clone()))
        .collect();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        since_snapshot += every;
        let interval = Duration::from_secs(config.snapshots.interval_s);
        let (cfg, log2, reps, paths2) =
            (config.clone(), log.clone(), replicas.clone(), paths.clone());
        let snap_due = !interval.is_zero() && since_snapshot >= interval;
        if snap_due {
            since_snapshot = Duration::ZERO;
        }
        let job = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            if snap_due {
                take(&paths2, &cfg.snapshot_dir(), cfg.snapshots.keep)?;
            }
            apply_retention(&cfg, log2.as_ref(), &reps)?;
            Ok(())
        });
        match job.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "snapshot or retention failed")
            }
            Err(e) => tracing::error!(error = %e, "snapshot job panicked"),
        }
    }
}
