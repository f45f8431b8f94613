//! A read-only `pg_catalog` for clients that look the server over before
//! they work: drivers probing types (`pg_type`, `to_regtype`, `::regtype`),
//! ORMs asking whether a table exists and what it holds (`pg_class`,
//! `pg_attribute`, `pg_index`, `pg_constraint`), psql's `\d` family.
//!
//! Every router connection attaches an in-memory database named
//! `pg_catalog` (`tables.rs`: the tables and their fixed rows;
//! `fill.rs`: the rows computed from the schema; `functions.rs`: what
//! catalog queries call), so `pg_catalog.pg_class` (and, since SQLite searches
//! attached databases for unqualified names, plain `pg_type`) resolve in
//! SQLite itself. `pg_type` and `pg_namespace` are fixed; `pg_class` and
//! `pg_attribute` are computed from the replica's schema, again whenever its
//! schema version changes, before a statement that names a catalog table.
//! Clients cannot write them (writes to `pg_*` tables are refused).

use std::cell::RefCell;

use rusqlite::Connection;

use crate::error::Result;
use crate::exec::sq;

mod fill;
mod foreign_keys;
mod functions;
mod information_schema;
mod tables;

pub use functions::{ARRAY, ARRAY_AT, RELNAME, pg_array_json};

/// Namespaces: PostgreSQL's oids for `pg_catalog` and `public`.
const PG_CATALOG: i64 = 11;
const PUBLIC: i64 = 2200;
/// Tributary's own readable tables (`tributary_conflicts`, …): their own
/// namespace, so listings of `public` show the user's tables only.
const TRIBUTARY: i64 = 13100;
/// User objects get oids from here up, as in PostgreSQL.
const FIRST_USER_OID: i64 = 16384;

/// Attaches `pg_catalog` to a router connection, with its fixed tables and
/// the functions catalog queries call.
pub fn attach(conn: &Connection) -> Result<()> {
    conn.execute_batch("ATTACH DATABASE ':memory:' AS pg_catalog")
        .and_then(|()| conn.execute_batch(tables::SCHEMA))
        .and_then(|()| tables::fixed_rows(conn))
        .and_then(|()| conn.execute_batch(information_schema::SCHEMA))
        // `generate_series(start, stop[, step])`, which psql's `\d` calls.
        .and_then(|()| rusqlite::vtab::series::load_module(conn))
        .map_err(sq("attaching pg_catalog"))?;
    functions::register(conn).map_err(sq("registering catalog functions"))
}

thread_local! {
    /// Per thread: the database file and schema version `pg_class` and
    /// `pg_attribute` were computed for.
    static FILLED: RefCell<Option<(String, i64)>> = const { RefCell::new(None) };
    /// The oids of `pg_class` rows outside `public` (Tributary's tables).
    static OFF_PATH: RefCell<std::collections::HashSet<i64>> = RefCell::new(Default::default());
}

/// Whether `sql` may read a computed catalog table.
pub fn names_catalog(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.windows(3).any(|w| w.eq_ignore_ascii_case(b"pg_"))
        || b.windows(18)
            .any(|w| w.eq_ignore_ascii_case(b"information_schema"))
}

/// Recomputes `pg_class` and `pg_attribute` when the replica's schema
/// changed since they were, before a statement that may read them. Inside
/// a transaction (a speculation, which a transaction block's reads and
/// Describes run in, on the block's own schema) they are recomputed every
/// time: the transaction's rollback takes the fill with it.
pub fn refresh(conn: &Connection, sql: &str) -> Result<()> {
    if !names_catalog(sql) {
        return Ok(());
    }
    if !conn.is_autocommit() {
        return fill::fill(conn).map_err(sq("computing pg_catalog"));
    }
    let version: i64 = conn
        .prepare_cached("PRAGMA main.schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("reading the schema version"))?;
    let key = (conn.path().unwrap_or("").to_owned(), version);
    if FILLED.with(|f| f.borrow().as_ref() == Some(&key)) {
        return Ok(());
    }
    fill::fill(conn).map_err(sq("computing pg_catalog"))?;
    FILLED.with(|f| *f.borrow_mut() = Some(key));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("open");
        attach(&c).expect("attach");
        c.execute_batch(&format!(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, at TIMESTAMP);
             CREATE TABLE hist (what TEXT, {} INTEGER PRIMARY KEY);",
            replica::HIDDEN_KEY
        ))
        .expect("schema");
        c
    }

    fn rows(c: &Connection, sql: &str) -> Vec<String> {
        refresh(c, sql).expect("refresh");
        c.prepare(sql)
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, Option<String>>(0))?
                    .map(|r| r.map(Option::unwrap_or_default))
                    .collect()
            })
            .expect(sql)
    }

    #[test]
    fn drivers_find_types_by_name_and_oid() {
        let c = db();
        assert_eq!(
            rows(
                &c,
                "SELECT typname FROM pg_type t WHERE t.oid = to_regtype('timestamp with time zone')"
            ),
            ["timestamptz"]
        );
        assert!(
            rows(
                &c,
                "SELECT typname FROM pg_type WHERE oid = to_regtype('hstore')"
            )
            .is_empty()
        );
        assert_eq!(
            rows(
                &c,
                &format!(
                    "SELECT {}(oid) FROM pg_catalog.pg_type WHERE typname = 'int4'",
                    crate::casts::REGTYPE
                )
            ),
            ["int4"]
        );
    }

    #[test]
    fn tables_and_columns_follow_the_schema() {
        let c = db();
        let sql = "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relkind = 'r' AND pg_table_is_visible(pg_catalog.pg_class.oid) ORDER BY 1";
        assert_eq!(rows(&c, sql), ["accounts", "hist"]);
        assert_eq!(
            rows(
                &c,
                "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = 'hist' ORDER BY a.attnum"
            ),
            ["what"],
            "the hidden key is not a column"
        );
        c.execute_batch("CREATE TABLE later (k INTEGER PRIMARY KEY)")
            .expect("ddl");
        assert_eq!(rows(&c, sql), ["accounts", "hist", "later"]);
        // Inside a transaction (a block's speculation), its own schema;
        // after the rollback, the schema as it is.
        c.execute_batch("BEGIN; CREATE TABLE mine (k INTEGER PRIMARY KEY)")
            .expect("ddl in a transaction");
        assert_eq!(rows(&c, sql), ["accounts", "hist", "later", "mine"]);
        c.execute_batch("ROLLBACK").expect("rollback");
        assert_eq!(rows(&c, sql), ["accounts", "hist", "later"]);
    }
}
