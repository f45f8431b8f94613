//! The status view: `tributary_replicas` (a per-connection TEMP table
//! refreshed before each query that names it) and `tributary status`.

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::shared::Shared;

/// One row of `tributary_replicas` / `tributary status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ReplicaStatus {
    pub name: String,
    pub path: String,
    pub applied_offset: u64,
    pub log_end: u64,
    pub lag_records: u64,
    pub lag_ms: u64,
    pub state: String,
    /// Log entries skipped because they were not Tributary records.
    pub skipped_entries: u64,
    /// `healthy`, or `unhealthy` while left out of sync waits.
    pub health: String,
    /// Wall-clock ms of the replica's last ack (0: none yet).
    pub last_ack_ms: u64,
}

impl Shared {
    /// Status of every replica of this node.
    pub fn status(&self) -> Vec<ReplicaStatus> {
        let end = self.log.end();
        let now = wal_bus::now_ms();
        self.acks.rejoin_caught_up(end);
        let unhealthy = self.acks.unhealthy();
        let acks = self.acks.snapshot();
        self.all_replicas
            .iter()
            .map(|r| {
                let applied = r.applied();
                let lag_ms = if applied >= end {
                    0
                } else {
                    self.log
                        .appended_at_ms(applied)
                        .map_or(0, |t| now.saturating_sub(t))
                };
                ReplicaStatus {
                    name: r.name.clone(),
                    path: r.path.display().to_string(),
                    applied_offset: applied,
                    log_end: end,
                    lag_records: end.saturating_sub(applied),
                    lag_ms,
                    state: r
                        .stopped()
                        .map_or_else(|| "applying".to_owned(), |e| format!("stopped: {e}")),
                    skipped_entries: r.skipped(),
                    health: match unhealthy.get(&r.name) {
                        Some(since) => format!("unhealthy for {} ms", now.saturating_sub(*since)),
                        None => "healthy".to_owned(),
                    },
                    last_ack_ms: acks.replicas.get(&r.name).map_or(0, |a| a.at_ms),
                }
            })
            .collect()
    }
}

/// Whether a query names `tributary_replicas`.
pub fn needs_status(sql: &str) -> bool {
    mentions(sql, "tributary_replicas")
}

/// Whether `sql` contains `name`, ignoring ASCII case (a byte scan: the
/// views are filled only for statements that name them).
pub fn mentions(sql: &str, name: &str) -> bool {
    sql.as_bytes()
        .windows(name.len())
        .any(|w| w.eq_ignore_ascii_case(name.as_bytes()))
}

/// Replaces the connection's `tributary_replicas` rows with `rows`, so any
/// SQL (WHERE, ORDER BY, joins) works on it.
pub fn refresh_status_table(conn: &Connection, rows: &[ReplicaStatus]) -> Result<()> {
    let sq = |e| Error::sqlite("refreshing tributary_replicas", e);
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS tributary_replicas (
            name TEXT PRIMARY KEY, path TEXT, applied_offset INTEGER, log_end INTEGER,
            lag_records INTEGER, lag_ms INTEGER, state TEXT, skipped_entries INTEGER,
            health TEXT, last_ack_ms INTEGER);
         DELETE FROM temp.tributary_replicas;",
    )
    .map_err(sq)?;
    let mut ins = conn
        .prepare_cached(
            "INSERT INTO temp.tributary_replicas VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(sq)?;
    for r in rows {
        ins.execute(rusqlite::params![
            r.name,
            r.path,
            r.applied_offset as i64,
            r.log_end as i64,
            r.lag_records as i64,
            r.lag_ms as i64,
            r.state,
            r.skipped_entries as i64,
            r.health,
            r.last_ack_ms as i64
        ])
        .map_err(sq)?;
    }
    Ok(())
}
