//! Idempotency keys at apply: the first record in log order with a key
//! applies, later ones with the same key are skipped whole while the key is
//! remembered (by record time), after the window the key applies again, and
//! a record that is rejected leaves no key behind.

mod common;

use std::sync::Arc;

use common::{id_v_rows, ins, start, upd, wait_applied};
use wal_bus::{
    AckBoard, FileLog, Hlc, Idempotency, Log, LogConfig, Record, RecordBody, StatementResult,
};

/// A record at wall time `ms` (ms since the epoch) with key `key`.
fn keyed(id: &str, origin: &str, ms: u64, key: Option<&str>, body: RecordBody) -> Vec<u8> {
    let mut r = Record::new(id.into(), origin, Hlc::new(ms * 1_000_000, 0), body);
    r.idempotency = key.map(|k| Idempotency {
        key: k.into(),
        window_ms: 60_000,
        results: vec![StatementResult {
            tag: format!("INSERT 0 1 ({id})"),
            ..Default::default()
        }],
    });
    r.encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_applies_once_within_its_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    let acks = Arc::new(AckBoard::default());
    let t0 = 1_800_000_000_000u64;
    let txn = |changes| RecordBody::Txn { changes };
    let records = [
        keyed(
            "ddl",
            "a",
            t0,
            None,
            RecordBody::Ddl {
                sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
            },
        ),
        keyed(
            "policy",
            "a",
            t0,
            None,
            RecordBody::Policy {
                version: 1,
                policy: "default = \"first-writer-wins\"\n".into(),
            },
        ),
        keyed("a1", "a", t0 + 1, Some("k1"), txn(vec![ins(1, 10)])),
        // Another router raced with the same key: skipped, even though its
        // change differs.
        keyed("b1", "b", t0 + 2, Some("k1"), txn(vec![ins(2, 20)])),
        // A block with the same key: skipped too.
        keyed(
            "b2",
            "b",
            t0 + 3,
            Some("k1"),
            RecordBody::Block {
                steps: vec![wal_bus::Step::Rows {
                    changes: vec![ins(3, 30)],
                }],
            },
        ),
        // Rejected by first-writer-wins (stale before-image): no key kept…
        keyed("a2", "a", t0 + 4, Some("k2"), txn(vec![upd(1, 99, 11)])),
        // …so its retry applies.
        keyed("a3", "a", t0 + 5, Some("k2"), txn(vec![upd(1, 10, 11)])),
        // Past k1's window (60 s): the key is new again.
        keyed("a4", "a", t0 + 61_000, Some("k1"), txn(vec![ins(4, 40)])),
    ];
    let n = records.len() as u64;
    for r in records {
        log.append(r).await.expect("append");
    }
    let db = dir.path().join("r1.db");
    let r = start("r1", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r1", n).await;
    assert_eq!(id_v_rows(&db), vec![(1, 11), (4, 40)]);
    let conn = rusqlite::Connection::open(&db).expect("open");
    let k1 = replica::idempotency::lookup(&conn, "k1", t0 + 61_000)
        .expect("lookup")
        .expect("k1 remembered");
    assert_eq!((k1.offset, k1.origin.as_str()), (7, "a"));
    assert_eq!(k1.results[0].tag, "INSERT 0 1 (a4)");
    let k2 = replica::idempotency::lookup(&conn, "k2", t0 + 5)
        .expect("lookup")
        .expect("k2 remembered");
    assert_eq!(k2.offset, 6);
    // Expired by wall time far in the future.
    assert!(
        replica::idempotency::lookup(&conn, "k2", t0 + 10_000_000)
            .expect("lookup")
            .is_none()
    );
    r.stop().await;
}
