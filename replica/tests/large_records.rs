//! Records over a megabyte are applied change by change as they are parsed
//! (never decoded whole): the result must be the same as for a small
//! record — every change applied atomically, or none of them.

mod common;

use std::sync::Arc;

use common::{id_v_rows, ins, rec, start, upd, wait_applied};
use wal_bus::{AckBoard, Change, FileLog, Log, LogConfig, RecordBody};

const ROWS: i64 = 30_000;

fn inserts(from: i64) -> Vec<Change> {
    (from..from + ROWS).map(|i| ins(i, i * 2)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_record_applies_whole_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    let acks = Arc::new(AckBoard::default());
    let ddl = RecordBody::Ddl {
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
    };
    log.append(rec("d", "a", 1, ddl)).await.expect("append");
    // 1: applied whole.
    let big = rec(
        "big",
        "a",
        10,
        RecordBody::Txn {
            changes: inserts(0),
        },
    );
    assert!(
        big.len() > 1 << 20,
        "{} bytes is not a large record",
        big.len()
    );
    log.append(big).await.expect("append");
    // 2: a change in the middle names a table no replica has: the whole
    // record is skipped, its earlier changes included.
    let mut missing = inserts(ROWS);
    missing[ROWS as usize / 2].table = "nope".into();
    log.append(rec(
        "missing",
        "a",
        20,
        RecordBody::Txn { changes: missing },
    ))
    .await
    .expect("append");
    // 3: malformed JSON in the middle (an unknown op): skipped whole too.
    let mut bad = rec(
        "bad",
        "a",
        30,
        RecordBody::Txn {
            changes: inserts(2 * ROWS),
        },
    );
    let text = String::from_utf8(bad.clone()).expect("utf-8");
    let at = text.len() / 2 + text[text.len() / 2..].find("\"insert\"").expect("an op");
    bad.splice(at..at + 8, b"\"upsert\"".iter().copied());
    log.append(bad).await.expect("append");
    // 4: a small record after them still applies.
    log.append(rec(
        "small",
        "a",
        40,
        RecordBody::Txn {
            changes: vec![ins(-1, 7)],
        },
    ))
    .await
    .expect("append");

    let db = dir.path().join("r1.db");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", 5).await;
    let rows = id_v_rows(&db);
    let expected: Vec<(i64, i64)> = std::iter::once((-1, 7))
        .chain((0..ROWS).map(|i| (i, i * 2)))
        .collect();
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows, expected);
    assert_eq!(r.state().applied(), 5);
    r.stop().await;
}

/// Two origins update the same rows concurrently in large records (each
/// computed from the same before-image): under first-writer-wins the
/// second record is rejected whole, under lww it applies whole — as for a
/// small record, whichever way its changes are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_records_resolve_whole() {
    for (policy, expect_second) in [("first-writer-wins", false), ("lww", true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log: Arc<dyn Log> =
            Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
        let acks = Arc::new(AckBoard::default());
        let ddl = RecordBody::Ddl {
            sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
        };
        log.append(rec("d", "a", 1, ddl)).await.expect("append");
        let policy_record = RecordBody::Policy {
            version: 1,
            policy: format!("default = \"{policy}\"\n"),
        };
        log.append(rec("p", "a", 2, policy_record))
            .await
            .expect("append");
        log.append(rec(
            "rows",
            "a",
            10,
            RecordBody::Txn {
                changes: inserts(0),
            },
        ))
        .await
        .expect("append");
        // Both from v = 2i: a adds 1, then b (unaware of a) adds 7.
        let bump =
            |by: i64| -> Vec<Change> { (0..ROWS).map(|i| upd(i, i * 2, i * 2 + by)).collect() };
        for (id, origin, wall, by) in [("a1", "a", 20, 1), ("b1", "b", 30, 7)] {
            let body = RecordBody::Txn { changes: bump(by) };
            let bytes = rec(id, origin, wall, body);
            assert!(
                bytes.len() > 1 << 20,
                "{} bytes is not a large record",
                bytes.len()
            );
            log.append(bytes).await.expect("append");
        }
        let db = dir.path().join("r1.db");
        let r = start("r1", &db, &log, &acks, None).expect("spawn");
        wait_applied(&acks, "r1", 5).await;
        let rows = id_v_rows(&db);
        assert_eq!(rows.len(), ROWS as usize);
        let by = if expect_second { 7 } else { 1 };
        assert!(
            rows.iter().all(|&(i, v)| v == i * 2 + by),
            "{policy:?}: first rows {:?}",
            &rows[..3]
        );
        r.stop().await;
    }
}
