//! Re-creating, inside a speculation, what the replica file does not hold
//! yet: the router's overlay (queued records, in log order) and the
//! session's open transaction (its net row changes so far), both as rows
//! through cached statements.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use wal_bus::{Change, Op, Row, Value};

use crate::error::Result;
use crate::exec::sq;
use crate::write_order::Replay;

/// Replays the router's overlay: its queued records this replica has not
/// applied yet, in log order (see `write_order`).
pub(super) fn overlay(conn: &Connection, queued: &[Replay]) -> Result<()> {
    for r in queued {
        match r {
            Replay::Rows(changes) => rows(conn, changes)?,
            Replay::Ddl(sql) => {
                replica::run_ddl(conn, sql).map_err(sq("replaying a queued schema change"))?
            }
            Replay::Block(steps) => overlay(conn, steps)?,
        }
    }
    Ok(())
}

/// Applies row changes the way a changeset with "replace on conflict"
/// would: inserts as upserts, updates of the changed columns only (a row
/// that is gone stays gone), deletes by key. Statements are cached per
/// table and column set.
pub(super) fn rows(conn: &Connection, changes: &[Change]) -> Result<()> {
    let q = |c: &String| replica::quote_ident(c);
    let run = |sql: &str, params: Vec<SqlValue>| -> Result<()> {
        let mut stmt = conn
            .prepare_cached(sql)
            .map_err(sq("replaying a queued write"))?;
        stmt.execute(params_from_iter(params.iter()))
            .map_err(sq("replaying a queued write"))?;
        Ok(())
    };
    let key_of = |key: &'_ Row, params: &mut Vec<SqlValue>| {
        replica::key_where(params, key.iter().map(|(k, v)| (k.as_str(), Some(v))))
    };
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
                after.values().map(replica::to_sql_value).collect(),
            )
        };
        let delete = |key: &Row| -> Result<()> {
            let mut params = Vec::new();
            let cond = key_of(key, &mut params);
            run(&format!("DELETE FROM {table} WHERE {cond}"), params)
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
                    .filter(|(k, v)| before.get(k) != Some(*v))
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                let set: Vec<String> = changed
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| format!("{} = ?{}", q(k), i + 1))
                    .collect();
                let mut params: Vec<SqlValue> = changed
                    .iter()
                    .map(|(_, v)| replica::to_sql_value(v))
                    .collect();
                let cond = key_of(&c.key, &mut params);
                run(
                    &format!("UPDATE {table} SET {} WHERE {cond}", set.join(", ")),
                    params,
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}
