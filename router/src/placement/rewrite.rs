//! What each shard group runs for a scattered read: recognizing the
//! aggregates the merge can combine (and refusing the others), the
//! partial aggregates that replace them per group, and ORDER BY as keys
//! into the merged rows.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, OrderByKind, Query, SelectItem,
};

use super::merge::{KeyRef, Out, SortKey};
use super::scatter::refuse;
use crate::error::{Error, Result};

/// The per-group projection and how each result column is made from it.
pub type Partials = (Vec<SelectItem>, Vec<(String, Out)>);

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

/// Refuses aggregates and window functions nested inside an expression.
pub(super) fn no_nested_aggregates(e: &Expr) -> Result<()> {
    let mut found = None;
    let _ = sqlparser::ast::visit_expressions(e, |x: &Expr| match aggregate(x) {
        Ok(None) => ControlFlow::Continue(()),
        Ok(Some((name, _))) => {
            found = Some(refuse(
                format!("{name} inside an expression"),
                "select the aggregate on its own and compute with it in the client",
            ));
            ControlFlow::Break(())
        }
        Err(err) => {
            found = Some(err);
            ControlFlow::Break(())
        }
    });
    found.map_or(Ok(()), Err)
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

/// The per-group projection of an aggregate query (the GROUP BY
/// expressions, then the partial aggregates) and how each result column
/// is made from it.
pub(super) fn partial_projection(
    select: &sqlparser::ast::Select,
    group_by: &[Expr],
) -> Result<Partials> {
    let mut projection: Vec<SelectItem> = group_by
        .iter()
        .enumerate()
        .map(|(i, e)| SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: Ident::new(format!("__tributary_key_{i}")),
        })
        .collect();
    let mut outs = Vec::new();
    let push = |e: Expr, projection: &mut Vec<SelectItem>| -> usize {
        projection.push(SelectItem::ExprWithAlias {
            expr: e,
            alias: Ident::new(format!("__tributary_part_{}", projection.len())),
        });
        projection.len() - 1
    };
    for item in &select.projection {
        let (e, alias) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => return Err(refuse("* with GROUP BY or aggregates", "list the columns")),
        };
        let name = alias.unwrap_or_else(|| match e {
            Expr::Identifier(i) => i.value.clone(),
            Expr::CompoundIdentifier(p) => {
                p.last().map_or_else(|| e.to_string(), |i| i.value.clone())
            }
            _ => e.to_string(),
        });
        let call = |f: &str, arg: &Option<Expr>| -> Result<Expr> {
            let a = arg.as_ref().map_or("*".to_owned(), |a| a.to_string());
            sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
                .try_with_sql(&format!("{f}({a})"))
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| Error::Internal(format!("rewriting an aggregate: {e}")))
        };
        let out = match aggregate(e)? {
            Some((f, arg)) => match f.as_str() {
                "count" => Out::Count(push(call("count", &arg)?, &mut projection)),
                "sum" => Out::Sum(push(call("sum", &arg)?, &mut projection)),
                "min" => Out::Min(push(call("min", &arg)?, &mut projection)),
                "max" => Out::Max(push(call("max", &arg)?, &mut projection)),
                _ => {
                    let sum = push(call("sum", &arg)?, &mut projection);
                    let count = push(call("count", &arg)?, &mut projection);
                    Out::Avg { sum, count }
                }
            },
            None => {
                let text = e.to_string();
                match group_by
                    .iter()
                    .position(|g| g.to_string().eq_ignore_ascii_case(&text))
                {
                    Some(i) => Out::Key(i),
                    None => {
                        return Err(refuse(
                            format!("{text}, neither grouped nor aggregated,"),
                            "select GROUP BY columns and count, sum, min, max or avg",
                        ));
                    }
                }
            }
        };
        outs.push((name, out));
    }
    Ok((projection, outs))
}
