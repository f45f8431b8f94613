//! The same randomly generated conflicting records, applied in two different
//! orders under order-independent rules (lww, max, counter, set), give
//! identical databases.

use std::sync::Arc;

use common::{rec, start, wait_applied};
use rusqlite::Connection;
use wal_bus::{AckBoard, Change, FileLog, Log, LogConfig, Op, RecordBody, Row, Value};

mod common;

const POLICY: &str = r#"
default = "lww"
[tables.t]
columns.hits = "counter"
columns.tags = "set"
columns.best = "max"
"#;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn initial(id: i64) -> Row {
    [
        ("id".to_owned(), Value::Integer(id)),
        ("name".to_owned(), Value::Text(format!("row{id}"))),
        ("hits".to_owned(), Value::Integer(100)),
        ("tags".to_owned(), Value::Text("[\"a\",\"b\"]".into())),
        ("best".to_owned(), Value::Integer(0)),
    ]
    .into_iter()
    .collect()
}

/// Concurrent updates, each computed against the initial row.
fn random_updates(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut r = Lcg(seed);
    (0..n)
        .map(|i| {
            let id = 1 + r.next(3) as i64;
            let before = initial(id);
            let mut after = before.clone();
            match r.next(4) {
                0 => {
                    after.insert("name".into(), Value::Text(format!("n{}", r.next(100))));
                }
                1 => {
                    after.insert("hits".into(), Value::Integer(100 + r.next(21) as i64 - 10));
                }
                2 => {
                    let tags = match r.next(3) {
                        0 => "[\"a\",\"b\",\"x\"]",
                        1 => "[\"b\"]",
                        _ => "[\"a\",\"b\",\"y\"]",
                    };
                    after.insert("tags".into(), Value::Text(tags.into()));
                }
                _ => {
                    after.insert("best".into(), Value::Integer(r.next(1000) as i64));
                }
            }
            let origin = ["r1", "r2", "r3"][r.next(3) as usize];
            let change = Change {
                table: "t".into(),
                op: Op::Update,
                key: [("id".to_owned(), Value::Integer(id))]
                    .into_iter()
                    .collect(),
                before: Some(before),
                after: Some(after),
            };
            // Distinct stamps: wall time from the index, origin breaks nothing.
            rec(
                format!("{origin}-{i}"),
                origin,
                1_000 + i as u64,
                RecordBody::Txn {
                    changes: vec![change],
                },
            )
        })
        .collect()
}

fn prefix() -> Vec<Vec<u8>> {
    let mut out = vec![
        rec(
            "d",
            "r1",
            1,
            RecordBody::Ddl {
                sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, hits INTEGER, tags JSON, best INTEGER)".into(),
            },
        ),
        rec("p", "r1", 2, RecordBody::Policy { version: 1, policy: POLICY.into() }),
    ];
    let changes = (1..=3)
        .map(|id| Change {
            table: "t".into(),
            op: Op::Insert,
            key: [("id".to_owned(), Value::Integer(id))]
                .into_iter()
                .collect(),
            before: None,
            after: Some(initial(id)),
        })
        .collect();
    out.push(rec("i", "r1", 3, RecordBody::Txn { changes }));
    out
}

async fn apply_all(records: &[Vec<u8>]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn Log> =
        Arc::new(FileLog::open(&dir.path().join("log"), &LogConfig::default()).expect("log"));
    for r in records {
        log.append(r.clone()).await.expect("append");
    }
    let acks = Arc::new(AckBoard::default());
    let db = dir.path().join("r.db");
    let r = start("r", &db, &log, &acks, None).expect("spawn");
    wait_applied(&acks, "r", records.len() as u64).await;
    assert!(r.state().stopped().is_none(), "{:?}", r.state().stopped());
    r.stop().await;
    let conn = Connection::open(&db).expect("open");
    let mut stmt = conn
        .prepare("SELECT id, name, hits, tags, best FROM t ORDER BY id")
        .expect("prepare");
    let dump = stmt
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|{}|{}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?
            ))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
        .join("\n");
    (dir, dump)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orders_converge_under_order_independent_rules() {
    for seed in 1..=12u64 {
        let updates = random_updates(seed, 12);
        let mut a = prefix();
        a.extend(updates.iter().cloned());
        let mut b = prefix();
        let mut shuffled = updates.clone();
        shuffled.reverse();
        let n = shuffled.len();
        shuffled.rotate_left((seed as usize) % n);
        b.extend(shuffled);
        let (_da, dump_a) = apply_all(&a).await;
        let (_db, dump_b) = apply_all(&b).await;
        assert_eq!(dump_a, dump_b, "seed {seed}: orders diverged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counter_increments_add_up() {
    let mut recs = prefix();
    for (i, (origin, to)) in [("r1", 105), ("r2", 103)].iter().enumerate() {
        let before = initial(1);
        let mut after = before.clone();
        after.insert("hits".into(), Value::Integer(*to));
        recs.push(rec(
            format!("c{i}"),
            origin,
            100 + i as u64,
            RecordBody::Txn {
                changes: vec![Change {
                    table: "t".into(),
                    op: Op::Update,
                    key: [("id".to_owned(), Value::Integer(1))].into_iter().collect(),
                    before: Some(before),
                    after: Some(after),
                }],
            },
        ));
    }
    let (_d, dump) = apply_all(&recs).await;
    assert!(dump.starts_with("1|row1|108|"), "{dump}");
}
