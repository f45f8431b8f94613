//! Speculative execution: a write runs on the router's replica inside a
//! transaction that is always rolled back, on top of the router's overlay
//! (its queued records the replica has not applied yet) and the session's
//! open transaction, with an SQLite session capturing its row changes.
//!
//! Nothing here commits to the replica file: writes reach SQLite files only
//! through the log. A transaction block is carried between statements as the
//! SQLite changeset of its writes so far; each statement replays it inside a
//! fresh SQLite transaction, so no lock is held while the client is idle and
//! replication never waits on an open client transaction.
//!
//! `replay.rs` re-creates the overlay and the transaction, `capture.rs`
//! turns a changeset into row changes with full images, `compose.rs` folds
//! changes and changesets together.

mod block;
mod capture;
mod compose;
mod references;
mod replay;
mod sharded;

use rusqlite::Connection;
use rusqlite::session::Session;
use rusqlite::types::Value as SqlValue;
use wal_bus::Change;

use crate::error::{Error, Result};
use crate::exec::{ResultSet, run_statement, sq};
use crate::write_order::Replay;

pub use block::{Block, Prior};
pub use compose::NetChanges;
pub use sharded::{GroupRun, filter_replays, no_local_replica, speculate_sharded};

/// A query finding a row of `table` whose key (`column`, …) is NULL.
#[derive(Debug, Clone)]
pub struct NullCheck {
    pub sql: String,
    pub table: String,
    pub column: String,
}

/// What a speculative write did.
#[derive(Debug, Default)]
pub struct SpecOutcome {
    /// RETURNING rows, when the statement has any result columns.
    pub result: Option<ResultSet>,
    /// Rows inserted, updated or deleted.
    pub affected: usize,
    /// Net changeset of the whole transaction so far (prior + this statement).
    pub changeset: Vec<u8>,
    /// This statement's row changes with full images.
    pub changes: Vec<Change>,
    /// The row locks the changes need (see `references`).
    pub locks: Vec<crate::write_order::Lock>,
}

/// Runs `f` inside a transaction that is always rolled back.
fn rolled_back<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(sq("beginning a speculative transaction"))?;
    let out = f(conn);
    let rb = conn
        .execute_batch("ROLLBACK")
        .map_err(sq("rolling back a speculative transaction"));
    let out = out?;
    rb?;
    Ok(out)
}

/// Whether any table of the replica declares a foreign key (the graph is
/// cached per schema version; see `references`).
fn has_foreign_keys(conn: &Connection) -> Result<bool> {
    Ok(!references::graph(conn, false)?.is_empty())
}

fn is_foreign_key_violation(e: &Error) -> bool {
    matches!(e, Error::Sqlite {
        source: rusqlite::Error::SqliteFailure(f, Some(msg)),
        ..
    } if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains("FOREIGN KEY"))
}

/// Whether replaying `overlay` and `prior` changes the schema.
fn schema_changes(overlay: &[Replay], prior: &Prior) -> bool {
    prior.has_ddl() || overlay.iter().any(|r| !matches!(r, Replay::Rows(_)))
}

/// Runs `f` with foreign-key enforcement off (when `off`), then turns it
/// back on. Inside a transaction only the connection flag can do this (the
/// `foreign_keys` pragma is a no-op there); statements prepared after each
/// flip see the new setting.
fn without_foreign_keys<R>(
    conn: &Connection,
    off: bool,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    use rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY;
    if !off {
        return f(conn);
    }
    conn.set_db_config(SQLITE_DBCONFIG_ENABLE_FKEY, false)
        .map_err(sq("pausing foreign-key checks"))?;
    let out = f(conn);
    conn.set_db_config(SQLITE_DBCONFIG_ENABLE_FKEY, true)
        .map_err(sq("checking foreign keys again"))?;
    out
}

/// Runs `f` on the router's replica plus `overlay` (its queued records the
/// replica has not applied yet) plus `prior` (the session's block so far),
/// then rolls it all back. The caller holds the replica's write gate, so
/// "not applied yet" is exact for the whole run.
pub fn in_block<R>(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    f: impl FnOnce(&Connection) -> Result<R>,
) -> Result<R> {
    let out = rolled_back(conn, |conn| {
        // What is replayed was checked when it was written (or comes from
        // the log, where the conflict policy had the last word), and its
        // cascades are in it: it is replayed without foreign keys, as
        // replicas apply it, and only this statement's own changes are
        // checked. Only a schema with foreign keys needs the switch:
        // flipping it expires every prepared statement on the connection.
        let replays = !overlay.is_empty() || !prior.is_empty();
        let unchecked = replays && (schema_changes(overlay, prior) || has_foreign_keys(conn)?);
        without_foreign_keys(conn, unchecked, |conn| {
            replay::overlay(conn, overlay)?;
            prior.replay(conn)
        })?;
        f(conn)
    });
    if prior.has_ddl() {
        // The block's schema is gone again, but the schema version it had
        // may come back with another schema: nothing cached from it stays.
        crate::star::forget();
    }
    out
}

/// Runs a write on top of `overlay` and `prior` (see [`in_block`]).
/// With `keys`, an INSERT or UPDATE gets its generated-key plan (see
/// `keys::Plan`), made on the schema the statement sees: a row the
/// statement left with a NULL key is refused with 23502.
pub fn speculate_after(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    keys: Option<&crate::keys::Keys>,
    max_record_bytes: usize,
) -> Result<SpecOutcome> {
    in_block(conn, overlay, prior, |conn| {
        let plan = match keys {
            Some(k) => {
                k.arm(conn)?;
                k.plan(conn, sql, !prior.has_ddl())?
            }
            None => crate::keys::Plan::default(),
        };
        let sql = plan.run.as_deref().unwrap_or(sql);
        // Attached after the replay: captures this statement alone, so the
        // transaction keeps the before-images of its first touch of a row.
        let mut session = Session::new(conn).map_err(sq("starting change capture"))?;
        session.table_filter(Some(|t: &str| !replica::is_internal_table(t)));
        session
            .attach(None::<&str>)
            .map_err(sq("starting change capture"))?;
        // RETURNING rows are the statement's own changes; the log record
        // already bounds their size (max_record_bytes).
        let (result, affected) = match run_statement(conn, sql, params, usize::MAX) {
            Ok(out) => out,
            Err(e) if is_foreign_key_violation(&e) => {
                drop(session);
                return Err(references::explain_violation(conn, sql, params).unwrap_or(e));
            }
            Err(e) => return Err(e),
        };
        if let Some(check) = plan.null_check.as_deref()
            && affected > 0
        {
            let found = conn
                .prepare_cached(&check.sql)
                .and_then(|mut s| s.exists([]))
                .map_err(sq("checking for NULL keys"))?;
            if found {
                return Err(Error::NullKey {
                    table: check.table.clone(),
                    column: check.column.clone(),
                });
            }
        }
        let mut own = Vec::new();
        session
            .changeset_strm(&mut own)
            .map_err(sq("capturing row changes"))?;
        drop(session);
        let changes = capture::changes_in(conn, &own, max_record_bytes)?;
        let volatile = schema_changes(overlay, prior);
        let foreign_keys = volatile || has_foreign_keys(conn)?;
        let locks = references::locks(conn, &changes, foreign_keys, volatile)?;
        let open = prior.open_changeset();
        let changeset = if open.is_empty() {
            own
        } else {
            compose::combine(open, &own)?
        };
        Ok(SpecOutcome {
            result,
            affected,
            changeset,
            changes,
            locks,
        })
    })
}

/// The row locks `changes` need (a peer computed them; see `references`).
pub fn row_locks(conn: &Connection, changes: &[Change]) -> Result<Vec<crate::write_order::Lock>> {
    references::locks(conn, changes, has_foreign_keys(conn)?, false)
}

/// Runs a read on top of the router's overlay and the transaction's
/// earlier writes and schema statements.
pub fn read_in_txn(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
    params: &[SqlValue],
    max_rows: usize,
) -> Result<(Option<ResultSet>, usize)> {
    in_block(conn, overlay, prior, |conn| {
        run_statement(conn, sql, params, max_rows)
    })
}

/// Checks a DDL statement runs on top of the overlay and the session's
/// block, without keeping its effect; returns the SQL to append (an
/// `ADD PRIMARY KEY` becomes the script that rebuilds the table, made on
/// the schema this statement sees: see `rebuild`).
pub fn check_ddl(
    conn: &Connection,
    overlay: &[Replay],
    prior: &Prior,
    sql: &str,
) -> Result<String> {
    let out = in_block(conn, overlay, prior, |conn| {
        match crate::rebuild::plan(conn, sql)? {
            // A rebuild drops and re-creates the table: run as replicas run
            // it, without foreign keys, or dropping a parent would cascade
            // to (or be refused by) its children's rows.
            Some(script) => {
                without_foreign_keys(conn, true, |conn| {
                    replica::run_ddl(conn, &script).map_err(sq("checking the DDL statement"))
                })?;
                Ok(script)
            }
            None => {
                crate::drop_table::check(conn, sql)?;
                replica::run_ddl(conn, sql).map_err(sq("checking the DDL statement"))?;
                Ok(sql.to_owned())
            }
        }
    });
    // Its schema version may come back with another schema, as above.
    crate::star::forget();
    out
}

#[cfg(test)]
mod tests;
