//! The replica's own bookkeeping tables, kept in the same SQLite file so they
//! commit atomically with the data they describe.
//!
//! - `_tributary_state`: the applied offset (offset of the next record to apply).
//! - `_tributary_rows`: per row, the `(hlc, origin)` of the insert that made
//!   it (`deleted` 0) or of the delete that removed it (`deleted` 1, a
//!   tombstone, consulted while the row is absent).
//! - `_tributary_cols`: for a row's columns written after its insert (or
//!   by a conflict's resolution), the `(hlc, origin)` of the write that last
//!   won, and the CRDT state of counter/set cells. A column without an entry
//!   has its row's insert stamp: an insert writes one metadata row, not one
//!   per column (replica files from before this keep per-column entries,
//!   which read the same).
//! - `_tributary_ids`: key ranges reserved by `ids` records (see `ids`).
//! - `_tributary_idempotency`: idempotency keys of applied transactions
//!   (see `idempotency`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use wal_bus::Offset;

use crate::error::{Result, SqliteContext};

/// Tables whose names start with this are Tributary's, not the user's.
pub const INTERNAL_PREFIX: &str = "_tributary_";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _tributary_state (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _tributary_rows (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    hlc TEXT NOT NULL,
    origin TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tbl, pk)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _tributary_cols (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    col TEXT NOT NULL,
    hlc TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT,
    PRIMARY KEY (tbl, pk, col)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tributary_conflicts (
    id INTEGER PRIMARY KEY,
    log_offset INTEGER NOT NULL,
    txn_id TEXT NOT NULL,
    table_name TEXT NOT NULL,
    key TEXT NOT NULL,
    columns TEXT NOT NULL,
    local_values TEXT,
    incoming_values TEXT,
    local_hlc TEXT,
    local_origin TEXT,
    incoming_hlc TEXT NOT NULL,
    incoming_origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    strategy TEXT NOT NULL,
    outcome TEXT NOT NULL,
    policy_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _tributary_ids (
    log_offset INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,
    origin TEXT NOT NULL,
    first INTEGER NOT NULL,
    count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _tributary_ids_by_table ON _tributary_ids (tbl, first);
CREATE TABLE IF NOT EXISTS _tributary_idempotency (
    key TEXT PRIMARY KEY,
    log_offset INTEGER NOT NULL,
    origin TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    results TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS _tributary_idempotency_by_expiry ON _tributary_idempotency (expires_ms);
INSERT OR IGNORE INTO _tributary_state (name, value) VALUES ('applied_offset', 0);
INSERT OR IGNORE INTO _tributary_state (name, value) VALUES ('policy_version', 0);
INSERT OR IGNORE INTO _tributary_state (name, value) VALUES ('policy_text', '');
INSERT OR IGNORE INTO _tributary_state (name, value) VALUES ('skipped_entries', 0);
";

/// Opens a replica file in WAL mode, creating the bookkeeping tables.
///
/// `synchronous = NORMAL` is enough: in WAL mode it never corrupts the file,
/// and a commit lost to power failure is re-applied from the log because the
/// applied offset rolls back with it.
pub fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ctx(path, "opening the replica database")?;
    conn.busy_timeout(Duration::from_secs(30))
        .ctx(path, "setting busy_timeout")?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .ctx(path, "enabling WAL mode")?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .ctx(path, "setting synchronous")?;
    // The bundled SQLite enforces foreign keys by default. A record was
    // checked (and its cascades captured) by the router that wrote it;
    // applying it checks nothing again, or a record that raced a write
    // from another router would be dropped and a cascade run twice.
    conn.pragma_update(None, "foreign_keys", false)
        .ctx(path, "turning foreign-key enforcement off for apply")?;
    set_mmap(&conn).ctx(path, "mapping the database file")?;
    conn.execute_batch(SCHEMA)
        .ctx(path, "creating bookkeeping tables")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// The applied offset stored in the replica file.
pub fn applied_offset(conn: &Connection) -> rusqlite::Result<Offset> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM _tributary_state WHERE name = 'applied_offset'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as Offset)
}

/// The cluster (log) this file belongs to, once it has applied anything.
pub fn cluster_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM _tributary_state WHERE name = 'cluster_id'",
        [],
        |r| r.get(0),
    )
    .optional()
}

pub(crate) fn set_cluster_id(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO _tributary_state (name, value) VALUES ('cluster_id', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [id],
    )?;
    Ok(())
}

/// One value of `_tributary_state`, if set.
pub(crate) fn state_value(
    conn: &Connection,
    name: &str,
) -> rusqlite::Result<Option<rusqlite::types::Value>> {
    conn.query_row(
        "SELECT value FROM _tributary_state WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
}

/// The policy version and text stored in the replica file.
pub fn stored_policy(conn: &Connection) -> rusqlite::Result<(u64, String)> {
    let get = |name: &str| state_value(conn, name);
    let version = match get("policy_version")? {
        Some(rusqlite::types::Value::Integer(i)) => i.max(0) as u64,
        _ => 0,
    };
    let text = match get("policy_text")? {
        Some(rusqlite::types::Value::Text(t)) => t,
        _ => String::new(),
    };
    Ok((version, text))
}

pub(crate) fn store_policy(conn: &Connection, version: u64, text: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _tributary_state SET value = ?1 WHERE name = 'policy_version'",
        [version as i64],
    )?;
    conn.execute(
        "UPDATE _tributary_state SET value = ?1 WHERE name = 'policy_text'",
        [text],
    )?;
    Ok(())
}

/// Makes `text` the policy in force in the (stopped) replica file at
/// `path`, keeping its version: `tributary policy dry-run` replays a log
/// window under a candidate policy this way. Never on a live replica.
pub fn force_policy(path: &Path, text: &str) -> Result<()> {
    let conn = open_connection(path)?;
    let (version, _) = stored_policy(&conn).ctx(path, "reading the stored policy")?;
    store_policy(&conn, version, text).ctx(path, "storing the candidate policy")
}

/// Log entries this replica skipped as foreign, kept across restarts.
pub(crate) fn skipped_count(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM _tributary_state WHERE name = 'skipped_entries'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

pub(crate) fn bump_skipped(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE _tributary_state SET value = value + 1 WHERE name = 'skipped_entries'",
        [],
    )?;
    Ok(())
}

pub(crate) fn set_applied_offset(conn: &Connection, offset: Offset) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE _tributary_state SET value = ?1 WHERE name = 'applied_offset'")?
        .execute([offset as i64])?;
    Ok(())
}

/// Bytes of the database file SQLite reads through a memory map instead of
/// `pread` (one syscall and copy per page otherwise; perf showed the copies
/// in every read and apply).
pub const MMAP_BYTES: i64 = 1 << 30;

/// Maps the database file for reads (see [`MMAP_BYTES`]). Writes still go
/// through the WAL, so durability is unchanged.
pub fn set_mmap(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA mmap_size = {MMAP_BYTES}"), [], |_| Ok(()))
}
