//! A read-only `pg_catalog` for clients that look the server over before
//! they work: drivers probing types (`pg_type`, `to_regtype`, `::regtype`),
//! ORMs asking whether a table exists (`pg_class`, `pg_namespace`,
//! `pg_table_is_visible`).
//!
//! Every router connection attaches an in-memory database named
//! `pg_catalog`, so `pg_catalog.pg_class` (and, since SQLite searches
//! attached databases for unqualified names, plain `pg_type`) resolve in
//! SQLite itself. `pg_type` and `pg_namespace` are fixed; `pg_class` and
//! `pg_attribute` are computed from the replica's schema, again whenever its
//! schema version changes, before a statement that names a catalog table.
//! Clients cannot write them (writes to `pg_*` tables are refused).

use std::cell::RefCell;

use pgwire::api::Type;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::error::Result;
use crate::exec::sq;

/// Namespaces: PostgreSQL's oids for `pg_catalog` and `public`.
const PG_CATALOG: i64 = 11;
const PUBLIC: i64 = 2200;
/// Tributary's own readable tables (`tributary_conflicts`, …): their own
/// namespace, so listings of `public` show the user's tables only.
const TRIBUTARY: i64 = 13100;
/// User objects get oids from here up, as in PostgreSQL.
const FIRST_USER_OID: i64 = 16384;

/// The types `pg_type` lists: what Tributary describes values as, plus
/// their array types.
const TYPES: &[Type] = &[
    Type::BOOL,
    Type::BYTEA,
    Type::CHAR,
    Type::NAME,
    Type::INT8,
    Type::INT2,
    Type::INT4,
    Type::TEXT,
    Type::OID,
    Type::JSON,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::BPCHAR,
    Type::VARCHAR,
    Type::DATE,
    Type::TIME,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::INTERVAL,
    Type::NUMERIC,
    Type::UUID,
    Type::JSONB,
    Type::BOOL_ARRAY,
    Type::BYTEA_ARRAY,
    Type::INT8_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::VARCHAR_ARRAY,
    Type::DATE_ARRAY,
    Type::TIMESTAMP_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::NUMERIC_ARRAY,
    Type::UUID_ARRAY,
    Type::JSON_ARRAY,
    Type::JSONB_ARRAY,
];

const SCHEMA: &str = "
CREATE TABLE pg_catalog.pg_namespace (oid INTEGER PRIMARY KEY, nspname TEXT, nspowner INTEGER, nspacl TEXT);
CREATE TABLE pg_catalog.pg_type (oid INTEGER PRIMARY KEY, typname TEXT, typnamespace INTEGER,
    typowner INTEGER, typlen INTEGER, typtype TEXT, typcategory TEXT, typdelim TEXT, typrelid INTEGER,
    typelem INTEGER, typarray INTEGER, typbasetype INTEGER, typtypmod INTEGER, typnotnull INTEGER,
    typisdefined INTEGER);
CREATE TABLE pg_catalog.pg_class (oid INTEGER PRIMARY KEY, relname TEXT, relnamespace INTEGER,
    reltype INTEGER, relowner INTEGER, relam INTEGER, relkind TEXT, relpersistence TEXT,
    relhasindex INTEGER, relispartition INTEGER, reltuples REAL, relnatts INTEGER, reloptions TEXT,
    relacl TEXT);
CREATE TABLE pg_catalog.pg_am (oid INTEGER PRIMARY KEY, amname TEXT, amhandler TEXT, amtype TEXT);
INSERT INTO pg_catalog.pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't'), (403, 'btree', 'bthandler', 'i');
CREATE TABLE pg_catalog.pg_attribute (attrelid INTEGER, attname TEXT, atttypid INTEGER,
    attnum INTEGER, attlen INTEGER, atttypmod INTEGER, attnotnull INTEGER, atthasdef INTEGER,
    attisdropped INTEGER, attidentity TEXT, attgenerated TEXT, PRIMARY KEY (attrelid, attnum));
";

/// Attaches `pg_catalog` to a router connection, with its fixed tables and
/// the functions catalog queries call.
pub fn attach(conn: &Connection) -> Result<()> {
    conn.execute_batch("ATTACH DATABASE ':memory:' AS pg_catalog")
        .and_then(|()| conn.execute_batch(SCHEMA))
        .map_err(sq("attaching pg_catalog"))?;
    conn.execute_batch(&format!(
        "INSERT INTO pg_catalog.pg_namespace VALUES ({PG_CATALOG}, 'pg_catalog', 10, NULL),
             ({PUBLIC}, 'public', 10, NULL), (13000, 'information_schema', 10, NULL),
             ({TRIBUTARY}, 'tributary', 10, NULL)"
    ))
    .map_err(sq("filling pg_catalog"))?;
    {
        let mut insert = conn
            .prepare(
                "INSERT INTO pg_catalog.pg_type VALUES (?1, ?2, 11, 10, ?3, 'b', ?4, ',', 0, ?5, ?6, 0, -1, 0, 1)",
            )
            .map_err(sq("filling pg_catalog"))?;
        for ty in TYPES {
            let elem = match ty.kind() {
                postgres_types::Kind::Array(e) => e.oid(),
                _ => 0,
            };
            let array = TYPES
                .iter()
                .find(|a| matches!(a.kind(), postgres_types::Kind::Array(e) if e == ty))
                .map_or(0, Type::oid);
            insert
                .execute(rusqlite::params![
                    ty.oid(),
                    ty.name(),
                    type_len(ty),
                    category(ty),
                    elem,
                    array
                ])
                .map_err(sq("filling pg_catalog"))?;
        }
    }
    register(conn).map_err(sq("registering catalog functions"))
}

fn type_len(ty: &Type) -> i64 {
    match *ty {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::OID | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL | Type::UUID => 16,
        Type::NAME => 64,
        _ => -1,
    }
}

fn category(ty: &Type) -> &'static str {
    match *ty {
        Type::BOOL => "B",
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::FLOAT4 | Type::FLOAT8 => "N",
        Type::NUMERIC => "N",
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR => "S",
        Type::DATE | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => "D",
        Type::INTERVAL => "T",
        _ if matches!(ty.kind(), postgres_types::Kind::Array(_)) => "A",
        _ => "U",
    }
}

/// The type called `name` (as `to_regtype` takes it), if `pg_type` has it.
fn type_named(name: &str) -> Option<&'static Type> {
    let n = name.trim().trim_matches('"').to_ascii_lowercase();
    let n = n.strip_prefix("pg_catalog.").unwrap_or(&n);
    let alias = match n {
        "integer" | "int" => "int4",
        "bigint" => "int8",
        "smallint" => "int2",
        "boolean" => "bool",
        "real" => "float4",
        "double precision" => "float8",
        "character varying" => "varchar",
        "character" => "bpchar",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "time without time zone" => "time",
        "decimal" => "numeric",
        other => other,
    };
    TYPES.iter().find(|t| t.name() == alias)
}

fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // The search path is `public`: Tributary's own tables are not on it.
    conn.create_scalar_function(
        "pg_table_is_visible",
        1,
        FunctionFlags::SQLITE_UTF8,
        |ctx| {
            let oid: Option<i64> = ctx.get(0)?;
            Ok(oid.is_some_and(|o| !OFF_PATH.with(|h| h.borrow().contains(&o))))
        },
    )?;
    conn.create_scalar_function("pg_type_is_visible", 1, flags, |_| Ok(true))?;
    conn.create_scalar_function("pg_get_userbyid", 1, flags, |_| Ok("tributary".to_owned()))?;
    // No object carries a comment (COMMENT ON is not supported).
    for (name, args) in [
        ("obj_description", 1),
        ("obj_description", 2),
        ("col_description", 2),
    ] {
        conn.create_scalar_function(name, args, flags, |_| Ok(rusqlite::types::Null))?;
    }
    conn.create_scalar_function("to_regtype", 1, flags, |ctx| {
        let name: Option<String> = ctx.get(0)?;
        Ok(name.as_deref().and_then(type_named).map(Type::oid))
    })?;
    // `x::regtype`: an oid (or a type name) as the type's name.
    conn.create_scalar_function(crate::casts::REGTYPE, 1, flags, |ctx| {
        let v: rusqlite::types::Value = ctx.get(0)?;
        Ok(match v {
            rusqlite::types::Value::Integer(oid) => u32::try_from(oid)
                .ok()
                .and_then(Type::from_oid)
                .map_or_else(|| oid.to_string(), |t| t.name().to_owned()),
            rusqlite::types::Value::Text(name) => match type_named(&name) {
                Some(t) => t.name().to_owned(),
                None => {
                    return Err(rusqlite::Error::UserFunctionError(
                        format!("SQLSTATE 42704: type \"{name}\" does not exist").into(),
                    ));
                }
            },
            _ => String::new(),
        })
    })?;
    Ok(())
}

thread_local! {
    /// Per thread: the database file and schema version `pg_class` and
    /// `pg_attribute` were computed for.
    static FILLED: RefCell<Option<(String, i64)>> = const { RefCell::new(None) };
    /// The oids of `pg_class` rows outside `public` (Tributary's tables).
    static OFF_PATH: RefCell<std::collections::HashSet<i64>> = RefCell::new(Default::default());
}

/// Whether `sql` may read a computed catalog table.
fn names_catalog(sql: &str) -> bool {
    let b = sql.as_bytes();
    b.windows(3).any(|w| w.eq_ignore_ascii_case(b"pg_"))
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
        return fill(conn).map_err(sq("computing pg_catalog"));
    }
    let version: i64 = conn
        .prepare_cached("PRAGMA main.schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("reading the schema version"))?;
    let key = (conn.path().unwrap_or("").to_owned(), version);
    if FILLED.with(|f| f.borrow().as_ref() == Some(&key)) {
        return Ok(());
    }
    fill(conn).map_err(sq("computing pg_catalog"))?;
    FILLED.with(|f| *f.borrow_mut() = Some(key));
    Ok(())
}

fn fill(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "SAVEPOINT catalog_fill; DELETE FROM pg_catalog.pg_class; DELETE FROM pg_catalog.pg_attribute;",
    )?;
    let filled = (|| {
        conn.execute(
            &format!(
                "INSERT INTO pg_catalog.pg_class
                 SELECT rowid + {FIRST_USER_OID}, name,
                        CASE WHEN name LIKE 'tributary\\_%' ESCAPE '\\' THEN {TRIBUTARY} ELSE {PUBLIC} END,
                        0, 10, CASE type WHEN 'table' THEN 2 WHEN 'index' THEN 403 ELSE 0 END,
                        CASE type WHEN 'table' THEN 'r' WHEN 'index' THEN 'i' ELSE 'v' END,
                        'p', 0, 0, -1, 0, NULL, NULL
                 FROM main.sqlite_schema
                 WHERE type IN ('table', 'index', 'view')
                   AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_tributary\\_%' ESCAPE '\\'"
            ),
            [],
        )?;
        let off_path: std::collections::HashSet<i64> = conn
            .prepare(&format!(
                "SELECT oid FROM pg_catalog.pg_class WHERE relnamespace <> {PUBLIC}"
            ))?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        OFF_PATH.with(|h| *h.borrow_mut() = off_path);
        let tables: Vec<(i64, String)> = conn
            .prepare("SELECT oid, relname FROM pg_catalog.pg_class WHERE relkind IN ('r', 'v')")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut columns = conn.prepare(
            "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)",
        )?;
        let mut insert = conn.prepare(
            "INSERT INTO pg_catalog.pg_attribute VALUES (?1, ?2, ?3, ?4, ?5, -1, ?6, ?7, 0, '', '')",
        )?;
        for (oid, table) in tables {
            let cols: Vec<(String, String, bool, bool, i64)> = columns
                .query_map([&table], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut num = 0;
            for (name, decl, notnull, has_default, pk) in cols {
                if replica::is_hidden_column(&name) {
                    continue;
                }
                num += 1;
                let ty = crate::typing::pgtypes::type_for_decl(&decl);
                insert.execute(rusqlite::params![
                    oid,
                    name,
                    ty.oid(),
                    num,
                    type_len(&ty),
                    notnull || pk > 0,
                    has_default
                ])?;
            }
            conn.execute(
                "UPDATE pg_catalog.pg_class SET relnatts = ?2 WHERE oid = ?1",
                rusqlite::params![oid, num],
            )?;
        }
        Ok(())
    })();
    match filled {
        Ok(()) => conn.execute_batch("RELEASE catalog_fill"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO catalog_fill; RELEASE catalog_fill");
            Err(e)
        }
    }
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
