//! Schema statements as every replica and the router's speculation run
//! them, and the hidden row key of tables created without a primary key.
//!
//! A table without a primary key carries [`HIDDEN_KEY`], an
//! `INTEGER PRIMARY KEY` column (SQLite's rowid, kept stable by VACUUM)
//! whose values the router takes from its generated-key ranges, so the
//! table's rows have a cluster-unique key to replicate by. The router
//! leaves it out of `SELECT *`, COPY and INSERTs without a column list.

use rusqlite::Connection;

/// The hidden row key of a table created without a primary key.
pub const HIDDEN_KEY: &str = "_tributary_rowid";

/// Whether `column` is a hidden row key.
pub fn is_hidden_column(column: &str) -> bool {
    column.eq_ignore_ascii_case(HIDDEN_KEY)
}

/// Runs one `ddl` record's SQL (or a `block` record's schema step) on
/// `conn`, inside the caller's savepoint: the SQLite statements the router
/// translated the client's into, as written. One entry point, so the
/// applier, the speculation and the overlay replay cannot disagree.
pub fn run_ddl(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.execute_batch(sql)
}
