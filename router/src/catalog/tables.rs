//! The `pg_catalog` tables as SQLite tables in the attached in-memory
//! database: their columns (the ones psql, drivers and ORMs read, with
//! PostgreSQL's defaults), and the rows that never change: namespaces,
//! types, access methods, the one role, the one database. Tables for
//! features Tributary lacks (policies, publications, inheritance,
//! sequences, comments, …) exist and are empty, so catalog queries that
//! join them get PostgreSQL's answer for a database without those objects.

use pgwire::api::Type;
use rusqlite::Connection;

use super::{PG_CATALOG, PUBLIC, TRIBUTARY};

/// The types `pg_type` lists: what Tributary describes values as, plus
/// their array types.
pub(super) const TYPES: &[Type] = &[
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

pub(super) const SCHEMA: &str = "
CREATE TABLE pg_catalog.pg_namespace (oid INTEGER PRIMARY KEY, nspname TEXT, nspowner INTEGER DEFAULT 10,
    nspacl TEXT);
CREATE TABLE pg_catalog.pg_type (oid INTEGER PRIMARY KEY, typname TEXT, typnamespace INTEGER DEFAULT 11,
    typowner INTEGER DEFAULT 10, typlen INTEGER, typbyval BOOLEAN DEFAULT 0, typtype TEXT DEFAULT 'b',
    typcategory TEXT, typdelim TEXT DEFAULT ',', typrelid INTEGER DEFAULT 0, typelem INTEGER,
    typarray INTEGER, typbasetype INTEGER DEFAULT 0, typtypmod INTEGER DEFAULT -1,
    typnotnull BOOLEAN DEFAULT 0, typisdefined BOOLEAN DEFAULT 1, typcollation INTEGER DEFAULT 0,
    typndims INTEGER DEFAULT 0, typdefault TEXT);
CREATE TABLE pg_catalog.pg_class (oid INTEGER PRIMARY KEY, relname TEXT, relnamespace INTEGER,
    reltype INTEGER DEFAULT 0, reloftype INTEGER DEFAULT 0, relowner INTEGER DEFAULT 10, relam INTEGER,
    relfilenode INTEGER DEFAULT 0, reltablespace INTEGER DEFAULT 0, relpages INTEGER DEFAULT 0,
    reltuples REAL DEFAULT -1, reltoastrelid INTEGER DEFAULT 0, relhasindex BOOLEAN DEFAULT 0,
    relisshared BOOLEAN DEFAULT 0, relpersistence TEXT DEFAULT 'p', relkind TEXT,
    relnatts INTEGER DEFAULT 0, relchecks INTEGER DEFAULT 0, relhasrules BOOLEAN DEFAULT 0,
    relhastriggers BOOLEAN DEFAULT 0, relhassubclass BOOLEAN DEFAULT 0,
    relrowsecurity BOOLEAN DEFAULT 0, relforcerowsecurity BOOLEAN DEFAULT 0,
    relispopulated BOOLEAN DEFAULT 1, relreplident TEXT DEFAULT 'd', relispartition BOOLEAN DEFAULT 0,
    relacl TEXT, reloptions TEXT, relpartbound TEXT);
CREATE TABLE pg_catalog.pg_am (oid INTEGER PRIMARY KEY, amname TEXT, amhandler TEXT, amtype TEXT);
CREATE TABLE pg_catalog.pg_attribute (attrelid INTEGER, attname TEXT, atttypid INTEGER,
    attstattarget INTEGER DEFAULT -1, attlen INTEGER, attnum INTEGER, attndims INTEGER DEFAULT 0,
    atttypmod INTEGER DEFAULT -1, attnotnull BOOLEAN DEFAULT 0, atthasdef BOOLEAN DEFAULT 0,
    atthasmissing BOOLEAN DEFAULT 0, attidentity TEXT DEFAULT '', attgenerated TEXT DEFAULT '',
    attisdropped BOOLEAN DEFAULT 0, attislocal BOOLEAN DEFAULT 1, attinhcount INTEGER DEFAULT 0,
    attcollation INTEGER DEFAULT 0, attstorage TEXT DEFAULT 'p', attcompression TEXT DEFAULT '',
    attacl TEXT, attoptions TEXT, PRIMARY KEY (attrelid, attnum));
CREATE TABLE pg_catalog.pg_attrdef (oid INTEGER, adrelid INTEGER, adnum INTEGER, adbin TEXT);
CREATE TABLE pg_catalog.pg_index (indexrelid INTEGER PRIMARY KEY, indrelid INTEGER, indnatts INTEGER,
    indnkeyatts INTEGER, indisunique BOOLEAN, indnullsnotdistinct BOOLEAN DEFAULT 0,
    indisprimary BOOLEAN, indisexclusion BOOLEAN DEFAULT 0, indimmediate BOOLEAN DEFAULT 1,
    indisclustered BOOLEAN DEFAULT 0, indisvalid BOOLEAN DEFAULT 1, indcheckxmin BOOLEAN DEFAULT 0,
    indisready BOOLEAN DEFAULT 1, indislive BOOLEAN DEFAULT 1, indisreplident BOOLEAN DEFAULT 0,
    indkey TEXT, indcollation TEXT, indclass TEXT, indoption TEXT, indexprs TEXT, indpred TEXT);
CREATE TABLE pg_catalog.pg_constraint (oid INTEGER PRIMARY KEY, conname TEXT,
    connamespace INTEGER DEFAULT 2200, contype TEXT, condeferrable BOOLEAN DEFAULT 0,
    condeferred BOOLEAN DEFAULT 0, convalidated BOOLEAN DEFAULT 1, conrelid INTEGER,
    contypid INTEGER DEFAULT 0, conindid INTEGER, conparentid INTEGER DEFAULT 0,
    confrelid INTEGER DEFAULT 0, confupdtype TEXT DEFAULT ' ', confdeltype TEXT DEFAULT ' ',
    confmatchtype TEXT DEFAULT ' ', conislocal BOOLEAN DEFAULT 1, coninhcount INTEGER DEFAULT 0,
    connoinherit BOOLEAN DEFAULT 1, conkey TEXT, confkey TEXT, conbin TEXT);
-- Lookups that rewritten catalog calls run as subqueries: no column (and,
-- WITHOUT ROWID or views, no implicit rowid `oid`) that an unqualified
-- `oid` of the outer query could bind to instead.
CREATE TABLE pg_catalog.tributary_defs (def_oid INTEGER PRIMARY KEY, def TEXT) WITHOUT ROWID;
CREATE VIEW pg_catalog.tributary_relnames AS SELECT oid AS rel_oid, relname AS rel_name
    FROM pg_catalog.pg_class;
CREATE VIEW pg_catalog.tributary_nspnames AS SELECT oid AS nsp_oid, nspname AS nsp_name
    FROM pg_catalog.pg_namespace;
CREATE TABLE pg_catalog.pg_roles (oid INTEGER PRIMARY KEY, rolname TEXT, rolsuper BOOLEAN,
    rolinherit BOOLEAN, rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN,
    rolreplication BOOLEAN, rolconnlimit INTEGER, rolpassword TEXT, rolvaliduntil TEXT,
    rolbypassrls BOOLEAN, rolconfig TEXT);
CREATE TABLE pg_catalog.pg_database (oid INTEGER PRIMARY KEY, datname TEXT, datdba INTEGER,
    encoding INTEGER, datlocprovider TEXT, datistemplate BOOLEAN, datallowconn BOOLEAN,
    datconnlimit INTEGER, datcollate TEXT, datctype TEXT, daticulocale TEXT, datacl TEXT,
    dattablespace INTEGER);
CREATE TABLE pg_catalog.pg_tablespace (oid INTEGER PRIMARY KEY, spcname TEXT, spcowner INTEGER,
    spcacl TEXT, spcoptions TEXT);
CREATE TABLE pg_catalog.pg_auth_members (roleid INTEGER, member INTEGER, grantor INTEGER,
    admin_option BOOLEAN);
CREATE TABLE pg_catalog.pg_collation (oid INTEGER PRIMARY KEY, collname TEXT, collnamespace INTEGER,
    collprovider TEXT, collcollate TEXT, collctype TEXT);
CREATE TABLE pg_catalog.pg_description (objoid INTEGER, classoid INTEGER, objsubid INTEGER,
    description TEXT);
CREATE TABLE pg_catalog.pg_sequence (seqrelid INTEGER, seqtypid INTEGER, seqstart INTEGER,
    seqincrement INTEGER, seqmax INTEGER, seqmin INTEGER, seqcache INTEGER, seqcycle BOOLEAN);
CREATE TABLE pg_catalog.pg_policy (oid INTEGER, polname TEXT, polrelid INTEGER, polcmd TEXT,
    polpermissive BOOLEAN, polroles TEXT, polqual TEXT, polwithcheck TEXT);
CREATE TABLE pg_catalog.pg_statistic_ext (oid INTEGER, stxrelid INTEGER, stxname TEXT,
    stxnamespace INTEGER, stxowner INTEGER, stxstattarget INTEGER, stxkeys TEXT, stxkind TEXT);
CREATE TABLE pg_catalog.pg_publication (oid INTEGER, pubname TEXT, pubowner INTEGER,
    puballtables BOOLEAN, pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN,
    pubtruncate BOOLEAN, pubviaroot BOOLEAN);
CREATE TABLE pg_catalog.pg_publication_namespace (oid INTEGER, pnpubid INTEGER, pnnspid INTEGER);
CREATE TABLE pg_catalog.pg_publication_rel (oid INTEGER, prpubid INTEGER, prrelid INTEGER,
    prqual TEXT, prattrs TEXT);
CREATE TABLE pg_catalog.pg_range (rngtypid INTEGER, rngsubtype INTEGER, rngmultitypid INTEGER,
    rngcollation INTEGER, rngsubopc INTEGER, rngcanonical TEXT, rngsubdiff TEXT);
CREATE TABLE pg_catalog.pg_inherits (inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER,
    inhdetachpending BOOLEAN);
CREATE TABLE pg_catalog.pg_proc (oid INTEGER PRIMARY KEY, proname TEXT, pronamespace INTEGER,
    proowner INTEGER, prolang INTEGER, prokind TEXT, proretset BOOLEAN, prorettype INTEGER,
    pronargs INTEGER, proargtypes TEXT, proargnames TEXT, prosrc TEXT);
CREATE TABLE pg_catalog.pg_trigger (oid INTEGER PRIMARY KEY, tgrelid INTEGER, tgparentid INTEGER,
    tgname TEXT, tgfoid INTEGER, tgtype INTEGER, tgenabled TEXT, tgisinternal BOOLEAN,
    tgconstraint INTEGER);
CREATE TABLE pg_catalog.pg_rewrite (oid INTEGER PRIMARY KEY, rulename TEXT, ev_class INTEGER,
    ev_type TEXT, ev_enabled TEXT, is_instead BOOLEAN);
CREATE TABLE pg_catalog.pg_opclass (oid INTEGER PRIMARY KEY, opcmethod INTEGER, opcname TEXT,
    opcnamespace INTEGER, opcdefault BOOLEAN, opcintype INTEGER);
CREATE TABLE pg_catalog.pg_depend (classid INTEGER, objid INTEGER, objsubid INTEGER,
    refclassid INTEGER, refobjid INTEGER, refobjsubid INTEGER, deptype TEXT);
CREATE TABLE pg_catalog.pg_settings (name TEXT PRIMARY KEY, setting TEXT, unit TEXT,
    category TEXT, short_desc TEXT, context TEXT, vartype TEXT, source TEXT, boot_val TEXT,
    reset_val TEXT);
CREATE TABLE pg_catalog.pg_extension (oid INTEGER PRIMARY KEY, extname TEXT, extowner INTEGER,
    extnamespace INTEGER, extversion TEXT);
";

/// The rows that never change.
pub(super) fn fixed_rows(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "INSERT INTO pg_catalog.pg_namespace (oid, nspname) VALUES ({PG_CATALOG}, 'pg_catalog'),
             ({PUBLIC}, 'public'), (13000, 'information_schema'), ({TRIBUTARY}, 'tributary');
         INSERT INTO pg_catalog.pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't'),
             (403, 'btree', 'bthandler', 'i');
         INSERT INTO pg_catalog.pg_roles VALUES (10, 'tributary', 1, 1, 1, 1, 1, 0, -1,
             '********', NULL, 1, NULL);
         INSERT INTO pg_catalog.pg_database VALUES (5, '{db}', 10, 6, 'c', 0, 1, -1, 'C', 'C',
             NULL, NULL, 1663);
         INSERT INTO pg_catalog.pg_tablespace VALUES (1663, 'pg_default', 10, NULL, NULL);",
        db = crate::functions::DATABASE,
    ))?;
    for name in crate::functions::SERVER_SETTINGS {
        let value = crate::functions::server_setting(name).unwrap_or_default();
        conn.execute(
            "INSERT INTO pg_catalog.pg_settings VALUES (?1, ?2, NULL, 'Preset Options', '',
                 'internal', 'string', 'default', ?2, ?2)",
            [name, &value],
        )?;
    }
    let mut insert = conn.prepare(
        "INSERT INTO pg_catalog.pg_type (oid, typname, typlen, typbyval, typcategory, typelem,
             typarray, typcollation) VALUES (?1, ?2, ?3, ?3 BETWEEN 1 AND 8, ?4, ?5, ?6, ?7)",
    )?;
    for ty in TYPES {
        let elem = match ty.kind() {
            postgres_types::Kind::Array(e) => e.oid(),
            _ => 0,
        };
        let array = TYPES
            .iter()
            .find(|a| matches!(a.kind(), postgres_types::Kind::Array(e) if e == ty))
            .map_or(0, Type::oid);
        // Text types carry the default collation (oid 100), as in PostgreSQL.
        let collation = if category(ty) == "S" { 100 } else { 0 };
        insert.execute(rusqlite::params![
            ty.oid(),
            ty.name(),
            type_len(ty),
            category(ty),
            elem,
            array,
            collation
        ])?;
    }
    Ok(())
}

pub(super) fn type_len(ty: &Type) -> i64 {
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

pub(super) fn category(ty: &Type) -> &'static str {
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
