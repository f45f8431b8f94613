//! The row locks a statement's changes need, foreign keys included.
//!
//! A written row is locked for writing; a delete, or an update that changes
//! a column some foreign key references, locks it for a *key* write. A row
//! inserted or updated with a foreign key to a parent takes a key-share
//! lock on that parent row, as PostgreSQL's `FOR KEY SHARE` does: the
//! parent's delete waits for the child's transaction (and then finds the
//! child), and the child's insert waits for a transaction that deleted the
//! parent (and then finds it gone). Updates of a parent's other columns
//! do not conflict with it.

use std::collections::HashMap;

use rusqlite::Connection;
use wal_bus::{Change, Op, Row};

use crate::error::Result;
use crate::exec::sq;
use crate::write_order::{Lock, Mode};

/// One foreign key of a child table, ready for lock planning.
#[derive(Debug, Clone)]
struct ForeignKey {
    /// The parent table, as the schema spells it.
    parent: String,
    /// Child columns and the parent columns they reference, in order.
    pairs: Vec<(String, String)>,
    /// The query finding the referenced parent row's primary key.
    lookup: String,
    /// The parent's primary-key columns, in the query's order.
    parent_pk: Vec<String>,
}

/// Every foreign key of the schema, by child table and by referenced table.
#[derive(Debug, Default)]
pub(super) struct Graph {
    /// Lowercase child table name → its foreign keys.
    children: HashMap<String, Vec<ForeignKey>>,
    /// Lowercase parent table name → the columns some foreign key references.
    referenced: HashMap<String, Vec<String>>,
}

impl Graph {
    /// Whether the schema has any foreign key.
    pub(super) fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

thread_local! {
    /// Per thread: the file and schema version `GRAPH` was read for.
    static GRAPH: std::cell::RefCell<Option<(String, i64, std::rc::Rc<Graph>)>> =
        const { std::cell::RefCell::new(None) };
}

fn read_graph(conn: &Connection) -> Result<Graph> {
    let q = replica::quote_ident;
    let mut graph = Graph::default();
    for fk in crate::foreign_key::declared(conn)? {
        if fk.parent_pk.is_empty() {
            // A dangling REFERENCES: SQLite refuses writes to the child.
            continue;
        }
        let referenced = graph
            .referenced
            .entry(fk.parent.to_lowercase())
            .or_default();
        for (_, p) in &fk.pairs {
            if !referenced.iter().any(|c| c.eq_ignore_ascii_case(p)) {
                referenced.push(p.clone());
            }
        }
        let filter: Vec<String> = fk
            .pairs
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("{} = ?{}", q(p), i + 1))
            .collect();
        let lookup = format!(
            "SELECT {} FROM {} WHERE {} LIMIT 1",
            fk.parent_pk
                .iter()
                .map(|c| q(c))
                .collect::<Vec<_>>()
                .join(", "),
            q(&fk.parent),
            filter.join(" AND ")
        );
        graph
            .children
            .entry(fk.child.to_lowercase())
            .or_default()
            .push(ForeignKey {
                parent: fk.parent,
                pairs: fk.pairs,
                lookup,
                parent_pk: fk.parent_pk,
            });
    }
    Ok(graph)
}

/// The schema's foreign keys, cached per schema version unless `volatile`
/// (a replayed block changed the schema: its version number may come back
/// with another schema).
pub(super) fn graph(conn: &Connection, volatile: bool) -> Result<std::rc::Rc<Graph>> {
    if volatile {
        return Ok(std::rc::Rc::new(read_graph(conn)?));
    }
    let version: i64 = conn
        .prepare_cached("PRAGMA main.schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("reading the schema version"))?;
    let path = conn.path().unwrap_or("").to_owned();
    if let Some(g) = GRAPH.with(|g| {
        g.borrow()
            .as_ref()
            .filter(|(p, v, _)| *p == path && *v == version)
            .map(|(_, _, g)| g.clone())
    }) {
        return Ok(g);
    }
    let g = std::rc::Rc::new(read_graph(conn)?);
    GRAPH.with(|c| *c.borrow_mut() = Some((path, version, g.clone())));
    Ok(g)
}

fn row_id(table: &str, key: &Row) -> crate::write_order::RowId {
    // BTreeMap keys: the JSON text is canonical.
    (
        table.to_owned(),
        serde_json::to_string(key).unwrap_or_default(),
    )
}

fn get<'a>(row: &'a Row, column: &str) -> Option<&'a wal_bus::Value> {
    row.get(column).or_else(|| {
        row.iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(column))
            .map(|(_, v)| v)
    })
}

/// The locks `changes` need. `foreign_keys`: whether the schema may have
/// any (without, every lock is a plain or key write of the rows written);
/// `volatile` as for [`graph`]. Runs where the changes are visible, so a
/// referenced parent row can be looked up.
pub(super) fn locks(
    conn: &Connection,
    changes: &[Change],
    foreign_keys: bool,
    volatile: bool,
) -> Result<Vec<Lock>> {
    let graph = if foreign_keys {
        Some(graph(conn, volatile)?)
    } else {
        None
    };
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        let mode = match c.op {
            Op::Delete => Mode::KeyWrite,
            Op::Insert => Mode::Write,
            Op::Update => {
                let key_change = graph
                    .as_ref()
                    .and_then(|g| g.referenced.get(&c.table.to_lowercase()))
                    .is_some_and(|cols| {
                        cols.iter().any(|col| {
                            let before = c.before.as_ref().and_then(|r| get(r, col));
                            let after = c.after.as_ref().and_then(|r| get(r, col));
                            before != after
                        })
                    });
                if key_change {
                    Mode::KeyWrite
                } else {
                    Mode::Write
                }
            }
        };
        out.push((row_id(&c.table, &c.key), mode));
        let Some(g) = graph.as_ref() else {
            continue;
        };
        let Some(after) = c.after.as_ref() else {
            continue;
        };
        for fk in g
            .children
            .get(&c.table.to_lowercase())
            .into_iter()
            .flatten()
        {
            let values: Option<Vec<&wal_bus::Value>> = fk
                .pairs
                .iter()
                .map(|(from, _)| get(after, from).filter(|v| **v != wal_bus::Value::Null))
                .collect();
            // A NULL in the reference references nothing (MATCH SIMPLE).
            let Some(values) = values else {
                continue;
            };
            // An update that leaves the reference alone checks nothing,
            // as in PostgreSQL.
            if let Some(before) = c.before.as_ref()
                && fk
                    .pairs
                    .iter()
                    .zip(&values)
                    .all(|((from, _), v)| get(before, from) == Some(*v))
            {
                continue;
            }
            if let Some(key) = parent_key(conn, fk, &values)? {
                out.push((row_id(&fk.parent, &key), Mode::KeyShare));
            }
        }
    }
    Ok(out)
}

/// The primary key of the parent row `values` reference, if it is there.
fn parent_key(
    conn: &Connection,
    fk: &ForeignKey,
    values: &[&wal_bus::Value],
) -> Result<Option<Row>> {
    let params: Vec<rusqlite::types::Value> =
        values.iter().map(|v| replica::to_sql_value(v)).collect();
    let mut stmt = conn
        .prepare_cached(&fk.lookup)
        .map_err(sq("looking up a referenced row"))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(sq("looking up a referenced row"))?;
    let Some(row) = rows.next().map_err(sq("looking up a referenced row"))? else {
        return Ok(None);
    };
    let mut key = Row::new();
    for (i, c) in fk.parent_pk.iter().enumerate() {
        let v = row.get_ref(i).map_err(sq("looking up a referenced row"))?;
        key.insert(c.clone(), replica::from_value_ref(v));
    }
    Ok(Some(key))
}

/// What PostgreSQL says about a statement that broke a foreign key: run
/// again with the checks deferred (inside the same rolled-back
/// speculation), SQLite's `foreign_key_check` names the row, and the
/// message names the constraint and the key as PostgreSQL's does.
/// `None` when the violation cannot be pinned down (the caller keeps
/// SQLite's error, 23503 all the same).
pub(super) fn explain_violation(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
) -> Option<crate::error::Error> {
    conn.execute_batch("PRAGMA defer_foreign_keys = ON").ok()?;
    let explained = (|| {
        crate::exec::run_statement(conn, sql, params, usize::MAX).ok()?;
        // (child table, rowid, parent table, foreign key id)
        type Check = (String, Option<i64>, String, i64);
        let found: Check = conn
            .query_row("PRAGMA foreign_key_check", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .ok()?;
        let (child, rowid, parent, fkid) = found;
        let pairs: Vec<(String, Option<String>)> = conn
            .prepare(
                "SELECT \"from\", \"to\" FROM pragma_foreign_key_list(?1) WHERE id = ?2 ORDER BY seq",
            )
            .and_then(|mut s| {
                s.query_map(rusqlite::params![child, fkid], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .ok()?;
        let from: Vec<String> = pairs.iter().map(|(f, _)| f.clone()).collect();
        let to: Vec<String> = if pairs.iter().all(|(_, t)| t.is_none()) {
            replica::table_info(conn, &parent).ok()??.pk
        } else {
            pairs
                .iter()
                .map(|(_, t)| t.clone().unwrap_or_default())
                .collect()
        };
        let name = format!("{child}_{}_fkey", from.join("_"));
        let values: String = conn
            .query_row(
                &format!(
                    "SELECT {} FROM {} WHERE rowid = ?1",
                    from.iter()
                        .map(|c| format!(
                            "coalesce(CAST({} AS TEXT), 'NULL')",
                            replica::quote_ident(c)
                        ))
                        .collect::<Vec<_>>()
                        .join(" || ', ' || "),
                    replica::quote_ident(&child)
                ),
                [rowid?],
                |r| r.get(0),
            )
            .ok()?;
        let written = written_table(sql);
        let (message, detail) = if written
            .as_deref()
            .is_some_and(|w| w.eq_ignore_ascii_case(&parent) && !w.eq_ignore_ascii_case(&child))
        {
            (
                format!(
                    "update or delete on table \"{parent}\" violates foreign key constraint \"{name}\" on table \"{child}\""
                ),
                format!(
                    "Key ({})=({values}) is still referenced from table \"{child}\".",
                    to.join(", ")
                ),
            )
        } else {
            (
                format!(
                    "insert or update on table \"{child}\" violates foreign key constraint \"{name}\""
                ),
                format!(
                    "Key ({})=({values}) is not present in table \"{parent}\".",
                    from.join(", ")
                ),
            )
        };
        Some(crate::error::Error::ForeignKeyViolation { message, detail })
    })();
    let _ = conn.execute_batch("PRAGMA defer_foreign_keys = OFF");
    explained
}

/// The table an INSERT, UPDATE or DELETE writes.
fn written_table(sql: &str) -> Option<String> {
    use sqlparser::ast::{FromTable, Statement, TableFactor, TableObject};
    let stmts =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::SQLiteDialect {}, sql).ok()?;
    let name = match stmts.first()? {
        Statement::Insert(i) => match &i.table {
            TableObject::TableName(n) => n.clone(),
            _ => return None,
        },
        Statement::Update(u) => match &u.table.relation {
            TableFactor::Table { name, .. } => name.clone(),
            _ => return None,
        },
        Statement::Delete(d) => {
            let tables = match &d.from {
                FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
            };
            match &tables.first()?.relation {
                TableFactor::Table { name, .. } => name.clone(),
                _ => return None,
            }
        }
        _ => return None,
    };
    name.0.last()?.as_ident().map(|i| i.value.clone())
}
