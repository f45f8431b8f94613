//! Conflicts as recorded in `tributary_conflicts`: what met what, the
//! decision, and both sides' values, written in the apply transaction.

use resolver::{ConflictKind, LocalRow, Resolution, Stamp};
use wal_bus::Row;

use crate::apply::ChangeCtx;
use crate::error::{Result, SqliteContext};

/// A conflict and its resolution, as written to `tributary_conflicts`.
#[derive(Debug, Clone)]
pub(crate) struct ConflictRecord {
    pub table: String,
    pub key: String,
    pub kind: ConflictKind,
    pub resolution: Resolution,
    pub local_values: Option<String>,
    pub incoming_values: Option<String>,
    pub local_stamp: Option<Stamp>,
}

pub(crate) fn row_json(row: Option<&Row>) -> Option<String> {
    row.and_then(|r| serde_json::to_string(r).ok())
}

pub(crate) fn local_json(local: &LocalRow) -> (Option<String>, Option<Stamp>) {
    match local {
        LocalRow::Present { cells, .. } => {
            let row: Row = cells
                .iter()
                .map(|(c, cell)| (c.clone(), cell.value.clone()))
                .collect();
            let newest = cells.values().filter_map(|c| c.stamp.clone()).max();
            (row_json(Some(&row)), newest)
        }
        LocalRow::Deleted(s) => (None, Some(s.clone())),
        LocalRow::Absent => (None, None),
    }
}

pub(crate) fn record_conflict(ctx: &ChangeCtx<'_>, c: &ConflictRecord) -> Result<()> {
    metrics::counter!("tributary_conflicts_total", "kind" => c.kind.as_str(), "strategy" => c.resolution.strategy.clone())
        .increment(1);
    tracing::info!(
        replica = ctx.replica,
        offset = ctx.offset,
        table = %c.table,
        key = %c.key,
        conflict = %c.kind,
        strategy = %c.resolution.strategy,
        outcome = c.resolution.outcome,
        "conflict resolved"
    );
    ctx.conn
        .prepare_cached(
            "INSERT INTO tributary_conflicts (log_offset, txn_id, table_name, key, columns, local_values, incoming_values,
                 local_hlc, local_origin, incoming_hlc, incoming_origin, kind, strategy, outcome, policy_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                ctx.offset as i64,
                ctx.txn_id,
                c.table,
                c.key,
                c.resolution.columns.join(","),
                c.local_values,
                c.incoming_values,
                c.local_stamp.as_ref().map(|s| s.hlc.to_string()),
                c.local_stamp.as_ref().map(|s| s.origin.clone()),
                ctx.stamp.hlc.to_string(),
                ctx.stamp.origin,
                c.kind.as_str(),
                c.resolution.strategy,
                c.resolution.outcome,
                ctx.policy_version as i64,
            ])
        })
        .map(|_| ())
        .ctx(ctx.path, "recording a conflict")
}
