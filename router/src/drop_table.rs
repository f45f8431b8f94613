//! `DROP TABLE` of a table another table's foreign key references is
//! refused with 2BP01, as PostgreSQL refuses it without CASCADE (which
//! Tributary does not take): SQLite would drop it and leave the child
//! unwritable ("no such table" on every insert).

use rusqlite::Connection;
use sqlparser::ast::{ObjectType, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::exec::sq;

/// Checks the tables `sql` drops (one or more `DROP TABLE` statements) are
/// referenced by no table left standing.
pub fn check(conn: &Connection, sql: &str) -> Result<()> {
    if !sql
        .trim_start()
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case("drop"))
    {
        return Ok(());
    }
    let Ok(stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(());
    };
    let dropped: Vec<String> = stmts
        .iter()
        .filter_map(|s| match s {
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| {
            n.0.last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase())
        })
        .collect();
    if dropped.is_empty() {
        return Ok(());
    }
    let children: Vec<String> = conn
        .prepare("SELECT name FROM main.sqlite_schema WHERE type = 'table' AND upper(sql) LIKE '%REFERENCES%'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sq("listing tables with foreign keys"))?;
    for child in children {
        if dropped.contains(&child.to_lowercase()) {
            continue;
        }
        let refs: Vec<(String, String)> = conn
            .prepare("SELECT \"table\", \"from\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
            .and_then(|mut s| {
                s.query_map([&child], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(sq("reading foreign keys"))?;
        if let Some((parent, from)) = refs
            .iter()
            .find(|(p, _)| dropped.contains(&p.to_lowercase()))
        {
            return Err(Error::Sqlite {
                context: "dropping a table",
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                    Some(format!(
                        "SQLSTATE 2BP01: cannot drop table {parent} because other objects depend on it: constraint {child}_{from}_fkey on table {child} depends on table {parent}; drop that constraint (ALTER TABLE {child} DROP CONSTRAINT …) or the table {child} first"
                    )),
                ),
            });
        }
    }
    Ok(())
}
