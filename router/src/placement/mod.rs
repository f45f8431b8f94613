//! Table placement at the router: which local replica speculates and reads
//! for each shard group, which gates a speculation holds, and which groups
//! a statement's rows can be in (from a shard-key equality or `IN`).
//!
//! A statement the router cannot pin to groups runs on every group: that
//! is always right, only slower. The one thing this module must never do
//! is pin a statement to a group that lacks some of its rows, so a
//! shard-key value is converted with the column's affinity exactly as
//! SQLite stores it, and anything it cannot convert for certain (a text
//! that might be a number, an expression) pins nothing.

mod aligned;
pub mod merge;
pub use aligned::hold_aligned;
mod ddl;
mod declared;
pub use declared::transition;
pub mod ops;
pub mod peers;
pub use ddl::check_ddl;
mod rewrite;
pub mod scatter;
pub mod view;
pub mod write;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use replica::ReplicaState;
use rusqlite::types::Value as SqlValue;
use sqlparser::ast::{BinaryOperator, Expr, SetExpr, Statement, Value as AstValue};
use wal_bus::{Placement, TablePlacement, Value};

use crate::db::Gates;

pub use ops::PlacementOp;

/// The placement of `table` when it is sharded.
pub fn sharded<'a>(placement: &'a Placement, table: &str) -> Option<&'a TablePlacement> {
    if placement.groups.is_empty() {
        return None;
    }
    replica::placement::table_placement(placement, table)
}

/// Per group, the index (in `all`) of the local replica that speculates
/// and reads for it: the router's own replica when it is in the group,
/// else the group's first local replica. `None`: no replica of the group
/// runs in this process.
pub fn group_replicas(
    placement: &Placement,
    own: &Arc<ReplicaState>,
    all: &[Arc<ReplicaState>],
) -> Vec<Option<usize>> {
    placement
        .groups
        .iter()
        .map(|names| {
            let local = |n: &String| all.iter().position(|r| &r.name == n);
            if names.iter().any(|n| n == &own.name) {
                return all.iter().position(|r| Arc::ptr_eq(r, own));
            }
            names.iter().find_map(local)
        })
        .collect()
}

/// The gates a router's speculation job holds: its own replica's, and
/// under a sharded placement one replica's per group, taken in the node's
/// replica order (see `db::Gates`).
pub fn speculation_gates(own: &Arc<ReplicaState>, all: &[Arc<ReplicaState>]) -> Gates {
    let own = own.clone();
    let all: Vec<Arc<ReplicaState>> = all.to_vec();
    Arc::new(move || {
        let (_, placement) = own.placement();
        if !placement.is_sharded() {
            return vec![own.write_gate()];
        }
        let mut idx: Vec<usize> = group_replicas(&placement, &own, &all)
            .into_iter()
            .flatten()
            .collect();
        match all.iter().position(|r| Arc::ptr_eq(r, &own)) {
            Some(i) => idx.push(i),
            None => return vec![own.write_gate()],
        }
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| all[i].write_gate()).collect()
    })
}

/// `EXPLAIN` of a read of distributed tables: the groups it runs on, what
/// each runs, and how the answers merge.
pub fn explain(
    placement: &Placement,
    groups: &BTreeSet<usize>,
    plan: &scatter::Plan,
) -> Vec<String> {
    let names: Vec<String> = groups
        .iter()
        .map(|g| format!("{} ({})", g + 1, placement.groups[*g].join(", ")))
        .collect();
    let mut out = vec![match &plan.merge {
        merge::Merge::AsIs => format!("Tributary: pinned to shard group {}", names.join(", ")),
        _ => format!(
            "Tributary: scattered to shard groups {}, read at one log offset",
            names.join(", ")
        ),
    }];
    out.push(format!("  each group runs: {}", plan.sql));
    match &plan.merge {
        merge::Merge::AsIs => {}
        merge::Merge::Rows {
            order,
            distinct,
            offset,
            limit,
        } => out.push(format!(
            "  merge: concatenate{}{}{}{}",
            if order.is_empty() { "" } else { ", sort" },
            if *distinct { ", remove duplicates" } else { "" },
            if *offset > 0 {
                format!(", skip {offset}")
            } else {
                String::new()
            },
            limit.map_or(String::new(), |l| format!(", keep {l}"))
        )),
        merge::Merge::Aggregate {
            keys, final_sql, ..
        } => {
            out.push(format!(
                "  merge: combine partial aggregates by {keys} group key column(s), then: {final_sql}"
            ));
        }
    }
    out
}

/// What the router needs to know about a statement under a sharded
/// placement.
#[derive(Debug, Default)]
pub struct Analysis {
    /// Every table the statement names that is sharded (placement names).
    pub sharded: Vec<String>,
    /// The table an INSERT, UPDATE or DELETE writes.
    pub target: Option<String>,
    /// The shard-key values that pin the statement's rows, when its
    /// predicate (or its VALUES) names them all; `None`: any row.
    pub keys: Option<Vec<Value>>,
}

impl Analysis {
    /// The groups holding the statement's rows: `None` for every group.
    pub fn groups(
        &self,
        placement: &Placement,
        decl_type: Option<&str>,
    ) -> Option<BTreeSet<usize>> {
        let [table] = self.sharded.as_slice() else {
            return None;
        };
        let tp = sharded(placement, table)?;
        let keys = self.keys.as_ref()?;
        let decl = decl_type?;
        let mut groups = BTreeSet::new();
        for k in keys {
            let v = stored_as(k, decl)?;
            groups.insert(replica::placement::group_of_value(placement, tp, &v));
        }
        Some(groups)
    }
}

/// Names of every table a statement reads or writes.
pub fn relations(stmt: &Statement) -> Vec<String> {
    let mut out = Vec::new();
    let _ = sqlparser::ast::visit_relations(stmt, |name| {
        let n = crate::classify::object_name(name);
        let n = n.rsplit('.').next().unwrap_or(&n).to_owned();
        if !out.iter().any(|o: &String| o.eq_ignore_ascii_case(&n)) {
            out.push(n);
        }
        ControlFlow::<()>::Continue(())
    });
    out
}

/// Analyzes `stmt` under `placement`; `params` are the bound `$n` values.
pub fn analyze(placement: &Placement, stmt: &Statement, params: &[SqlValue]) -> Analysis {
    let names = relations(stmt);
    let sharded_names: Vec<String> = names
        .iter()
        .filter_map(|n| {
            placement
                .tables
                .keys()
                .find(|t| t.eq_ignore_ascii_case(n))
                .cloned()
        })
        .collect();
    let mut a = Analysis {
        sharded: sharded_names,
        ..Default::default()
    };
    let column = |table: &str| sharded(placement, table).map(|tp| tp.column.clone());
    match stmt {
        Statement::Insert(ins) => {
            let table = match &ins.table {
                sqlparser::ast::TableObject::TableName(name) => {
                    let n = crate::classify::object_name(name);
                    n.rsplit('.').next().unwrap_or(&n).to_owned()
                }
                other => other.to_string(),
            };
            a.target = Some(table.clone());
            if let (Some(col), Some(src)) = (column(&table), &ins.source)
                && let SetExpr::Values(values) = src.body.as_ref()
                && let Some(i) = ins
                    .columns
                    .iter()
                    .position(|c| crate::classify::object_name(c).eq_ignore_ascii_case(&col))
            {
                a.keys = values
                    .rows
                    .iter()
                    .map(|row| row.get(i).and_then(|e| literal(e, params)))
                    .collect();
            }
        }
        Statement::Update(up) => {
            let table = relation_name(&up.table.relation);
            a.target = table.clone();
            if let (Some(t), Some(w)) = (table, &up.selection)
                && let Some(col) = column(&t)
            {
                let alias = table_alias(&up.table.relation);
                a.keys = key_values(
                    w,
                    &col,
                    &[t.as_str(), alias.as_deref().unwrap_or(&t)],
                    params,
                );
            }
        }
        Statement::Delete(del) => {
            let (sqlparser::ast::FromTable::WithFromKeyword(from)
            | sqlparser::ast::FromTable::WithoutKeyword(from)) = &del.from;
            let table = from.first().and_then(|f| relation_name(&f.relation));
            a.target = table.clone();
            if let (Some(t), Some(w)) = (table, &del.selection)
                && let Some(col) = column(&t)
            {
                let alias = from.first().and_then(|f| table_alias(&f.relation));
                a.keys = key_values(
                    w,
                    &col,
                    &[t.as_str(), alias.as_deref().unwrap_or(&t)],
                    params,
                );
            }
        }
        _ => {}
    }
    a
}

fn table_alias(r: &sqlparser::ast::TableFactor) -> Option<String> {
    match r {
        sqlparser::ast::TableFactor::Table { alias: Some(a), .. } => Some(a.name.value.clone()),
        _ => None,
    }
}

fn relation_name(r: &sqlparser::ast::TableFactor) -> Option<String> {
    match r {
        sqlparser::ast::TableFactor::Table { name, .. } => {
            let n = crate::classify::object_name(name);
            Some(n.rsplit('.').next().unwrap_or(&n).to_owned())
        }
        _ => None,
    }
}

/// The values a WHERE clause pins `column` to: an equality or `IN` list
/// among its top-level `AND`s. A qualified column counts only when its
/// qualifier is one of `quals` (the table's name or alias).
pub fn key_values(
    w: &Expr,
    column: &str,
    quals: &[&str],
    params: &[SqlValue],
) -> Option<Vec<Value>> {
    let named = |e: &Expr| names_column(e, column, quals);
    match w {
        Expr::Nested(e) => key_values(e, column, quals, params),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => key_values(left, column, quals, params)
            .or_else(|| key_values(right, column, quals, params)),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            if named(left) {
                literal(right, params).map(|v| vec![v])
            } else if named(right) {
                literal(left, params).map(|v| vec![v])
            } else {
                None
            }
        }
        Expr::InList {
            expr,
            list,
            negated: false,
        } if named(expr) => list.iter().map(|e| literal(e, params)).collect(),
        _ => None,
    }
}

fn names_column(e: &Expr, column: &str, quals: &[&str]) -> bool {
    match e {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(column),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => {
                c.value.eq_ignore_ascii_case(column)
                    && quals.iter().any(|x| x.eq_ignore_ascii_case(&q.value))
            }
            _ => false,
        },
        Expr::Nested(e) => names_column(e, column, quals),
        _ => false,
    }
}

/// A literal or bound parameter's value, as the client wrote it.
fn literal(e: &Expr, params: &[SqlValue]) -> Option<Value> {
    match e {
        Expr::Nested(e) => literal(e, params),
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => match literal(expr, params)? {
            Value::Integer(i) => i.checked_neg().map(Value::Integer),
            Value::Real(f) => Some(Value::Real(-f)),
            _ => None,
        },
        // `$1::int` and the like: an integer cast of an integer or of text
        // that reads as one; any other cast pins nothing.
        Expr::Cast {
            expr, data_type, ..
        } => {
            let ty = data_type.to_string().to_ascii_uppercase();
            match literal(expr, params)? {
                v @ Value::Integer(_) if ty.contains("INT") => Some(v),
                Value::Text(t) if ty.contains("INT") => t.parse::<i64>().ok().map(Value::Integer),
                v @ Value::Text(_) if ty.contains("TEXT") || ty.contains("CHAR") => Some(v),
                _ => None,
            }
        }
        Expr::Value(v) => match &v.value {
            AstValue::Number(n, _) => n.parse::<i64>().map(Value::Integer).ok().or_else(|| {
                n.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Value::Real)
            }),
            AstValue::SingleQuotedString(s) => Some(Value::Text(s.clone())),
            AstValue::Placeholder(p) => {
                let n: usize = p.strip_prefix('$')?.parse().ok()?;
                Some(replica::from_value_ref(
                    params.get(n.checked_sub(1)?)?.into(),
                ))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `v` as SQLite stores it in a column declared `decl` (its affinity), or
/// `None` when that is not certain.
pub fn stored_as(v: &Value, decl: &str) -> Option<Value> {
    let d = decl.to_ascii_uppercase();
    let numeric_text = |s: &str| -> Option<Value> {
        if s.is_empty() || s.trim() != s {
            return None;
        }
        if let Ok(i) = s.parse::<i64>() {
            return Some(Value::Integer(i));
        }
        None
    };
    if d.contains("INT") || d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        return match v {
            Value::Integer(_) | Value::Real(_) => Some(v.clone()),
            Value::Text(s) => numeric_text(s),
            _ => None,
        };
    }
    if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        return match v {
            Value::Text(_) => Some(v.clone()),
            Value::Integer(i) => Some(Value::Text(i.to_string())),
            _ => None,
        };
    }
    if d.is_empty() || d.contains("BLOB") {
        return Some(v.clone());
    }
    // NUMERIC affinity (and the date, uuid, numeric types that map to it):
    // integers, and text that cannot be read as a number, are certain.
    match v {
        Value::Integer(_) => Some(v.clone()),
        Value::Text(s) if s.chars().any(|c| !"0123456789+-.eE \t\n".contains(c)) => Some(v.clone()),
        Value::Text(s) => numeric_text(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
