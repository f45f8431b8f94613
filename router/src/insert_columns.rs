//! `INSERT INTO t VALUES (…)` with fewer values than `t` has columns.
//!
//! PostgreSQL fills the first N columns and gives the rest their defaults;
//! SQLite refuses ("table t has 3 columns but 1 values were supplied").
//! A table with a generated key gets the column list when its insert is
//! planned (`keys::name_visible_columns`, so the key it leaves out is
//! generated cluster-wide); for any other table, a statement SQLite refused
//! that way is rewritten with the same list, so other statements pay
//! nothing.

use rusqlite::Connection;
use sqlparser::ast::{Statement, TableObject};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::error::Result;

/// Whether SQLite refused an insert for supplying too few values.
pub fn too_few_values(e: &rusqlite::Error) -> bool {
    let msg = e.to_string();
    msg.contains(" columns but ") && msg.contains(" values were supplied")
}

/// `sql` with the implied column list, or `None` when it is not an insert
/// that supplies fewer values than its table has visible columns.
pub fn with_columns(conn: &Connection, sql: &str) -> Result<Option<String>> {
    let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, sql))
    else {
        return Ok(None);
    };
    let [Statement::Insert(ins)] = stmts.as_mut_slice() else {
        return Ok(None);
    };
    if !ins.columns.is_empty() {
        return Ok(None);
    }
    let TableObject::TableName(name) = &ins.table else {
        return Ok(None);
    };
    let Some(table) = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
    else {
        return Ok(None);
    };
    crate::keys::name_visible_columns(conn, &table, ins, false)?;
    Ok((!ins.columns.is_empty()).then(|| stmts[0].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_first_columns_as_postgresql_does() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE d (id INTEGER PRIMARY KEY, v TEXT DEFAULT 'dflt', n INTEGER)",
        )
        .expect("schema");
        let sql = "INSERT INTO d VALUES (1), ($1)";
        let err = conn.prepare(sql).expect_err("SQLite refuses");
        assert!(too_few_values(&err), "{err}");
        let fixed = with_columns(&conn, sql)
            .expect("rewrite")
            .expect("rewritten");
        assert_eq!(fixed, r#"INSERT INTO d ("id") VALUES (1), ($1)"#);
        assert_eq!(
            with_columns(&conn, "INSERT INTO d SELECT 3, 'x'")
                .expect("rewrite")
                .as_deref(),
            Some(r#"INSERT INTO d ("id", "v") SELECT 3, 'x'"#)
        );
        for unchanged in [
            "INSERT INTO d VALUES (1, 'a', 2)",
            "INSERT INTO d (id) VALUES (1)",
            "INSERT INTO d SELECT * FROM d",
            "SELECT 1",
        ] {
            assert_eq!(
                with_columns(&conn, unchanged).expect("rewrite"),
                None,
                "{unchanged}"
            );
        }
    }
}
