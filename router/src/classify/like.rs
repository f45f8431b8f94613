//! `LIKE` and `ILIKE` as PostgreSQL matches them. Router connections run
//! with SQLite's `case_sensitive_like`, so `LIKE` is case-sensitive as in
//! PostgreSQL; `a ILIKE b` becomes `lower(a) LIKE lower(b)`. PostgreSQL's
//! `LIKE` escapes with a backslash unless told otherwise (Django's
//! `startswith` sends `'change\_%'`), SQLite's with nothing: a pattern
//! without `ESCAPE` gets `ESCAPE '\'`.

use sqlparser::ast::{Expr, Value};

/// Rewrites `e` if it is a `LIKE`/`ILIKE` needing it; whether it did.
pub(super) fn rewrite(e: &mut Expr) -> bool {
    match e {
        Expr::Like {
            any: false,
            escape_char,
            ..
        } if escape_char.is_none() => {
            *escape_char = Some(backslash());
            true
        }
        Expr::ILike {
            negated,
            any: false,
            expr,
            pattern,
            escape_char,
        } => {
            *e = Expr::Like {
                negated: *negated,
                any: false,
                expr: Box::new(lower(expr)),
                pattern: Box::new(lower(pattern)),
                escape_char: Some(escape_char.take().unwrap_or_else(backslash)),
            };
            true
        }
        _ => false,
    }
}

fn backslash() -> Box<Expr> {
    Box::new(Expr::value(Value::SingleQuotedString("\\".into())))
}

fn lower(e: &mut Expr) -> Expr {
    let arg = std::mem::replace(e, Expr::value(Value::Null));
    super::translate::call("lower", vec![arg])
}

#[cfg(test)]
mod tests {
    use sqlparser::ast::visit_expressions_mut;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    #[test]
    fn like_escapes_with_a_backslash_and_ilike_lowers() {
        let run = |sql: &str| {
            let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .expect("parses")
                .remove(0);
            let _ = visit_expressions_mut(&mut stmt, |e| {
                super::rewrite(e);
                std::ops::ControlFlow::<()>::Continue(())
            });
            stmt.to_string()
        };
        assert_eq!(
            run(r"SELECT 1 FROM t WHERE c LIKE 'a\_%'"),
            r"SELECT 1 FROM t WHERE c LIKE 'a\_%' ESCAPE '\'"
        );
        assert_eq!(
            run("SELECT 1 FROM t WHERE c NOT ILIKE 'A%'"),
            r"SELECT 1 FROM t WHERE lower(c) NOT LIKE lower('A%') ESCAPE '\'"
        );
        assert_eq!(
            run("SELECT 1 FROM t WHERE c LIKE 'a!%' ESCAPE '!'"),
            "SELECT 1 FROM t WHERE c LIKE 'a!%' ESCAPE '!'"
        );
    }
}
