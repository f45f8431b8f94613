//! Checking a conflict policy against a replica's schema, for
//! `SET tributary.apply_policy`, `tributary policy check` and start-up.

use std::collections::HashMap;

use resolver::Policy;
use rusqlite::Connection;

use crate::error::{Error, Result};

/// `(column, declared type, is primary key)` of each table the policy names.
pub fn policy_tables(
    conn: &Connection,
    policy: &Policy,
) -> Result<HashMap<String, Vec<resolver::ColumnInfo>>> {
    let mut out = HashMap::new();
    for table in policy.tables.keys() {
        if let Some(info) =
            replica::table_info(conn, table).map_err(|e| Error::sqlite("reading the schema", e))?
        {
            let cols = info
                .columns
                .iter()
                .zip(&info.decl_types)
                .map(|(c, d)| (c.clone(), d.clone(), info.pk.contains(c)))
                .collect();
            out.insert(table.clone(), cols);
        }
    }
    Ok(out)
}

/// A policy checked against the schema, as the record that puts it in force.
pub struct Proposal {
    /// The version it becomes.
    pub version: u64,
    /// The `policy` record body to append.
    pub body: wal_bus::RecordBody,
    /// Whether it is the policy already in force on the replica.
    pub in_force: bool,
}

/// Validates `text` against `replica`'s schema (read through `conn`) and
/// makes it the next policy version after the one in force there. Used by
/// `SET tributary.apply_policy` and the node's start-up, so both check and
/// number a policy the same way.
pub fn propose(
    conn: &Connection,
    replica: &replica::ReplicaState,
    text: &str,
    source_name: &str,
) -> Result<Proposal> {
    let policy = check(conn, text, source_name)?;
    let (version, current) = replica.policy();
    Ok(Proposal {
        version: version + 1,
        body: wal_bus::RecordBody::Policy {
            version: version + 1,
            policy: text.to_owned(),
        },
        in_force: *current == policy,
    })
}

/// Parses and validates policy text against the schema in `conn`.
pub fn check(conn: &Connection, text: &str, source_name: &str) -> Result<Policy> {
    let policy = Policy::parse(text, source_name)?;
    let tables = policy_tables(conn, &policy)?;
    policy.validate_schema(source_name, &|t| tables.get(t).cloned())?;
    Ok(policy)
}

/// SQLite turns an integer that leaves the 64-bit range into a REAL
/// (`9223372036854775807 + 1` is `9.2e18`); PostgreSQL refuses it.
const INT_RANGE: f64 = 9_223_372_036_854_775_808.0;

/// Refuses what could not merge or would silently change a value: set-column
/// values that are not JSON arrays, counter values that are not integers,
/// and integers that left the 64-bit range (22003, as PostgreSQL says
/// "bigint out of range").
pub fn check_set_values(policy: &Policy, changes: &[wal_bus::Change]) -> Result<()> {
    use wal_bus::Value;
    for ch in changes {
        if let Some((col, v)) = ch
            .after
            .iter()
            .flatten()
            .find(|(_, v)| matches!(v, Value::Real(f) if !f.is_finite()))
        {
            return Err(Error::Unsupported {
                what: format!("the value {v} in {}.{col}", ch.table),
                why: "infinite and NaN reals have no form in the log's JSON records".into(),
            });
        }
        if let (Some(before), Some(after)) = (&ch.before, &ch.after) {
            for (col, v) in after {
                if let (Value::Real(f), Some(Value::Integer(_))) = (v, before.get(col))
                    && f.abs() >= INT_RANGE
                {
                    return Err(Error::OutOfRange(format!(
                        "integer out of range: {}.{col} would become {f}",
                        ch.table
                    )));
                }
            }
        }
        let Some(tp) = policy.tables.get(&ch.table) else {
            continue;
        };
        let Some(after) = &ch.after else { continue };
        for (col, rule) in &tp.columns {
            if *rule == resolver::ColumnRule::Set
                && let Some(v) = after.get(col)
                && let Err(reason) = resolver::set_members(v)
            {
                return Err(Error::InvalidSetValue {
                    table: ch.table.clone(),
                    column: col.clone(),
                    reason,
                });
            }
            if *rule == resolver::ColumnRule::Counter
                && let Some(v) = after.get(col)
                && !matches!(v, Value::Integer(_) | Value::Null)
            {
                return Err(Error::OutOfRange(format!(
                    "counter column {}.{col} takes 64-bit integers, not {v}",
                    ch.table
                )));
            }
        }
    }
    Ok(())
}
