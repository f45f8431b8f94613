//! Replica apply: data, exactly-once offsets across restarts, conflicts, bad records.

use std::sync::Arc;
use std::time::Duration;

use common::{id_v_rows as values, ins, rec, start, upd, wait_applied};
use rusqlite::Connection;
use wal_bus::{AckBoard, FileLog, Log, LogConfig, RecordBody};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_resumes_and_resolves_lww() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    let acks = Arc::new(AckBoard::default());
    let db = dir.path().join("r1.db");
    log.append(rec(
        "d",
        "a",
        1,
        RecordBody::Ddl {
            sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
        },
    ))
    .await
    .expect("append");
    log.append(rec(
        "1",
        "a",
        10,
        RecordBody::Txn {
            changes: vec![ins(1, 100), ins(2, 200)],
        },
    ))
    .await
    .expect("append");
    // Two concurrent updates of row 1 computed against the same before-image:
    // the later HLC (origin b, wall 30) must win even though it is first in the log.
    log.append(rec(
        "2",
        "b",
        30,
        RecordBody::Txn {
            changes: vec![upd(1, 100, 130)],
        },
    ))
    .await
    .expect("append");
    log.append(rec(
        "3",
        "a",
        20,
        RecordBody::Txn {
            changes: vec![upd(1, 100, 120)],
        },
    ))
    .await
    .expect("append");
    // Insert on an existing key with an older stamp loses.
    log.append(rec(
        "4",
        "c",
        5,
        RecordBody::Txn {
            changes: vec![ins(2, 999)],
        },
    ))
    .await
    .expect("append");

    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 5).await;
    assert_eq!(values(&db), vec![(1, 130), (2, 200)]);
    r.stop().await;

    // Restart: resumes at the stored offset, applies only what is new.
    log.append(rec(
        "5",
        "a",
        40,
        RecordBody::Txn {
            changes: vec![upd(2, 200, 201)],
        },
    ))
    .await
    .expect("append");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 6).await;
    assert_eq!(values(&db), vec![(1, 130), (2, 201)]);
    let c = Connection::open(&db).expect("open");
    assert_eq!(replica::applied_offset(&c).expect("offset"), 6);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_entries_are_skipped_and_newer_versions_stop_the_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    let acks = Arc::new(AckBoard::default());
    log.append(rec(
        "d",
        "a",
        1,
        RecordBody::Ddl {
            sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
        },
    ))
    .await
    .expect("append");
    log.append(b"{\"not\":\"a record\"}".to_vec())
        .await
        .expect("append");
    log.append(b"\xff\xfe binary".to_vec())
        .await
        .expect("append");
    log.append(rec(
        "1",
        "a",
        10,
        RecordBody::Txn {
            changes: vec![ins(1, 100)],
        },
    ))
    .await
    .expect("append");
    let db = dir.path().join("r1.db");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 4).await;
    assert_eq!(values(&db), vec![(1, 100)]);
    assert_eq!(r.state().skipped(), 2);
    // A record from a newer format version stops the replica, naming the offset.
    log.append(
        br#"{"v":2,"type":"txn","id":"x","origin":"o","hlc":"1.0","ts_ms":1,"changes":[]}"#
            .to_vec(),
    )
    .await
    .expect("append");
    let state = r.state().clone();
    let waited = state.wait_applied(5, Duration::from_secs(20)).await;
    assert!(
        matches!(waited, Err(replica::Error::Stopped { .. })),
        "{waited:?}"
    );
    let reason = state.stopped().unwrap_or_default();
    assert!(
        reason.contains("offset 4") && reason.contains("newer"),
        "{reason}"
    );
    assert_eq!(state.applied(), 4);
    r.stop().await;
}

/// An insert stamps its row once, not each column; a conflicting write
/// later still finds each column's stamp: the insert's, until the column
/// is written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_never_written_since_the_insert_carry_its_stamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    let acks = Arc::new(AckBoard::default());
    let db = dir.path().join("r1.db");
    let ddl = RecordBody::Ddl {
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
    };
    log.append(rec("d", "a", 1, ddl)).await.expect("append");
    let inserts = RecordBody::Txn {
        changes: vec![ins(3, 300), ins(4, 400)],
    };
    log.append(rec("1", "a", 10, inserts))
        .await
        .expect("append");
    // Computed against other before-images (a conflict): an older write
    // loses to the insert's stamp, a newer one wins.
    let older = RecordBody::Txn {
        changes: vec![upd(3, 299, 298)],
    };
    log.append(rec("2", "z", 7, older)).await.expect("append");
    let newer = RecordBody::Txn {
        changes: vec![upd(4, 399, 444)],
    };
    log.append(rec("3", "z", 50, newer)).await.expect("append");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 4).await;
    assert_eq!(values(&db), vec![(3, 300), (4, 444)]);
    let conn = Connection::open(&db).expect("open");
    let col_stamps: i64 = conn
        .query_row(
            "SELECT count(*) FROM _tributary_cols WHERE pk = '[3]'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(col_stamps, 0, "the insert wrote no per-column metadata");
    r.stop().await;
}
