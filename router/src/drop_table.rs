//! `DROP TABLE` of a table another table's foreign key references is
//! refused with 2BP01, as PostgreSQL refuses it without CASCADE (which
//! Tributary does not take): SQLite would drop it and leave the child
//! unwritable ("no such table" on every insert).

use rusqlite::Connection;
use sqlparser::ast::{ObjectType, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};

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
    for fk in crate::foreign_key::declared(conn)? {
        if dropped.contains(&fk.child.to_lowercase())
            || !dropped.contains(&fk.parent.to_lowercase())
        {
            continue;
        }
        let (child, parent) = (&fk.child, &fk.parent);
        let from: Vec<&str> = fk.pairs.iter().map(|(f, _)| f.as_str()).collect();
        return Err(Error::Sqlite {
            context: "dropping a table",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(format!(
                    "SQLSTATE 2BP01: cannot drop table {parent} because other objects depend on it: constraint {child}_{}_fkey on table {child} depends on table {parent}; drop that constraint (ALTER TABLE {child} DROP CONSTRAINT …) or the table {child} first",
                    from.join("_")
                )),
            ),
        });
    }
    Ok(())
}
