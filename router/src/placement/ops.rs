//! The SQL that sets table placement (`SELECT tributary.shard_groups(…)`,
//! `tributary.distribute(…)`, `tributary.reference(…)`): recognizing the
//! calls, and checking one against the schema and the placement in force
//! to make the next placement version.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, Statement,
};
use wal_bus::{Method, Placement, TablePlacement, Value};

use crate::classify::{expr_text, unsupported};
use crate::error::{Error, Result};

/// Most shards a table may have.
pub const MAX_SHARDS: u32 = 4096;

/// A placement function call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementOp {
    /// `shard_groups('replica1,replica2', 'replica3,replica4', …)`.
    Groups(Vec<Vec<String>>),
    /// `distribute(table, column, 'hash', shards)` or
    /// `distribute(table, column, 'range', 'split,split,…')`.
    Distribute {
        table: String,
        column: String,
        method: String,
        arg: String,
    },
    /// `reference(table)`: the table stays full (on every replica).
    Reference { table: String },
    /// `peer('<json>')`: a part of a statement forwarded by another
    /// router (see `peers`).
    Peer(String),
}

impl PlacementOp {
    /// The function's name (the result column).
    pub fn name(&self) -> &'static str {
        match self {
            PlacementOp::Groups(_) => "shard_groups",
            PlacementOp::Distribute { .. } => "distribute",
            PlacementOp::Reference { .. } => "reference",
            PlacementOp::Peer(_) => "peer",
        }
    }
}

pub(super) fn bad(function: &str, reason: impl Into<String>) -> Error {
    Error::VerifyArgument {
        function: format!("tributary.{function}"),
        reason: reason.into(),
    }
}

/// `Some(op)` when `stmt` is `SELECT tributary.<placement function>(…)`.
pub fn parse(stmt: &Statement) -> Result<Option<PlacementOp>> {
    let Statement::Query(q) = stmt else {
        return Ok(None);
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Ok(None);
    };
    let [SelectItem::UnnamedExpr(Expr::Function(f))] = select.projection.as_slice() else {
        return Ok(None);
    };
    let name = crate::classify::object_name(&f.name).to_ascii_lowercase();
    let Some(function) = name.strip_prefix("tributary.") else {
        return Ok(None);
    };
    if !matches!(
        function,
        "shard_groups" | "distribute" | "reference" | "peer"
    ) {
        return Ok(None);
    }
    if !select.from.is_empty() {
        return Err(bad(function, "is called on its own, without FROM"));
    }
    let mut args = Vec::new();
    if let FunctionArguments::List(list) = &f.args {
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(expr_text(e)),
                other => {
                    return Err(bad(
                        function,
                        format!("takes literal arguments, not {other}"),
                    ));
                }
            }
        }
    }
    let arg = |i: usize, what: &str| -> Result<String> {
        args.get(i)
            .cloned()
            .ok_or_else(|| bad(function, format!("needs {what}")))
    };
    let op = match function {
        "shard_groups" => {
            if args.is_empty() {
                return Err(bad(
                    function,
                    "needs one argument per group, each a comma-separated list of replica names",
                ));
            }
            let groups: Vec<Vec<String>> = args
                .iter()
                .map(|g| {
                    g.split(',')
                        .map(|r| r.trim().to_owned())
                        .filter(|r| !r.is_empty())
                        .collect()
                })
                .collect();
            PlacementOp::Groups(groups)
        }
        "peer" => PlacementOp::Peer(arg(0, "a request")?),
        "distribute" => PlacementOp::Distribute {
            table: arg(0, "a table")?,
            column: arg(1, "a shard-key column")?,
            method: arg(2, "a method ('hash' or 'range')")?.to_ascii_lowercase(),
            arg: arg(3, "a shard count (hash) or split points (range)")?,
        },
        _ => PlacementOp::Reference {
            table: arg(0, "a table")?,
        },
    };
    if args.len() > op_arity(&op) {
        return Err(bad(function, format!("takes {} arguments", op_arity(&op))));
    }
    Ok(Some(op))
}

fn op_arity(op: &PlacementOp) -> usize {
    match op {
        PlacementOp::Groups(g) => g.len(),
        PlacementOp::Distribute { .. } => 4,
        PlacementOp::Reference { .. } | PlacementOp::Peer(_) => 1,
    }
}

/// What a placement call does to the placement in force: the next
/// placement, or `None` when nothing changes.
pub fn next(
    conn: &rusqlite::Connection,
    current: &Placement,
    op: &PlacementOp,
) -> Result<Option<Placement>> {
    let mut next = current.clone();
    match op {
        PlacementOp::Peer(_) => return Ok(None),
        PlacementOp::Groups(groups) => {
            check_groups(groups)?;
            if *groups == current.groups {
                return Ok(None);
            }
            if !current.tables.is_empty() && !only_adds_members(&current.groups, groups) {
                return Err(unsupported(
                    "changing the shard groups while tables are distributed, other than adding replicas to groups",
                    "moving replicas between groups or changing the number of groups would move rows between replicas (a rebalance, not built); list every group as it is, with new replicas appended",
                ));
            }
            next.groups = groups.clone();
        }
        PlacementOp::Reference { table } => {
            let info = table_info(conn, "reference", table)?;
            if crate::placement::sharded(current, &info.name).is_some() {
                return Err(unsupported(
                    format!("making distributed table {} a reference table", info.name),
                    "every replica would need every group's rows (a bootstrap, not built)",
                ));
            }
            return Ok(None);
        }
        PlacementOp::Distribute {
            table,
            column,
            method,
            arg,
        } => {
            if current.groups.is_empty() {
                return Err(bad(
                    "distribute",
                    "no shard groups are set: call tributary.shard_groups('replica1,replica2', 'replica3,replica4', …) first",
                ));
            }
            let info = table_info(conn, "distribute", table)?;
            let Some(col) = info.pk.iter().find(|c| c.eq_ignore_ascii_case(column)) else {
                return Err(bad(
                    "distribute",
                    format!(
                        "the shard key must be a column of {}'s primary key ({}), so that a row's shard never changes and a unique check never spans shards",
                        info.name,
                        if info.pk.is_empty() {
                            "it has none".to_owned()
                        } else {
                            info.pk.join(", ")
                        }
                    ),
                ));
            };
            let method = match method.as_str() {
                "hash" => {
                    let shards: u32 = arg.trim().parse().map_err(|_| {
                        bad(
                            "distribute",
                            format!("the shard count must be a whole number, not {arg:?}"),
                        )
                    })?;
                    if shards == 0 || shards > MAX_SHARDS {
                        return Err(bad(
                            "distribute",
                            format!("the shard count must be 1 to {MAX_SHARDS}"),
                        ));
                    }
                    Method::Hash { shards }
                }
                "range" => Method::Range {
                    splits: split_points(arg)?,
                },
                "directory" => {
                    return Err(unsupported("directory placement", "use 'hash' or 'range'"));
                }
                other => {
                    return Err(bad(
                        "distribute",
                        format!("unknown method {other:?}: use 'hash' or 'range'"),
                    ));
                }
            };
            let placed = TablePlacement {
                column: col.clone(),
                method,
            };
            match crate::placement::sharded(current, &info.name) {
                Some(tp) if *tp == placed => return Ok(None),
                Some(_) => {
                    return Err(unsupported(
                        format!("redistributing {}", info.name),
                        "changing a table's shard key or shard count (a split) is designed in docs/placement-design.md but not built",
                    ));
                }
                None => {}
            }
            next.tables.insert(info.name, placed);
        }
    }
    Ok(Some(next))
}

/// Groups name at least one replica each, and no replica twice.
pub(super) fn check_groups(groups: &[Vec<String>]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, g) in groups.iter().enumerate() {
        if g.is_empty() {
            return Err(bad(
                "shard_groups",
                format!("group {} names no replica", i + 1),
            ));
        }
        for r in g {
            if !seen.insert(r.clone()) {
                return Err(bad(
                    "shard_groups",
                    format!("replica {r} is in more than one group"),
                ));
            }
        }
    }
    Ok(())
}

/// Whether `new` is `old` with replicas appended to groups, the new
/// replicas in no group before.
pub(super) fn only_adds_members(old: &[Vec<String>], new: &[Vec<String>]) -> bool {
    let before: std::collections::BTreeSet<&String> = old.iter().flatten().collect();
    old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| {
            n.len() >= o.len()
                && n[..o.len()] == o[..]
                && n[o.len()..].iter().all(|r| !before.contains(r))
        })
}

/// Range split points: ascending numbers or strings, comma-separated.
pub(super) fn split_points(text: &str) -> Result<Vec<Value>> {
    let splits: Vec<Value> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Ok(i) = s.parse::<i64>() {
                Value::Integer(i)
            } else if let Ok(f) = s.parse::<f64>()
                && f.is_finite()
            {
                Value::Real(f)
            } else {
                Value::Text(s.trim_matches('\'').to_owned())
            }
        })
        .collect();
    if splits.is_empty() {
        return Err(bad(
            "distribute",
            "range needs at least one split point, e.g. '1000,2000'",
        ));
    }
    let method = Method::Range {
        splits: splits.clone(),
    };
    for (i, s) in splits.iter().enumerate() {
        if replica::placement::shard_of(&method, s) as usize != i + 1 {
            return Err(bad(
                "distribute",
                "split points must be distinct and ascending",
            ));
        }
    }
    Ok(splits)
}

pub(super) fn table_info(
    conn: &rusqlite::Connection,
    function: &str,
    table: &str,
) -> Result<replica::TableInfo> {
    use rusqlite::OptionalExtension;
    // The name as the table was created, whatever case the call used.
    let name: Option<String> = conn
        .query_row(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| Error::sqlite("reading the schema", e))?;
    let Some(name) = name.filter(|n| !replica::is_internal_table(n)) else {
        return Err(bad(function, format!("there is no table {table}")));
    };
    replica::table_info(conn, &name)
        .map_err(|e| Error::sqlite("reading the schema", e))?
        .ok_or_else(|| bad(function, format!("there is no table {table}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn op(sql: &str) -> Result<Option<PlacementOp>> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        parse(&stmts[0])
    }

    #[test]
    fn recognizes_the_calls() {
        assert_eq!(
            op("SELECT tributary.distribute('orders', 'customer_id', 'hash', 8)").expect("ok"),
            Some(PlacementOp::Distribute {
                table: "orders".into(),
                column: "customer_id".into(),
                method: "hash".into(),
                arg: "8".into()
            })
        );
        assert_eq!(
            op("select tributary.shard_groups('a,b', 'c, d')").expect("ok"),
            Some(PlacementOp::Groups(vec![
                vec!["a".into(), "b".into()],
                vec!["c".into(), "d".into()]
            ]))
        );
        assert_eq!(op("SELECT distribute('t')").expect("ok"), None);
        assert!(op("SELECT tributary.distribute('t')").is_err());
        assert!(op("SELECT tributary.reference('t') FROM x").is_err());
    }

    #[test]
    fn checks_against_the_schema_and_the_placement_in_force() {
        let conn = rusqlite::Connection::open_in_memory().expect("db");
        conn.execute_batch(
            "CREATE TABLE orders (customer_id INTEGER, id INTEGER, PRIMARY KEY (customer_id, id));
             CREATE TABLE plain (id INTEGER PRIMARY KEY, v TEXT);",
        )
        .expect("schema");
        let dist = |t: &str, c: &str, m: &str, a: &str| PlacementOp::Distribute {
            table: t.into(),
            column: c.into(),
            method: m.into(),
            arg: a.into(),
        };
        let empty = Placement::default();
        assert!(next(&conn, &empty, &dist("orders", "customer_id", "hash", "8")).is_err());
        let grouped = next(
            &conn,
            &empty,
            &PlacementOp::Groups(vec![vec!["r1".into()], vec!["r2".into()]]),
        )
        .expect("ok")
        .expect("changed");
        let p = next(&conn, &grouped, &dist("ORDERS", "Customer_Id", "hash", "8"))
            .expect("ok")
            .expect("changed");
        assert_eq!(p.tables["orders"].column, "customer_id");
        assert_eq!(
            next(&conn, &p, &dist("orders", "customer_id", "hash", "8")).expect("ok"),
            None
        );
        assert!(next(&conn, &p, &dist("orders", "customer_id", "hash", "16")).is_err());
        assert!(
            next(&conn, &grouped, &dist("plain", "v", "hash", "8")).is_err(),
            "not in the key"
        );
        assert!(next(&conn, &grouped, &dist("orders", "id", "hash", "0")).is_err());
        assert!(next(&conn, &grouped, &dist("orders", "id", "range", "20,10")).is_err());
        assert!(
            next(&conn, &grouped, &dist("orders", "id", "range", "10,20"))
                .expect("ok")
                .is_some()
        );
        assert!(next(&conn, &p, &PlacementOp::Groups(vec![vec!["r1".into()]])).is_err());
        let grown = PlacementOp::Groups(vec![vec!["r1".into(), "r3".into()], vec!["r2".into()]]);
        assert!(next(&conn, &p, &grown).expect("adding a member").is_some());
        let moved = PlacementOp::Groups(vec![vec!["r1".into(), "r2".into()], vec!["r2".into()]]);
        assert!(next(&conn, &p, &moved).is_err());
        // The node config's [placement], as a whole.
        assert_eq!(
            crate::placement::transition(&conn, &p, &p).expect("ok"),
            None
        );
        let mut split = p.clone();
        split.tables.insert(
            "orders".into(),
            TablePlacement {
                column: "customer_id".into(),
                method: Method::Hash { shards: 16 },
            },
        );
        assert!(
            crate::placement::transition(&conn, &p, &split).is_err(),
            "a split"
        );
        let mut later = p.clone();
        later.tables.insert(
            "not_yet".into(),
            TablePlacement {
                column: "k".into(),
                method: Method::Hash { shards: 4 },
            },
        );
        assert!(
            crate::placement::transition(&conn, &p, &later)
                .expect("ok")
                .is_some(),
            "a table created later"
        );
        let mut bad_key = p.clone();
        bad_key.tables.insert(
            "plain".into(),
            TablePlacement {
                column: "v".into(),
                method: Method::Hash { shards: 4 },
            },
        );
        assert!(
            crate::placement::transition(&conn, &p, &bad_key).is_err(),
            "key outside the primary key"
        );
        assert!(
            next(
                &conn,
                &p,
                &PlacementOp::Reference {
                    table: "orders".into()
                }
            )
            .is_err()
        );
        assert_eq!(
            next(
                &conn,
                &p,
                &PlacementOp::Reference {
                    table: "plain".into()
                }
            )
            .expect("ok"),
            None
        );
    }
}
