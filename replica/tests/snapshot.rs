//! Snapshots and rebuilding replicas: a lost, damaged or too-old replica file
//! comes back from the newest snapshot plus the log; files and snapshots of
//! another cluster are refused; retention only removes what snapshots cover.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{id_v_rows, ins, rec, start, upd, wait_applied};
use rusqlite::Connection;
use wal_bus::{AckBoard, FileLog, Log, LogConfig, Op, RecordBody, RetentionRule};

mod common;

/// Record `i` of origin `a`, stamped in log order.
fn rec_at(i: u64, body: RecordBody) -> Vec<u8> {
    rec(format!("t-{i}"), "a", 1_000_000_000 + i * 1_000, body)
}

/// A log with a table and `n` records after it: inserts of ids 0..10, then
/// updates cycling over them (so the end state depends on every record).
async fn fill(log: &Arc<dyn Log>, from: u64, n: u64) {
    if from == 0 {
        log.append(rec_at(
            0,
            RecordBody::Ddl {
                sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
            },
        ))
        .await
        .expect("ddl");
    }
    for i in from.max(1)..from.max(1) + n {
        let id = (i % 10) as i64;
        let op = if i <= 10 { Op::Insert } else { Op::Update };
        let v = if op == Op::Insert {
            1
        } else {
            (i / 10) as i64 + 1
        };
        // Updates carry the before-image the replica holds, so nothing conflicts.
        let change = match op {
            Op::Insert => ins(id, 1),
            _ => upd(id, v - 1, v),
        };
        log.append(rec_at(
            i,
            RecordBody::Txn {
                changes: vec![change],
            },
        ))
        .await
        .expect("append");
    }
}

fn open_log(dir: &Path, segment_bytes: u64) -> Arc<dyn Log> {
    let config = LogConfig {
        segment_bytes,
        max_record_bytes: segment_bytes.min(1 << 20) as usize,
        ..LogConfig::default()
    };
    Arc::new(FileLog::open(&dir.join("log"), &config).expect("log"))
}

fn aside_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".damaged-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_damaged_and_stale_replicas_rebuild_from_snapshot_and_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), 4096);
    let acks = Arc::new(AckBoard::default());
    let snaps = dir.path().join("snapshots");
    let reference = dir.path().join("ref.db");
    let a = dir.path().join("a.db");

    fill(&log, 0, 300).await;
    let r = start("ref", &reference, &log, &acks, Some(&snaps)).expect("start ref");
    wait_applied(&acks, "ref", log.end()).await;
    let snap = replica::snapshot::take(&reference, &snaps).expect("snapshot");
    assert_eq!(
        snap.offset,
        log.end(),
        "the snapshot covers what was applied"
    );
    assert!(snap.cluster_id.as_deref() == Some(log.cluster_id().as_str()));
    fill(&log, 301, 200).await;
    wait_applied(&acks, "ref", log.end()).await;
    let expected = id_v_rows(&reference);

    // Retention: segments fully covered by the snapshot (and applied by the
    // running replica) go; what the snapshot does not cover stays.
    let removed = log
        .trim_before(snap.offset, &RetentionRule::default())
        .expect("trim");
    assert!(removed > 0, "small segments below the snapshot are removed");
    assert!(log.start() > 0 && log.start() <= snap.offset);
    assert!(matches!(
        log.read(0, 10, 1 << 20).await,
        Err(wal_bus::Error::Trimmed { .. })
    ));

    // 1. A replica with no file starts from the snapshot, then the log.
    let r2 = start("a", &a, &log, &acks, Some(&snaps)).expect("start from snapshot");
    wait_applied(&acks, "a", log.end()).await;
    r2.stop().await;
    assert_eq!(id_v_rows(&a), expected);

    // 2. A damaged file is moved aside and rebuilt.
    let mut bytes = std::fs::read(&a).expect("read");
    for b in &mut bytes[100..] {
        *b = 0x5a;
    }
    std::fs::write(&a, &bytes).expect("damage");
    let r3 = start("a", &a, &log, &acks, Some(&snaps)).expect("start a damaged replica");
    wait_applied(&acks, "a", log.end()).await;
    r3.stop().await;
    assert_eq!(id_v_rows(&a), expected);
    assert_eq!(
        aside_files(dir.path()).len(),
        1,
        "the damaged file is kept aside"
    );

    // 3. Without a snapshot, a replica the log no longer covers says so.
    let lonely = dir.path().join("lonely.db");
    let err = start("lonely", &lonely, &log, &acks, None)
        .err()
        .expect("refused");
    assert!(
        matches!(err, replica::Error::NoSnapshot { .. }),
        "unexpected: {err}"
    );
    assert!(err.to_string().contains("there is no snapshot"), "{err}");

    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_wal_rolls_the_replica_back_consistently_and_it_reapplies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), 64 << 20);
    let acks = Arc::new(AckBoard::default());
    let a = dir.path().join("a.db");
    fill(&log, 0, 100).await;
    let r = start("a", &a, &log, &acks, None).expect("start");
    wait_applied(&acks, "a", log.end()).await;
    r.stop().await;
    let expected = id_v_rows(&a);
    // The main file as it was before later commits reached it through the
    // WAL, then the WAL lost: SQLite sees an older, consistent state whose
    // applied offset is older too.
    let wal = PathBuf::from(format!("{}-wal", a.display()));
    let c = Connection::open(&a).expect("open");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    drop(c);
    let base = std::fs::read(&a).expect("read");
    let r = start("a", &a, &log, &acks, None).expect("restart");
    fill(&log, 101, 50).await;
    wait_applied(&acks, "a", log.end()).await;
    r.stop().await;
    assert!(wal.exists() || std::fs::read(&a).expect("read") != base);
    std::fs::write(&a, &base).expect("roll back the main file");
    let _ = std::fs::remove_file(&wal);
    let _ = std::fs::remove_file(format!("{}-shm", a.display()));
    let back = replica::snapshot::inspect(&a).expect("sound").0;
    assert_eq!(back, 101, "the file went back to before the second batch");
    let r = start("a", &a, &log, &acks, None).expect("restart after WAL loss");
    wait_applied(&acks, "a", log.end()).await;
    r.stop().await;
    let reference = dir.path().join("ref.db");
    let r = start("ref", &reference, &log, &acks, None).expect("reference");
    wait_applied(&acks, "ref", log.end()).await;
    r.stop().await;
    assert_eq!(
        id_v_rows(&a),
        id_v_rows(&reference),
        "re-applied exactly once"
    );
    assert_ne!(id_v_rows(&a), expected, "the second batch is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_snapshots_of_another_cluster_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), 64 << 20);
    let other = open_log(other_dir.path(), 64 << 20);
    assert_ne!(log.cluster_id(), other.cluster_id());
    let acks = Arc::new(AckBoard::default());
    fill(&log, 0, 20).await;
    fill(&other, 0, 30).await;

    // A replica file of the other cluster.
    let theirs = other_dir.path().join("theirs.db");
    let r = start("theirs", &theirs, &other, &acks, None).expect("start");
    wait_applied(&acks, "theirs", other.end()).await;
    r.stop().await;
    let before = std::fs::read(&theirs).expect("read");
    let err = start("x", &theirs, &log, &acks, None)
        .err()
        .expect("refused");
    assert!(
        matches!(err, replica::Error::ForeignCluster { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("belongs to another cluster"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&theirs).expect("read"),
        before,
        "left untouched"
    );

    // A snapshot of the other cluster handed to a new replica.
    let snaps = dir.path().join("snapshots");
    replica::snapshot::take(&theirs, &snaps).expect("snapshot");
    let fresh = dir.path().join("fresh.db");
    let err = start("fresh", &fresh, &log, &acks, Some(&snaps))
        .err()
        .expect("refused");
    assert!(
        matches!(err, replica::Error::ForeignCluster { .. }),
        "{err}"
    );
    assert!(!fresh.exists(), "nothing was installed");
}
