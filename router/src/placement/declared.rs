//! The node config's `[placement]`: the whole placement it declares,
//! checked against the one in force as the SQL functions check each step.

use wal_bus::{Method, Placement, TablePlacement, Value};

use super::ops::{MAX_SHARDS, bad, check_groups, only_adds_members, split_points, table_info};
use crate::classify::unsupported;
use crate::error::Result;

/// The move from the placement in force to `desired` (the node config's
/// `[placement]`), checked as the SQL functions check each step: groups
/// only grow once tables are distributed, a distributed table keeps its
/// placement, and a table that exists already has the shard key in its
/// primary key (one created later is checked by its CREATE TABLE).
pub fn transition(
    conn: &rusqlite::Connection,
    current: &Placement,
    desired: &Placement,
) -> Result<Option<Placement>> {
    if desired == current {
        return Ok(None);
    }
    check_groups(&desired.groups)?;
    if !desired.tables.is_empty() && desired.groups.is_empty() {
        return Err(bad(
            "distribute",
            "[placement] tables need [placement] groups",
        ));
    }
    if !current.tables.is_empty()
        && desired.groups != current.groups
        && !only_adds_members(&current.groups, &desired.groups)
    {
        return Err(unsupported(
            "changing the shard groups while tables are distributed, other than adding replicas to groups",
            "list every group as it is, with new replicas appended",
        ));
    }
    let mut next = Placement {
        groups: desired.groups.clone(),
        tables: Default::default(),
    };
    for (table, tp) in &current.tables {
        match replica::placement::table_placement(desired, table) {
            Some(d) if d == tp => {}
            _ => {
                return Err(unsupported(
                    format!("changing or dropping the placement of distributed table {table}"),
                    "a split or un-distribution is not built",
                ));
            }
        }
    }
    for (table, tp) in &desired.tables {
        match &tp.method {
            Method::Hash { shards } if *shards == 0 || *shards > MAX_SHARDS => {
                return Err(bad(
                    "distribute",
                    format!("{table}: the shard count must be 1 to {MAX_SHARDS}"),
                ));
            }
            Method::Range { splits } => {
                let text: Vec<String> = splits
                    .iter()
                    .map(|v| match v {
                        Value::Text(t) => t.clone(),
                        Value::Integer(i) => i.to_string(),
                        Value::Real(f) => f.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                split_points(&text.join(","))?;
            }
            Method::Hash { .. } => {}
        }
        let placed = match table_info(conn, "distribute", table) {
            Ok(info) => {
                let Some(col) = info.pk.iter().find(|c| c.eq_ignore_ascii_case(&tp.column)) else {
                    return Err(bad(
                        "distribute",
                        format!(
                            "the shard key {} of {} is not in its primary key",
                            tp.column, info.name
                        ),
                    ));
                };
                (
                    info.name,
                    TablePlacement {
                        column: col.clone(),
                        method: tp.method.clone(),
                    },
                )
            }
            // Not created yet: its CREATE TABLE is checked against this.
            Err(_) => (table.clone(), tp.clone()),
        };
        next.tables.insert(placed.0, placed.1);
    }
    Ok((next != *current).then_some(next))
}
