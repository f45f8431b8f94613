//! Applying one record's row changes to SQLite, with conflict detection and
//! resolution.
//!
//! The common case costs one statement: the change is written only where the
//! row still matches its before-image (`UPDATE … WHERE pk AND col IS before`).
//! When it does not — the origin computed it against an older or different
//! version of the row — or when the table has counter/set columns, the
//! replica loads the row with its per-column stamps and CRDT states from
//! `_tributary_cols` and lets the resolver decide. Every decision on a
//! conflict is recorded in `tributary_conflicts`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use resolver::{Action, ConflictKind, Incoming, LocalRow, Policy, Stamp, resolve};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};
use wal_bus::{Change, Offset, Op, Row, Value};

use crate::conflicts::{ConflictRecord, local_json, row_json};
use crate::error::{Error, Result, SqliteContext};
use crate::schema::{TableInfo, quote_ident, table_info};
use crate::stamps::{load_local, stamp_cols, stamp_row};
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
    pub txn_id: &'a str,
    pub stamp: &'a Stamp,
    pub replica: &'a str,
    pub policy: &'a Policy,
    pub policy_version: u64,
}

/// What applying one change came to.
pub(crate) enum ChangeResult {
    Clean,
    Conflict(ConflictRecord),
    /// First-writer-wins: the whole record must be rolled back.
    Reject(ConflictRecord),
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
    crate::rows::key_where(
        params,
        info.pk.iter().map(String::as_str).zip(key.iter().map(Some)),
    )
}

fn where_image(params: &mut Vec<SqlValue>, image: &Row) -> String {
    let mut s = String::new();
    for (c, v) in image {
        params.push(to_sql_value(v));
        s.push_str(&format!(" AND {} IS ?{}", quote_ident(c), params.len()));
    }
    s
}

fn execute(conn: &Connection, path: &Path, sql: &str, params: &[SqlValue]) -> Result<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params_from_iter(params.iter())))
        .ctx(path, "applying a row change")
}

fn write_row(ctx: &ChangeCtx<'_>, table: &str, row: &Row, or_replace: bool) -> Result<usize> {
    let cols: Vec<String> = row.keys().map(|c| quote_ident(c)).collect();
    let marks: Vec<String> = (1..=row.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT {}INTO {} ({}) VALUES ({}){}",
        if or_replace { "OR REPLACE " } else { "" },
        quote_ident(table),
        cols.join(", "),
        marks.join(", "),
        if or_replace {
            ""
        } else {
            " ON CONFLICT DO NOTHING"
        }
    );
    let params: Vec<SqlValue> = row.values().map(to_sql_value).collect();
    execute(ctx.conn, ctx.path, &sql, &params)
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

fn update_if_matches(
    ctx: &ChangeCtx<'_>,
    info: &TableInfo,
    key: &[Value],
    change: &Change,
    after: &Row,
) -> Result<usize> {
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
        where_key(info, &mut params, key)
    );
    if let Some(b) = &change.before {
        sql.push_str(&where_image(&mut params, b));
    }
    execute(ctx.conn, ctx.path, &sql, &params)
}

/// Whether the replica's row still equals the change's before-image.
fn matches_before(local: &LocalRow, before: Option<&Row>) -> bool {
    match (local, before) {
        (LocalRow::Present { cells, .. }, Some(b)) => b
            .iter()
            .all(|(c, v)| cells.get(c).is_some_and(|cell| cell.value == *v)),
        (LocalRow::Present { .. }, None) => true,
        _ => false,
    }
}

/// Applies one change.
pub(crate) fn apply_change(
    ctx: &ChangeCtx<'_>,
    cache: &mut SchemaCache,
    change: &Change,
) -> Result<ChangeResult> {
    let info = cache.get(ctx.conn, ctx.path, &change.table)?.clone();
    let key = key_values(&info, &change.key)?;
    let pk = serde_json::to_string(&key).unwrap_or_default();
    let missing_image = |what: &str| Error::BadRecord {
        offset: ctx.offset,
        source: wal_bus::Error::Decode(format!(
            "{:?} change to {} has no {what} image",
            change.op, info.name
        )),
    };
    if matches!(change.op, Op::Insert | Op::Update) && change.after.is_none() {
        return Err(missing_image("after"));
    }
    let crdt = ctx.policy.has_crdt_columns(&info.name);
    if !crdt {
        // Fast path: one conditional statement; falls through on a mismatch.
        let done = match change.op {
            Op::Insert => {
                write_row(
                    ctx,
                    &info.name,
                    change
                        .after
                        .as_ref()
                        .ok_or_else(|| missing_image("after"))?,
                    false,
                )? == 1
            }
            Op::Update => {
                let after = change
                    .after
                    .as_ref()
                    .ok_or_else(|| missing_image("after"))?;
                update_if_matches(ctx, &info, &key, change, after)? == 1
            }
            Op::Delete => delete_row(ctx, &info, &key, change.before.as_ref())? == 1,
        };
        if done {
            // An insert stamps the row once (its columns read that stamp
            // until written again); an update stamps the columns it
            // changed; a delete leaves the row's tombstone.
            match change.op {
                Op::Delete => stamp_row(ctx, &info.name, &pk, true)?,
                Op::Insert => stamp_row(ctx, &info.name, &pk, false)?,
                Op::Update => {}
            }
            if change.op == Op::Update
                && let Some(after) = &change.after
            {
                let changed = after
                    .iter()
                    .filter(|(c, v)| change.before.as_ref().and_then(|b| b.get(c)) != Some(*v))
                    .map(|(c, _)| c);
                stamp_cols(ctx, &info.name, &pk, changed, &BTreeMap::new())?;
            }
            return Ok(ChangeResult::Clean);
        }
    }
    let local = load_local(ctx, &info, &key, &pk)?;
    let kind = match (change.op, &local) {
        (Op::Insert, LocalRow::Present { .. }) => Some(ConflictKind::InsertExists),
        (Op::Insert, _) => None,
        (Op::Update, LocalRow::Present { .. })
            if matches_before(&local, change.before.as_ref()) =>
        {
            None
        }
        (Op::Update, LocalRow::Present { .. }) => Some(ConflictKind::UpdateBeforeMismatch),
        (Op::Update, LocalRow::Deleted(_)) => Some(ConflictKind::UpdateVsDelete),
        (Op::Update, LocalRow::Absent) => Some(ConflictKind::UpdateMissing),
        (Op::Delete, LocalRow::Present { .. })
            if matches_before(&local, change.before.as_ref()) =>
        {
            None
        }
        (Op::Delete, LocalRow::Present { .. }) => Some(ConflictKind::DeleteVsUpdate),
        (Op::Delete, _) => Some(ConflictKind::DeleteMissing),
    };
    let incoming = Incoming {
        op: change.op,
        before: change.before.as_ref(),
        after: change.after.as_ref(),
        stamp: ctx.stamp,
    };
    let resolution = resolve(ctx.policy, &info.name, kind, &local, incoming).map_err(|source| {
        Error::Resolve {
            offset: ctx.offset,
            source,
        }
    })?;
    let (local_values, local_stamp) = local_json(&local);
    let record = kind.map(|kind| ConflictRecord {
        table: info.name.clone(),
        key: pk.clone(),
        kind,
        resolution: resolution.clone(),
        local_values,
        incoming_values: row_json(change.after.as_ref().or(change.before.as_ref())),
        local_stamp,
    });
    match &resolution.action {
        Action::Reject => {
            return record.map_or(Ok(ChangeResult::Clean), |r| Ok(ChangeResult::Reject(r)));
        }
        Action::Write {
            row,
            stamped,
            states,
        } => {
            write_row(ctx, &info.name, row, true)?;
            stamp_cols(ctx, &info.name, &pk, stamped.iter(), states)?;
        }
        Action::Delete => {
            delete_row(ctx, &info, &key, None)?;
            stamp_row(ctx, &info.name, &pk, true)?;
        }
        Action::Keep => {
            // A delete of a row we do not have still leaves its tombstone,
            // so an older concurrent update cannot bring the row back.
            if change.op == Op::Delete {
                let newer = match &local {
                    LocalRow::Deleted(t) => ctx.stamp > t,
                    LocalRow::Absent => true,
                    LocalRow::Present { .. } => false,
                };
                if newer {
                    stamp_row(ctx, &info.name, &pk, true)?;
                }
            }
        }
    }
    Ok(record.map_or(ChangeResult::Clean, ChangeResult::Conflict))
}

/// Writes one audit row to `tributary_conflicts`.
/// Whether an error is a property of the record and the schema (the same on
/// every replica, so skipping the record keeps replicas identical) rather
/// than of this machine (disk, locks), where stopping is the only safe move.
pub(crate) fn is_deterministic(e: &Error) -> bool {
    match e {
        Error::NoSuchTable { .. }
        | Error::NoPrimaryKey { .. }
        | Error::MissingKey { .. }
        | Error::BadRecord { .. }
        | Error::Resolve { .. } => true,
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
