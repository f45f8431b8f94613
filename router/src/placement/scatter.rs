//! Planning a read of distributed tables: pinned to one shard group by a
//! shard-key equality, or scattered to one replica per group with a merge
//! at the router (`merge.rs`). A query whose per-group answers cannot be
//! merged into exactly the answer one file holding every row would give
//! is refused with 0A000 naming the construct; it is never answered
//! wrongly.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use rusqlite::types::Value as SqlValue;
use sqlparser::ast::{
    BinaryOperator, Distinct, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, LimitClause,
    SelectItem, SetExpr, Statement, TableFactor,
};
use wal_bus::{Placement, Value};

use super::merge::Merge;
use super::rewrite::{aggregate_plan, contains_aggregate, sort_keys};
use super::sharded;
use crate::error::{Error, Result};

/// How a read of distributed tables runs.
#[derive(Debug)]
pub struct Plan {
    /// The groups it runs on (`None`: every group).
    pub groups: Option<BTreeSet<usize>>,
    /// What each group runs.
    pub sql: String,
    pub merge: Merge,
}

pub(super) fn refuse(what: impl Into<String>, why: &str) -> Error {
    Error::Unsupported {
        what: format!("{} over distributed tables", what.into()),
        why: why.into(),
    }
}

/// Every table reference in `stmt`, one entry per occurrence.
fn relation_refs(stmt: &Statement) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(stmt, |name| {
        let n = crate::classify::object_name(name);
        out.push(n.rsplit('.').next().unwrap_or(&n).to_owned());
        ControlFlow::<()>::Continue(())
    });
    out
}

/// A LIMIT or OFFSET given as a literal or a bound parameter.
fn count_of(e: &Expr, params: &[SqlValue]) -> Result<u64> {
    match super::literal(e, params) {
        Some(Value::Integer(i)) if i >= 0 => Ok(i as u64),
        _ => Err(refuse(
            "LIMIT or OFFSET that is not a number",
            "give it a number",
        )),
    }
}

/// Which table (placement name) an alias or table name in FROM stands for.
struct FromItem {
    name: String,
    alias: Option<String>,
    sharded: bool,
}

fn from_item(t: &TableFactor, placement: &Placement) -> Result<FromItem> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = t
    else {
        return Err(refuse(
            "a subquery or function in FROM",
            "name the tables directly",
        ));
    };
    let n = crate::classify::object_name(name);
    let n = n.rsplit('.').next().unwrap_or(&n).to_owned();
    Ok(FromItem {
        sharded: sharded(placement, &n).is_some(),
        alias: alias.as_ref().map(|a| a.name.value.clone()),
        name: n,
    })
}

/// Whether `e` (among the AND-ed conditions) equates the shard keys of
/// the two distributed tables.
fn joins_on_key(e: &Expr, a: &FromItem, b: &FromItem, placement: &Placement) -> bool {
    let col = |parts: &[Ident], item: &FromItem| -> bool {
        let Some(tp) = sharded(placement, &item.name) else {
            return false;
        };
        match parts {
            [q, c] => {
                let q = &q.value;
                (q.eq_ignore_ascii_case(&item.name)
                    || item
                        .alias
                        .as_deref()
                        .is_some_and(|al| al.eq_ignore_ascii_case(q)))
                    && c.value.eq_ignore_ascii_case(&tp.column)
            }
            _ => false,
        }
    };
    match e {
        Expr::Nested(x) => joins_on_key(x, a, b, placement),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => joins_on_key(left, a, b, placement) || joins_on_key(right, a, b, placement),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match (left.as_ref(), right.as_ref()) {
            (Expr::CompoundIdentifier(l), Expr::CompoundIdentifier(r)) => {
                (col(l, a) && col(r, b)) || (col(l, b) && col(r, a))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Plans a read; `Ok(None)` when it names no distributed table.
/// `key_type(table)` is the declared type of a table's shard key.
pub fn plan(
    placement: &Placement,
    stmt: &Statement,
    params: &[SqlValue],
    key_type: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Plan>> {
    let refs = relation_refs(stmt);
    let sharded_refs: Vec<&String> = refs
        .iter()
        .filter(|r| sharded(placement, r).is_some())
        .collect();
    if sharded_refs.is_empty() {
        return Ok(None);
    }
    let Statement::Query(q) = stmt else {
        return Err(refuse(
            "this statement",
            "only SELECT reads distributed tables",
        ));
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(refuse(
            "UNION, INTERSECT, EXCEPT or VALUES",
            "run each SELECT on its own",
        ));
    };
    if q.with.is_some() {
        return Err(refuse(
            "WITH",
            "write the query without a common table expression",
        ));
    }
    let mut items = Vec::new();
    for twj in &select.from {
        items.push(from_item(&twj.relation, placement)?);
        for j in &twj.joins {
            let item = from_item(&j.relation, placement)?;
            match &j.join_operator {
                JoinOperator::Join(_) | JoinOperator::Inner(_) | JoinOperator::CrossJoin(_) => {}
                JoinOperator::Left(_) | JoinOperator::LeftOuter(_) if !item.sharded => {}
                _ => {
                    return Err(refuse(
                        "an outer join that keeps rows of a full table, or this join",
                        "inner joins, and left joins of a distributed table to a full table, are supported",
                    ));
                }
            }
            items.push(item);
        }
    }
    let top: Vec<&FromItem> = items.iter().filter(|i| i.sharded).collect();
    if top.len() != sharded_refs.len() {
        return Err(refuse(
            "a distributed table named twice or inside a subquery",
            "name each distributed table once, in the outer FROM",
        ));
    }
    match top.as_slice() {
        [_] => {}
        [x, y] => {
            let (tx, ty) = (sharded(placement, &x.name), sharded(placement, &y.name));
            let colocated = matches!((tx, ty), (Some(a), Some(b)) if a.method == b.method);
            let mut on_key = select
                .selection
                .as_ref()
                .is_some_and(|w| joins_on_key(w, x, y, placement));
            for twj in &select.from {
                for j in &twj.joins {
                    let c = match &j.join_operator {
                        JoinOperator::Join(c) | JoinOperator::Inner(c) => Some(c),
                        _ => None,
                    };
                    if let Some(JoinConstraint::On(e)) = c {
                        on_key |= joins_on_key(e, x, y, placement);
                    }
                }
            }
            if !colocated || !on_key {
                return Err(refuse(
                    format!(
                        "a join of {} and {} that is not on their shard keys",
                        x.name, y.name
                    ),
                    "join distributed tables with the same method and shard count on their shard keys (t1.key = t2.key)",
                ));
            }
        }
        _ => {
            return Err(refuse(
                "a join of three or more distributed tables",
                "join at most two",
            ));
        }
    }
    // Pinned: a shard-key equality on a distributed table (the others, if
    // any, are joined to it on the key) puts every row in one group.
    for item in &top {
        let Some(tp) = sharded(placement, &item.name) else {
            continue;
        };
        let quals = [
            item.name.as_str(),
            item.alias.as_deref().unwrap_or(&item.name),
        ];
        let Some(keys) = select
            .selection
            .as_ref()
            .and_then(|w| super::key_values(w, &tp.column, &quals, params))
        else {
            continue;
        };
        let Some(decl) = key_type(&item.name) else {
            continue;
        };
        let groups: Option<BTreeSet<usize>> = keys
            .iter()
            .map(|k| {
                super::stored_as(k, &decl)
                    .map(|v| replica::placement::group_of_value(placement, tp, &v))
            })
            .collect();
        if let Some(groups) = groups
            && groups.len() == 1
        {
            return Ok(Some(Plan {
                groups: Some(groups),
                sql: stmt.to_string(),
                merge: Merge::AsIs,
            }));
        }
    }
    if select.qualify.is_some() || !select.named_window.is_empty() {
        return Err(refuse(
            "QUALIFY or WINDOW",
            "filter the merged rows in the client",
        ));
    }
    if select.top.is_some()
        || !select.sort_by.is_empty()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return Err(refuse("TOP, FETCH or FOR UPDATE", "use LIMIT"));
    }
    let distinct = match &select.distinct {
        None | Some(Distinct::All) => false,
        Some(Distinct::Distinct) => true,
        Some(_) => return Err(refuse("DISTINCT ON", "use DISTINCT or GROUP BY")),
    };
    let (limit, offset) = match &q.limit_clause {
        None => (None, 0),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) if limit_by.is_empty() => (
            match limit {
                Some(Expr::Value(v)) if matches!(v.value, sqlparser::ast::Value::Null) => None,
                Some(e) => Some(count_of(e, params)?),
                None => None,
            },
            match offset {
                Some(o) => count_of(&o.value, params)?,
                None => 0,
            },
        ),
        Some(_) => return Err(refuse("this LIMIT form", "use LIMIT n OFFSET m")),
    };
    let order = sort_keys(q, select)?;
    let group_by: Vec<Expr> = match &select.group_by {
        GroupByExpr::Expressions(e, m) if m.is_empty() => e.clone(),
        _ => {
            return Err(refuse(
                "GROUP BY ALL or GROUP BY modifiers",
                "list the grouping columns",
            ));
        }
    };
    let mut has_aggregates = select.having.is_some();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
            has_aggregates |= contains_aggregate(e)?;
        }
    }
    let mut per_group = q.as_ref().clone();
    if !has_aggregates && group_by.is_empty() {
        per_group.limit_clause = limit.map(|l| LimitClause::LimitOffset {
            limit: Some(Expr::value(sqlparser::ast::Value::Number(
                (l + offset).to_string(),
                false,
            ))),
            offset: None,
            limit_by: Vec::new(),
        });
        return Ok(Some(Plan {
            groups: None,
            sql: per_group.to_string(),
            merge: Merge::Rows {
                order,
                distinct,
                offset,
                limit,
            },
        }));
    }
    if distinct {
        return Err(refuse("DISTINCT with aggregates", "leave out DISTINCT"));
    }
    let agg = aggregate_plan(q, select, &group_by, limit, offset)?;
    let SetExpr::Select(s) = per_group.body.as_mut() else {
        return Err(Error::Internal("the query body changed shape".into()));
    };
    s.projection = agg.projection;
    s.having = None;
    per_group.order_by = None;
    per_group.limit_clause = None;
    Ok(Some(Plan {
        groups: None,
        sql: per_group.to_string(),
        merge: Merge::Aggregate {
            keys: group_by.len(),
            aggs: agg.aggs,
            final_sql: agg.final_sql,
        },
    }))
}
