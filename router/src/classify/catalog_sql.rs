//! Rewrites for the spellings catalog queries use (psql's `\d` family,
//! drivers' and ORMs' reflection), on sqlparser's AST. `translate` calls
//! [`rewrite`] on each expression before its own rewrites, and [`arrays`]
//! on the statement after them:
//! - `x::regclass` as the relation's name when `x` is an oid, its oid when
//!   `x` is a name or an oid in a string, as psql writes them (so it reads
//!   as PostgreSQL shows a regclass, and compares with oids as PostgreSQL
//!   compares one); `x::regnamespace` and
//!   `x::regrole` as names;
//! - casts to array types dropped: arrays are JSON text here;
//! - `ARRAY(SELECT …)` as a JSON array of the subquery's values, and
//!   `ARRAY[…]` (outside `= ANY`, which `translate` makes an `IN` list) as
//!   `json_array(…)`;
//! - `x = ANY(array_column)` and `x = ANY('{…}')` as `x IN (SELECT value
//!   FROM json_each(…))`, and `UNNEST(a, b, …)` in FROM as the arrays
//!   zipped (PostgreSQL's array text is read by `tributary_array`);
//! - `a[i]` as the i-th (1-based) element of the JSON array `a`;
//! - `pg_get_expr(e, rel)` as `e` (defaults are kept as text),
//!   `pg_get_indexdef(oid, …)` and `pg_get_constraintdef(oid, …)` as the
//!   definitions `catalog` computes, `json_build_object` as `json_object`;
//! - `generate_series(a, b) s` in FROM with its column named `s`, and
//!   `pg_partition_ancestors(t)` in FROM as `t` alone;
//! - `unnest(a)`/`generate_subscripts(a, 1)` in a select list as a join
//!   with `json_each(a)`; `array_agg` as `json_group_array`, `bool_and` /
//!   `bool_or` as `min` / `max`.

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem,
    SetExpr, Statement, Subscript, TableFactor, VisitMut, VisitorMut, visit_expressions_mut,
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
            && !is_array_literal(right)
            && !matches!(right.as_ref(), Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Placeholder(_))) =>
        {
            Some(parse(&format!(
                "{left} IN (SELECT value FROM json_each({}({right})))",
                crate::catalog::ARRAY
            ))?)
        }
        Expr::CompoundFieldAccess { root, access_chain } => match access_chain.as_slice() {
            [AccessExpr::Subscript(Subscript::Index { index })] => Some(parse(&format!(
                "json_extract({root}, '$[' || (({index}) - 1) || ']')"
            ))?),
            _ => None,
        },
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
                ("pg_get_indexdef" | "pg_get_constraintdef", _) if !args.is_empty() => {
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
    let mut series = Series { changed: false };
    let _ = stmt.visit(&mut series);
    changed || series.changed
}

impl Series {
    /// `unnest(a)` and `generate_subscripts(a, 1)` in a select list, which
    /// SQLite has no form for: the SELECT reads `json_each` of each array
    /// instead (one more FROM item, zipped by position), and they become
    /// its element and its 1-based position.
    fn select_list(&mut self, select: &mut sqlparser::ast::Select) {
        let mut arrays: Vec<String> = Vec::new();
        let mut replaced = false;
        for item in &mut select.projection {
            let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item
            else {
                continue;
            };
            let Expr::Function(f) = e else {
                continue;
            };
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            if name != "unnest" && name != "generate_subscripts" {
                continue;
            }
            let FunctionArguments::List(list) = &f.args else {
                continue;
            };
            let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(array))) = list.args.first() else {
                continue;
            };
            let key = array.to_string();
            let k = arrays.iter().position(|a| *a == key).unwrap_or_else(|| {
                arrays.push(key);
                arrays.len() - 1
            });
            let sql = if name == "unnest" {
                format!("tributary_srf{k}.value")
            } else {
                format!("tributary_srf{k}.key + 1")
            };
            if let Ok(x) = parse(&sql) {
                *e = x;
                replaced = true;
            }
        }
        if !replaced {
            return;
        }
        let array = crate::catalog::ARRAY;
        let mut extra = Vec::new();
        for (k, a) in arrays.iter().enumerate() {
            extra.push(format!("json_each({array}({a})) AS tributary_srf{k}"));
        }
        let zip: Vec<String> = (1..arrays.len())
            .map(|k| format!("tributary_srf{k}.key = tributary_srf0.key"))
            .collect();
        let sql = format!(
            "SELECT 1 FROM {}{}",
            extra.join(", "),
            if zip.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", zip.join(" AND "))
            }
        );
        let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &sql) else {
            return;
        };
        let Some(Statement::Query(q)) = parsed.pop() else {
            return;
        };
        let SetExpr::Select(helper) = *q.body else {
            return;
        };
        select.from.extend(helper.from);
        if let Some(zip) = helper.selection {
            select.selection = Some(match select.selection.take() {
                Some(existing) => Expr::BinaryOp {
                    left: Box::new(Expr::Nested(Box::new(existing))),
                    op: sqlparser::ast::BinaryOperator::And,
                    right: Box::new(zip),
                },
                None => zip,
            });
        }
        self.changed = true;
    }
}

struct Series {
    changed: bool,
}

impl VisitorMut for Series {
    type Break = ();

    fn post_visit_query(&mut self, q: &mut sqlparser::ast::Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = q.body.as_mut() {
            self.select_list(select);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } = tf
        {
            if let Some(derived) = unnest(alias.as_ref(), array_exprs) {
                *tf = derived;
                self.changed = true;
            }
            return ControlFlow::Continue(());
        }
        let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = tf
        else {
            return ControlFlow::Continue(());
        };
        let function = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .unwrap_or_default();
        if function != "generate_series" && function != "pg_partition_ancestors" {
            return ControlFlow::Continue(());
        }
        let table = alias
            .as_ref()
            .map_or_else(|| function.clone(), |a| a.name.to_string());
        let column = |i: usize, default: &str| {
            alias
                .as_ref()
                .and_then(|a| a.columns.get(i))
                .map_or_else(|| default.to_owned(), |c| c.name.to_string())
        };
        let list: Vec<String> = args.args.iter().map(ToString::to_string).collect();
        let sql = if function == "generate_series" {
            format!(
                "SELECT 1 FROM (SELECT value AS {} FROM generate_series({})) AS {table}",
                column(0, &table),
                list.join(", ")
            )
        } else {
            // No partitions: a table's one ancestor is itself, at depth 0
            // (or ordinality 1, which is what psql orders by).
            format!(
                "SELECT 1 FROM (SELECT {} AS {}, 1 AS {}) AS {table}",
                list.join(", "),
                column(0, &table),
                column(1, "ordinality")
            )
        };
        if let Ok(mut parsed) = Parser::parse_sql(&PostgreSqlDialect {}, &sql)
            && let Some(Statement::Query(q)) = parsed.pop()
            && let SetExpr::Select(mut select) = *q.body
            && !select.from.is_empty()
        {
            *tf = select.from.swap_remove(0).relation;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `UNNEST(a, b, …) [AS t (x, y, …)]` in FROM (Django's bulk insert) as
/// the arrays' elements zipped by position, one column per array, named
/// as the alias says or `unnest`.
fn unnest(alias: Option<&sqlparser::ast::TableAlias>, arrays: &[Expr]) -> Option<TableFactor> {
    let array = crate::catalog::ARRAY;
    let mut columns = Vec::new();
    let mut from = Vec::new();
    for (i, a) in arrays.iter().enumerate() {
        let name = alias
            .and_then(|t| t.columns.get(i))
            .map_or_else(|| "unnest".to_owned(), |c| c.name.to_string());
        columns.push(format!("j{i}.value AS {name}"));
        from.push(if i == 0 {
            format!("json_each({array}({a})) AS j0")
        } else {
            format!("LEFT JOIN json_each({array}({a})) AS j{i} ON j{i}.key = j0.key")
        });
    }
    let table = alias.map_or_else(|| "unnest".to_owned(), |t| t.name.to_string());
    let sql = format!(
        "SELECT 1 FROM (SELECT {} FROM {} ORDER BY j0.key) AS {table}",
        columns.join(", "),
        from.join(" ")
    );
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, &sql).ok()?;
    let Some(Statement::Query(q)) = parsed.pop() else {
        return None;
    };
    let SetExpr::Select(mut select) = *q.body else {
        return None;
    };
    (!select.from.is_empty()).then(|| select.from.swap_remove(0).relation)
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

fn parse(sql: &str) -> Result<Expr> {
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
            run("SELECT a[2] FROM t"),
            "SELECT json_extract(a, '$[' || ((2) - 1) || ']') FROM t"
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
