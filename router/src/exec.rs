//! Running one statement on a replica connection and collecting its rows:
//! parameter binding, result rows (bounded by `max_result_rows`) and the
//! result columns a Describe reports.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};

/// Rows a statement produced.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub columns: Vec<String>,
    pub decl_types: Vec<Option<String>>,
    pub rows: Vec<Vec<SqlValue>>,
}

pub(crate) fn sq(context: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |e| Error::sqlite(context, e)
}

/// Binds `$1..$n` by name (SQLite numbers named parameters by first use),
/// or by position when the statement numbers its own (`?NNN`, as the
/// router's generated statements do: a name lookup is a scan of every
/// parameter, so naming thousands of them is quadratic).
fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[SqlValue]) -> Result<()> {
    if params.is_empty() {
        return Ok(());
    }
    let named = stmt
        .parameter_index("$1")
        .map_err(sq("binding parameters"))?
        .is_some();
    if !named && stmt.parameter_count() == params.len() {
        for (i, v) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, v)
                .map_err(sq("binding parameters"))?;
        }
        return Ok(());
    }
    for (i, v) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let idx = stmt
            .parameter_index(&name)
            .map_err(sq("binding parameters"))?
            .or_else(|| (stmt.parameter_count() == params.len()).then_some(i + 1));
        if let Some(idx) = idx {
            stmt.raw_bind_parameter(idx, v)
                .map_err(sq("binding parameters"))?;
        }
    }
    Ok(())
}

/// The cached statement for `sql`; an insert SQLite refuses for supplying
/// fewer values than columns is retried with the column list PostgreSQL
/// implies (`insert_columns`).
fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::CachedStatement<'c>> {
    match conn.prepare_cached(sql) {
        Ok(stmt) => Ok(stmt),
        Err(e) if crate::insert_columns::too_few_values(&e) => {
            let filled = crate::insert_columns::with_columns(conn, sql)?
                .ok_or_else(|| Error::sqlite("preparing the statement", e))?;
            conn.prepare_cached(&filled)
                .map_err(sq("preparing the statement"))
        }
        Err(e) => Err(Error::sqlite("preparing the statement", e)),
    }
}

/// Runs one statement, collecting any result rows.
pub fn run_statement(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    max_rows: usize,
) -> Result<(Option<ResultSet>, usize)> {
    crate::catalog::refresh(conn, sql)?;
    let expanded = crate::star::expand(conn, sql)?;
    let sql = expanded.as_deref().unwrap_or(sql);
    let mut stmt = prepare(conn, sql)?;
    bind(&mut stmt, params)?;
    let ncols = stmt.column_count();
    if ncols == 0 {
        let n = stmt.raw_execute().map_err(sq("executing the statement"))?;
        return Ok((None, n));
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let decl_types: Vec<Option<String>> = stmt
        .columns()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    let mut rows = Vec::new();
    {
        let mut q = stmt.raw_query();
        while let Some(row) = q.next().map_err(sq("reading result rows"))? {
            let mut vals = Vec::with_capacity(ncols);
            for i in 0..ncols {
                vals.push(replica::owned_value(
                    row.get_ref(i).map_err(sq("reading a result value"))?,
                ));
            }
            if rows.len() >= max_rows {
                return Err(Error::ResultTooLarge { limit: max_rows });
            }
            rows.push(vals);
        }
    }
    let affected = rows.len();
    Ok((
        Some(ResultSet {
            columns,
            decl_types,
            rows,
        }),
        affected,
    ))
}

/// Result columns of a statement without running it (for Describe).
pub fn describe(conn: &Connection, sql: &str) -> Result<(Vec<String>, Vec<Option<String>>)> {
    crate::catalog::refresh(conn, sql)?;
    let expanded = crate::star::expand(conn, sql)?;
    let sql = expanded.as_deref().unwrap_or(sql);
    let stmt = prepare(conn, sql)?;
    let names = stmt.column_names().map(str::to_owned).collect();
    let types = stmt
        .columns()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    Ok((names, types))
}
