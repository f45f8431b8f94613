//! `INSERT INTO t VALUES (…)` with fewer values than `t` has columns.
//!
//! PostgreSQL fills the first N columns and gives the rest their defaults;
//! SQLite refuses ("table t has 3 columns but 1 values were supplied").
//! Only a statement SQLite refused that way is rewritten, with the column
//! list PostgreSQL implies (the table's first N visible columns), so other
//! statements pay nothing.

use rusqlite::Connection;
use sqlparser::ast::{Ident, ObjectName, SetExpr, Statement, TableObject};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

/// Whether SQLite refused an insert for supplying too few values.
pub fn too_few_values(e: &rusqlite::Error) -> bool {
    let msg = e.to_string();
    msg.contains(" columns but ") && msg.contains(" values were supplied")
}

/// `sql` with the implied column list, or `None` when it is not an insert
/// that supplies fewer values than its table has visible columns.
pub fn with_columns(conn: &Connection, sql: &str) -> Option<String> {
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, sql))
        .ok()?;
    let [Statement::Insert(ins)] = stmts.as_mut_slice() else {
        return None;
    };
    if !ins.columns.is_empty() {
        return None;
    }
    let TableObject::TableName(name) = &ins.table else {
        return None;
    };
    let table = name.0.last()?.as_ident()?.value.clone();
    let width = match ins.source.as_ref()?.body.as_ref() {
        SetExpr::Values(v) => v.rows.first()?.len(),
        SetExpr::Select(s)
            if !s.projection.iter().any(|i| {
                !matches!(
                    i,
                    sqlparser::ast::SelectItem::UnnamedExpr(_)
                        | sqlparser::ast::SelectItem::ExprWithAlias { .. }
                )
            }) =>
        {
            s.projection.len()
        }
        _ => return None,
    };
    let columns = visible_columns(conn, &table)?;
    if width == 0 || width >= columns.len() {
        return None;
    }
    ins.columns = columns
        .into_iter()
        .take(width)
        .map(|c| ObjectName::from(vec![Ident::with_quote('"', c)]))
        .collect();
    Some(stmts[0].to_string())
}

fn visible_columns(conn: &Connection, table: &str) -> Option<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .ok()?;
    let cols = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .ok()?
        .filter_map(|c| c.ok())
        .filter(|c| !replica::is_hidden_column(c))
        .collect();
    Some(cols)
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
        let fixed = with_columns(&conn, sql).expect("rewritten");
        assert_eq!(fixed, r#"INSERT INTO d ("id") VALUES (1), ($1)"#);
        assert_eq!(
            with_columns(&conn, "INSERT INTO d SELECT 3, 'x'").as_deref(),
            Some(r#"INSERT INTO d ("id", "v") SELECT 3, 'x'"#)
        );
        for unchanged in [
            "INSERT INTO d VALUES (1, 'a', 2)",
            "INSERT INTO d (id) VALUES (1)",
            "INSERT INTO d SELECT * FROM d",
            "SELECT 1",
        ] {
            assert_eq!(with_columns(&conn, unchanged), None, "{unchanged}");
        }
    }
}
