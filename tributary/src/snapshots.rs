//! Snapshots (taking one of the most advanced local replica, the node's
//! periodic ones) and the file-log retention they drive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeConfig;
use anyhow::Context;
use replica::ReplicaState;
use replica::snapshot::{self, Snapshot};
use tokio_util::sync::CancellationToken;
use wal_bus::Log;

/// Snapshots the most advanced of `replicas` (name, path) into `dir`, one
/// per shard group under a sharded placement (a snapshot seeds only its
/// group's replicas), then keeps the newest `keep` of each.
pub fn take(
    replicas: &[(String, PathBuf)],
    dir: &Path,
    keep: usize,
) -> anyhow::Result<Vec<Snapshot>> {
    // Per shard group (None: unsharded), the most advanced replica.
    let mut best: BTreeMap<Option<u32>, (&str, &Path, u64)> = BTreeMap::new();
    for (name, path) in replicas {
        if !path.exists() {
            continue;
        }
        // The applied offset only: the copy itself is checked in full.
        let read = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| Ok((replica::applied_offset(&c)?, snapshot::shard_group(&c)?)));
        match read {
            Ok((applied, group)) if best.get(&group).is_none_or(|b| applied > b.2) => {
                best.insert(group, (name, path, applied));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(replica = %name, error = %e, "not snapshotting an unreadable replica")
            }
        }
    }
    anyhow::ensure!(!best.is_empty(), "no sound replica file to snapshot");
    let mut taken = Vec::new();
    for (name, path, _) in best.into_values() {
        let snap =
            snapshot::take(path, dir).with_context(|| format!("snapshotting replica {name}"))?;
        tracing::info!(replica = name, snapshot = %snap.path.display(), offset = snap.offset,
            bytes = snap.bytes, group = ?snap.shard_group, "snapshot taken");
        metrics::counter!("tributary_snapshots_total").increment(1);
        metrics::gauge!("tributary_snapshot_offset").set(snap.offset as f64);
        taken.push(snap);
    }
    let removed = snapshot::prune(dir, keep)?;
    tracing::info!(pruned = removed.len(), "snapshots pruned");
    Ok(taken)
}

/// Removes log segments that the newest snapshot and every local replica
/// have moved past, within the configured retention.
pub fn apply_retention(
    config: &NodeConfig,
    log: &dyn Log,
    replicas: &[Arc<ReplicaState>],
) -> anyhow::Result<u64> {
    let all = snapshot::list(&config.snapshot_dir())?;
    // Under a sharded placement a snapshot seeds only its shard group's
    // replicas: trim only what every local replica's group has a snapshot
    // past.
    let mut upto = u64::MAX;
    for r in replicas {
        let (_, placement) = r.placement();
        let group = placement
            .is_sharded()
            .then(|| placement.group_of(&r.name).map_or(0, |g| g as u32 + 1));
        let newest = all
            .iter()
            .filter(|s| s.shard_group == group || s.shard_group.is_none())
            .map(|s| s.offset)
            .max();
        match newest {
            Some(o) => upto = upto.min(o),
            None => return Ok(0),
        }
    }
    if upto == u64::MAX {
        return Ok(0);
    }
    let applied = replicas.iter().map(|r| r.applied()).min().unwrap_or(0);
    let upto = upto.min(applied);
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
