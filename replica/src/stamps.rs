//! Per-row and per-column metadata (`_tributary_rows`, `_tributary_cols`):
//! who last wrote a row or column and when (its stamp), tombstones, and
//! CRDT cell states; loading a row with them for the resolver.

use std::collections::{BTreeMap, HashMap};

use resolver::{Cell, CellState, LocalRow, Stamp};
use rusqlite::OptionalExtension;
use wal_bus::{Hlc, Value};

use crate::apply::ChangeCtx;
use crate::error::{Result, SqliteContext};
use crate::schema::TableInfo;

pub(crate) fn parse_stamp(hlc: &str, origin: String) -> Option<Stamp> {
    hlc.parse::<Hlc>().ok().map(|h| Stamp::new(h, origin))
}

/// The replica's row with its per-column stamps and CRDT states.
pub(crate) fn load_local(
    ctx: &ChangeCtx<'_>,
    info: &TableInfo,
    key: &[Value],
    pk: &str,
) -> Result<LocalRow> {
    let values = crate::rows::read_row(ctx.conn, info, key.iter().map(Some))
        .ctx(ctx.path, "reading the local row")?;
    let row_stamp: Option<(String, String, i64)> = ctx
        .conn
        .prepare_cached(
            "SELECT hlc, origin, deleted FROM _tributary_rows WHERE tbl = ?1 AND pk = ?2",
        )
        .and_then(|mut s| {
            s.query_row([&info.name, pk], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .ctx(ctx.path, "reading row metadata")?;
    let Some(values) = values else {
        return Ok(match row_stamp {
            Some((hlc, origin, 1)) => {
                parse_stamp(&hlc, origin).map_or(LocalRow::Absent, LocalRow::Deleted)
            }
            _ => LocalRow::Absent,
        });
    };
    let mut meta: HashMap<String, (Option<Stamp>, Option<String>)> = HashMap::new();
    {
        let mut stmt = ctx
            .conn
            .prepare_cached(
                "SELECT col, hlc, origin, state FROM _tributary_cols WHERE tbl = ?1 AND pk = ?2",
            )
            .ctx(ctx.path, "reading column metadata")?;
        let rows = stmt
            .query_map([&info.name, pk], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .ctx(ctx.path, "reading column metadata")?;
        for row in rows {
            let (col, hlc, origin, state) = row.ctx(ctx.path, "reading column metadata")?;
            meta.insert(col, (parse_stamp(&hlc, origin), state));
        }
    }
    // A column never written since the insert has the insert's stamp.
    let inserted = match row_stamp {
        Some((hlc, origin, 0)) => parse_stamp(&hlc, origin),
        _ => None,
    };
    let mut cells = BTreeMap::new();
    let mut states = BTreeMap::new();
    for (col, value) in info.columns.iter().zip(values) {
        let (stamp, state) = meta.remove(col).unwrap_or_else(|| (inserted.clone(), None));
        if let Some(st) = state.and_then(|s| CellState::decode(&s).ok()) {
            states.insert(col.clone(), st);
        }
        cells.insert(col.clone(), Cell { value, stamp });
    }
    Ok(LocalRow::Present { cells, states })
}

pub(crate) fn stamp_row(ctx: &ChangeCtx<'_>, table: &str, pk: &str, deleted: bool) -> Result<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO _tributary_rows (tbl, pk, hlc, origin, deleted) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tbl, pk) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![table, pk, ctx.stamp.hlc.to_string(), ctx.stamp.origin, i64::from(deleted)])
        })
        .ctx(ctx.path, "writing row metadata")?;
    if deleted {
        ctx.conn
            .prepare_cached("DELETE FROM _tributary_cols WHERE tbl = ?1 AND pk = ?2")
            .and_then(|mut s| s.execute([table, pk]))
            .ctx(ctx.path, "clearing column metadata")?;
    }
    Ok(())
}

pub(crate) fn stamp_cols<'c>(
    ctx: &ChangeCtx<'_>,
    table: &str,
    pk: &str,
    cols: impl Iterator<Item = &'c String>,
    states: &BTreeMap<String, CellState>,
) -> Result<()> {
    let mut stmt = ctx
        .conn
        .prepare_cached(
            "INSERT INTO _tributary_cols (tbl, pk, col, hlc, origin, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, state = excluded.state",
        )
        .ctx(ctx.path, "writing column metadata")?;
    let hlc = ctx.stamp.hlc.to_string();
    for col in cols {
        let state = states.get(col).map(CellState::encode);
        stmt.execute(rusqlite::params![
            table,
            pk,
            col,
            hlc,
            ctx.stamp.origin,
            state
        ])
        .ctx(ctx.path, "writing column metadata")?;
    }
    Ok(())
}
