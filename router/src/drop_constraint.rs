//! `ALTER TABLE t DROP CONSTRAINT name` (a foreign key, a unique or a check
//! constraint), which SQLite cannot do in place: the constraint is taken
//! out of the table's definition, which `rebuild` then builds and copies
//! the rows into.
//!
//! SQLite keeps no names for unnamed constraints, so a constraint is found
//! by the name it was given or the one PostgreSQL would have given it, the
//! names the catalog shows (`t_col_fkey`, `t_col_key`, `t_col_check`,
//! `t_check`). A primary key is not dropped (0A000): replicated rows need
//! one. A unique constraint a foreign key references is 2BP01, as in
//! PostgreSQL without CASCADE.

use rusqlite::Connection;
use sqlparser::ast::{ColumnOption, CreateTable, Expr, IndexColumn, TableConstraint};

use crate::error::{Error, Result};

fn refused(state: &'static str, message: String) -> Error {
    Error::Sqlite {
        context: "dropping a constraint",
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("SQLSTATE {state}: {message}")),
        ),
    }
}

/// What a constraint is, for the checks made before it goes.
enum Found {
    ForeignKey,
    Check,
    Unique(Vec<String>),
    PrimaryKey,
}

fn index_columns(cols: &[IndexColumn]) -> Vec<String> {
    cols.iter()
        .filter_map(|c| match &c.column.expr {
            Expr::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .collect()
}

fn named(given: Option<&sqlparser::ast::Ident>, derived: String, wanted: &str) -> bool {
    given.map_or(derived.as_str(), |i| i.value.as_str()) == wanted || derived == wanted
}

/// Whether a constraint stays in the definition, recording what was found:
/// everything but the constraint named stays, and a primary key stays
/// too (it is refused, not dropped).
fn keep(hit: Option<Found>, found: &mut Option<Found>) -> bool {
    match hit {
        Some(Found::PrimaryKey) => {
            *found = Some(Found::PrimaryKey);
            true
        }
        Some(f) => {
            *found = Some(f);
            false
        }
        None => true,
    }
}

/// Takes constraint `name` out of `ct`, the definition of `table`; whether
/// it was there (`if_exists` turns a missing one into `false` instead of
/// 42704).
pub fn apply(
    conn: &Connection,
    ct: &mut CreateTable,
    table: &str,
    name: &str,
    if_exists: bool,
) -> Result<bool> {
    let mut found = None;
    let mut check_no = 0;
    ct.constraints.retain(|c| {
        if found.is_some() {
            return true;
        }
        let hit = match c {
            TableConstraint::ForeignKey(fk) => {
                let cols: Vec<&str> = fk.columns.iter().map(|i| i.value.as_str()).collect();
                let derived = format!("{table}_{}_fkey", cols.join("_"));
                named(fk.name.as_ref(), derived, name).then_some(Found::ForeignKey)
            }
            TableConstraint::Unique(u) => {
                let cols = index_columns(&u.columns);
                let derived = format!("{table}_{}_key", cols.join("_"));
                named(u.name.as_ref(), derived, name).then_some(Found::Unique(cols))
            }
            TableConstraint::Check(ch) => {
                // PostgreSQL numbers a table's unnamed checks: t_check, t_check1, …
                let derived = match check_no {
                    0 => format!("{table}_check"),
                    n => format!("{table}_check{n}"),
                };
                check_no += 1;
                named(ch.name.as_ref(), derived, name).then_some(Found::Check)
            }
            TableConstraint::PrimaryKey(pk) => {
                named(pk.name.as_ref(), format!("{table}_pkey"), name).then_some(Found::PrimaryKey)
            }
            _ => None,
        };
        keep(hit, &mut found)
    });
    if found.is_none() {
        for col in &mut ct.columns {
            let column = col.name.value.clone();
            col.options.retain(|o| {
                if found.is_some() {
                    return true;
                }
                let hit = match &o.option {
                    ColumnOption::ForeignKey(_) => {
                        named(o.name.as_ref(), format!("{table}_{column}_fkey"), name)
                            .then_some(Found::ForeignKey)
                    }
                    ColumnOption::Unique(_) => {
                        named(o.name.as_ref(), format!("{table}_{column}_key"), name)
                            .then_some(Found::Unique(vec![column.clone()]))
                    }
                    ColumnOption::Check(_) => {
                        named(o.name.as_ref(), format!("{table}_{column}_check"), name)
                            .then_some(Found::Check)
                    }
                    ColumnOption::PrimaryKey(_) => {
                        named(o.name.as_ref(), format!("{table}_pkey"), name)
                            .then_some(Found::PrimaryKey)
                    }
                    _ => None,
                };
                keep(hit, &mut found)
            });
        }
    }
    match found {
        None if if_exists => Ok(false),
        None => Err(refused(
            "42704",
            format!("constraint \"{name}\" of relation \"{table}\" does not exist"),
        )),
        Some(Found::PrimaryKey) => Err(Error::Unsupported {
            what: format!("dropping the primary key \"{name}\""),
            why: "a replicated table needs its key: rebuild the table with another one".into(),
        }),
        Some(Found::Unique(cols)) => {
            if let Some(child) = referencing(conn, table, &cols)? {
                return Err(refused(
                    "2BP01",
                    format!(
                        "cannot drop constraint {name} on table {table} because other objects depend on it: a foreign key of table {child} references it"
                    ),
                ));
            }
            Ok(true)
        }
        Some(Found::ForeignKey | Found::Check) => Ok(true),
    }
}

/// A table with a foreign key to `cols` of `table`, if any.
fn referencing(conn: &Connection, table: &str, cols: &[String]) -> Result<Option<String>> {
    Ok(crate::foreign_key::declared(conn)?
        .into_iter()
        .find(|fk| {
            fk.parent.eq_ignore_ascii_case(table)
                && fk.pairs.len() == cols.len()
                && fk
                    .pairs
                    .iter()
                    .all(|(_, to)| cols.iter().any(|c| c.eq_ignore_ascii_case(to)))
        })
        .map(|fk| fk.child))
}
