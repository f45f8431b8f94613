//! Running statements on a replica connection: reads, and speculative writes
//! whose row changes are captured with an SQLite session and then rolled back.
//!
//! Nothing here commits to the replica file: writes reach SQLite files only
//! through the log. A transaction block is carried between statements as the
//! SQLite changeset of its writes so far; each statement replays it inside a
//! fresh SQLite transaction, so no lock is held while the client is idle and
//! replication never waits on an open client transaction.

use std::collections::HashMap;

use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::hooks::Action;
use rusqlite::session::{ConflictAction, ConflictType, Session};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use wal_bus::{Change, Op, Row, Value};

use crate::error::{Error, Result};
use crate::write_order::Replay;

/// Rows a statement produced.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub decl_types: Vec<Option<String>>,
    pub rows: Vec<Vec<SqlValue>>,
}

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

fn sq(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::sqlite(context, e)
}

/// Binds `$1..$n` by name (SQLite numbers named parameters by first use).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[SqlValue]) -> Result<()> {
    for (i, v) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let idx = stmt
            .parameter_index(&name)
            .map_err(sq("binding parameters"))?
            .or_else(|| (stmt.parameter_count() == params.len()).then_some(i + 1));
        if let Some(idx) = idx {
            stmt.raw_bind_parameter(idx, v)
                .map_err(sq("binding parameters"))?;
        }
    }
    Ok(())
}

/// Runs one statement, collecting any result rows.
pub fn run_statement(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    max_rows: usize,
) -> Result<(Option<ResultSet>, usize)> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(sq("preparing the statement"))?;
    bind(&mut stmt, params)?;
    let ncols = stmt.column_count();
    if ncols == 0 {
        let n = stmt.raw_execute().map_err(sq("executing the statement"))?;
        return Ok((None, n));
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let decl_types: Vec<Option<String>> = stmt
        .columns()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    let mut rows = Vec::new();
    {
        let mut q = stmt.raw_query();
        while let Some(row) = q.next().map_err(sq("reading result rows"))? {
            let mut vals = Vec::with_capacity(ncols);
            for i in 0..ncols {
                vals.push(replica::owned_value(
                    row.get_ref(i).map_err(sq("reading a result value"))?,
                ));
            }
            if rows.len() >= max_rows {
                return Err(Error::ResultTooLarge { limit: max_rows });
            }
            rows.push(vals);
        }
    }
    let affected = rows.len();
    Ok((
        Some(ResultSet {
            columns,
            decl_types,
            rows,
        }),
        affected,
    ))
}

/// Result columns of a statement without running it (for Describe).
pub fn describe(conn: &Connection, sql: &str) -> Result<(Vec<String>, Vec<Option<String>>)> {
    let stmt = conn
        .prepare_cached(sql)
        .map_err(sq("preparing the statement"))?;
    let names = stmt.column_names().map(str::to_owned).collect();
    let types = stmt
        .columns()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    Ok((names, types))
}

/// Declared column types of the user tables, for type inference.
#[derive(Debug, Default)]
pub struct SchemaTypes {
    /// Column name → declared type (first table wins on a clash).
    pub by_name: HashMap<String, String>,
    /// Table → declared types in column order.
    pub by_table: HashMap<String, Vec<String>>,
}

impl SchemaTypes {
    /// The declared type a hint points at, if the schema has it.
    pub fn resolve(&self, hint: &crate::classify::Hint) -> Option<String> {
        use crate::classify::Hint;
        match hint {
            Hint::Column(c) => self.by_name.get(c).cloned(),
            Hint::Position { table, index } => self
                .by_table
                .get(table)
                .and_then(|t| t.get(*index))
                .cloned(),
            Hint::Decl(d) => Some((*d).to_owned()),
        }
    }
}

pub fn schema_types(conn: &Connection) -> Result<SchemaTypes> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
        )
        .map_err(sq("reading the schema"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sq("reading the schema"))?;
    let mut out = SchemaTypes::default();
    for r in rows {
        let (table, name, ty) = r.map_err(sq("reading the schema"))?;
        out.by_name.entry(name).or_insert_with(|| ty.clone());
        out.by_table.entry(table).or_default().push(ty);
    }
    Ok(out)
}

fn replay(conn: &Connection, prior: &[u8]) -> Result<()> {
    if prior.is_empty() {
        return Ok(());
    }
    let mut input = prior;
    conn.apply_strm(
        &mut input,
        None::<fn(&str) -> bool>,
        |kind, _item| match kind {
            ConflictType::SQLITE_CHANGESET_DATA | ConflictType::SQLITE_CHANGESET_CONFLICT => {
                ConflictAction::SQLITE_CHANGESET_REPLACE
            }
            _ => ConflictAction::SQLITE_CHANGESET_OMIT,
        },
    )
    .map_err(sq("replaying the transaction's earlier writes"))
}

fn user_table(name: &str) -> bool {
    !name.starts_with(replica::INTERNAL_PREFIX) && !name.starts_with("sqlite_")
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

/// Replays the router's overlay: its queued records this replica has not
/// applied yet, in log order (see `write_order`).
fn replay_overlay(conn: &Connection, overlay: &[Replay]) -> Result<()> {
    for r in overlay {
        match r {
            Replay::Rows(changes) => replay_rows(conn, changes)?,
            Replay::Ddl(sql) => conn
                .execute_batch(sql)
                .map_err(sq("replaying a queued schema change"))?,
        }
    }
    Ok(())
}

/// Applies row changes the way a changeset with "replace on conflict"
/// would: inserts as upserts, updates of the changed columns only (a row
/// that is gone stays gone), deletes by key. Statements are cached per
/// table and column set.
fn replay_rows(conn: &Connection, changes: &[Change]) -> Result<()> {
    let q = |c: &String| replica::quote_ident(c);
    let run = |sql: &str, values: Vec<&Value>| -> Result<()> {
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(sq("replaying a queued write"))?;
        let params: Vec<SqlValue> = values.into_iter().map(replica::to_sql_value).collect();
        stmt.execute(params_from_iter(params.iter()))
            .map_err(sq("replaying a queued write"))?;
        Ok(())
    };
    fn key_where(key: &Row, first: usize) -> (String, Vec<&Value>) {
        let conds: Vec<String> = key
            .keys()
            .enumerate()
            .map(|(i, k)| format!("{} IS ?{}", replica::quote_ident(k), first + i))
            .collect();
        (conds.join(" AND "), key.values().collect())
    }
    for c in changes {
        let table = q(&c.table);
        let upsert = |after: &Row| -> Result<()> {
            let cols: Vec<String> = after.keys().map(q).collect();
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let target: Vec<String> = c.key.keys().map(q).collect();
            let set: Vec<String> = cols.iter().map(|k| format!("{k} = excluded.{k}")).collect();
            run(
                &format!(
                    "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
                    cols.join(", "),
                    marks.join(", "),
                    target.join(", "),
                    set.join(", ")
                ),
                after.values().collect(),
            )
        };
        let delete = |key: &Row| -> Result<()> {
            let (cond, values) = key_where(key, 1);
            run(&format!("DELETE FROM {table} WHERE {cond}"), values)
        };
        match (c.op, &c.before, &c.after) {
            (Op::Insert, _, Some(after)) => upsert(after)?,
            (Op::Delete, _, _) => delete(&c.key)?,
            (Op::Update, Some(before), Some(after)) => {
                let key_moved = c.key.iter().any(|(k, v)| after.get(k) != Some(v));
                if key_moved {
                    delete(&c.key)?;
                    upsert(after)?;
                    continue;
                }
                let changed: Vec<(&String, &Value)> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                let set: Vec<String> = changed
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| format!("{} = ?{}", q(k), i + 1))
                    .collect();
                let (cond, key_values) = key_where(&c.key, changed.len() + 1);
                let mut values: Vec<&Value> = changed.iter().map(|(_, v)| *v).collect();
                values.extend(key_values);
                run(
                    &format!("UPDATE {table} SET {} WHERE {cond}", set.join(", ")),
                    values,
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`speculate`] on top of `overlay`, the router's queued writes this
/// replica has not applied yet. The caller holds the replica's write gate,
/// so "not applied yet" is exact for the whole speculation.
/// `null_check`, when given, finds a row the statement left with a NULL key
/// (see `keys::Plan`): such a write is refused with 23502.
pub fn speculate_after(
    conn: &Connection,
    overlay: &[Replay],
    prior: &[u8],
    sql: &str,
    params: &[SqlValue],
    null_check: Option<&NullCheck>,
) -> Result<SpecOutcome> {
    rolled_back(conn, |conn| {
        replay_overlay(conn, overlay)?;
        replay(conn, prior)?;
        // Attached after the replay: captures this statement alone, so the
        // transaction keeps the before-images of its first touch of a row.
        let mut session = Session::new(conn).map_err(sq("starting change capture"))?;
        session.table_filter(Some(user_table));
        session
            .attach(None::<&str>)
            .map_err(sq("starting change capture"))?;
        // RETURNING rows are the statement's own changes; the log record
        // already bounds their size (max_record_bytes).
        let (result, affected) = run_statement(conn, sql, params, usize::MAX)?;
        if let Some(check) = null_check
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
        let changes = changes_in(conn, &own)?;
        let changeset = if prior.is_empty() {
            own
        } else {
            combine(prior, &own)?
        };
        Ok(SpecOutcome {
            result,
            affected,
            changeset,
            changes,
        })
    })
}

/// Concatenates two changesets into one net changeset.
fn combine(first: &[u8], second: &[u8]) -> Result<Vec<u8>> {
    let mut group = rusqlite::session::Changegroup::new().map_err(sq("combining changesets"))?;
    group
        .add_stream(&mut &first[..])
        .map_err(sq("combining changesets"))?;
    group
        .add_stream(&mut &second[..])
        .map_err(sq("combining changesets"))?;
    let mut out = Vec::new();
    group
        .output_strm(&mut out)
        .map_err(sq("combining changesets"))?;
    Ok(out)
}

/// Folds a statement's row changes into the transaction's net changes:
/// the before-image of a row's first change, the after-image of its last.
pub fn compose(net: &mut Vec<Change>, next: Vec<Change>) {
    for c in next {
        let Some(i) = net
            .iter()
            .position(|p| p.table == c.table && p.key == c.key)
        else {
            net.push(c);
            continue;
        };
        let p = &net[i];
        let merged = match (p.op, c.op) {
            (Op::Insert, Op::Update) => Some(Change {
                after: c.after,
                ..p.clone()
            }),
            (Op::Insert, Op::Delete) => None,
            (Op::Update, Op::Update) => Some(Change {
                after: c.after,
                ..p.clone()
            }),
            (Op::Update, Op::Delete) => Some(Change {
                op: Op::Delete,
                after: None,
                ..p.clone()
            }),
            (Op::Delete, Op::Insert) => Some(Change {
                op: Op::Update,
                after: c.after,
                ..p.clone()
            }),
            _ => Some(c),
        };
        match merged {
            Some(m) => net[i] = m,
            None => {
                net.remove(i);
            }
        }
    }
}

/// Runs a read on top of the router's overlay and the transaction's
/// earlier writes.
pub fn read_in_txn(
    conn: &Connection,
    overlay: &[Replay],
    prior: &[u8],
    sql: &str,
    params: &[SqlValue],
    max_rows: usize,
) -> Result<(Option<ResultSet>, usize)> {
    rolled_back(conn, |conn| {
        replay_overlay(conn, overlay)?;
        replay(conn, prior)?;
        run_statement(conn, sql, params, max_rows)
    })
}

/// Checks a DDL statement runs on top of the overlay, without keeping its
/// effect.
pub fn check_ddl(conn: &Connection, overlay: &[Replay], sql: &str) -> Result<()> {
    rolled_back(conn, |conn| {
        replay_overlay(conn, overlay)?;
        conn.execute_batch(sql)
            .map_err(sq("checking the DDL statement"))
    })
}

fn value_of(v: ValueRef<'_>) -> Value {
    replica::from_value_ref(v)
}

/// Converts a changeset to row changes. Must run where the changeset's
/// effects are visible (for the after-images of updates).
fn changes_in(conn: &Connection, changeset: &[u8]) -> Result<Vec<Change>> {
    let mut tables: HashMap<String, replica::TableInfo> = HashMap::new();
    let mut out = Vec::new();
    let mut input: &[u8] = changeset;
    let reader: &mut dyn std::io::Read = &mut input;
    let mut iter = rusqlite::session::ChangesetIter::start_strm(&reader)
        .map_err(sq("reading the changeset"))?;
    while let Some(item) = iter.next().map_err(sq("reading the changeset"))? {
        let op = item.op().map_err(sq("reading the changeset"))?;
        let table = op.table_name().to_owned();
        if !tables.contains_key(&table) {
            let info = replica::table_info(conn, &table)
                .map_err(sq("reading the table schema"))?
                .ok_or_else(|| Error::Internal(format!("table {table} vanished")))?;
            tables.insert(table.clone(), info);
        }
        let info = &tables[&table];
        let ncols = (op.number_of_columns() as usize).min(info.columns.len());
        let key_of = |row: &Row| -> Row {
            info.pk
                .iter()
                .filter_map(|c| row.get(c).map(|v| (c.clone(), v.clone())))
                .collect()
        };
        match op.code() {
            Action::SQLITE_INSERT | Action::SQLITE_DELETE => {
                // Inserts carry every new value, deletes every old one.
                let insert = op.code() == Action::SQLITE_INSERT;
                let mut row = Row::new();
                for (i, col) in info.columns.iter().enumerate().take(ncols) {
                    let v = if insert {
                        item.new_value(i)
                    } else {
                        item.old_value(i)
                    };
                    row.insert(col.clone(), v.map(value_of).unwrap_or(Value::Null));
                }
                let key = key_of(&row);
                let (op, before, after) = if insert {
                    (Op::Insert, None, Some(row))
                } else {
                    (Op::Delete, Some(row), None)
                };
                out.push(Change {
                    table,
                    op,
                    key,
                    before,
                    after,
                });
            }
            Action::SQLITE_UPDATE => {
                // The changeset holds the key and the changed columns; the
                // rest of the row is read back (unchanged columns are equal
                // in both images).
                let mut key = Row::new();
                let mut old = HashMap::new();
                for i in 0..ncols {
                    if let Ok(v) = item.old_value(i) {
                        old.insert(i, value_of(v));
                    }
                }
                for c in &info.pk {
                    if let Some(i) = info.columns.iter().position(|x| x == c)
                        && let Some(v) = old.get(&i)
                    {
                        key.insert(c.clone(), v.clone());
                    }
                }
                let after = read_row(conn, info, &key)?
                    .ok_or_else(|| Error::Internal(format!("updated row of {table} not found")))?;
                let mut before = after.clone();
                for (i, v) in old {
                    before.insert(info.columns[i].clone(), v);
                }
                out.push(Change {
                    table,
                    op: Op::Update,
                    key,
                    before: Some(before),
                    after: Some(after),
                });
            }
            _ => return Err(Error::Internal("unknown change in changeset".into())),
        }
    }
    Ok(out)
}

fn read_row(conn: &Connection, info: &replica::TableInfo, key: &Row) -> Result<Option<Row>> {
    let cols: Vec<String> = info
        .columns
        .iter()
        .map(|c| replica::quote_ident(c))
        .collect();
    let mut params = Vec::new();
    let conds: Vec<String> = info
        .pk
        .iter()
        .map(|c| {
            params.push(
                key.get(c)
                    .map(replica::to_sql_value)
                    .unwrap_or(SqlValue::Null),
            );
            format!("{} IS ?{}", replica::quote_ident(c), params.len())
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        cols.join(", "),
        replica::quote_ident(&info.name),
        conds.join(" AND ")
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(sq("reading an updated row"))?;
    stmt.query_row(params_from_iter(params.iter()), |r| {
        let mut row = Row::new();
        for (i, c) in info.columns.iter().enumerate() {
            row.insert(c.clone(), value_of(r.get_ref(i)?));
        }
        Ok(row)
    })
    .optional()
    .map_err(sq("reading an updated row"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            &[],
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
        let w1 = speculate_after(&c, &[], &[], "INSERT INTO t VALUES (2, 'b', 1)", &[], None)?;
        let w2 = speculate_after(
            &c,
            &[Replay::Rows(w1.changes.clone().into())],
            &[],
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
            &[],
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
            &[],
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
        let again = read_in_txn(&c, &overlay, &[], "SELECT count(*), sum(n) FROM t", &[], 10)?
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
        let mut changes = Vec::new();
        let a = speculate_after(&c, &[], &[], "INSERT INTO t VALUES (2, 'b', 1)", &[], None)?;
        compose(&mut changes, a.changes);
        let b = speculate_after(
            &c,
            &[],
            &a.changeset,
            "UPDATE t SET n = 7 WHERE id = 2",
            &[],
            None,
        )?;
        compose(&mut changes, b.changes);
        let d = speculate_after(
            &c,
            &[],
            &b.changeset,
            "DELETE FROM t WHERE id = 1 RETURNING v",
            &[],
            None,
        )?;
        compose(&mut changes, d.changes);
        assert_eq!(d.result.map(|r| r.rows.len()), Some(1));
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
}
