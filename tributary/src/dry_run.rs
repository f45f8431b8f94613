//! `tributary policy dry-run`: replays a window of the log twice into
//! scratch SQLite files — once as it happened (the policies the log holds)
//! and once under a candidate policy (the starting policy and every policy
//! record in the window replaced by it) — starting from the newest snapshot
//! at or before the window's start, with Tributary's own applier, then
//! compares the two (`dry_run_diff`). It reads the log and the snapshots
//! only: nothing in the cluster changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use wal_bus::{
    AckBoard, AppendFuture, Backend, DirReader, Log, LogEntry, Offset, Record, RecordBody,
};

use crate::NodeConfig;

/// The window's records, as a read-only log the applier tails: offsets
/// `start..end`, nothing beyond.
struct WindowLog {
    start: Offset,
    entries: Vec<LogEntry>,
    cluster: String,
}

#[async_trait]
impl Log for WindowLog {
    fn enqueue(&self, _payload: Vec<u8>) -> wal_bus::Result<AppendFuture> {
        Err(wal_bus::Error::Closed)
    }
    fn end(&self) -> Offset {
        self.start + self.entries.len() as Offset
    }
    fn start(&self) -> Offset {
        self.start
    }
    async fn read(
        &self,
        from: Offset,
        max_records: usize,
        _max_bytes: usize,
    ) -> wal_bus::Result<Vec<LogEntry>> {
        let at = from.saturating_sub(self.start) as usize;
        Ok(self
            .entries
            .iter()
            .skip(at)
            .take(max_records.max(1))
            .cloned()
            .collect())
    }
    async fn wait_beyond(&self, offset: Offset) -> wal_bus::Result<()> {
        if offset < self.end() {
            return Ok(());
        }
        // Nothing is ever appended: the caller is cancelled once done.
        std::future::pending().await
    }
    fn end_as_of(&self, _ts_ms: u64) -> Offset {
        self.end()
    }
    fn appended_at_ms(&self, _offset: Offset) -> Option<u64> {
        None
    }
    fn describe(&self) -> String {
        format!("dry-run window {}..{}", self.start, self.end())
    }
    fn cluster_id(&self) -> String {
        self.cluster.clone()
    }
}

/// The two replayed files and the window they cover.
pub struct Replayed {
    pub actual: PathBuf,
    pub candidate: PathBuf,
    /// First offset of the window asked for (conflicts before it are not
    /// reported) and the offset replay started at (a snapshot's, or 0).
    pub from: Offset,
    pub replay_start: Offset,
    pub to: Offset,
    pub records: u64,
}

/// The records a replay applies, and the log they came from.
struct Window {
    entries: Vec<LogEntry>,
    /// One past the last record (`--to`, or the log's end).
    end: Offset,
    cluster: String,
}

/// Records `start..to` (`to` defaults to the end) of the node's log, in
/// one pass.
async fn read_window(
    cfg: &NodeConfig,
    start: Offset,
    to: Option<Offset>,
) -> anyhow::Result<Window> {
    let mut entries = Vec::new();
    if cfg.log.backend == Backend::Kafka {
        let cancel = CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        let mut log_cfg = cfg.log.clone();
        log_cfg.kafka.create_topics = false;
        let log = wal_bus::open_log(&log_cfg, &cfg.log_dir(), &cancel).await?;
        let (end, cluster) = (to.unwrap_or_else(|| log.end()), log.cluster_id());
        let mut tail = wal_bus::tail(log, start)?;
        while tail.position() < end {
            entries.extend(
                tail.next_batch()
                    .await?
                    .into_iter()
                    .filter(|e| e.offset < end),
            );
        }
        return Ok(Window {
            entries,
            end,
            cluster,
        });
    }
    let dir = cfg.log_dir();
    let mut reader = DirReader::open(&dir, start, cfg.log.max_record_bytes)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    anyhow::ensure!(
        reader.position() == start,
        "the log starts at offset {}, after {start}: retention removed the records the replay needs",
        reader.position()
    );
    while let Some(e) = reader.next_entry()? {
        if to.is_some_and(|to| e.offset >= to) {
            break;
        }
        entries.push(e);
    }
    let end = start + entries.len() as Offset;
    anyhow::ensure!(
        to.is_none_or(|to| to == end),
        "the log ends at offset {end}, before --to"
    );
    let cluster = std::fs::read_to_string(dir.join("CLUSTER_ID"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Ok(Window {
        entries,
        end,
        cluster,
    })
}

/// Every policy record's text replaced by `candidate`.
fn with_candidate(entries: &[LogEntry], candidate: &str) -> Vec<LogEntry> {
    // Only a record naming "policy" can be one: the rest are not decoded.
    let mentions_policy = |p: &[u8]| p.windows(6).any(|w| w == b"policy");
    entries
        .iter()
        .map(|e| {
            let Some(mut r) = mentions_policy(&e.payload)
                .then(|| Record::decode(&e.payload).ok())
                .flatten()
            else {
                return e.clone();
            };
            let RecordBody::Policy { policy, .. } = &mut r.body else {
                return e.clone();
            };
            *policy = candidate.to_owned();
            LogEntry {
                offset: e.offset,
                payload: r.encode().into(),
            }
        })
        .collect()
}

/// Applies `entries` (from `start`) to the file at `path` and waits.
async fn replay(
    name: &str,
    path: &Path,
    start: Offset,
    entries: Vec<LogEntry>,
    cluster: &str,
) -> anyhow::Result<()> {
    let log = Arc::new(WindowLog {
        start,
        entries,
        cluster: cluster.to_owned(),
    });
    let end = log.end();
    let acks = Arc::new(AckBoard::default());
    let cancel = CancellationToken::new();
    let handle = replica::spawn_applier(replica::ApplierOptions {
        name: name.to_owned(),
        path: path.to_path_buf(),
        log,
        acks: acks.clone(),
        clock: None,
        cancel: cancel.clone(),
        runtime: tokio::runtime::Handle::current(),
        snapshots: None,
    })
    .with_context(|| format!("starting the {name} replay"))?;
    let state = handle.state.clone();
    let waited = state
        .wait_applied(end, Duration::from_secs(24 * 3600))
        .await;
    cancel.cancel();
    tokio::task::spawn_blocking(move || handle.join()).await?;
    waited.with_context(|| format!("replaying the window ({name})"))?;
    Ok(())
}

/// Replays `from..to` (default: the log end) under the policies the log
/// holds and under `candidate`, into `scratch`.
pub async fn run(
    cfg: &NodeConfig,
    candidate: &str,
    from: Offset,
    to: Option<Offset>,
    scratch: &Path,
) -> anyhow::Result<Replayed> {
    if let Some(to) = to {
        anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    }
    let snapshot = replica::snapshot::list(&cfg.snapshot_dir())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.offset <= from)
        .max_by_key(|s| s.offset);
    let actual = scratch.join("actual.db");
    let cand = scratch.join("candidate.db");
    let start = match &snapshot {
        Some(s) => {
            replica::snapshot::restore(s, &actual)?;
            replica::snapshot::restore(s, &cand)?;
            s.offset
        }
        None => 0,
    };
    replica::force_policy(&cand, candidate)?;
    let window = read_window(cfg, start, to).await?;
    anyhow::ensure!(
        from <= window.end,
        "--from {from} is after the log end {}",
        window.end
    );
    let records = window.entries.len() as u64;
    let candidate_entries = with_candidate(&window.entries, candidate);
    let (a, b) = tokio::join!(
        replay("actual", &actual, start, window.entries, &window.cluster),
        replay(
            "candidate",
            &cand,
            start,
            candidate_entries,
            &window.cluster
        )
    );
    a?;
    b?;
    Ok(Replayed {
        actual,
        candidate: cand,
        from,
        replay_start: start,
        to: window.end,
        records,
    })
}
