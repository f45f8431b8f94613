//! Speculative execution: a write runs on the router's replica inside a
//! transaction that is always rolled back, on top of the router's overlay
//! (its queued records the replica has not applied yet) and the session's
//! open transaction, with an SQLite session capturing its row changes.
//!
//! Nothing here commits to the replica file: writes reach SQLite files only
//! through the log. A transaction block is carried between statements as the
//! SQLite changeset of its writes so far; each statement replays it inside a
//! fresh SQLite transaction, so no lock is held while the client is idle and
//! replication never waits on an open client transaction.
//!
//! `replay.rs` re-creates the overlay and the transaction, `capture.rs`
//! turns a changeset into row changes with full images, `compose.rs` folds
//! changes and changesets together.

mod block;
mod capture;
mod compose;
mod replay;

use rusqlite::Connection;
use rusqlite::session::Session;
use rusqlite::types::Value as SqlValue;
use wal_bus::Change;

use crate::error::{Error, Result};
use crate::exec::{ResultSet, run_statement, sq};
use crate::write_order::Replay;

pub use block::{Block, Prior};
pub use compose::NetChanges;

/// A query finding a row of `table` whose key (`column`, …) is NULL.
#[derive(Debug, Clone)]
pub struct NullCheck {
    pub sql: String,
    pub table: String,
    pub column: String,
}

/// What a speculative write did.
#[derive(Debug, Default)]
pub struct SpecOutcome {
    /// RETURNING rows, when the statement has any result columns.
    pub result: Option<ResultSet>,
    /// Rows inserted, updated or deleted.
    pub affected: usize,
    /// Net changeset of the whole transaction so far (prior + this statement).
    pub changeset: Vec<u8>,
    /// This statement's row changes with full images.
    pub changes: Vec<Change>,
}

/// Runs `f` inside a transaction that is always rolled back.
fn rolled_back<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sq("beginning a speculative transaction"))?;
    let out = f(conn);
    let rb = conn
        .execute_batch("ROLLBACK")
        .map_err(sq("rolling back a speculative transaction"));
    let out = out?;
    rb?;
    Ok(out)
}

thread_local! {
    /// Per thread: the file and schema version `HAS_FK` was worked out for.
    static HAS_FK: std::cell::RefCell<Option<(String, i64, bool)>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether any table of the replica declares a foreign key (or the block
/// replayed may add one), cached per schema version.
fn has_foreign_keys(conn: &Connection) -> Result<bool> {
    let version: i64 = conn
        .prepare_cached("PRAGMA main.schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("reading the schema version"))?;
    let path = conn.path().unwrap_or("").to_owned();
    if let Some(known) = HAS_FK.with(|h| {
        h.borrow()
            .as_ref()
            .filter(|(p, v, _)| *p == path && *v == version)
            .map(|(_, _, has)| *has)
    }) {
        return Ok(known);
    }
    let has: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM main.sqlite_schema
                 WHERE type = 'table' AND upper(sql) LIKE '%REFERENCES%')",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("looking for foreign keys"))?;
    HAS_FK.with(|h| *h.borrow_mut() = Some((path, version, has)));
    Ok(has)
}

/// Runs a PRAGMA from the statement cache (a speculation runs two).
fn pragma(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(|_| ())
}

/// Runs `f` on the router's replica plus `overlay` (its queued records the
/// replica has not applied yet) plus `prior` (the session's block so far),
/// then rolls it all back. The caller holds the replica's write gate, so
/// "not applied yet" is exact for the whole run.
pub fn in_block<R>(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    let out = rolled_back(conn, |conn| {
        // What is replayed was checked when it was written (or comes from
        // the log, where the conflict policy had the last word): foreign
        // keys are checked for this statement's own changes only.
        // Only a schema with foreign keys needs the deferral: setting the
        // pragma expires every prepared statement on the connection.
        let replays = !overlay.is_empty() || !prior.is_empty();
        let schema_changes = prior.has_ddl()
            || overlay
                .iter()
                .any(|r| !matches!(r, crate::write_order::Replay::Rows(_)));
        let defer = replays && (schema_changes || has_foreign_keys(conn)?);
        if defer {
            pragma(conn, "PRAGMA defer_foreign_keys = ON")
                .map_err(sq("deferring foreign keys for the replay"))?;
        }
        replay::overlay(conn, overlay)?;
        prior.replay(conn)?;
        if defer {
            pragma(conn, "PRAGMA defer_foreign_keys = OFF")
                .map_err(sq("checking foreign keys again"))?;
        }
        f(conn)
    });
    if prior.has_ddl() {
        // The block's schema is gone again, but the schema version it had
        // may come back with another schema: nothing cached from it stays.
        crate::star::forget();
    }
    out
}

/// Runs a write on top of `overlay` and `prior` (see [`in_block`]).
/// With `keys`, an INSERT or UPDATE gets its generated-key plan (see
/// `keys::Plan`), made on the schema the statement sees: a row the
/// statement left with a NULL key is refused with 23502.
pub fn speculate_after(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    keys: Option<&crate::keys::Keys>,
) -> Result<SpecOutcome> {
    in_block(conn, overlay, prior, |conn| {
        let plan = match keys {
            Some(k) => {
                k.arm(conn)?;
                k.plan(conn, sql, !prior.has_ddl())?
            }
            None => crate::keys::Plan::default(),
        };
        let sql = plan.run.as_deref().unwrap_or(sql);
        // Attached after the replay: captures this statement alone, so the
        // transaction keeps the before-images of its first touch of a row.
        let mut session = Session::new(conn).map_err(sq("starting change capture"))?;
        session.table_filter(Some(|t: &str| !replica::is_internal_table(t)));
        session
            .attach(None::<&str>)
            .map_err(sq("starting change capture"))?;
        // RETURNING rows are the statement's own changes; the log record
        // already bounds their size (max_record_bytes).
        let (result, affected) = run_statement(conn, sql, params, usize::MAX)?;
        if let Some(check) = plan.null_check.as_deref()
            && affected > 0
        {
            let found = conn
                .prepare_cached(&check.sql)
                .and_then(|mut s| s.exists([]))
                .map_err(sq("checking for NULL keys"))?;
            if found {
                return Err(Error::NullKey {
                    table: check.table.clone(),
                    column: check.column.clone(),
                });
            }
        }
        let mut own = Vec::new();
        session
            .changeset_strm(&mut own)
            .map_err(sq("capturing row changes"))?;
        drop(session);
        let changes = capture::changes_in(conn, &own)?;
        let open = prior.open_changeset();
        let changeset = if open.is_empty() {
            own
        } else {
            compose::combine(open, &own)?
        };
        Ok(SpecOutcome {
            result,
            affected,
            changeset,
            changes,
        })
    })
}

/// Runs a read on top of the router's overlay and the transaction's
/// earlier writes and schema statements.
pub fn read_in_txn(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    max_rows: usize,
) -> Result<(Option<ResultSet>, usize)> {
    in_block(conn, overlay, prior, |conn| {
        run_statement(conn, sql, params, max_rows)
    })
}

/// Checks a DDL statement runs on top of the overlay and the session's
/// block, without keeping its effect; returns the SQL to append (an
/// `ADD PRIMARY KEY` becomes the script that rebuilds the table, made on
/// the schema this statement sees: see `rebuild`).
pub fn check_ddl(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
) -> Result<String> {
    let out = in_block(conn, overlay, prior, |conn| {
        let sql = crate::rebuild::plan(conn, sql)?.unwrap_or_else(|| sql.to_owned());
        replica::run_ddl(conn, &sql).map_err(sq("checking the DDL statement"))?;
        Ok(sql)
    });
    // Its schema version may come back with another schema, as above.
    crate::star::forget();
    out
}

#[cfg(test)]
mod tests {
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
        )?;
        let w2 = speculate_after(
            &c,
            &[Replay::Rows(w1.changes.clone().into())],
            &Prior::default(),
            "UPDATE t SET n = n + 5 WHERE id IN (1, 2)",
            &[],
            None,
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
            let out = speculate_after(&c, &[], &block.prior(), sql, &[], None)?;
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
    fn a_block_mixes_schema_statements_and_rows_in_order() -> Result<()> {
        let c = db();
        let mut block = Block::default();
        let out = speculate_after(&c, &[], &block.prior(), "UPDATE t SET n = 11", &[], None)?;
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
        )?;
        block.add_rows(out.changeset, out.changes);
        let out = speculate_after(&c, &[], &block.prior(), "UPDATE u SET w = 'y'", &[], None)?;
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
}
