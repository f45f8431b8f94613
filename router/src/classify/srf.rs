//! Set-returning functions, which SQLite has as table-valued functions in
//! FROM only, on sqlparser's AST:
//! - `unnest(a)`, `generate_subscripts(a, 1)` and pgjdbc's
//!   `information_schema._pg_expandarray(a)` (with `.x`/`.n`) in a select
//!   list, as one `json_each(a)` per array joined to the SELECT's FROM and
//!   zipped by position;
//! - `generate_series(a, b) g`, `unnest(a) x` and
//!   `pg_partition_ancestors(t)` in FROM, as subqueries whose column is
//!   named as PostgreSQL names it;
//! - `UNNEST(a, b, …)` in FROM (Django's bulk insert), the arrays zipped.
//!
//! Arrays are JSON arrays or PostgreSQL's array text, read by
//! `tributary_array` (see `catalog`).

use std::ops::ControlFlow;

use sqlparser::ast::{
    AccessExpr, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr,
    Statement, TableFactor, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::catalog_sql::parse;

/// Rewrites the forms above in `stmt`; whether anything changed.
pub(super) fn rewrite(stmt: &mut Statement) -> bool {
    let mut series = Series { changed: false };
    let _ = stmt.visit(&mut series);
    series.changed
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
            let Some((position, array)) = set_returning(e) else {
                continue;
            };
            let key = array.to_string();
            let k = arrays.iter().position(|a| *a == key).unwrap_or_else(|| {
                arrays.push(key);
                arrays.len() - 1
            });
            let sql = if position {
                format!("tributary_srf{k}.key + 1")
            } else {
                format!("tributary_srf{k}.value")
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
        if !matches!(
            function.as_str(),
            "generate_series" | "pg_partition_ancestors" | "unnest"
        ) {
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
        let sql = if function == "unnest" && list.len() == 1 {
            format!(
                "SELECT 1 FROM (SELECT value AS {} FROM json_each({}({}))) AS {table}",
                column(0, &table),
                crate::catalog::ARRAY,
                list[0]
            )
        } else if function == "generate_series" {
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

/// A set-returning call in a select list: whether it gives the position
/// (`generate_subscripts(a, 1)`, `(_pg_expandarray(a)).n`) or the element
/// (`unnest(a)`, `_pg_expandarray(a)` and its `.x`), and the array.
fn set_returning(e: &Expr) -> Option<(bool, &Expr)> {
    fn call(e: &Expr) -> Option<(String, &Expr)> {
        let Expr::Function(f) = e else {
            return None;
        };
        let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
        let FunctionArguments::List(list) = &f.args else {
            return None;
        };
        match list.args.first()? {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(array)) => Some((name, array)),
            _ => None,
        }
    }
    match e {
        Expr::CompoundFieldAccess { root, access_chain } => {
            let Expr::Nested(inner) = root.as_ref() else {
                return None;
            };
            let (name, array) = call(inner)?;
            let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
                return None;
            };
            if name != "_pg_expandarray" {
                return None;
            }
            match field.value.to_ascii_lowercase().as_str() {
                "n" => Some((true, array)),
                "x" => Some((false, array)),
                _ => None,
            }
        }
        _ => match call(e)? {
            (name, array) if name == "unnest" || name == "_pg_expandarray" => Some((false, array)),
            (name, array) if name == "generate_subscripts" => Some((true, array)),
            _ => None,
        },
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
        // PostgreSQL names one array's column after the alias, if any.
        let fallback = match alias {
            Some(t) if arrays.len() == 1 => t.name.to_string(),
            _ => "unnest".to_owned(),
        };
        let name = alias
            .and_then(|t| t.columns.get(i))
            .map_or(fallback, |c| c.name.to_string());
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
