//! Tests of the parent module.
use super::*;
use wal_bus::{Op, Value};

fn db() -> Connection {
    let c = Connection::open_in_memory().expect("open");
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER); INSERT INTO t VALUES (1, 'a', 10);")
        .expect("schema");
    c
}

#[test]
fn captures_full_images_and_rolls_back() -> Result<()> {
    let c = db();
    let out = speculate_after(
        &c,
        &[],
        &Prior::default(),
        "UPDATE t SET n = n + $1 WHERE id = $2",
        &[SqlValue::Integer(5), SqlValue::Integer(1)],
        None,
        usize::MAX,
    )?;
    assert_eq!(out.affected, 1);
    let changes = out.changes;
    assert_eq!(changes.len(), 1);
    let ch = &changes[0];
    assert_eq!(ch.op, Op::Update);
    assert_eq!(
        ch.before.as_ref().and_then(|b| b.get("n")),
        Some(&Value::Integer(10))
    );
    assert_eq!(
        ch.after.as_ref().and_then(|b| b.get("n")),
        Some(&Value::Integer(15))
    );
    assert_eq!(
        ch.after.as_ref().and_then(|b| b.get("v")),
        Some(&Value::Text("a".into()))
    );
    let n: i64 = c
        .query_row("SELECT n FROM t WHERE id = 1", [], |r| r.get(0))
        .map_err(sq("t"))?;
    assert_eq!(n, 10, "speculative write was rolled back");
    Ok(())
}

#[test]
fn queued_row_changes_replay_like_the_writes_that_made_them() -> Result<()> {
    let c = db();
    let w1 = speculate_after(
        &c,
        &[],
        &Prior::default(),
        "INSERT INTO t VALUES (2, 'b', 1)",
        &[],
        None,
        usize::MAX,
    )?;
    let w2 = speculate_after(
        &c,
        &[Replay::Rows(w1.changes.clone().into())],
        &Prior::default(),
        "UPDATE t SET n = n + 5 WHERE id IN (1, 2)",
        &[],
        None,
        usize::MAX,
    )?;
    let w3 = speculate_after(
        &c,
        &[
            Replay::Rows(w1.changes.clone().into()),
            Replay::Rows(w2.changes.clone().into()),
        ],
        &Prior::default(),
        "DELETE FROM t WHERE id = 1",
        &[],
        None,
        usize::MAX,
    )?;
    let overlay = [
        Replay::Rows(w1.changes.into()),
        Replay::Rows(w2.changes.into()),
        Replay::Rows(w3.changes.into()),
    ];
    let rows = read_in_txn(
        &c,
        &overlay,
        &Prior::default(),
        "SELECT id, v, n FROM t ORDER BY id",
        &[],
        10,
    )?
    .0
    .map(|r| r.rows)
    .unwrap_or_default();
    assert_eq!(
        rows,
        vec![vec![
            SqlValue::Integer(2),
            SqlValue::Text("b".into()),
            SqlValue::Integer(6)
        ]]
    );
    // Replaying a write the replica already applied changes nothing.
    c.execute_batch("INSERT INTO t VALUES (2, 'b', 6); DELETE FROM t WHERE id = 1")
        .map_err(sq("apply"))?;
    let again = read_in_txn(
        &c,
        &overlay,
        &Prior::default(),
        "SELECT count(*), sum(n) FROM t",
        &[],
        10,
    )?
    .0
    .map(|r| r.rows)
    .unwrap_or_default();
    assert_eq!(
        again,
        vec![vec![SqlValue::Integer(1), SqlValue::Integer(6)]]
    );
    Ok(())
}

#[test]
fn transaction_changesets_accumulate_net_changes() -> Result<()> {
    let c = db();
    let mut block = Block::default();
    for sql in [
        "INSERT INTO t VALUES (2, 'b', 1)",
        "UPDATE t SET n = 7 WHERE id = 2",
        "DELETE FROM t WHERE id = 1 RETURNING v",
    ] {
        let out = speculate_after(&c, &[], &block.prior(), sql, &[], None, usize::MAX)?;
        if sql.contains("RETURNING") {
            assert_eq!(out.result.as_ref().map(|r| r.rows.len()), Some(1));
        }
        block.add_rows(out.changeset, out.changes);
    }
    let changes: Vec<&Change> = block.changes().collect();
    assert_eq!(changes.len(), 2);
    let ins = changes.iter().find(|c| c.op == Op::Insert).expect("insert");
    assert_eq!(
        ins.after.as_ref().and_then(|r| r.get("n")),
        Some(&Value::Integer(7))
    );
    assert!(changes.iter().any(|c| c.op == Op::Delete));
    let count: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .map_err(sq("t"))?;
    assert_eq!(count, 1);
    Ok(())
}

#[test]
fn a_rebuild_in_a_block_keeps_the_children_and_checks_later_writes() -> Result<()> {
    let c = Connection::open_in_memory().expect("open");
    c.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE par (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE kid (id INTEGER PRIMARY KEY, p INT REFERENCES par ON DELETE CASCADE);
         CREATE TABLE kid2 (id INTEGER PRIMARY KEY, p INT REFERENCES par);
         INSERT INTO par VALUES (1, 'a');
         INSERT INTO kid VALUES (10, 1);
         INSERT INTO kid2 VALUES (20, 1);",
    )
    .map_err(sq("schema"))?;
    let mut block = Block::default();
    // Rebuilding the parent neither cascades to kid nor trips on kid2.
    let ddl = check_ddl(
        &c,
        &[],
        &block.prior(),
        "ALTER TABLE par ALTER COLUMN name SET NOT NULL",
    )?;
    block.add_ddl(&ddl);
    let kids = read_in_txn(
        &c,
        &[],
        &block.prior(),
        "SELECT (SELECT count(*) FROM kid) + (SELECT count(*) FROM kid2)",
        &[],
        1,
    )?
    .0
    .map(|r| r.rows)
    .unwrap_or_default();
    assert_eq!(kids, vec![vec![SqlValue::Integer(2)]]);
    // Writes after it are still checked.
    let orphan = speculate_after(
        &c,
        &[],
        &block.prior(),
        "INSERT INTO kid VALUES (11, 2)",
        &[],
        None,
        usize::MAX,
    );
    assert!(orphan.is_err(), "{orphan:?}");
    let fk: bool = c
        .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY)
        .map_err(sq("fk"))?;
    assert!(fk, "enforcement is back on");
    Ok(())
}

#[test]
fn a_block_mixes_schema_statements_and_rows_in_order() -> Result<()> {
    let c = db();
    let mut block = Block::default();
    let out = speculate_after(
        &c,
        &[],
        &block.prior(),
        "UPDATE t SET n = 11",
        &[],
        None,
        usize::MAX,
    )?;
    block.add_rows(out.changeset, out.changes);
    let ddl = "CREATE TABLE u (id INTEGER PRIMARY KEY, w TEXT)";
    let ddl = check_ddl(&c, &[], &block.prior(), ddl)?;
    block.add_ddl(&ddl);
    let out = speculate_after(
        &c,
        &[],
        &block.prior(),
        "INSERT INTO u VALUES (1, 'x')",
        &[],
        None,
        usize::MAX,
    )?;
    block.add_rows(out.changeset, out.changes);
    let out = speculate_after(
        &c,
        &[],
        &block.prior(),
        "UPDATE u SET w = 'y'",
        &[],
        None,
        usize::MAX,
    )?;
    block.add_rows(out.changeset, out.changes);
    let rows = read_in_txn(&c, &[], &block.prior(), "SELECT w FROM u", &[], 10)?
        .0
        .map(|r| r.rows)
        .unwrap_or_default();
    assert_eq!(rows, vec![vec![SqlValue::Text("y".into())]]);
    let (body, _) = block.into_record();
    let wal_bus::RecordBody::Block { steps } = body else {
        panic!("a block with DDL is a block record: {body:?}");
    };
    assert_eq!(steps.len(), 3);
    assert!(matches!(&steps[1], wal_bus::Step::Ddl { sql } if *sql == ddl));
    assert!(
        matches!(&steps[2], wal_bus::Step::Rows { changes } if changes.len() == 1
        && changes[0].op == Op::Insert)
    );
    let exists: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = 'u')",
            [],
            |r| r.get(0),
        )
        .map_err(sq("schema"))?;
    assert!(!exists, "the block's table was rolled back");
    Ok(())
}

#[test]
fn a_statement_too_large_for_one_record_is_refused_early() {
    let c = db();
    let out = speculate_after(
        &c,
        &[],
        &Prior::default(),
        "INSERT INTO t (id, v) WITH RECURSIVE s(x) AS (SELECT 10 UNION ALL SELECT x + 1 FROM s WHERE x < 5000) SELECT x, 'v' FROM s",
        &[],
        None,
        10_000,
    );
    match out {
        Err(Error::TransactionTooLarge { rows, limit, .. }) => {
            assert!(rows < 5000, "stopped early, at {rows} rows");
            assert_eq!(limit, 10_000);
        }
        other => panic!("expected TransactionTooLarge, got {other:?}"),
    }
}
