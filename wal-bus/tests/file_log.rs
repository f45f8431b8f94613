//! File log behaviour: appends, group commit, reads, tailing and recovery
//! from torn or corrupt tails. The backend-generic bodies live in
//! `conformance` so another backend runs the same checks.

use std::path::Path;
use std::sync::Arc;

use wal_bus::{FileLog, Log, LogConfig};

mod conformance;

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
async fn file_restart_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    conformance::restart_resumes(open(&path), async || open(&path)).await;
}

#[tokio::test]
async fn file_acks() {
    // In one process every replica shares one board.
    let board = std::sync::Arc::new(wal_bus::AckBoard::default());
    conformance::acks_wait_for_k(board.clone(), board).await;
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

#[tokio::test]
async fn zero_filled_tail_is_a_clean_end_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let log = open(dir.path());
        log.append(b"one".to_vec()).await.expect("append");
    }
    let path = last_segment(dir.path());
    let len = std::fs::metadata(&path).expect("meta").len();
    assert!(len > 1000, "segment is zero-filled ahead ({len} bytes)");
    for round in 0..3u8 {
        let log = open(dir.path());
        assert_eq!(log.end(), 1 + u64::from(round), "nothing lost or invented");
        log.append(vec![b'a' + round; 10]).await.expect("append");
    }
    let log = open(dir.path());
    let got = log.read(0, 100, 1 << 20).await.expect("read");
    let payloads: Vec<&[u8]> = got.iter().map(|e| &*e.payload).collect();
    assert_eq!(
        payloads,
        [&b"one"[..], b"aaaaaaaaaa", b"bbbbbbbbbb", b"cccccccccc"]
    );
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
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
    // The writer zero-fills ahead of the write position; damage the frames.
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
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

/// A record over 1 MiB is read on its own, straight into one buffer that
/// concurrent readers share; its checksum is still checked.
#[tokio::test]
async fn large_records_are_read_alone_shared_and_checked() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = FileLog::open(dir.path(), &LogConfig::default()).expect("open");
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    for p in [b"small".to_vec(), big.clone(), b"after".to_vec()] {
        log.append(p).await.expect("append");
    }
    let a = log.read(1, 10, 64 << 20).await.expect("read");
    assert_eq!(a.len(), 1, "a large record is read alone");
    assert_eq!((a[0].offset, &*a[0].payload), (1, &big[..]));
    let b = log.read(1, 10, 64 << 20).await.expect("read");
    assert!(Arc::ptr_eq(&a[0].payload, &b[0].payload), "one copy");
    drop((a, b));
    // A batch stops before it; the next read starts after it.
    let first = log.read(0, 10, 64 << 20).await.expect("read");
    assert_eq!(first.len(), 1);
    assert_eq!(&*first[0].payload, b"small");
    let rest = log.read(2, 10, 64 << 20).await.expect("read");
    assert_eq!((rest.len(), &*rest[0].payload), (1, &b"after"[..]));
    // Damage one byte of the big payload behind the open log.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(last_segment(dir.path()))
        .expect("segment");
    f.seek(SeekFrom::Start(13 + 8 + 1000)).expect("seek");
    f.write_all(&[big[1000] ^ 0xff]).expect("write");
    f.sync_all().expect("sync");
    let err = log.read(1, 10, 64 << 20).await.expect_err("checksum");
    assert!(
        matches!(err, wal_bus::Error::Corrupt { offset: 1, .. }),
        "{err}"
    );
}
