//! Table placement on a replica: which shard a row's key falls in, which
//! group holds it, the filter the applier (and a router's speculation)
//! passes row changes through, and the stored placement version.
//!
//! The shard function is part of the record format: every machine and
//! version must compute the same shard for a value, so it is a SipHash-1-3
//! with fixed keys over the value's type tag and bytes, like `digest`.

use std::hash::Hasher;
use std::sync::Arc;

use rusqlite::Connection;
use siphasher::sip::SipHasher13;
use wal_bus::{Change, Method, Placement, Row, TablePlacement, Value};

const KEY0: u64 = 0x7472_6962_7574_6172; // "tributar"
const KEY1: u64 = 0x7368_6172_645f_6b65; // "shard_ke"

/// The stable hash of a shard-key value. An integral REAL hashes as the
/// INTEGER it equals, as SQLite compares them equal.
pub fn hash_value(v: &Value) -> u64 {
    // Explicit little-endian bytes: `Hasher::write_i64` uses the machine's
    // byte order, and the shard of a value must not depend on it.
    let mut h = SipHasher13::new_with_keys(KEY0, KEY1);
    let mut tagged = |tag: u8, bytes: &[u8]| {
        h.write(&[tag]);
        h.write(bytes);
    };
    match v {
        Value::Null => tagged(0, &[]),
        Value::Integer(i) => tagged(1, &i.to_le_bytes()),
        Value::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            tagged(1, &(*f as i64).to_le_bytes())
        }
        Value::Real(f) => tagged(2, &f.to_bits().to_le_bytes()),
        Value::Text(t) => {
            tagged(3, &(t.len() as u64).to_le_bytes());
            h.write(t.as_bytes());
        }
        Value::Blob(b) => {
            tagged(4, &(b.len() as u64).to_le_bytes());
            h.write(b);
        }
    }
    h.finish()
}

/// SQLite's order between values of different storage classes: NULL,
/// numbers, text, blob.
fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let class = |v: &Value| match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) => 1,
        Value::Text(_) => 2,
        Value::Blob(_) => 3,
    };
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Integer(x), Value::Real(y)) => {
            (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal)
        }
        (Value::Real(x), Value::Integer(y)) => {
            x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal)
        }
        (Value::Real(x), Value::Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

/// The shard of a key value under `method`.
pub fn shard_of(method: &Method, v: &Value) -> u32 {
    match method {
        Method::Hash { shards } => (hash_value(v) % u64::from((*shards).max(1))) as u32,
        Method::Range { splits } => {
            let below = splits
                .iter()
                .take_while(|s| compare(s, v) != std::cmp::Ordering::Greater)
                .count();
            u32::try_from(below).unwrap_or(u32::MAX)
        }
    }
}

/// The placement of `table`, if it is sharded (names compare as SQLite
/// compares identifiers, ignoring ASCII case).
pub fn table_placement<'a>(placement: &'a Placement, table: &str) -> Option<&'a TablePlacement> {
    placement.tables.get(table).or_else(|| {
        placement
            .tables
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, p)| p)
    })
}

/// The group that holds rows of `table` whose shard key is `v`.
pub fn group_of_value(placement: &Placement, table: &TablePlacement, v: &Value) -> usize {
    let groups = placement.groups.len().max(1);
    shard_of(&table.method, v) as usize % groups
}

/// The group holding the row with `key` (its primary-key columns), or
/// `None` when the table is full (every group holds it). A key without
/// the shard column (a table whose key changed shape) counts as group 0's.
pub fn group_of_key(placement: &Placement, table: &str, key: &Row) -> Option<usize> {
    let tp = table_placement(placement, table)?;
    if placement.groups.is_empty() {
        return None;
    }
    let v = key
        .get(&tp.column)
        .or_else(|| {
            key.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&tp.column))
                .map(|(_, v)| v)
        })
        .cloned()
        .unwrap_or(Value::Null);
    Some(group_of_value(placement, tp, &v))
}

/// Which row changes one shard group keeps: every change of a full table,
/// and the changes of a sharded table's rows whose shard is the group's.
#[derive(Debug, Clone)]
pub struct GroupFilter {
    pub placement: Arc<Placement>,
    /// `None`: a replica in no group, which keeps only full tables.
    pub group: Option<usize>,
}

impl GroupFilter {
    /// Whether the group keeps `change`. An update that moves a row to
    /// another group is kept by both (a delete for one, an insert for the
    /// other; the router refuses such updates, see `router::placement`).
    pub fn keeps(&self, change: &Change) -> bool {
        let home = |key: &Row| group_of_key(&self.placement, &change.table, key);
        match home(&change.key) {
            None => true,
            Some(g) => Some(g) == self.group,
        }
    }
}

/// The placement version and placement stored in the replica file.
pub fn stored_placement(conn: &Connection) -> rusqlite::Result<(u64, Placement)> {
    let get = |name: &str| crate::meta::state_value(conn, name);
    let version = match get("placement_version")? {
        Some(rusqlite::types::Value::Integer(i)) => i.max(0) as u64,
        _ => 0,
    };
    let placement = match get("placement")? {
        Some(rusqlite::types::Value::Text(t)) => serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        _ => Placement::default(),
    };
    Ok((version, placement))
}

/// Stores the placement and the group whose rows this file holds under
/// it (-1: none), so a snapshot of the file says which group it can seed.
pub(crate) fn store_placement(
    conn: &Connection,
    version: u64,
    placement: &Placement,
    group: Option<usize>,
) -> rusqlite::Result<()> {
    let text = serde_json::to_string(placement).unwrap_or_default();
    let group = group.map_or(-1, |g| g as i64);
    conn.execute(
        "INSERT INTO _tributary_state (name, value)
         VALUES ('placement_version', ?1), ('placement', ?2), ('placement_group', ?3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        rusqlite::params![version as i64, text, group],
    )?;
    Ok(())
}

/// Whether a replica named `replica` may be seeded from the file behind
/// `conn` (a snapshot): always under full replication; under a sharded
/// placement only when the file holds the rows of `replica`'s group.
pub fn seeds(conn: &Connection, replica: &str) -> rusqlite::Result<bool> {
    let (_, placement) = stored_placement(conn)?;
    if !placement.is_sharded() {
        return Ok(true);
    }
    let held = match crate::meta::state_value(conn, "placement_group")? {
        Some(rusqlite::types::Value::Integer(g)) => Some(g),
        _ => None,
    };
    let wanted = placement.group_of(replica).map_or(-1, |g| g as i64);
    Ok(held == Some(wanted))
}

/// Deletes the rows of sharded tables that `filter`'s group does not hold
/// (when a placement version takes effect). Returns how many went.
pub(crate) fn purge_foreign_rows(conn: &Connection, filter: &GroupFilter) -> rusqlite::Result<u64> {
    let mut purged = 0u64;
    for (table, tp) in &filter.placement.tables {
        let exists: bool = conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            )?
            .exists([table])?;
        if !exists {
            continue;
        }
        let (t, c) = (crate::quote_ident(table), crate::quote_ident(&tp.column));
        let values: Vec<Value> = {
            let mut stmt = conn.prepare(&format!("SELECT DISTINCT {c} FROM {t}"))?;
            let rows = stmt.query_map([], |r| Ok(crate::from_value_ref(r.get_ref(0)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut delete = conn.prepare(&format!("DELETE FROM {t} WHERE {c} IS ?1"))?;
        for v in values {
            if Some(group_of_value(&filter.placement, tp, &v)) != filter.group {
                purged += delete.execute([crate::to_sql_value(&v)])? as u64;
            }
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards of the integers 0..8 under hash into 8 shards, as every
    /// version must compute them.
    const PINNED_SHARDS: [u32; 8] = [0, 2, 2, 7, 6, 5, 1, 1];

    #[test]
    fn hashes_are_stable_and_integral_reals_hash_as_integers() {
        // The shard function is part of the record format: these must
        // never change.
        assert_eq!(
            hash_value(&Value::Integer(5)),
            hash_value(&Value::Real(5.0))
        );
        assert_ne!(
            hash_value(&Value::Integer(5)),
            hash_value(&Value::Text("5".into()))
        );
        let shards: Vec<u32> = (0..8)
            .map(|i| shard_of(&Method::Hash { shards: 8 }, &Value::Integer(i)))
            .collect();
        assert_eq!(shards, PINNED_SHARDS, "the shard function changed");
        let used: std::collections::BTreeSet<u32> = (0..1000)
            .map(|i| shard_of(&Method::Hash { shards: 8 }, &Value::Integer(i)))
            .collect();
        assert_eq!(used.len(), 8, "1000 keys should use all 8 shards");
    }

    #[test]
    fn ranges_split_at_inclusive_lower_bounds() {
        let m = Method::Range {
            splits: vec![Value::Integer(10), Value::Integer(20)],
        };
        assert_eq!(shard_of(&m, &Value::Integer(9)), 0);
        assert_eq!(shard_of(&m, &Value::Integer(10)), 1);
        assert_eq!(shard_of(&m, &Value::Real(19.5)), 1);
        assert_eq!(shard_of(&m, &Value::Integer(20)), 2);
        assert_eq!(shard_of(&m, &Value::Text("a".into())), 2);
        assert_eq!(shard_of(&m, &Value::Null), 0);
    }

    #[test]
    fn filters_keep_full_tables_and_their_groups_rows() {
        let mut p = Placement {
            groups: vec![vec!["r1".into()], vec!["r2".into()]],
            ..Default::default()
        };
        p.tables.insert(
            "orders".into(),
            TablePlacement {
                column: "cid".into(),
                method: Method::Hash { shards: 4 },
            },
        );
        let p = Arc::new(p);
        let change = |table: &str, cid: i64| {
            let mut key = Row::new();
            key.insert("cid".into(), Value::Integer(cid));
            Change {
                table: table.into(),
                op: wal_bus::Op::Delete,
                key,
                before: None,
                after: None,
            }
        };
        let f0 = GroupFilter {
            placement: p.clone(),
            group: Some(0),
        };
        let f1 = GroupFilter {
            placement: p.clone(),
            group: Some(1),
        };
        let none = GroupFilter {
            placement: p,
            group: None,
        };
        for cid in 0..50 {
            let c = change("ORDERS", cid);
            assert!(
                f0.keeps(&c) ^ f1.keeps(&c),
                "exactly one group keeps cid {cid}"
            );
            assert!(!none.keeps(&c));
            assert!(f0.keeps(&change("products", cid)) && none.keeps(&change("products", cid)));
        }
    }

    #[test]
    fn a_snapshot_seeds_only_replicas_of_its_group() {
        let conn = Connection::open_in_memory().expect("db");
        conn.execute_batch("CREATE TABLE _tributary_state (name TEXT PRIMARY KEY, value)")
            .expect("state");
        assert!(
            seeds(&conn, "r2").expect("reads"),
            "no placement: anything seeds anything"
        );
        let mut p = Placement {
            groups: vec![vec!["r1".into()], vec!["r2".into()]],
            ..Default::default()
        };
        p.tables.insert(
            "orders".into(),
            TablePlacement {
                column: "cid".into(),
                method: Method::Hash { shards: 4 },
            },
        );
        store_placement(&conn, 2, &p, Some(0)).expect("stores");
        assert!(seeds(&conn, "r1").expect("reads"));
        assert!(!seeds(&conn, "r2").expect("reads"));
        assert!(
            !seeds(&conn, "r9").expect("reads"),
            "a replica in no group holds no shard"
        );
        assert_eq!(stored_placement(&conn).expect("reads"), (2, p));
    }
}
