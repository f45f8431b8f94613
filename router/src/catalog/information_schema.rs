//! The SQL-standard `information_schema` views tools read (schemata,
//! tables, columns, constraints and their columns), as tables of a second
//! attached in-memory database, filled from `pg_catalog` whenever it is.
//! Names and values follow PostgreSQL's (`BASE TABLE`, `character
//! varying`, `YES`/`NO`).

use rusqlite::Connection;

pub(super) const SCHEMA: &str = "
ATTACH DATABASE ':memory:' AS information_schema;
CREATE TABLE information_schema.schemata (catalog_name TEXT, schema_name TEXT, schema_owner TEXT);
CREATE TABLE information_schema.tables (table_catalog TEXT, table_schema TEXT, table_name TEXT,
    table_type TEXT, is_insertable_into TEXT, is_typed TEXT);
CREATE TABLE information_schema.columns (table_catalog TEXT, table_schema TEXT, table_name TEXT,
    column_name TEXT, ordinal_position INTEGER, column_default TEXT, is_nullable TEXT,
    data_type TEXT, character_maximum_length INTEGER, numeric_precision INTEGER,
    numeric_scale INTEGER, datetime_precision INTEGER, udt_catalog TEXT, udt_schema TEXT,
    udt_name TEXT, is_identity TEXT, is_generated TEXT, is_updatable TEXT);
CREATE TABLE information_schema.table_constraints (constraint_catalog TEXT,
    constraint_schema TEXT, constraint_name TEXT, table_catalog TEXT, table_schema TEXT,
    table_name TEXT, constraint_type TEXT, is_deferrable TEXT, initially_deferred TEXT,
    enforced TEXT);
CREATE TABLE information_schema.key_column_usage (constraint_catalog TEXT,
    constraint_schema TEXT, constraint_name TEXT, table_catalog TEXT, table_schema TEXT,
    table_name TEXT, column_name TEXT, ordinal_position INTEGER,
    position_in_unique_constraint INTEGER);
CREATE TABLE information_schema.views (table_catalog TEXT, table_schema TEXT, table_name TEXT,
    view_definition TEXT);
";

const TABLES: &[&str] = &[
    "schemata",
    "tables",
    "columns",
    "table_constraints",
    "key_column_usage",
    "views",
];

/// Refills every table from `pg_catalog` (already filled).
pub(super) fn fill(conn: &Connection) -> rusqlite::Result<()> {
    for t in TABLES {
        conn.execute_batch(&format!("DELETE FROM information_schema.{t}"))?;
    }
    let db = crate::functions::DATABASE;
    conn.execute_batch(&format!(
        "INSERT INTO information_schema.schemata
             SELECT '{db}', nspname, 'tributary' FROM pg_catalog.pg_namespace;
         INSERT INTO information_schema.tables
             SELECT '{db}', n.nspname, c.relname,
                    CASE c.relkind WHEN 'v' THEN 'VIEW' ELSE 'BASE TABLE' END,
                    CASE c.relkind WHEN 'v' THEN 'NO' ELSE 'YES' END, 'NO'
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'v');
         INSERT INTO information_schema.views
             SELECT '{db}', n.nspname, c.relname, s.sql
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             JOIN main.sqlite_schema s ON s.name = c.relname AND s.type = 'view'
             WHERE c.relkind = 'v';
         INSERT INTO information_schema.columns
             SELECT '{db}', n.nspname, c.relname, a.attname, a.attnum, d.adbin,
                    CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END,
                    format_type(a.atttypid, -1),
                    CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod >= 4
                         THEN a.atttypmod - 4 END,
                    CASE t.typname WHEN 'int2' THEN 16 WHEN 'int4' THEN 32 WHEN 'int8' THEN 64
                         WHEN 'float4' THEN 24 WHEN 'float8' THEN 53
                         WHEN 'numeric' THEN CASE WHEN a.atttypmod >= 4
                             THEN (a.atttypmod - 4) >> 16 END END,
                    CASE t.typname WHEN 'int2' THEN 0 WHEN 'int4' THEN 0 WHEN 'int8' THEN 0
                         WHEN 'numeric' THEN CASE WHEN a.atttypmod >= 4
                             THEN (a.atttypmod - 4) & 65535 END END,
                    CASE WHEN t.typcategory = 'D' THEN 6 END,
                    '{db}', 'pg_catalog', t.typname, 'NO', 'NEVER',
                    CASE c.relkind WHEN 'v' THEN 'NO' ELSE 'YES' END
             FROM pg_catalog.pg_attribute a
             JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum;
         INSERT INTO information_schema.table_constraints
             SELECT '{db}', n.nspname, k.conname, '{db}', n.nspname, c.relname,
                    CASE k.contype WHEN 'p' THEN 'PRIMARY KEY' WHEN 'u' THEN 'UNIQUE'
                         WHEN 'f' THEN 'FOREIGN KEY' ELSE 'CHECK' END, 'NO', 'NO', 'YES'
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
         INSERT INTO information_schema.key_column_usage
             SELECT '{db}', n.nspname, k.conname, '{db}', n.nspname, c.relname, a.attname,
                    j.key + 1, CASE WHEN k.contype = 'f' THEN j.key + 1 END
             FROM pg_catalog.pg_constraint k
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             JOIN json_each({array}(k.conkey)) j
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = j.value;",
        array = super::functions::ARRAY,
    ))
}
