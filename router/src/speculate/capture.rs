//! Turning a captured SQLite changeset into the record's row changes with
//! full before and after images (an update's changeset holds only the key
//! and the changed columns; the rest of the row is read back).

use std::collections::HashMap;

use rusqlite::Connection;
use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::hooks::Action;
use rusqlite::types::ValueRef;
use wal_bus::{Change, Op, Row, Value};

use crate::error::{Error, Result};
use crate::exec::sq;

fn value_of(v: ValueRef<'_>) -> Value {
    replica::from_value_ref(v)
}

/// Converts a changeset to row changes. Must run where the changeset's
/// effects are visible (for the after-images of updates).
pub(super) fn changes_in(
    conn: &Connection,
    changeset: &[u8],
    max_record_bytes: usize,
) -> Result<Vec<Change>> {
    // The record's size, estimated as the changes are built: a statement
    // whose changes cannot fit in one record stops here, before building
    // (and then encoding) all of them — the memory a million-row statement
    // would otherwise take.
    let mut estimated = 0usize;
    // Per table: its schema, and each column's reported type (what
    // `canonical` checks written values against), worked out once.
    let mut tables: HashMap<String, (replica::TableInfo, Vec<pgwire::api::Type>)> = HashMap::new();
    let mut out = Vec::new();
    let mut input: &[u8] = changeset;
    let reader: &mut dyn std::io::Read = &mut input;
    let mut iter = rusqlite::session::ChangesetIter::start_strm(&reader)
        .map_err(sq("reading the changeset"))?;
    while let Some(item) = iter.next().map_err(sq("reading the changeset"))? {
        let op = item.op().map_err(sq("reading the changeset"))?;
        let table = op.table_name().to_owned();
        if !tables.contains_key(&table) {
            let info = replica::table_info(conn, &table)
                .map_err(sq("reading the table schema"))?
                .ok_or_else(|| Error::Internal(format!("table {table} vanished")))?;
            let types = info
                .decl_types
                .iter()
                .map(|d| crate::typing::pgtypes::type_for_decl(d))
                .collect();
            tables.insert(table.clone(), (info, types));
        }
        let (info, types) = &tables[&table];
        let ncols = (op.number_of_columns() as usize).min(info.columns.len());
        let key_of = |row: &Row| -> Row {
            info.pk
                .iter()
                .filter_map(|c| row.get(c).map(|v| (c.clone(), v.clone())))
                .collect()
        };
        match op.code() {
            Action::SQLITE_INSERT | Action::SQLITE_DELETE => {
                // Inserts carry every new value, deletes every old one.
                let insert = op.code() == Action::SQLITE_INSERT;
                let mut row = Row::with_capacity(ncols);
                for (i, col) in info.columns.iter().enumerate().take(ncols) {
                    let v = if insert {
                        item.new_value(i)
                    } else {
                        item.old_value(i)
                    };
                    row.insert(col.clone(), v.map(value_of).unwrap_or(Value::Null));
                }
                if insert {
                    canonical(info, types, &mut row)?;
                }
                let key = key_of(&row);
                let (op, before, after) = if insert {
                    (Op::Insert, None, Some(row))
                } else {
                    (Op::Delete, Some(row), None)
                };
                out.push(Change {
                    table,
                    op,
                    key,
                    before,
                    after,
                });
            }
            Action::SQLITE_UPDATE => {
                // The changeset holds the key and the changed columns; the
                // rest of the row is read back (unchanged columns are equal
                // in both images).
                let mut key = Row::new();
                let mut old = HashMap::new();
                for i in 0..ncols {
                    if let Ok(v) = item.old_value(i) {
                        old.insert(i, value_of(v));
                    }
                }
                for c in &info.pk {
                    if let Some(i) = info.columns.iter().position(|x| x == c)
                        && let Some(v) = old.get(&i)
                    {
                        key.insert(c.clone(), v.clone());
                    }
                }
                let after = read_row(conn, info, &key)?
                    .ok_or_else(|| Error::Internal(format!("updated row of {table} not found")))?;
                let mut before = after.clone();
                for (i, v) in old {
                    before.insert(info.columns[i].clone(), v);
                }
                let mut after = after;
                canonical(info, types, &mut after)?;
                out.push(Change {
                    table,
                    op: Op::Update,
                    key,
                    before: Some(before),
                    after: Some(after),
                });
            }
            _ => return Err(Error::Internal("unknown change in changeset".into())),
        }
        if let Some(c) = out.last() {
            estimated += encoded_estimate(c);
            if estimated > max_record_bytes {
                return Err(Error::TransactionTooLarge {
                    rows: out.len(),
                    bytes: estimated,
                    limit: max_record_bytes,
                });
            }
        }
    }
    Ok(out)
}

/// About what a change takes in the record's JSON (never more than a few
/// bytes under: names and values quoted, blobs in base64).
fn encoded_estimate(c: &Change) -> usize {
    let row = |r: &Row| -> usize {
        r.iter()
            .map(|(k, v)| {
                k.len()
                    + 4
                    + match v {
                        Value::Null => 4,
                        Value::Integer(_) | Value::Real(_) => 12,
                        Value::Text(t) => t.len() + 2,
                        Value::Blob(b) => b.len() * 4 / 3 + 12,
                    }
            })
            .sum::<usize>()
            + 2
    };
    40 + c.table.len()
        + row(&c.key)
        + c.before.as_ref().map_or(0, row)
        + c.after.as_ref().map_or(0, row)
}

/// A written row's date/time, UUID and JSON values as PostgreSQL stores
/// them: an SQL literal (`'2024-5-6'`, `'2024-01-02T03:04:05'`) in its
/// canonical text, so every replica holds what a parameter of that type
/// would have stored (and `WHERE d = $1` finds it); one that is no value
/// of the column's type refuses the write, as PostgreSQL does. So does an
/// integer outside an `INT2`/`INT4` column's range (SQLite stores any).
fn canonical(info: &replica::TableInfo, types: &[pgwire::api::Type], row: &mut Row) -> Result<()> {
    use pgwire::api::Type;
    for (i, (column, ty)) in info.columns.iter().zip(types).enumerate() {
        if *ty == Type::NUMERIC
            && let Some((p, s)) = info
                .decl_types
                .get(i)
                .and_then(|d| crate::typing::precision_of(d))
            && let Some(v) = row.get_mut(column)
        {
            numeric_in_column(v, p, s).map_err(|(sqlstate, reason)| Error::InvalidValue {
                table: info.name.clone(),
                column: column.clone(),
                type_name: format!("numeric({p},{s})"),
                sqlstate,
                reason,
            })?;
            continue;
        }
        if matches!(*ty, Type::INT2 | Type::INT4)
            && let Some(Value::Integer(i)) = row.get(column)
        {
            let fits = if *ty == Type::INT2 {
                i16::try_from(*i).is_ok()
            } else {
                i32::try_from(*i).is_ok()
            };
            if !fits {
                return Err(Error::InvalidValue {
                    table: info.name.clone(),
                    column: column.clone(),
                    type_name: ty.name().to_owned(),
                    sqlstate: "22003",
                    reason: format!("{i} is out of range"),
                });
            }
            continue;
        }
        if let Some(elem) = crate::typing::array_values::element_of(ty) {
            let stored = match row.get_mut(column) {
                Some(Value::Text(text)) => {
                    crate::typing::array_values::from_text(&elem, text).map(|json| *text = json)
                }
                None | Some(Value::Null) => Ok(()),
                Some(other) => Err(("22P02", format!("malformed array literal: \"{other}\""))),
            };
            stored.map_err(|(sqlstate, reason)| Error::InvalidValue {
                table: info.name.clone(),
                column: column.clone(),
                type_name: ty.name().to_owned(),
                sqlstate,
                reason,
            })?;
            continue;
        }
        if !crate::typing::stored_as_text(ty) {
            continue;
        }
        let text = match row.get_mut(column) {
            Some(Value::Text(text)) => text,
            // SQLite computed a number or blob for a date/time or UUID
            // column (`born + 30` is integer arithmetic on the date's
            // text: 1990-05-06 + 30 = 2020): refused, never stored.
            Some(v @ (Value::Integer(_) | Value::Real(_) | Value::Blob(_)))
                if !matches!(*ty, Type::JSON | Type::JSONB) || matches!(v, Value::Blob(_)) =>
            {
                let kind = match v {
                    Value::Integer(_) => "integer",
                    Value::Real(_) => "real",
                    _ => "blob",
                };
                return Err(Error::InvalidValue {
                    table: info.name.clone(),
                    column: column.clone(),
                    type_name: ty.name().to_owned(),
                    sqlstate: "42804",
                    reason: format!(
                        "the statement computed the {kind} {v} for it; date ± integer is not \
                         translated here: write `col + interval '30 days'` (or `'…'::date`)"
                    ),
                });
            }
            // A number is a JSON value (SQLite's affinity may keep it as
            // one; the read side sends it as JSON text).
            _ => continue,
        };
        match crate::params::decode_text(ty, text) {
            Ok(rusqlite::types::Value::Text(c)) => *text = c,
            Ok(_) => {}
            Err(r) => {
                return Err(Error::InvalidValue {
                    table: info.name.clone(),
                    column: column.clone(),
                    type_name: ty.name().to_owned(),
                    sqlstate: r.sqlstate,
                    reason: r.reason,
                });
            }
        }
    }
    Ok(())
}

/// A value written to a `numeric(p,s)` column rounded to `s` decimals, as
/// PostgreSQL stores it; one with more than `p - s` integer digits is
/// 22003, text that is no number 22P02.
fn numeric_in_column(
    v: &mut Value,
    precision: u32,
    scale: u32,
) -> std::result::Result<(), (&'static str, String)> {
    let text = match v {
        Value::Null => return Ok(()),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => crate::params::numeric_text(t).ok_or_else(|| {
            (
                "22P02",
                format!("invalid input syntax for type numeric: \"{t}\""),
            )
        })?,
        Value::Blob(_) => return Err(("22P02", "a blob is no numeric value".into())),
    };
    let rounded = crate::typing::rescale(&text, scale).ok_or_else(|| {
        (
            "22P02",
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    })?;
    let int_digits = rounded
        .trim_start_matches('-')
        .split('.')
        .next()
        .unwrap_or("")
        .trim_start_matches('0')
        .len();
    if int_digits > (precision - scale) as usize {
        return Err((
            "22003",
            format!(
                "numeric field overflow: a field with precision {precision}, scale {scale} must round to an absolute value less than 10^{}",
                precision - scale
            ),
        ));
    }
    if !crate::params::numeric_is_exact(&rounded) {
        return Err(("0A000", crate::params::inexact_numeric(&rounded)));
    }
    *v = match rounded.parse::<i64>() {
        Ok(i) if scale == 0 => Value::Integer(i),
        _ => match rounded.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Real(f),
            _ => Value::Text(rounded),
        },
    };
    Ok(())
}

/// The whole row with primary key `key` (see `replica::read_row`).
fn read_row(conn: &Connection, info: &replica::TableInfo, key: &Row) -> Result<Option<Row>> {
    let row = replica::read_row(conn, info, info.pk.iter().map(|c| key.get(c)))
        .map_err(sq("reading an updated row"))?;
    Ok(row.map(|values| info.columns.iter().cloned().zip(values).collect()))
}
