//! The embedded file log: segment files, group commit, recovery.
//!
//! One writer thread owns the active segment. Appends queue on a
//! channel; the writer takes every append waiting at that moment, writes
//! their frames with one `write`, makes them durable with one `fdatasync`, and
//! only then publishes them to readers and resolves the appenders — so a
//! reader never sees, and an appender is never told about, a record that a
//! crash could take back. Recovery at open truncates a torn or corrupt tail
//! of the last segment; damage anywhere else is refused, since cutting there
//! would drop records that follow it.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::LogConfig;
use crate::end_history::EndHistory;
use crate::error::{Error, Result};
use crate::log::{AppendFuture, Log, LogEntry, Offset, RetentionRule};
use crate::segment::{Segment, decode_frame, encode_frame, list_segments};

/// Longest run of appends made durable by one fsync.
const MAX_GROUP: usize = 4096;

struct AppendReq {
    payload: Vec<u8>,
    done: oneshot::Sender<Result<Offset>>,
}

struct Shared {
    dir: PathBuf,
    segments: RwLock<Vec<Segment>>,
    end: watch::Sender<Offset>,
    max_record: usize,
    segment_bytes: u64,
    poisoned: AtomicBool,
    /// `(ms, end after the group)` for recent group commits, oldest first:
    /// answers "what was the end at time T" for bounded-staleness reads.
    history: EndHistory,
    /// This log's identity (the `CLUSTER_ID` file in its directory).
    cluster_id: String,
    /// Reads of large records, shared by concurrent readers.
    large: crate::large_frame::LargeReads,
}

/// The embedded, single-machine log.
pub struct FileLog {
    shared: Arc<Shared>,
    appends: mpsc::UnboundedSender<AppendReq>,
}

impl FileLog {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail.
    pub fn open(dir: &Path, config: &LogConfig) -> Result<FileLog> {
        config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let segments = recover(dir, config.max_record_bytes)?;
        let cluster_id = crate::cluster_id::load_cluster_id(dir)?;
        let end = segments.last().map_or(0, Segment::end);
        let (end_tx, _) = watch::channel(end);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            segments: RwLock::new(segments),
            end: end_tx,
            max_record: config.max_record_bytes,
            segment_bytes: config.segment_bytes,
            poisoned: AtomicBool::new(false),
            large: crate::large_frame::LargeReads::default(),
            history: EndHistory::new(end),
            cluster_id,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("file-log-writer".into())
            .spawn(move || writer_loop(&writer, rx))
            .map_err(|e| Error::io(dir, e))?;
        tracing::info!(dir = %dir.display(), end, "file log open");
        Ok(FileLog {
            shared,
            appends: tx,
        })
    }
}

fn recover(dir: &Path, max_record: usize) -> Result<Vec<Segment>> {
    let bases = list_segments(dir)?;
    let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
    for (i, base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        let scan = Segment::scan(dir, *base, max_record)?;
        if let Some(prev) = segments.last()
            && prev.end() != *base
        {
            return Err(Error::CorruptSegment {
                path: scan.segment.path.clone(),
                position: 0,
                reason: format!(
                    "starts at offset {base} but the previous segment ends at {}",
                    prev.end()
                ),
            });
        }
        if let Some((position, reason)) = scan.damage {
            if !is_last {
                return Err(Error::CorruptSegment {
                    path: scan.segment.path,
                    position,
                    reason,
                });
            }
            tracing::warn!(
                segment = %scan.segment.path.display(),
                position,
                %reason,
                kept_records = scan.segment.positions.len(),
                "truncating damaged log tail"
            );
            scan.segment.truncate_to_valid()?;
        }
        segments.push(scan.segment);
    }
    if segments.is_empty() {
        let seg = Segment::create(dir, 0)?;
        sync_dir(dir)?;
        segments.push(seg);
    }
    Ok(segments)
}

fn sync_dir(dir: &Path) -> Result<()> {
    crate::wall::sync_dir(dir).map_err(|e| Error::io(dir, e))
}

fn writer_loop(shared: &Shared, mut rx: mpsc::UnboundedReceiver<AppendReq>) {
    let mut batch: Vec<AppendReq> = Vec::with_capacity(MAX_GROUP);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        if shared.poisoned.load(Ordering::Acquire) {
            for req in batch.drain(..) {
                let _ = req.done.send(Err(Error::Closed));
            }
            continue;
        }
        metrics::histogram!("tributary_log_group_commit_records").record(batch.len() as f64);
        let written = write_group(shared, &mut batch, &mut buf);
        // A large record grew the buffer: give the memory back.
        if buf.capacity() > 4 << 20 {
            buf = Vec::with_capacity(1 << 20);
        }
        match written {
            Ok(first_offset) => {
                for (i, req) in batch.drain(..).enumerate() {
                    let _ = req.done.send(Ok(first_offset + i as Offset));
                }
            }
            Err(e) => {
                // After a failed write or fsync the file's state is unknown
                // (fsync errors are not retryable on Linux): stop accepting.
                tracing::error!(error = %e, "file log write failed; log is now read-only");
                shared.poisoned.store(true, Ordering::Release);
                let msg = e.to_string();
                for req in batch.drain(..) {
                    let _ = req.done.send(Err(Error::Io {
                        path: shared.dir.clone(),
                        source: std::io::Error::other(msg.clone()),
                    }));
                }
            }
        }
    }
    tracing::debug!("file log writer stopped");
}

/// Writes the batch (rolling segments as needed), fsyncs, then publishes.
/// Returns the offset of the first record.
fn write_group(shared: &Shared, batch: &mut [AppendReq], buf: &mut Vec<u8>) -> Result<Offset> {
    let first_offset = *shared.end.borrow();
    let mut i = 0;
    while i < batch.len() {
        // Frames for as many records as fit in the active segment.
        let (active_len, active_base, active_count) = {
            let segs = shared.segments.read().unwrap_or_else(|p| p.into_inner());
            let active = segs.last().ok_or(Error::Closed)?;
            (active.len, active.base, active.positions.len())
        };
        if active_count > 0 && active_len + frame_len(&batch[i].payload) > shared.segment_bytes {
            roll(shared, active_base + active_count as Offset)?;
            continue;
        }
        buf.clear();
        let mut positions = Vec::new();
        let mut len = active_len;
        while i < batch.len() {
            let flen = frame_len(&batch[i].payload);
            if !positions.is_empty() && len + flen > shared.segment_bytes {
                break;
            }
            positions.push(len as u32);
            encode_frame(&batch[i].payload, buf);
            len += flen;
            i += 1;
        }
        // Write and fsync without holding the index lock, so readers are not
        // stalled behind the disk; they only see the records once indexed.
        let (file, path, allocated) = {
            let segs = shared.segments.read().unwrap_or_else(|p| p.into_inner());
            let active = segs.last().ok_or(Error::Closed)?;
            let file = active
                .file
                .try_clone()
                .map_err(|e| Error::io(&active.path, e))?;
            (file, active.path.clone(), active.allocated)
        };
        let allocated = preallocate(&file, &path, allocated, len)?;
        file.write_all_at(buf, active_len)
            .map_err(|e| Error::io(&path, e))?;
        let synced = std::time::Instant::now();
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        metrics::histogram!("tributary_log_fsync_seconds").record(synced.elapsed().as_secs_f64());
        metrics::counter!("tributary_log_appends_total").increment(positions.len() as u64);
        metrics::counter!("tributary_log_fsyncs_total").increment(1);
        let mut segs = shared.segments.write().unwrap_or_else(|p| p.into_inner());
        let active = segs.last_mut().ok_or(Error::Closed)?;
        active.positions.extend(positions);
        active.len = len;
        active.allocated = allocated;
        let end = active.end();
        shared.history.record(end);
        // Published under the index lock so `end()` never trails what readers can see.
        shared.end.send_replace(end);
        drop(segs);
    }
    Ok(first_offset)
}

fn frame_len(payload: &[u8]) -> u64 {
    (crate::segment::HEADER_LEN + payload.len()) as u64
}

/// Zero-fills the active segment ahead of `upto` when it is not already
/// (see `Segment::allocated`); returns the new file length. The
/// group's fdatasync that follows makes the zeros durable with the frames.
fn preallocate(
    file: &std::fs::File,
    path: &std::path::Path,
    allocated: u64,
    upto: u64,
) -> Result<u64> {
    if upto <= allocated {
        return Ok(allocated);
    }
    let target = upto.max(allocated + crate::segment::PREALLOCATE_BYTES);
    let zeros = vec![0u8; (target - allocated) as usize];
    file.write_all_at(&zeros, allocated)
        .map_err(|e| Error::io(path, e))?;
    Ok(target)
}

fn roll(shared: &Shared, base: Offset) -> Result<()> {
    let seg = Segment::create(&shared.dir, base)?;
    sync_dir(&shared.dir)?;
    let mut segs = shared.segments.write().unwrap_or_else(|p| p.into_inner());
    if let Some(sealed) = segs.last_mut() {
        sealed.trim()?;
    }
    segs.push(seg);
    tracing::debug!(base, "rolled to a new log segment");
    Ok(())
}

#[async_trait]
impl Log for FileLog {
    fn max_record_bytes(&self) -> usize {
        self.shared.max_record
    }

    fn enqueue(&self, payload: Vec<u8>) -> Result<AppendFuture> {
        if payload.len() > self.shared.max_record {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                limit: self.shared.max_record,
            });
        }
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (done, rx) = oneshot::channel();
        // Unbounded so queueing never waits (and so keeps the caller's
        // order); callers bound what they have in flight (the router's
        // write overlay, max_connections).
        self.appends
            .send(AppendReq { payload, done })
            .map_err(|_| Error::Closed)?;
        Ok(Box::pin(
            async move { rx.await.map_err(|_| Error::Closed)? },
        ))
    }

    fn end(&self) -> Offset {
        *self.shared.end.borrow()
    }

    fn start(&self) -> Offset {
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner());
        segs.first().map_or(0, |s| s.base)
    }

    async fn read(
        &self,
        from: Offset,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<LogEntry>> {
        // The index under the lock is the truth; the `end` watch may lag it
        // by a moment, and a reader must never be refused a record it saw.
        let segs = self
            .shared
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let end = segs.last().map_or(0, Segment::end);
        if from > end {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                end,
            });
        }
        let start = segs.first().map_or(0, |s| s.base);
        if from < start {
            return Err(Error::Trimmed {
                requested: from,
                start,
            });
        }
        let idx = segs.partition_point(|s| s.base <= from);
        let Some(seg) = idx.checked_sub(1).and_then(|i| segs.get(i)) else {
            return Err(Error::OffsetOutOfRange {
                requested: from,
                end,
            });
        };
        let rel = (from - seg.base) as usize;
        let available = seg.positions.len().saturating_sub(rel);
        if available == 0 {
            return Ok(Vec::new());
        }
        // A large record is read alone (see `large_frame`); otherwise take
        // as many whole records as fit in max_bytes, stopping before a
        // large one.
        let large = |k: usize| {
            let (s, e) = seg.span(rel + k, rel + k + 1);
            e - s > crate::large_frame::LARGE_FRAME_BYTES
        };
        if large(0) {
            let (start, _) = seg.span(rel, rel + 1);
            let entry = self
                .shared
                .large
                .read(seg, from, start, self.shared.max_record)?;
            return Ok(vec![entry]);
        }
        let mut count = 1;
        while count < available.min(max_records.max(1)) {
            let (s, e) = seg.span(rel, rel + count + 1);
            if (e - s) as usize > max_bytes || large(count) {
                break;
            }
            count += 1;
        }
        let (start, stop) = seg.span(rel, rel + count);
        let mut bytes = vec![0u8; (stop - start) as usize];
        seg.read_exact_at(&mut bytes, start)?;
        let mut out = Vec::with_capacity(count);
        let mut pos = 0usize;
        for k in 0..count {
            let offset = from + k as Offset;
            match decode_frame(&bytes[pos..], self.shared.max_record) {
                Ok(Some((payload, flen))) => {
                    out.push(LogEntry {
                        offset,
                        payload: Arc::from(payload),
                    });
                    pos += flen;
                }
                Ok(None) => {
                    return Err(Error::Corrupt {
                        offset,
                        reason: "frame shorter than indexed".into(),
                    });
                }
                Err(reason) => return Err(Error::Corrupt { offset, reason }),
            }
        }
        Ok(out)
    }

    async fn wait_beyond(&self, offset: Offset) -> Result<()> {
        let mut rx = self.shared.end.subscribe();
        rx.wait_for(|end| *end > offset)
            .await
            .map(|_| ())
            .map_err(|_| Error::Closed)
    }

    fn end_as_of(&self, ts_ms: u64) -> Offset {
        self.shared.history.end_as_of(ts_ms, self.end())
    }

    fn appended_at_ms(&self, offset: Offset) -> Option<u64> {
        self.shared.history.appended_at_ms(offset)
    }

    fn describe(&self) -> String {
        format!("file:{}", self.shared.dir.display())
    }

    fn cluster_id(&self) -> String {
        self.shared.cluster_id.clone()
    }

    fn trim_before(&self, offset: Offset, keep: &RetentionRule) -> Result<u64> {
        let now = std::time::SystemTime::now();
        let mut removed = Vec::new();
        {
            let mut segs = self
                .shared
                .segments
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let mut total: u64 = segs.iter().map(|s| s.len).sum();
            // The active segment always stays; a sealed one goes only when
            // every record in it is before `offset`.
            while segs.len() > 1 && segs[0].end() <= offset {
                let age_ms = std::fs::metadata(&segs[0].path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| now.duration_since(t).ok())
                    .map_or(0, |d| d.as_millis() as u64);
                if !keep.allows(total, age_ms) {
                    break;
                }
                let seg = segs.remove(0);
                total -= seg.len;
                removed.push(seg);
            }
        }
        let mut records = 0;
        for seg in &removed {
            std::fs::remove_file(&seg.path).map_err(|e| Error::io(&seg.path, e))?;
            records += seg.positions.len() as u64;
            tracing::info!(segment = %seg.path.display(), records = seg.positions.len(), "log retention removed a segment");
        }
        if !removed.is_empty() {
            sync_dir(&self.shared.dir)?;
            metrics::counter!("tributary_log_trimmed_records_total").increment(records);
        }
        Ok(records)
    }
}
