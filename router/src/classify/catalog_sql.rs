//! Rewrites for the spellings catalog queries use (psql's `\d` family,
//! drivers' and ORMs' reflection), on sqlparser's AST. `translate` calls
//! [`rewrite`] on each expression before its own rewrites, and [`arrays`]
//! on the statement after them:
//! - `x::regclass` as the relation's name when `x` is an oid, its oid when
//!   `x` is a name or an oid in a string, as psql writes them (so it reads
//!   as PostgreSQL shows a regclass, and compares with oids as PostgreSQL
//!   compares one); `x::regnamespace` and `x::regrole` as names;
//! - casts to array types dropped: arrays are JSON text here;
//! - `ARRAY(SELECT …)` as a JSON array of the subquery's values, and
//!   `ARRAY[…]` (outside `= ANY`, which `translate` makes an `IN` list) as
//!   `json_array(…)`; `array_agg` as `json_group_array`;
//! - `x = ANY(array_column)` and `x = ANY('{…}')` as `x IN (SELECT value
//!   FROM json_each(…))` (PostgreSQL's array text is read by
//!   `tributary_array`);
//! - `a[i]` as `tributary_array_at(a, i)` (PostgreSQL's subscript);
//! - `pg_get_expr(e, rel)` as `e` (defaults are kept as text);
//!   `pg_get_indexdef(oid, …)`, `pg_get_constraintdef(oid, …)` and
//!   `pg_get_viewdef(oid, …)` as the definitions `catalog` computes
//!   (`pg_get_indexdef(i, n, …)`: its n-th column);
//! - `json_build_object` as `json_object`, `bool_and`/`bool_or` as
//!   `min`/`max`, `TRIM(BOTH x FROM y)` as `trim(y, x)`;
//! - set-returning functions through `srf.rs`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem,
    SetExpr, Statement, Subscript, visit_expressions_mut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// Rewrites `e` if it is one of the forms above; whether it did.
pub(super) fn rewrite(e: &mut Expr) -> Result<bool> {
    let replacement = match e {
        Expr::Cast {
            expr, data_type, ..
        } => cast(expr, data_type)?,
        Expr::AnyOp {
            left,
            compare_op: sqlparser::ast::BinaryOperator::Eq,
            right,
            ..
        } if !matches!(right.as_ref(), Expr::Array(_) | Expr::Subquery(_))
            && !is_array_literal(right) =>
        {
            Some(parse(&format!(
                "{left} IN (SELECT value FROM json_each({}({right})))",
                crate::catalog::ARRAY
            ))?)
        }
        Expr::AllOp {
            left,
            compare_op: sqlparser::ast::BinaryOperator::NotEq,
            right,
        } if !matches!(right.as_ref(), Expr::Array(_) | Expr::Subquery(_))
            && !is_array_literal(right) =>
        {
            Some(parse(&format!(
                "{left} NOT IN (SELECT value FROM json_each({}({right})))",
                crate::catalog::ARRAY
            ))?)
        }
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
            [dots @ .., AccessExpr::Subscript(Subscript::Index { index })]
                if dots
                    .iter()
                    .all(|d| matches!(d, AccessExpr::Dot(Expr::Identifier(_)))) =>
            {
                // `con.confkey[pos.n]` parses as `con` then `.confkey`.
                let mut array = root.to_string();
                for d in dots {
                    if let AccessExpr::Dot(Expr::Identifier(i)) = d {
                        array.push('.');
                        array.push_str(&i.to_string());
                    }
                }
                Some(parse(&format!(
                    "{}({array}, {index})",
                    crate::catalog::ARRAY_AT
                ))?)
            }
            // `(keys).x` of a column holding `_pg_expandarray`'s row (as
            // pgjdbc reads it): the element itself, which is what the
            // rewritten select list keeps there.
            [AccessExpr::Dot(Expr::Identifier(field))] if field.value.eq_ignore_ascii_case("x") => {
                match root.as_ref() {
                    Expr::Nested(inner)
                        if matches!(
                            inner.as_ref(),
                            Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                        ) =>
                    {
                        Some(inner.as_ref().clone())
                    }
                    _ => None,
                }
            }
            _ => None,
        },
        Expr::Trim {
            expr,
            trim_where,
            trim_what: Some(what),
            trim_characters: None,
        } => {
            // SQLite's trim takes the characters as a second argument.
            let function = match trim_where {
                Some(sqlparser::ast::TrimWhereField::Leading) => "ltrim",
                Some(sqlparser::ast::TrimWhereField::Trailing) => "rtrim",
                _ => "trim",
            };
            Some(parse(&format!("{function}({expr}, {what})"))?)
        }
        Expr::Function(f) => {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            let args: Vec<String> = match &f.args {
                FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => x.to_string(),
                        other => other.to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            match (name.as_str(), &mut f.args) {
                ("pg_get_expr", _) if !args.is_empty() => Some(parse(&args[0])?),
                ("pg_get_indexdef", _) if args.len() >= 2 && args[1] != "0" => {
                    // `pg_get_indexdef(index, n, pretty)`: its n-th column
                    // (0: the whole definition).
                    let (index, n) = (&args[0], &args[1]);
                    Some(parse(&format!(
                        "(CASE WHEN {n} = 0 THEN (SELECT def FROM pg_catalog.tributary_defs WHERE def_oid = {index}) \
                         ELSE (SELECT attname FROM pg_catalog.pg_index, pg_catalog.pg_attribute \
                         WHERE indexrelid = {index} AND attrelid = indrelid \
                         AND attnum = {}(indkey, ({n}) - 1)) END)",
                        crate::catalog::ARRAY_AT
                    ))?)
                }
                ("pg_get_indexdef" | "pg_get_constraintdef" | "pg_get_viewdef", _)
                    if !args.is_empty() =>
                {
                    Some(parse(&format!(
                        "(SELECT def FROM pg_catalog.tributary_defs WHERE def_oid = {})",
                        args[0]
                    ))?)
                }
                ("json_build_object" | "array_agg" | "bool_and" | "bool_or" | "every", _) => {
                    // Arrays are JSON arrays; booleans are 0 and 1.
                    let to = match name.as_str() {
                        "json_build_object" => "json_object",
                        "array_agg" => "json_group_array",
                        "bool_or" => "max",
                        _ => "min",
                    };
                    f.name = sqlparser::ast::ObjectName::from(vec![Ident::new(to)]);
                    return Ok(true);
                }
                ("array", FunctionArguments::Subquery(q)) => Some(array_of(q)?),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(match replacement {
        Some(r) => {
            *e = r;
            true
        }
        None => false,
    })
}

/// `ARRAY[…]` left after `translate`'s rewrites, as `json_array(…)`; and
/// `generate_series(…) [AS] s` in FROM as a subquery whose column is `s`,
/// as in PostgreSQL (SQLite's names its column `value`, and finds the
/// function in `main` only, not as `pg_catalog.generate_series`).
pub(super) fn arrays(stmt: &mut Statement) -> bool {
    let mut changed = false;
    let _ = visit_expressions_mut(stmt, |e| {
        if let Expr::Array(a) = e {
            let elems: Vec<String> = a.elem.iter().map(ToString::to_string).collect();
            if let Ok(j) = parse(&format!("json_array({})", elems.join(", "))) {
                *e = j;
                changed = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    super::srf::rewrite(stmt) || changed
}

fn is_array_literal(e: &Expr) -> bool {
    matches!(e, Expr::Nested(inner) if matches!(inner.as_ref(), Expr::Array(_) | Expr::Subquery(_)))
}

fn cast(expr: &Expr, data_type: &DataType) -> Result<Option<Expr>> {
    if matches!(data_type, DataType::Array(_)) {
        return Ok(Some(expr.clone()));
    }
    let name = data_type.to_string().to_ascii_lowercase();
    let x = expr.to_string();
    let sql = match name.strip_prefix("pg_catalog.").unwrap_or(&name) {
        "regclass" => format!(
            "(CASE WHEN typeof({x}) = 'integer' THEN (SELECT rel_name FROM pg_catalog.tributary_relnames WHERE rel_oid = {x}) \
             WHEN CAST(CAST({x} AS INTEGER) AS TEXT) = {x} THEN CAST({x} AS INTEGER) \
             ELSE (SELECT rel_oid FROM pg_catalog.tributary_relnames WHERE rel_name = {}({x}) COLLATE NOCASE) END)",
            crate::catalog::RELNAME
        ),
        "regnamespace" => {
            format!("(SELECT nsp_name FROM pg_catalog.tributary_nspnames WHERE nsp_oid = {x})")
        }
        // One role: the catalog's lookups use columns no outer query has,
        // so an unqualified `oid` in `x` is the outer query's.
        "regrole" => format!("(CASE WHEN {x} = 10 THEN 'tributary' END)"),
        _ => return Ok(None),
    };
    parse(&sql).map(Some)
}

/// `ARRAY(SELECT v FROM …)` as `(SELECT json_group_array(v) FROM (SELECT
/// v … ))`, the subquery's order kept.
fn array_of(q: &sqlparser::ast::Query) -> Result<Expr> {
    let mut q = q.clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return Err(super::unsupported(
            "ARRAY(…) over a set operation",
            "ARRAY(SELECT …) is supported over one SELECT",
        ));
    };
    let [item] = select.projection.as_mut_slice() else {
        return Err(super::unsupported(
            "ARRAY(SELECT …) of several columns",
            "an array holds one value per row",
        ));
    };
    let value = match item {
        SelectItem::UnnamedExpr(v) | SelectItem::ExprWithAlias { expr: v, .. } => v.clone(),
        _ => {
            return Err(super::unsupported(
                "ARRAY(SELECT * …)",
                "name the one column the array holds",
            ));
        }
    };
    *item = SelectItem::ExprWithAlias {
        expr: value,
        alias: Ident::new("tributary_elem"),
    };
    parse(&format!(
        "(SELECT json_group_array(tributary_elem) FROM ({q}))"
    ))
}

pub(super) fn parse(sql: &str) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::Internal(format!("rewriting a catalog expression: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> String {
        let mut stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        let _ = visit_expressions_mut(&mut stmt, |e| {
            rewrite(e).expect("rewrites");
            ControlFlow::<()>::Continue(())
        });
        arrays(&mut stmt);
        stmt.to_string()
    }

    #[test]
    fn catalog_spellings_become_sqlite() {
        assert!(run("SELECT 't'::regclass").contains("tributary_relname('t')"));
        assert!(
            run("SELECT x FROM t WHERE c IN (VALUES ('16401'::regclass))")
                .contains("CAST('16401' AS INTEGER)")
        );
        assert_eq!(
            run("SELECT x FROM p WHERE 'd' = ANY(kinds)"),
            "SELECT x FROM p WHERE 'd' IN (SELECT value FROM json_each(tributary_array(kinds)))"
        );
        assert_eq!(
            run("SELECT ARRAY(SELECT r.n FROM r ORDER BY 1)"),
            "SELECT (SELECT json_group_array(tributary_elem) FROM (SELECT r.n AS tributary_elem FROM r ORDER BY 1))"
        );
        assert_eq!(
            run("SELECT a[2], c.k[p.n] FROM t"),
            "SELECT tributary_array_at(a, 2), tributary_array_at(c.k, p.n) FROM t"
        );
        assert_eq!(
            run("SELECT pg_get_expr(d.adbin, d.adrelid, true) FROM d"),
            "SELECT d.adbin FROM d"
        );
        assert_eq!(run("SELECT ARRAY[1, 2]"), "SELECT json_array(1, 2)");
        assert_eq!(run("SELECT x::int2[] FROM t"), "SELECT x FROM t");
        assert_eq!(
            run("INSERT INTO t (a, b) SELECT * FROM UNNEST('{x,y}'::text[], '{1,2}'::int[])"),
            "INSERT INTO t (a, b) SELECT * FROM (SELECT j0.value AS unnest, j1.value AS unnest FROM json_each(tributary_array('{x,y}')) AS j0 LEFT JOIN json_each(tributary_array('{1,2}')) AS j1 ON j1.key = j0.key ORDER BY j0.key) AS unnest"
        );
        assert_eq!(
            run(
                "SELECT c.conname, unnest(i.indkey) AS attnum, generate_subscripts(i.indkey, 1) AS ord FROM pg_constraint c JOIN pg_index i ON c.conindid = i.indexrelid WHERE c.contype = 'p'"
            ),
            "SELECT c.conname, tributary_srf0.value AS attnum, tributary_srf0.key + 1 AS ord FROM pg_constraint c JOIN pg_index i ON c.conindid = i.indexrelid, json_each(tributary_array(i.indkey)) AS tributary_srf0 WHERE c.contype = 'p'"
        );
        assert_eq!(
            run("SELECT s FROM pg_catalog.generate_series(1, 3) s"),
            "SELECT s FROM (SELECT value AS s FROM generate_series(1, 3)) AS s"
        );
    }
}
