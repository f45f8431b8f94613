//! Rewrites of PostgreSQL spellings SQLite does not take, on sqlparser's
//! AST, applied only when a statement has one (the text is otherwise run as
//! the client wrote it). Today: schema-qualified calls of the functions in
//! `functions.rs`, such as SQLAlchemy's `SELECT pg_catalog.version()`.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, visit_expressions_mut};

/// The statement re-rendered without `pg_catalog.` on function names, or
/// `None` when it has none.
pub(super) fn strip_pg_catalog(stmt: &Statement, sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("pg_catalog.") {
        return None;
    }
    let mut stmt = stmt.clone();
    let mut changed = false;
    let _ = visit_expressions_mut(&mut stmt, |e| {
        if let Expr::Function(f) = e
            && f.name.0.len() == 2
            && f.name.0[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog"))
        {
            f.name.0.remove(0);
            changed = true;
        }
        ControlFlow::<()>::Continue(())
    });
    changed.then(|| stmt.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn run(sql: &str) -> Option<String> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parse");
        strip_pg_catalog(&stmts[0], sql)
    }

    #[test]
    fn qualified_calls_lose_the_schema_and_nothing_else_changes() {
        assert_eq!(
            run("select pg_catalog.version()").as_deref(),
            Some("SELECT version()")
        );
        assert_eq!(run("select version()"), None);
        // A table or a string that merely says pg_catalog is left alone.
        assert_eq!(run("select 'pg_catalog.x' as t"), None);
    }
}
