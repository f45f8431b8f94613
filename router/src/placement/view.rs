//! The `tributary_placement` view: one row per shard of each distributed
//! table (its group and replicas) and one per full table, as the placement
//! in force on the router's replica says. Filled on the read connection
//! when a statement names it, like `tributary_slow_queries`.

use rusqlite::Connection;
use wal_bus::{Method, Placement};

use crate::error::{Error, Result};

/// Whether `sql` reads the view.
pub fn names_view(sql: &str) -> bool {
    crate::status::mentions(sql, "tributary_placement")
}

/// Replaces the connection's `tributary_placement` rows.
pub fn refresh(conn: &Connection, version: u64, placement: &Placement) -> Result<()> {
    let sq = |e| Error::sqlite("refreshing tributary_placement", e);
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS tributary_placement (
            version INTEGER, table_name TEXT, placement TEXT, shard_key TEXT,
            shards INTEGER, shard INTEGER, shard_group INTEGER, replicas TEXT);
         DELETE FROM temp.tributary_placement;",
    )
    .map_err(sq)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO temp.tributary_placement VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sq)?;
    let v = version as i64;
    let groups = placement.groups.len().max(1);
    for (table, tp) in &placement.tables {
        let method = match &tp.method {
            Method::Hash { .. } => "hash",
            Method::Range { .. } => "range",
        };
        let shards = tp.method.shards();
        for shard in 0..shards {
            let g = shard as usize % groups;
            let replicas = placement.groups.get(g).map(|r| r.join(","));
            ins.execute(rusqlite::params![
                v,
                table,
                method,
                tp.column,
                shards,
                shard,
                (g + 1) as i64,
                replicas
            ])
            .map_err(sq)?;
        }
    }
    let full: Vec<String> = conn
        .prepare_cached(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sq)?;
    for t in full {
        if replica::is_internal_table(&t) || crate::placement::sharded(placement, &t).is_some() {
            continue;
        }
        ins.execute(rusqlite::params![
            v,
            t,
            "full",
            None::<String>,
            None::<i64>,
            None::<i64>,
            None::<i64>,
            "all"
        ])
        .map_err(sq)?;
    }
    Ok(())
}
