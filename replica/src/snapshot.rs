//! Snapshots of a replica, and getting a replica file ready before its
//! applier opens it.
//!
//! A snapshot is a consistent copy of a replica file (`VACUUM INTO`, which
//! reads in one transaction), named after the log offset it covers — the
//! applied offset stored inside it, so the name and the data cannot
//! disagree. Every replica of a cluster holds the same rows at the same
//! offset, so any replica's snapshot can seed any other.
//!
//! [`prepare`] runs before a replica starts: a missing file, a file that
//! fails SQLite's integrity check, or one that is older than the log's
//! retention is replaced by the newest usable snapshot (the damaged file is
//! kept aside, never deleted); the applier then tails the log from the
//! snapshot's offset. A file or snapshot from another cluster is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use wal_bus::Offset;

use crate::error::{Error, Result, SqliteContext};
use crate::meta::{applied_offset, cluster_id};

const SUFFIX: &str = ".snapshot.db";

/// One snapshot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    /// The log offset it covers: records before it are in it.
    pub offset: Offset,
    /// The cluster it came from (`None` for files older than cluster ids).
    pub cluster_id: Option<String>,
    pub bytes: u64,
    /// Under a sharded placement, the shard group whose rows it holds
    /// (1-based; 0: a replica in no group, holding full tables only).
    pub shard_group: Option<u32>,
}

/// What [`prepare`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The file is there and sound; the applier resumes from its offset.
    Existing { applied: Offset },
    /// The file was restored from a snapshot covering `offset`.
    Restored { offset: Offset, from: PathBuf },
    /// No file and nothing to restore: start empty from offset 0.
    Fresh,
}

fn io_err(path: &Path, doing: &'static str, e: std::io::Error) -> Error {
    Error::Storage {
        path: path.to_path_buf(),
        doing,
        source: e,
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    wal_bus::sync_dir(dir).map_err(|e| io_err(dir, "syncing the directory", e))
}

/// Path of the snapshot covering `offset` in `dir` (of shard group
/// `group`, under a sharded placement).
pub fn snapshot_path(dir: &Path, offset: Offset, group: Option<u32>) -> PathBuf {
    match group {
        None => dir.join(format!("{offset:020}{SUFFIX}")),
        Some(g) => dir.join(format!("{offset:020}-g{g}{SUFFIX}")),
    }
}

/// The shard group (1-based, 0 for none) whose rows the file holds, under
/// a sharded placement.
pub fn shard_group(conn: &Connection) -> rusqlite::Result<Option<u32>> {
    let (_, placement) = crate::placement::stored_placement(conn)?;
    if !placement.is_sharded() {
        return Ok(None);
    }
    let g = match crate::meta::state_value(conn, "placement_group")? {
        Some(rusqlite::types::Value::Integer(g)) => g,
        _ => -1,
    };
    Ok(Some(u32::try_from(g + 1).unwrap_or(0)))
}

/// Opens an existing SQLite file without creating one.
fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn)
}

/// The applied offset and cluster id inside a replica or snapshot file,
/// after SQLite's `quick_check` says the file is sound.
pub fn inspect(path: &Path) -> Result<(Offset, Option<String>)> {
    let conn = open_existing(path).ctx(path, "opening")?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .ctx(path, "checking integrity")?;
    if check != "ok" {
        return Err(Error::Damaged {
            path: path.to_path_buf(),
            reason: format!("integrity check: {check}"),
        });
    }
    let has_state: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_schema WHERE name = '_tributary_state'",
            [],
            |r| r.get(0),
        )
        .optional()
        .ctx(path, "reading the schema")?;
    if has_state.is_none() {
        return Ok((0, None));
    }
    let applied = applied_offset(&conn).ctx(path, "reading the applied offset")?;
    let cluster = cluster_id(&conn).ctx(path, "reading the cluster id")?;
    Ok((applied, cluster))
}

/// Writes a snapshot of the replica at `replica` into `dir` and returns it.
/// Safe while the replica is being applied to (the copy is one read
/// transaction). A snapshot at the same offset already there is kept.
pub fn take(replica: &Path, dir: &Path) -> Result<Snapshot> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "creating the snapshot directory", e))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}{SUFFIX}",
        std::process::id(),
        wal_bus::now_ms()
    ));
    let tmp_str = tmp.to_str().ok_or_else(|| Error::Config {
        key: "snapshots.dir",
        reason: format!("{} is not valid UTF-8", dir.display()),
    })?;
    let conn = open_existing(replica).ctx(replica, "opening the replica to snapshot it")?;
    let copied = conn.execute("VACUUM INTO ?1", [tmp_str]);
    drop(conn);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).ctx(replica, "copying the replica into a snapshot");
    }
    let finish = || -> Result<Snapshot> {
        let (offset, cluster_id) = inspect(&tmp)?;
        let group = open_existing(&tmp)
            .and_then(|c| shard_group(&c))
            .ctx(&tmp, "reading the snapshot's shard group")?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&tmp, "syncing the snapshot", e))?;
        let path = snapshot_path(dir, offset, group);
        if path.exists() {
            std::fs::remove_file(&tmp).map_err(|e| io_err(&tmp, "removing a duplicate", e))?;
        } else {
            std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, "naming the snapshot", e))?;
            sync_dir(dir)?;
        }
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        Ok(Snapshot {
            path,
            offset,
            cluster_id,
            bytes,
            shard_group: group,
        })
    };
    let out = finish();
    if out.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    out
}

/// Snapshots in `dir`, oldest first (a missing directory holds none).
/// Files are not opened: the offset comes from the name.
pub fn list(dir: &Path) -> Result<Vec<Snapshot>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, "listing snapshots", e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, "listing snapshots", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        let (offset, shard_group) = match stem.split_once("-g") {
            Some((o, g)) => match (o.parse::<Offset>(), g.parse::<u32>()) {
                (Ok(o), Ok(g)) => (o, Some(g)),
                _ => continue,
            },
            None => match stem.parse::<Offset>() {
                Ok(o) => (o, None),
                Err(_) => continue,
            },
        };
        let bytes = entry.metadata().map_or(0, |m| m.len());
        out.push(Snapshot {
            path: entry.path(),
            offset,
            cluster_id: None,
            bytes,
            shard_group,
        });
    }
    out.sort_by_key(|s| s.offset);
    Ok(out)
}

/// Deletes all but the newest `keep` snapshots of each shard group (or of
/// the unsharded files); returns the removed paths.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let all = list(dir)?;
    let mut removed = Vec::new();
    let groups: std::collections::BTreeSet<Option<u32>> =
        all.iter().map(|s| s.shard_group).collect();
    for g in groups {
        let of: Vec<&Snapshot> = all.iter().filter(|s| s.shard_group == g).collect();
        let cut = of.len().saturating_sub(keep.max(1));
        for s in &of[..cut] {
            std::fs::remove_file(&s.path).map_err(|e| io_err(&s.path, "pruning a snapshot", e))?;
            removed.push(s.path.clone());
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn sidecars(path: &Path) -> [PathBuf; 2] {
    let base = path.as_os_str().to_owned();
    let with = |suffix: &str| {
        let mut p = base.clone();
        p.push(suffix);
        PathBuf::from(p)
    };
    [with("-wal"), with("-shm")]
}

/// Replaces the file at `replica` with a copy of `snap`. The old file's
/// `-wal` and `-shm` go first: SQLite would replay a stale WAL onto the
/// restored file.
pub fn restore(snap: &Snapshot, replica: &Path) -> Result<()> {
    let mut tmp = replica.as_os_str().to_owned();
    tmp.push(".restoring");
    let tmp = PathBuf::from(tmp);
    std::fs::copy(&snap.path, &tmp).map_err(|e| io_err(&tmp, "copying a snapshot", e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(&tmp, "syncing the restored file", e))?;
    for side in sidecars(replica) {
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&side, "removing an old WAL file", e)),
        }
    }
    std::fs::rename(&tmp, replica)
        .map_err(|e| io_err(replica, "installing the restored file", e))?;
    if let Some(parent) = replica.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Moves a damaged replica file (and its WAL) aside; returns the new name.
fn quarantine(replica: &Path) -> Result<PathBuf> {
    let stamp = wal_bus::now_ms();
    let mut aside = replica.as_os_str().to_owned();
    aside.push(format!(".damaged-{stamp}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(replica, &aside)
        .map_err(|e| io_err(replica, "moving a damaged file aside", e))?;
    for side in sidecars(replica) {
        if side.exists() {
            let mut to = side.as_os_str().to_owned();
            to.push(format!(".damaged-{stamp}"));
            std::fs::rename(&side, PathBuf::from(to))
                .map_err(|e| io_err(&side, "moving a damaged file aside", e))?;
        }
    }
    Ok(aside)
}

/// Gets `replica` ready for its applier on a log holding `log_start..log_end`
/// of cluster `cluster`: keeps a sound file, rebuilds a missing, damaged or
/// too-old one from the newest snapshot in `snapshots`.
pub fn prepare(
    name: &str,
    replica: &Path,
    snapshots: Option<&Path>,
    cluster: &str,
    log_start: Offset,
    log_end: Offset,
) -> Result<Prepared> {
    if replica.exists() {
        match inspect(replica) {
            Ok((_, Some(found))) if found != cluster => {
                return Err(Error::ForeignCluster {
                    path: replica.to_path_buf(),
                    found,
                    expected: cluster.to_owned(),
                });
            }
            Ok((applied, _)) if applied >= log_start => return Ok(Prepared::Existing { applied }),
            Ok((applied, _)) => {
                tracing::warn!(
                    replica = name,
                    applied,
                    log_start,
                    "replica is older than the log's retention; rebuilding it from a snapshot"
                );
                let aside = quarantine(replica)?;
                tracing::warn!(replica = name, kept = %aside.display(), "old replica file kept aside");
            }
            Err(e) => {
                tracing::error!(replica = name, error = %e, "replica file is damaged; rebuilding it");
                let aside = quarantine(replica)?;
                tracing::warn!(replica = name, kept = %aside.display(), "damaged replica file kept aside");
            }
        }
    } else {
        // A WAL without its database would be replayed onto the new file.
        for side in sidecars(replica) {
            if side.exists() {
                std::fs::remove_file(&side)
                    .map_err(|e| io_err(&side, "removing an orphaned WAL file", e))?;
            }
        }
    }
    let candidates = match snapshots {
        Some(dir) => list(dir)?,
        None => Vec::new(),
    };
    // Under a sharded placement a snapshot holds one shard group's rows:
    // only a snapshot of this replica's group may seed it.
    let fitting: Vec<&Snapshot> = candidates
        .iter()
        .filter(|s| {
            let fits = open_existing(&s.path)
                .and_then(|c| crate::placement::seeds(&c, name))
                .unwrap_or(false);
            if !fits {
                tracing::info!(replica = name, snapshot = %s.path.display(),
                    "snapshot holds another shard group's rows; not seeding this replica from it");
            }
            fits
        })
        .collect();
    if let Some(newest) = fitting.last() {
        let (offset, found) = inspect(&newest.path)?;
        match found {
            Some(found) if found != cluster => {
                return Err(Error::ForeignCluster {
                    path: newest.path.clone(),
                    found,
                    expected: cluster.to_owned(),
                });
            }
            _ => {}
        }
        if offset > log_end {
            return Err(Error::ForeignCluster {
                path: newest.path.clone(),
                found: format!("a log reaching offset {offset}"),
                expected: format!("{cluster}, whose log ends at {log_end}"),
            });
        }
        if offset >= log_start {
            let snap = Snapshot {
                offset,
                cluster_id: found,
                ..(*newest).clone()
            };
            tracing::info!(replica = name, snapshot = %snap.path.display(), offset, bytes = snap.bytes,
                "restoring replica from snapshot");
            restore(&snap, replica)?;
            return Ok(Prepared::Restored {
                offset,
                from: snap.path,
            });
        }
    }
    if log_start == 0 {
        return Ok(Prepared::Fresh);
    }
    Err(Error::NoSnapshot {
        replica: name.to_owned(),
        log_start,
        newest: candidates.last().map(|s| s.offset),
    })
}
