//! Applying one record's row changes to SQLite, with conflict detection.
//!
//! The common case costs one statement: the change is written only where the
//! row still matches its before-image (`UPDATE … WHERE pk AND col IS before`).
//! When it does not match — the origin computed it against an older or
//! different version of the row — the conflict goes to the resolver, which
//! decides from the `(hlc, origin)` stamps kept in `_tributary_rows`.

use std::collections::HashMap;
use std::path::Path;

use resolver::{ConflictKind, Decision, Stamp, last_writer_wins};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use wal_bus::{Change, Hlc, Offset, Op, Row, Value};

use crate::error::{Error, Result, SqliteContext};
use crate::schema::{TableInfo, quote_ident, table_info};
use crate::values::to_sql_value;

/// Table descriptions, reloaded after DDL.
#[derive(Default)]
pub(crate) struct SchemaCache {
    tables: HashMap<String, TableInfo>,
}

impl SchemaCache {
    pub fn clear(&mut self) {
        self.tables.clear();
    }

    fn get(&mut self, conn: &Connection, path: &Path, table: &str) -> Result<&TableInfo> {
        if !self.tables.contains_key(table) {
            let info = table_info(conn, table)
                .ctx(path, "reading table schema")?
                .ok_or_else(|| Error::NoSuchTable {
                    table: table.to_owned(),
                })?;
            if info.pk.is_empty() {
                return Err(Error::NoPrimaryKey {
                    table: table.to_owned(),
                });
            }
            self.tables.insert(table.to_owned(), info);
        }
        self.tables.get(table).ok_or_else(|| Error::NoSuchTable {
            table: table.to_owned(),
        })
    }
}

/// Everything one change needs to know about where it came from.
pub(crate) struct ChangeCtx<'a> {
    pub conn: &'a Connection,
    pub path: &'a Path,
    pub offset: Offset,
    pub stamp: &'a Stamp,
    pub replica: &'a str,
}

fn key_values(info: &TableInfo, key: &Row) -> Result<Vec<Value>> {
    info.pk
        .iter()
        .map(|c| {
            key.get(c).cloned().ok_or_else(|| Error::MissingKey {
                table: info.name.clone(),
                column: c.clone(),
            })
        })
        .collect()
}

fn where_key(info: &TableInfo, params: &mut Vec<SqlValue>, key: &[Value]) -> String {
    let mut parts = Vec::with_capacity(info.pk.len());
    for (c, v) in info.pk.iter().zip(key) {
        params.push(to_sql_value(v));
        parts.push(format!("{} IS ?{}", quote_ident(c), params.len()));
    }
    parts.join(" AND ")
}

fn where_image(params: &mut Vec<SqlValue>, image: &Row) -> String {
    let mut s = String::new();
    for (c, v) in image {
        params.push(to_sql_value(v));
        s.push_str(&format!(" AND {} IS ?{}", quote_ident(c), params.len()));
    }
    s
}

fn upsert_sql(table: &str, row: &Row, or_replace: bool) -> String {
    let cols: Vec<String> = row.keys().map(|c| quote_ident(c)).collect();
    let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
    if or_replace {
        format!(
            "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
            quote_ident(table),
            cols.join(", "),
            marks.join(", ")
        )
    } else {
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            quote_ident(table),
            cols.join(", "),
            marks.join(", ")
        )
    }
}

fn execute(conn: &Connection, path: &Path, sql: &str, params: &[SqlValue]) -> Result<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params_from_iter(params.iter())))
        .ctx(path, "applying a row change")
}

fn write_row(ctx: &ChangeCtx<'_>, table: &str, row: &Row, or_replace: bool) -> Result<usize> {
    let params: Vec<SqlValue> = row.values().map(to_sql_value).collect();
    execute(
        ctx.conn,
        ctx.path,
        &upsert_sql(table, row, or_replace),
        &params,
    )
}

fn delete_row(
    ctx: &ChangeCtx<'_>,
    info: &TableInfo,
    key: &[Value],
    before: Option<&Row>,
) -> Result<usize> {
    let mut params = Vec::new();
    let mut sql = format!(
        "DELETE FROM {} WHERE {}",
        quote_ident(&info.name),
        where_key(info, &mut params, key)
    );
    if let Some(b) = before {
        sql.push_str(&where_image(&mut params, b));
    }
    execute(ctx.conn, ctx.path, &sql, &params)
}

fn row_exists(ctx: &ChangeCtx<'_>, info: &TableInfo, key: &[Value]) -> Result<bool> {
    let mut params = Vec::new();
    let sql = format!(
        "SELECT 1 FROM {} WHERE {}",
        quote_ident(&info.name),
        where_key(info, &mut params, key)
    );
    ctx.conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params_from_iter(params.iter()), |_| Ok(()))
                .optional()
        })
        .map(|r| r.is_some())
        .ctx(ctx.path, "looking up a conflicting row")
}

fn local_stamp(ctx: &ChangeCtx<'_>, table: &str, pk: &str) -> Result<Option<Stamp>> {
    let row: Option<(String, String)> = ctx
        .conn
        .prepare_cached("SELECT hlc, origin FROM _tributary_rows WHERE tbl = ?1 AND pk = ?2")
        .and_then(|mut s| {
            s.query_row([table, pk], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .ctx(ctx.path, "reading row metadata")?;
    Ok(row.and_then(|(hlc, origin)| hlc.parse::<Hlc>().ok().map(|h| Stamp::new(h, origin))))
}

fn record_stamp(ctx: &ChangeCtx<'_>, table: &str, pk: &str, deleted: bool) -> Result<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO _tributary_rows (tbl, pk, hlc, origin, deleted) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tbl, pk) DO UPDATE SET hlc = excluded.hlc, origin = excluded.origin, deleted = excluded.deleted",
        )
        .and_then(|mut s| {
            s.execute(rusqlite::params![
                table,
                pk,
                ctx.stamp.hlc.to_string(),
                ctx.stamp.origin,
                i64::from(deleted)
            ])
        })
        .map(|_| ())
        .ctx(ctx.path, "writing row metadata")
}

/// Applies one change; returns the conflict it met, if any, and the decision.
pub(crate) fn apply_change(
    ctx: &ChangeCtx<'_>,
    cache: &mut SchemaCache,
    change: &Change,
) -> Result<Option<(ConflictKind, Decision)>> {
    let info = cache.get(ctx.conn, ctx.path, &change.table)?.clone();
    let key = key_values(&info, &change.key)?;
    let pk_text = serde_json::to_string(&key).unwrap_or_default();
    let missing_image = |what: &str| Error::BadRecord {
        offset: ctx.offset,
        source: wal_bus::Error::Decode(format!(
            "{:?} change to {} has no {what} image",
            change.op, info.name
        )),
    };
    let conflict = match change.op {
        Op::Insert => {
            let after = change
                .after
                .as_ref()
                .ok_or_else(|| missing_image("after"))?;
            if write_row(ctx, &info.name, after, false)? == 1 {
                None
            } else {
                Some(ConflictKind::KeyExists)
            }
        }
        Op::Update => {
            let after = change
                .after
                .as_ref()
                .ok_or_else(|| missing_image("after"))?;
            let mut params: Vec<SqlValue> = Vec::new();
            let sets: Vec<String> = after
                .iter()
                .map(|(c, v)| {
                    params.push(to_sql_value(v));
                    format!("{} = ?{}", quote_ident(c), params.len())
                })
                .collect();
            let mut sql = format!(
                "UPDATE {} SET {} WHERE {}",
                quote_ident(&info.name),
                sets.join(", "),
                where_key(&info, &mut params, &key)
            );
            if let Some(b) = &change.before {
                sql.push_str(&where_image(&mut params, b));
            }
            if execute(ctx.conn, ctx.path, &sql, &params)? == 1 {
                None
            } else if row_exists(ctx, &info, &key)? {
                Some(ConflictKind::BeforeImageDiffers)
            } else {
                Some(ConflictKind::RowMissing)
            }
        }
        Op::Delete => {
            if delete_row(ctx, &info, &key, change.before.as_ref())? == 1 {
                None
            } else if row_exists(ctx, &info, &key)? {
                Some(ConflictKind::BeforeImageDiffers)
            } else {
                Some(ConflictKind::DeleteMissing)
            }
        }
    };
    let Some(kind) = conflict else {
        record_stamp(ctx, &info.name, &pk_text, change.op == Op::Delete)?;
        return Ok(None);
    };
    let local = local_stamp(ctx, &info.name, &pk_text)?;
    let decision = last_writer_wins(local.as_ref(), ctx.stamp);
    if decision == Decision::ApplyIncoming {
        match change.op {
            Op::Insert | Op::Update => {
                let after = change
                    .after
                    .as_ref()
                    .ok_or_else(|| missing_image("after"))?;
                write_row(ctx, &info.name, after, true)?;
            }
            Op::Delete => {
                delete_row(ctx, &info, &key, None)?;
            }
        }
        record_stamp(ctx, &info.name, &pk_text, change.op == Op::Delete)?;
    }
    metrics::counter!("tributary_conflicts_total", "kind" => kind.as_str(), "strategy" => "lww")
        .increment(1);
    tracing::info!(
        replica = ctx.replica,
        offset = ctx.offset,
        table = %info.name,
        key = %pk_text,
        conflict = %kind,
        incoming_hlc = %ctx.stamp.hlc,
        incoming_origin = %ctx.stamp.origin,
        local = ?local.as_ref().map(|s| (s.hlc.to_string(), s.origin.clone())),
        ?decision,
        "conflict resolved last-writer-wins"
    );
    Ok(Some((kind, decision)))
}

/// Whether an error is a property of the record and the schema (the same on
/// every replica, so skipping the record keeps replicas identical) rather
/// than of this machine (disk, locks), where stopping is the only safe move.
pub(crate) fn is_deterministic(e: &Error) -> bool {
    match e {
        Error::NoSuchTable { .. }
        | Error::NoPrimaryKey { .. }
        | Error::MissingKey { .. }
        | Error::BadRecord { .. } => true,
        Error::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        } => matches!(
            f.code,
            rusqlite::ErrorCode::ConstraintViolation
                | rusqlite::ErrorCode::TypeMismatch
                | rusqlite::ErrorCode::TooBig
                | rusqlite::ErrorCode::Unknown
        ),
        Error::Sqlite {
            source: rusqlite::Error::SqlInputError { .. },
            ..
        } => true,
        _ => false,
    }
}
