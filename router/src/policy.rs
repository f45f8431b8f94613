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

/// Parses and validates policy text against the schema in `conn`.
pub fn check(conn: &Connection, text: &str, source_name: &str) -> Result<Policy> {
    let policy = Policy::parse(text, source_name).map_err(|e| Error::Policy(e.to_string()))?;
    let tables = policy_tables(conn, &policy)?;
    policy
        .validate_schema(source_name, &|t| tables.get(t).cloned())
        .map_err(|e| Error::Policy(e.to_string()))?;
    Ok(policy)
}

/// Refuses set-column values that are not JSON arrays (they could not merge).
pub fn check_set_values(policy: &Policy, changes: &[wal_bus::Change]) -> Result<()> {
    for ch in changes {
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
        }
    }
    Ok(())
}
