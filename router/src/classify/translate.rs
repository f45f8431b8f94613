//! Rewrites of PostgreSQL spellings SQLite does not take, on sqlparser's
//! AST, applied only when a statement has one (the text is otherwise run as
//! the client wrote it):
//! - schema-qualified calls of the functions in `functions.rs`, such as
//!   SQLAlchemy's `SELECT pg_catalog.version()`;
//! - casts, `x::TYPE` and `CAST(x AS TYPE)`, which become
//!   `tributary_cast(x, 'type')` with PostgreSQL's conversion rules
//!   (`casts.rs`); a cast to a type Tributary does not convert is refused
//!   with 0A000 naming it;
//! - `E'…'` strings, as plain strings holding the unescaped text;
//! - `CURRENT_TIMESTAMP` as `now()`;
//! - the regex operators `~`, `~*`, `!~`, `!~*` as `tributary_regex(…)`;
//! - `x::regtype` as `tributary_regtype(x)` (see `catalog`);
//! - `(VALUES …) AS t (a, b)` with its columns renamed in a SELECT;
//! - `LIKE` and `ILIKE` as PostgreSQL matches them (`like.rs`);
//! - interval literals, casts and `±` (`interval.rs`);
//! - `COLLATE "default"` / `pg_catalog."default"`, dropped (it is the default);
//! - `x = ANY(ARRAY[…])` / `x = ANY(SELECT …)` as `x IN (…)`, and
//!   `x <> ALL(…)` as `x NOT IN (…)`; other `ANY`/`ALL` forms (an array
//!   parameter, another operator) are refused with 0A000;
//! - `EXTRACT`, `SUBSTRING … FROM … FOR`, `POSITION … IN`, `json_agg`
//!   (`sql_functions.rs`);
//! - the catalog spellings of `catalog_sql.rs` (`::regclass`, arrays as
//!   JSON, `pg_get_expr`, …).

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, ObjectNamePart, SetExpr, Statement, TableFactor, Value,
    VisitMut, VisitorMut, visit_expressions_mut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::casts::{FUNCTION, Target};
use crate::error::Result;

/// The statement re-rendered with the rewrites above, or `None` when it
/// needs none.
pub(super) fn translate(stmt: &Statement, sql: &str) -> Result<Option<String>> {
    let has = |needle: &[u8]| {
        sql.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if ![
        &b"pg_catalog."[..],
        b"::",
        b"cast",
        b"e'",
        b"like",
        b"collate",
        b"any",
        b"all",
        b"some",
        b"(values",
        b"( values",
        b"~",
        b"current_timestamp",
        b"pg_get_",
        b"array",
        b"json_build_object",
        b"generate_series",
        b"unnest",
        b"bool_",
        b"generate_subscripts",
        b"_pg_expandarray",
        b"trim",
        b"interval",
        b"[",
        b"extract",
        b"substring",
        b"position",
        b"json_agg",
        b"jsonb_agg",
        b"@>",
        b"<@",
        b"?",
    ]
    .iter()
    .any(|n| has(n))
    {
        return Ok(None);
    }
    let mut stmt = stmt.clone();
    let mut changed = false;
    let mut failed = None;
    let _ = visit_expressions_mut(&mut stmt, |e| {
        // The rewrites kept in their own files, first one that applies.
        let outside = super::interval::rewrite(e)
            .map(|done| done || super::like::rewrite(e))
            .and_then(|done| Ok(done || super::catalog_sql::rewrite(e)?))
            .map(|done| done || super::sql_functions::rewrite(e));
        match outside {
            Ok(true) => {
                changed = true;
                return ControlFlow::Continue(());
            }
            Ok(false) => {}
            Err(err) => {
                failed = Some(err);
                return ControlFlow::Break(());
            }
        }
        match e {
            Expr::Function(f)
                if f.name.0.len() == 2
                    && f.name.0[0]
                        .as_ident()
                        .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog")) =>
            {
                f.name.0.remove(0);
                changed = true;
            }
            // PostgreSQL's CURRENT_TIMESTAMP is now() (a timestamptz with
            // microseconds), not SQLite's (whole seconds, no zone).
            Expr::Function(f)
                if matches!(f.args, FunctionArguments::None)
                    && f.name.0.len() == 1
                    && f.name.0[0]
                        .as_ident()
                        .is_some_and(|i| i.value.eq_ignore_ascii_case("current_timestamp")) =>
            {
                *e = call("now", Vec::new());
                changed = true;
            }
            Expr::BinaryOp { left, op, right } if regex_op(op).is_some() => {
                let (negated, flags) = regex_op(op).unwrap_or_default();
                let m = call(
                    crate::functions::REGEX,
                    vec![
                        std::mem::replace(left.as_mut(), Expr::value(Value::Null)),
                        std::mem::replace(right.as_mut(), Expr::value(Value::Null)),
                        Expr::value(Value::SingleQuotedString(flags.into())),
                    ],
                );
                *e = if negated {
                    Expr::UnaryOp {
                        op: sqlparser::ast::UnaryOperator::Not,
                        expr: Box::new(m),
                    }
                } else {
                    m
                };
                changed = true;
            }
            Expr::Cast {
                expr, data_type, ..
            } if is_regtype(&data_type.to_string()) => {
                let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
                *e = call(crate::casts::REGTYPE, vec![inner]);
                changed = true;
            }
            Expr::Cast {
                expr, data_type, ..
            } => match Target::parse(&data_type.to_string()) {
                Ok(target) => {
                    let inner = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
                    *e = cast_call(inner, &target);
                    changed = true;
                }
                Err(err) => {
                    failed = Some(err);
                    return ControlFlow::Break(());
                }
            },
            Expr::Value(v) => {
                if let Value::EscapedStringLiteral(text) = &v.value {
                    v.value = Value::SingleQuotedString(text.clone());
                    changed = true;
                }
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            } => match in_list(left, right, *compare_op == BinaryOperator::Eq, false) {
                Some(rewritten) => {
                    *e = rewritten;
                    changed = true;
                }
                None => {
                    failed = Some(unsupported_quantifier("ANY"));
                    return ControlFlow::Break(());
                }
            },
            Expr::AllOp {
                left,
                compare_op,
                right,
            } => match in_list(left, right, *compare_op == BinaryOperator::NotEq, true) {
                Some(rewritten) => {
                    *e = rewritten;
                    changed = true;
                }
                None => {
                    failed = Some(unsupported_quantifier("ALL"));
                    return ControlFlow::Break(());
                }
            },
            Expr::Collate { expr, collation }
                if collation
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("default")) =>
            {
                *e = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
                changed = true;
            }
            _ => {}
        }
        ControlFlow::Continue(())
    });
    if let Some(err) = failed {
        return Err(err);
    }
    changed |= super::catalog_sql::arrays(&mut stmt);
    let mut aliases = ValuesAliases { changed: false };
    let _ = stmt.visit(&mut aliases);
    changed |= aliases.changed;
    Ok(changed.then(|| stmt.to_string()))
}

/// `regtype`, or `pg_catalog.regtype` as psql writes it.
fn is_regtype(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.strip_prefix("pg_catalog.").unwrap_or(&lower) == "regtype"
}

/// PostgreSQL's regular-expression match operators (`~`, `~*`, `!~`,
/// `!~*`, also as `OPERATOR(pg_catalog.~)`): whether negated, and the flags.
fn regex_op(op: &BinaryOperator) -> Option<(bool, &'static str)> {
    Some(match op {
        BinaryOperator::PGRegexMatch => (false, ""),
        BinaryOperator::PGRegexIMatch => (false, "i"),
        BinaryOperator::PGRegexNotMatch => (true, ""),
        BinaryOperator::PGRegexNotIMatch => (true, "i"),
        BinaryOperator::PGCustomBinaryOperator(parts) => match parts.last()?.as_str() {
            "~" => (false, ""),
            "~*" => (false, "i"),
            "!~" => (true, ""),
            "!~*" => (true, "i"),
            _ => return None,
        },
        _ => return None,
    })
}

/// `(VALUES …) AS t (a, b)`, a derived table naming its columns (what
/// SQLAlchemy's multi-row INSERT sends), which SQLite does not take: the
/// VALUES list's own columns (`column1`, `column2`, … in SQLite) renamed
/// in a SELECT around it.
struct ValuesAliases {
    changed: bool,
}

impl VisitorMut for ValuesAliases {
    type Break = ();

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } = factor
            && !alias.columns.is_empty()
            && matches!(subquery.body.as_ref(), SetExpr::Values(_))
        {
            let list = alias
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| format!("column{} AS {}", i + 1, c.name))
                .collect::<Vec<_>>()
                .join(", ");
            let renamed = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&format!("SELECT {list} FROM ({subquery})"))
                .and_then(|mut p| p.parse_query());
            if let Ok(q) = renamed {
                *subquery = q;
                alias.columns.clear();
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// `left [NOT] IN (…)` for `= ANY(…)` / `<> ALL(…)` over an array literal
/// or a subquery; `None` for any other operator or right-hand side.
fn in_list(
    left: &mut Box<Expr>,
    right: &mut Box<Expr>,
    op_fits: bool,
    negated: bool,
) -> Option<Expr> {
    if !op_fits {
        return None;
    }
    let expr = Box::new(std::mem::replace(left.as_mut(), Expr::value(Value::Null)));
    match right.as_mut() {
        Expr::Array(a) => Some(Expr::InList {
            expr,
            list: std::mem::take(&mut a.elem),
            negated,
        }),
        Expr::Subquery(q) => Some(Expr::InSubquery {
            expr,
            subquery: q.clone(),
            negated,
        }),
        Expr::Nested(inner) => match inner.as_mut() {
            Expr::Array(a) => Some(Expr::InList {
                expr,
                list: std::mem::take(&mut a.elem),
                negated,
            }),
            _ => None,
        },
        _ => None,
    }
}

fn unsupported_quantifier(which: &str) -> crate::error::Error {
    crate::error::Error::Unsupported {
        what: format!("{which}(…) with this operator or an array value"),
        why: format!(
            "write = {which}(ARRAY[…]) or = {which}(SELECT …) (as IN), or list the values with IN"
        ),
    }
}

/// `tributary_cast(inner, 'type')`.
fn cast_call(inner: Expr, target: &Target) -> Expr {
    call(
        FUNCTION,
        vec![
            inner,
            Expr::value(Value::SingleQuotedString(target.encode())),
        ],
    )
}

/// `name(args…)`.
pub(super) fn call(name: &str, args: Vec<Expr>) -> Expr {
    let arg = |e: Expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(e));
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(arg).collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn run(sql: &str) -> Result<Option<String>> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parse");
        translate(&stmts[0], sql)
    }

    #[test]
    fn qualified_calls_lose_the_schema_and_nothing_else_changes() -> Result<()> {
        assert_eq!(
            run("select pg_catalog.version()")?.as_deref(),
            Some("SELECT version()")
        );
        assert_eq!(run("select version()")?, None);
        // A table or a string that merely says pg_catalog is left alone.
        assert_eq!(run("select 'pg_catalog.x' as t")?, None);
        Ok(())
    }

    #[test]
    fn escapes_ilike_and_default_collation() -> Result<()> {
        assert_eq!(
            run(r"SELECT E'it\'s\n' AS s")?.as_deref(),
            Some("SELECT 'it''s\n' AS s")
        );
        assert_eq!(
            run("SELECT * FROM t WHERE name ILIKE 'ab%' AND v NOT ILIKE $1")?.as_deref(),
            Some(
                r"SELECT * FROM t WHERE lower(name) LIKE lower('ab%') ESCAPE '\' AND lower(v) NOT LIKE lower($1) ESCAPE '\'"
            )
        );
        assert_eq!(
            run("SELECT a FROM t ORDER BY a COLLATE pg_catalog.\"default\"")?.as_deref(),
            Some("SELECT a FROM t ORDER BY a")
        );
        Ok(())
    }

    #[test]
    fn any_and_all_become_in_lists() -> Result<()> {
        assert_eq!(
            run("SELECT * FROM t WHERE id = ANY(ARRAY[1, 2]) AND v <> ALL(ARRAY['a'])")?.as_deref(),
            Some("SELECT * FROM t WHERE id IN (1, 2) AND v NOT IN ('a')")
        );
        assert_eq!(
            run("DELETE FROM t WHERE id = ANY(SELECT id FROM u)")?.as_deref(),
            Some("DELETE FROM t WHERE id IN (SELECT id FROM u)")
        );
        // An array parameter is read as a JSON (or PostgreSQL) array.
        assert_eq!(
            run("SELECT * FROM t WHERE id = ANY($1) AND v <> ALL($2::text[])")?.as_deref(),
            Some(
                "SELECT * FROM t WHERE id IN (SELECT value FROM json_each(tributary_array($1))) \
                 AND v NOT IN (SELECT value FROM json_each(tributary_array($2)))"
            )
        );
        let err = run("SELECT * FROM t WHERE id > ANY(ARRAY[1])")
            .err()
            .map(|e| e.sqlstate());
        assert_eq!(err, Some("0A000"));
        Ok(())
    }

    #[test]
    fn current_timestamp_is_now() -> Result<()> {
        assert_eq!(
            run("INSERT INTO h (mtime) VALUES (CURRENT_TIMESTAMP)")?.as_deref(),
            Some("INSERT INTO h (mtime) VALUES (now())")
        );
        Ok(())
    }

    #[test]
    fn regex_operators_call_the_regex_function() -> Result<()> {
        assert_eq!(
            run("SELECT 1 FROM t WHERE a !~ '^pg_' AND b OPERATOR(pg_catalog.~) '^(x)$' AND c ~* 'Y'")?
                .as_deref(),
            Some("SELECT 1 FROM t WHERE NOT tributary_regex(a, '^pg_', '') AND tributary_regex(b, '^(x)$', '') AND tributary_regex(c, 'Y', 'i')")
        );
        Ok(())
    }

    #[test]
    fn values_with_column_aliases_are_renamed() -> Result<()> {
        assert_eq!(
            run("SELECT p0 FROM (VALUES ($1, 0), ($2, 1)) AS imp_sen (p0, sen_counter) ORDER BY sen_counter")?
                .as_deref(),
            Some("SELECT p0 FROM (SELECT column1 AS p0, column2 AS sen_counter FROM (VALUES ($1, 0), ($2, 1))) AS imp_sen ORDER BY sen_counter")
        );
        Ok(())
    }

    #[test]
    fn casts_call_the_cast_function() -> Result<()> {
        assert_eq!(
            run("SELECT $1::int, CAST(v AS varchar(3)) FROM t")?.as_deref(),
            Some("SELECT tributary_cast($1, 'int4'), tributary_cast(v, 'text:3') FROM t")
        );
        assert_eq!(
            run("UPDATE t SET at = $1::timestamptz WHERE id = 1")?.as_deref(),
            Some("UPDATE t SET at = tributary_cast($1, 'timestamptz') WHERE id = 1")
        );
        assert_eq!(
            run("SELECT oid::regtype::text FROM pg_type")?.as_deref(),
            Some("SELECT tributary_cast(tributary_regtype(oid), 'text') FROM pg_type")
        );
        assert_eq!(
            run("SELECT x::pg_catalog.regtype FROM t")?.as_deref(),
            Some("SELECT tributary_regtype(x) FROM t")
        );
        let err = run("SELECT 'x'::point").err().map(|e| e.sqlstate());
        assert_eq!(err, Some("0A000"));
        Ok(())
    }
}
