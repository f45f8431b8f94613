//! Replica apply: data, exactly-once offsets across restarts, conflicts, bad records.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, Change, FileLog, Hlc, Log, LogConfig, Op, Record, RecordBody, Row, Value};

fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn rec(id: &str, origin: &str, wall: u64, body: RecordBody) -> Vec<u8> {
    Record {
        id: id.into(),
        origin: origin.into(),
        hlc: Hlc::new(wall, 0),
        ts_ms: wall / 1_000_000,
        body,
    }
    .encode()
}

fn upd(id: i64, before: i64, after: i64) -> Change {
    Change {
        table: "t".into(),
        op: Op::Update,
        key: row(&[("id", Value::Integer(id))]),
        before: Some(row(&[
            ("id", Value::Integer(id)),
            ("v", Value::Integer(before)),
        ])),
        after: Some(row(&[
            ("id", Value::Integer(id)),
            ("v", Value::Integer(after)),
        ])),
    }
}

fn ins(id: i64, v: i64) -> Change {
    Change {
        table: "t".into(),
        op: Op::Insert,
        key: row(&[("id", Value::Integer(id))]),
        before: None,
        after: Some(row(&[("id", Value::Integer(id)), ("v", Value::Integer(v))])),
    }
}

fn start(
    db: &std::path::Path,
    log: &Arc<dyn Log>,
    acks: &Arc<AckBoard>,
) -> (replica::ReplicaHandle, CancellationToken) {
    let cancel = CancellationToken::new();
    let h = replica::spawn_applier(
        "r1",
        db,
        log.clone(),
        acks.clone(),
        None,
        cancel.clone(),
        tokio::runtime::Handle::current(),
        None,
    )
    .expect("spawn");
    (h, cancel)
}

async fn stop(h: replica::ReplicaHandle, cancel: CancellationToken) {
    cancel.cancel();
    tokio::task::spawn_blocking(move || h.join())
        .await
        .expect("join");
}

async fn wait_applied(acks: &AckBoard, name: &str, target: u64) {
    tokio::time::timeout(
        Duration::from_secs(20),
        acks.wait_until(|s| s.replicas.get(name).is_some_and(|a| a.applied >= target)),
    )
    .await
    .expect("replica caught up in time");
}

fn values(path: &std::path::Path) -> Vec<(i64, i64)> {
    let c = Connection::open(path).expect("open");
    let mut s = c
        .prepare("SELECT id, v FROM t ORDER BY id")
        .expect("prepare");
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

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

    let (h, cancel) = start(&db, &log, &acks);
    wait_applied(&acks, "r1", 5).await;
    assert_eq!(values(&db), vec![(1, 130), (2, 200)]);
    stop(h, cancel).await;

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
    let (h, cancel) = start(&db, &log, &acks);
    wait_applied(&acks, "r1", 6).await;
    assert_eq!(values(&db), vec![(1, 130), (2, 201)]);
    let c = Connection::open(&db).expect("open");
    assert_eq!(replica::applied_offset(&c).expect("offset"), 6);
    stop(h, cancel).await;
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
    let cancel = CancellationToken::new();
    let db = dir.path().join("r1.db");
    let h = replica::spawn_applier(
        "r1",
        &db,
        log.clone(),
        acks.clone(),
        None,
        cancel.clone(),
        tokio::runtime::Handle::current(),
        None,
    )
    .expect("spawn");
    wait_applied(&acks, "r1", 4).await;
    assert_eq!(values(&db), vec![(1, 100)]);
    assert_eq!(h.state.skipped(), 2);
    // A record from a newer format version stops the replica, naming the offset.
    log.append(
        br#"{"v":2,"type":"txn","id":"x","origin":"o","hlc":"1.0","ts_ms":1,"changes":[]}"#
            .to_vec(),
    )
    .await
    .expect("append");
    let state = h.state.clone();
    tokio::time::timeout(Duration::from_secs(20), async {
        while state.stopped().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("replica stops");
    let reason = state.stopped().unwrap_or_default();
    assert!(
        reason.contains("offset 4") && reason.contains("newer"),
        "{reason}"
    );
    assert_eq!(state.applied(), 4);
    stop(h, cancel).await;
}
