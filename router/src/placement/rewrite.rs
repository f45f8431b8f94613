//! What each shard group runs for a scattered read: recognizing the
//! aggregates the merge can combine (and refusing the others), the
//! partial aggregates that replace them per group, and ORDER BY as keys
//! into the merged rows.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, OrderByKind, Query, SelectItem,
    VisitMut, VisitorMut,
};

use super::merge::{KeyRef, Out, SortKey};
use super::scatter::refuse;
use crate::error::{Error, Result};

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "total",
    "group_concat",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_group_array",
    "json_group_object",
    "array_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "median",
    "percentile",
    "json_object_agg",
    "jsonb_object_agg",
];

/// `Some((name, argument))` for an aggregate call (`argument` is `None`
/// for `count(*)`); an error for a call the merge cannot combine.
pub(super) fn aggregate(e: &Expr) -> Result<Option<(String, Option<Expr>)>> {
    let Expr::Function(f) = e else {
        return Ok(None);
    };
    let name = crate::classify::object_name(&f.name).to_ascii_lowercase();
    let args: Vec<&FunctionArg> = match &f.args {
        FunctionArguments::List(l) => l.args.iter().collect(),
        _ => Vec::new(),
    };
    let is_agg = AGGREGATES.contains(&name.as_str())
        && !(matches!(name.as_str(), "min" | "max") && args.len() > 1);
    if f.over.is_some() {
        return Err(refuse(
            format!("window function {name}"),
            "run it on one shard key, or on a full table",
        ));
    }
    if !is_agg {
        return Ok(None);
    }
    if !matches!(name.as_str(), "count" | "sum" | "min" | "max" | "avg") {
        return Err(refuse(
            format!("aggregate {name}"),
            "count, sum, min, max and avg are merged across shards",
        ));
    }
    let distinct = matches!(&f.args, FunctionArguments::List(l) if l.duplicate_treatment.is_some());
    if distinct || f.filter.is_some() || !f.within_group.is_empty() {
        return Err(refuse(
            format!("{name} with DISTINCT, FILTER or WITHIN GROUP"),
            "only plain count, sum, min, max and avg are merged across shards",
        ));
    }
    match args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if name == "count" => {
            Ok(Some((name, None)))
        }
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => Ok(Some((name, Some(a.clone())))),
        _ => Err(refuse(
            format!("{name} with these arguments"),
            "give it one column or expression",
        )),
    }
}

/// Whether `e` calls an aggregate (refusing window functions and the
/// aggregates the merge cannot combine).
pub(super) fn contains_aggregate(e: &Expr) -> Result<bool> {
    let mut found = Ok(false);
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| match aggregate(x) {
        Ok(None) => ControlFlow::Continue(()),
        Ok(Some(_)) => {
            found = Ok(true);
            ControlFlow::Break(())
        }
        Err(err) => {
            found = Err(err);
            ControlFlow::Break(())
        }
    });
    found
}

/// ORDER BY as keys into the merged rows: positions, or names of result
/// columns (resolved when the rows are there).
pub(super) fn sort_keys(q: &Query, select: &sqlparser::ast::Select) -> Result<Vec<SortKey>> {
    let Some(ob) = &q.order_by else {
        return Ok(Vec::new());
    };
    let OrderByKind::Expressions(list) = &ob.kind else {
        return Err(refuse("ORDER BY ALL", "list the columns"));
    };
    let mut keys = Vec::new();
    for o in list {
        let desc = matches!(o.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
        let nulls_first = o.options.nulls_first.unwrap_or(!desc);
        let key = match &o.expr {
            Expr::Value(v) => match &v.value {
                sqlparser::ast::Value::Number(n, _) => match n.parse::<usize>() {
                    Ok(p) if p >= 1 => KeyRef::Pos(p - 1),
                    _ => return Err(refuse("ORDER BY this number", "use a column position")),
                },
                _ => return Err(refuse("ORDER BY a constant", "order by a result column")),
            },
            Expr::Identifier(i) => KeyRef::Name(i.value.clone()),
            other => {
                let text = other.to_string();
                let pos = select.projection.iter().position(|item| match item {
                    SelectItem::UnnamedExpr(e) => e.to_string().eq_ignore_ascii_case(&text),
                    _ => false,
                });
                match (pos, other) {
                    (Some(p), _) => KeyRef::Pos(p),
                    (None, Expr::CompoundIdentifier(parts)) => match parts.last() {
                        Some(i) => KeyRef::Name(i.value.clone()),
                        None => {
                            return Err(refuse(
                                "ORDER BY this expression",
                                "order by a result column",
                            ));
                        }
                    },
                    _ => {
                        return Err(refuse(
                            format!("ORDER BY {text}, which is not a result column"),
                            "select it and order by its name or position",
                        ));
                    }
                }
            }
        };
        keys.push(SortKey {
            key,
            desc,
            nulls_first,
        });
    }
    Ok(keys)
}

/// An aggregate query split in two: what each group runs (its GROUP BY
/// keys, then partial aggregates), how the partials combine, and the
/// final query the router runs over the combined groups (a table
/// `__tributary_merged` with columns `__k0…` for the keys and `__a0…` for
/// the aggregates): the projection, HAVING, ORDER BY, LIMIT and OFFSET
/// with every aggregate call and grouping expression replaced by its
/// column. So `CAST(sum(x) AS BIGINT)`, `coalesce(sum(x), 0)`,
/// `sum(x) / count(*)` and `HAVING count(*) > 1` merge exactly.
#[derive(Debug)]
pub struct AggregatePlan {
    pub projection: Vec<SelectItem>,
    /// One per distinct aggregate call, by position in the per-group row.
    pub aggs: Vec<Out>,
    pub final_sql: String,
}

/// Replaces aggregate calls and grouping expressions with the merged
/// table's columns, outermost first.
struct Columns<'a> {
    group_by: &'a [String],
    aggs: &'a [String],
}

impl VisitorMut for Columns<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let text = e.to_string();
        if let Some(i) = self.aggs.iter().position(|a| *a == text) {
            *e = Expr::Identifier(Ident::new(format!("__a{i}")));
        } else if let Some(j) = self
            .group_by
            .iter()
            .position(|g| g.eq_ignore_ascii_case(&text))
        {
            *e = Expr::Identifier(Ident::new(format!("__k{j}")));
        }
        ControlFlow::Continue(())
    }
}

/// A column reference left after the replacement: neither grouped nor
/// aggregated (aliases of result columns are allowed in ORDER BY).
fn stray_column(e: &Expr, aliases: &[String]) -> Option<String> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| {
        let name = match x {
            Expr::Identifier(i) => Some(i.value.clone()),
            Expr::CompoundIdentifier(p) => Some(
                p.iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            _ => None,
        };
        match name {
            Some(n)
                if !(n.starts_with("__k")
                    || n.starts_with("__a")
                    || aliases.iter().any(|a| a.eq_ignore_ascii_case(&n))) =>
            {
                found = Some(n);
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    found
}

/// Plans an aggregate query over distributed tables.
pub(super) fn aggregate_plan(
    q: &Query,
    select: &sqlparser::ast::Select,
    group_by: &[Expr],
    limit: Option<u64>,
    offset: u64,
) -> Result<AggregatePlan> {
    // Every distinct aggregate call in the projection, HAVING and ORDER BY.
    let mut calls: Vec<(String, String, Option<Expr>)> = Vec::new();
    let mut collect = |e: &Expr| -> Result<()> {
        let mut err = None;
        let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| match aggregate(x) {
            Ok(Some((name, arg))) => {
                let text = x.to_string();
                if !calls.iter().any(|(t, _, _)| *t == text) {
                    calls.push((text, name, arg));
                }
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(e) => {
                err = Some(e);
                ControlFlow::Break(())
            }
        });
        err.map_or(Ok(()), Err)
    };
    let mut items: Vec<(Expr, Option<String>)> = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => items.push((e.clone(), None)),
            SelectItem::ExprWithAlias { expr, alias } => {
                items.push((expr.clone(), Some(alias.value.clone())))
            }
            _ => return Err(refuse("* with GROUP BY or aggregates", "list the columns")),
        }
    }
    for (e, _) in &items {
        collect(e)?;
    }
    if let Some(h) = &select.having {
        collect(h)?;
    }
    let mut order: Vec<sqlparser::ast::OrderByExpr> = match &q.order_by {
        None => Vec::new(),
        Some(ob) => match &ob.kind {
            OrderByKind::Expressions(list) => list.clone(),
            OrderByKind::All(_) => return Err(refuse("ORDER BY ALL", "list the columns")),
        },
    };
    for o in &order {
        collect(&o.expr)?;
    }
    let call = |f: &str, arg: &Option<Expr>| -> Result<Expr> {
        let a = arg.as_ref().map_or("*".to_owned(), |a| a.to_string());
        sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(&format!("{f}({a})"))
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| Error::Internal(format!("rewriting an aggregate: {e}")))
    };
    let mut projection: Vec<SelectItem> = group_by
        .iter()
        .enumerate()
        .map(|(i, e)| SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::new(format!("__k{i}")),
        })
        .collect();
    let push = |e: Expr, projection: &mut Vec<SelectItem>| -> usize {
        projection.push(SelectItem::ExprWithAlias {
            expr: e,
            alias: Ident::new(format!("__p{}", projection.len())),
        });
        projection.len() - 1
    };
    let mut aggs = Vec::new();
    for (_, f, arg) in &calls {
        aggs.push(match f.as_str() {
            "count" => Out::Count(push(call("count", arg)?, &mut projection)),
            "sum" => Out::Sum(push(call("sum", arg)?, &mut projection)),
            "min" => Out::Min(push(call("min", arg)?, &mut projection)),
            "max" => Out::Max(push(call("max", arg)?, &mut projection)),
            _ => {
                let sum = push(call("sum", arg)?, &mut projection);
                let count = push(call("count", arg)?, &mut projection);
                Out::Avg { sum, count }
            }
        });
    }
    // The final query over the merged groups.
    let group_texts: Vec<String> = group_by.iter().map(ToString::to_string).collect();
    let agg_texts: Vec<String> = calls.iter().map(|(t, _, _)| t.clone()).collect();
    let mut columns = Columns {
        group_by: &group_texts,
        aggs: &agg_texts,
    };
    let aliases: Vec<String> = items.iter().filter_map(|(_, a)| a.clone()).collect();
    let mut out_items = Vec::new();
    for (e, alias) in &items {
        // The name SQLite gives the column on one file: the alias, else
        // the expression's text (a plain column: its name).
        let name = alias.clone().unwrap_or_else(|| match e {
            Expr::Identifier(i) => i.value.clone(),
            Expr::CompoundIdentifier(p) => {
                p.last().map_or_else(|| e.to_string(), |i| i.value.clone())
            }
            _ => e.to_string(),
        });
        let mut e = e.clone();
        let _ = e.visit(&mut columns);
        if let Some(c) = stray_column(&e, &[]) {
            return Err(refuse(
                format!("{c}, neither grouped nor aggregated,"),
                "select GROUP BY expressions and aggregates of the other columns",
            ));
        }
        out_items.push(format!("{e} AS {}", replica::quote_ident(&name)));
    }
    let mut sql = format!("SELECT {} FROM __tributary_merged", out_items.join(", "));
    if let Some(h) = &select.having {
        let mut h = h.clone();
        let _ = h.visit(&mut columns);
        if let Some(c) = stray_column(&h, &[]) {
            return Err(refuse(
                format!("HAVING on {c}"),
                "filter on grouped columns or aggregates",
            ));
        }
        sql += &format!(" WHERE {h}");
    }
    if !order.is_empty() {
        for o in &mut order {
            let _ = o.expr.visit(&mut columns);
            if let Some(c) = stray_column(&o.expr, &aliases) {
                return Err(refuse(
                    format!("ORDER BY {c}"),
                    "order by result columns or aggregates",
                ));
            }
        }
        let list: Vec<String> = order.iter().map(ToString::to_string).collect();
        sql += &format!(" ORDER BY {}", list.join(", "));
    }
    match limit {
        Some(l) => sql += &format!(" LIMIT {l} OFFSET {offset}"),
        None if offset > 0 => sql += &format!(" LIMIT -1 OFFSET {offset}"),
        None => {}
    }
    Ok(AggregatePlan {
        projection,
        aggs,
        final_sql: sql,
    })
}
