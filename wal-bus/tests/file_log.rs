//! File log behaviour: appends, group commit, reads, tailing and recovery
//! from torn or corrupt tails. The backend-generic bodies live in
//! `conformance` so another backend runs the same checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wal_bus::{FileLog, Log, LogConfig, Subscription};

mod conformance {
    use super::*;

    pub async fn ordered_appends(log: Arc<dyn Log>) {
        let base = log.end();
        for i in 0..20u64 {
            let off = log
                .append(format!("rec-{i}").into_bytes())
                .await
                .expect("append");
            assert_eq!(off, base + i);
        }
        let got = log.read(base, 100, 1 << 20).await.expect("read");
        assert_eq!(got.len(), 20);
        for (i, e) in got.iter().enumerate() {
            assert_eq!(&*e.payload, format!("rec-{i}").as_bytes());
        }
    }

    pub async fn concurrent_appends(log: Arc<dyn Log>) {
        let base = log.end();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut offs = Vec::new();
                for i in 0..50 {
                    offs.push(
                        log.append(format!("{t}-{i}").into_bytes())
                            .await
                            .expect("append"),
                    );
                }
                offs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            let offs = t.await.expect("task");
            // One writer's appends keep their order.
            assert!(offs.windows(2).all(|w| w[0] < w[1]));
            all.extend(offs);
        }
        all.sort_unstable();
        assert_eq!(all, (base..base + 400).collect::<Vec<_>>());
        assert_eq!(log.end(), base + 400);
    }

    pub async fn read_from_offset_and_limits(log: Arc<dyn Log>) {
        let base = log.end();
        for i in 0..10u8 {
            log.append(vec![i; 100]).await.expect("append");
        }
        let got = log.read(base + 4, 3, 1 << 20).await.expect("read");
        assert_eq!(
            got.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![base + 4, base + 5, base + 6]
        );
        assert_eq!(&*got[0].payload, &[4u8; 100][..]);
        let one = log.read(base, 10, 10).await.expect("read");
        assert_eq!(one.len(), 1, "max_bytes still returns one record");
        assert!(
            log.read(log.end(), 10, 100)
                .await
                .expect("read at end")
                .is_empty()
        );
        assert!(log.read(log.end() + 1, 10, 100).await.is_err());
    }

    pub async fn tailing_wakes(log: Arc<dyn Log>) {
        let mut sub = Subscription::new(log.clone(), log.end());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 5 {
                for e in sub.next_batch().await.expect("batch") {
                    got.push(e.payload.to_vec());
                }
            }
            got
        });
        for i in 0..5u8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            log.append(vec![i]).await.expect("append");
        }
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("tail within 10s")
            .expect("task");
        assert_eq!(got, (0..5u8).map(|i| vec![i]).collect::<Vec<_>>());
    }
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        max_record_bytes: 1024,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> Arc<dyn Log> {
    Arc::new(FileLog::open(dir, &small_segments()).expect("open"))
}

#[tokio::test]
async fn file_ordered_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::ordered_appends(open(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::concurrent_appends(open(dir.path())).await;
}

#[tokio::test]
async fn file_read_from_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::read_from_offset_and_limits(open(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tailing() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::tailing_wakes(open(dir.path())).await;
}

#[tokio::test]
async fn restart_resumes_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path());
        for i in 0..200u32 {
            log.append(vec![(i % 251) as u8; 100])
                .await
                .expect("append");
        }
    }
    let segs = std::fs::read_dir(dir.path()).expect("dir").count();
    assert!(segs > 3, "small segments roll ({segs})");
    let log = open(dir.path());
    assert_eq!(log.end(), 200);
    let all = log.read(0, 1000, 1 << 20).await.expect("read");
    assert!(!all.is_empty());
    let mut next = 0;
    while next < 200 {
        let batch = log.read(next, 1000, 1 << 20).await.expect("read");
        for e in &batch {
            assert_eq!(e.offset, next);
            assert_eq!(&*e.payload, &[(next % 251) as u8; 100][..]);
            next += 1;
        }
    }
    assert_eq!(log.append(b"after".to_vec()).await.expect("append"), 200);
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.pop().expect("a segment")
}

/// Writes `n` records, then lets `damage` change the last segment's bytes.
async fn damaged_log(
    n: u8,
    damage: impl FnOnce(&mut Vec<u8>),
) -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("record-{i}-{}", "x".repeat(i as usize)).into_bytes())
        .collect();
    {
        let log = open(dir.path());
        for p in &payloads {
            log.append(p.clone()).await.expect("append");
        }
    }
    let path = last_segment(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    damage(&mut bytes);
    std::fs::write(&path, &bytes).expect("write");
    (dir, payloads)
}

async fn check_prefix(dir: &Path, payloads: &[Vec<u8>], expect_kept: usize) {
    let log = open(dir);
    assert_eq!(log.end() as usize, expect_kept);
    if expect_kept > 0 {
        let got = log.read(0, 1000, 1 << 20).await.expect("read");
        assert_eq!(got.len(), expect_kept);
        for (e, p) in got.iter().zip(payloads) {
            assert_eq!(&*e.payload, &p[..]);
        }
    }
    // The log accepts appends right after the kept prefix.
    assert_eq!(
        log.append(b"next".to_vec()).await.expect("append") as usize,
        expect_kept
    );
    drop(log);
    let log = open(dir);
    assert_eq!(log.end() as usize, expect_kept + 1);
}

#[tokio::test]
async fn truncated_tail_at_every_byte_keeps_earlier_records() {
    let n = 4u8;
    let (dir, payloads) = damaged_log(n, |_| {}).await;
    let full = std::fs::read(last_segment(dir.path())).expect("read");
    let last_len = 8 + payloads[n as usize - 1].len();
    let last_start = full.len() - last_len;
    for cut in last_start..full.len() {
        let (dir, payloads) = damaged_log(n, |b| b.truncate(cut)).await;
        check_prefix(dir.path(), &payloads, n as usize - 1).await;
    }
}

#[tokio::test]
async fn flipped_byte_in_last_record_is_cut_off() {
    let n = 4u8;
    let (dir, payloads) = damaged_log(n, |_| {}).await;
    let full = std::fs::read(last_segment(dir.path())).expect("read");
    let last_len = 8 + payloads[n as usize - 1].len();
    for at in (full.len() - last_len)..full.len() {
        let (dir, payloads) = damaged_log(n, |b| b[at] ^= 0x20).await;
        check_prefix(dir.path(), &payloads, n as usize - 1).await;
    }
}

#[tokio::test]
async fn damage_in_a_middle_record_drops_it_and_everything_after() {
    let (dir, payloads) = damaged_log(5, |b| {
        // Second record's payload starts after the first frame.
        let first = 8 + u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        b[first + 9] ^= 0xff;
    })
    .await;
    check_prefix(dir.path(), &payloads, 1).await;
}

#[tokio::test]
async fn oversized_record_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    assert!(log.append(vec![0; 2000]).await.is_err());
    assert_eq!(log.append(vec![0; 10]).await.expect("append"), 0);
}

#[tokio::test]
async fn dir_reader_follows_segments_from_an_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path());
    for i in 0..100u32 {
        log.append(format!("r{i}-{}", "y".repeat(200)).into_bytes())
            .await
            .expect("append");
    }
    let mut r = wal_bus::DirReader::open(dir.path(), 37, 1024).expect("reader");
    let mut seen = Vec::new();
    while let Some(e) = r.next_entry().expect("next") {
        seen.push(e.offset);
        assert!(e.payload.starts_with(format!("r{}-", e.offset).as_bytes()));
    }
    assert_eq!(seen, (37..100).collect::<Vec<_>>());
    log.append(b"late".to_vec()).await.expect("append");
    assert_eq!(r.next_entry().expect("next").map(|e| e.offset), Some(100));
}
