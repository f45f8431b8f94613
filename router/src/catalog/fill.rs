//! The catalog tables computed from the replica's schema: `pg_class`
//! (tables, views, indexes), `pg_attribute`, `pg_attrdef`, `pg_index`,
//! `pg_constraint` (primary keys and unique constraints), and the
//! definitions `pg_get_indexdef`/`pg_get_constraintdef` return.
//!
//! Names follow PostgreSQL where SQLite has its own: the index SQLite makes
//! for a primary key or UNIQUE column (`sqlite_autoindex_t_1`) is shown as
//! PostgreSQL would name it (`t_pkey`, `t_c_key`), and a rowid key, which
//! SQLite keeps without an index, is shown with the index PostgreSQL has.

use pgwire::api::Type;
use rusqlite::{Connection, params};

use super::{FIRST_USER_OID, OFF_PATH, PUBLIC, TRIBUTARY};

/// Oid of the index shown for a rowid key: this plus the table's oid.
const ROWID_KEY_INDEX: i64 = 1_000_000;
/// Oid of a constraint: this plus its index's oid.
const CONSTRAINT: i64 = 2_000_000;

const COMPUTED: &[&str] = &[
    "pg_class",
    "pg_attribute",
    "pg_attrdef",
    "pg_index",
    "pg_constraint",
    "tributary_defs",
];

/// Recomputes the tables above, all or nothing.
pub(super) fn fill(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("SAVEPOINT catalog_fill")?;
    let filled = COMPUTED
        .iter()
        .try_for_each(|t| conn.execute_batch(&format!("DELETE FROM pg_catalog.{t}")))
        .and_then(|()| fill_tables(conn))
        .and_then(|()| super::information_schema::fill(conn));
    match filled {
        Ok(()) => conn.execute_batch("RELEASE catalog_fill"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO catalog_fill; RELEASE catalog_fill");
            Err(e)
        }
    }
}

fn fill_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO pg_catalog.pg_class (oid, relname, relnamespace, relam, relkind)
             SELECT rowid + {FIRST_USER_OID}, name,
                    CASE WHEN name LIKE 'tributary\\_%' ESCAPE '\\' THEN {TRIBUTARY} ELSE {PUBLIC} END,
                    CASE type WHEN 'table' THEN 2 ELSE 0 END,
                    CASE type WHEN 'table' THEN 'r' ELSE 'v' END
             FROM main.sqlite_schema
             WHERE type IN ('table', 'view')
               AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_tributary\\_%' ESCAPE '\\'"
        ),
        [],
    )?;
    // A view's definition: its query, as `pg_get_viewdef` gives it.
    conn.execute(
        "INSERT INTO pg_catalog.tributary_defs
         SELECT c.oid, trim(substr(s.sql, instr(upper(s.sql), ' AS ') + 4))
         FROM pg_catalog.pg_class c JOIN main.sqlite_schema s
             ON s.name = c.relname AND s.type = 'view'",
        [],
    )?;
    let relations: Vec<(i64, String, i64, String)> = conn
        .prepare("SELECT oid, relname, relnamespace, relkind FROM pg_catalog.pg_class")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::new();
    for (oid, name, namespace, kind) in relations {
        let columns = columns(conn, oid, &name)?;
        if kind == "r" {
            indexes(conn, oid, &name, namespace, &columns)?;
            tables.push((oid, name, namespace, columns));
        }
    }
    // After every table has its oid: a key names its parent's.
    for (oid, name, namespace, columns) in &tables {
        super::foreign_keys::fill(conn, *oid, name, *namespace, columns)?;
    }
    let off_path: std::collections::HashSet<i64> = conn
        .prepare(&format!(
            "SELECT oid FROM pg_catalog.pg_class WHERE relnamespace <> {PUBLIC}"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    OFF_PATH.with(|h| *h.borrow_mut() = off_path);
    Ok(())
}

/// A table's visible columns: name, declared type, whether it is in the
/// primary key.
pub(super) struct Column {
    pub(super) name: String,
    decl: String,
    pk: bool,
}

fn columns(conn: &Connection, oid: i64, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut info = conn.prepare_cached(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)",
    )?;
    let rows: Vec<(String, String, bool, Option<String>, i64)> = info
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut attribute = conn.prepare_cached(
        "INSERT INTO pg_catalog.pg_attribute (attrelid, attname, atttypid, attlen, attnum,
             atttypmod, attnotnull, atthasdef, attcollation, attstorage)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, CASE WHEN ?4 = -1 THEN 'x' ELSE 'p' END)",
    )?;
    let mut default = conn.prepare_cached(
        "INSERT INTO pg_catalog.pg_attrdef (adrelid, adnum, adbin) VALUES (?1, ?2, ?3)",
    )?;
    let mut out = Vec::new();
    for (name, decl, notnull, dflt, pk) in rows {
        if replica::is_hidden_column(&name) {
            continue;
        }
        let (ty, typmod) = catalog_type(&decl);
        let attnum = out.len() as i64 + 1;
        let collation = if super::tables::category(&ty) == "S" {
            100
        } else {
            0
        };
        attribute.execute(params![
            oid,
            name,
            ty.oid(),
            super::tables::type_len(&ty),
            attnum,
            typmod,
            notnull || pk > 0,
            dflt.is_some(),
            collation
        ])?;
        if let Some(d) = dflt {
            default.execute(params![oid, attnum, d])?;
        }
        out.push(Column {
            name,
            decl,
            pk: pk > 0,
        });
    }
    conn.execute(
        "UPDATE pg_catalog.pg_class SET relnatts = ?2 WHERE oid = ?1",
        params![oid, out.len() as i64],
    )?;
    Ok(out)
}

/// One index as PostgreSQL shows it.
struct Index {
    oid: i64,
    name: String,
    unique: bool,
    /// `p` primary key, `u` unique constraint, else a plain index.
    constraint: Option<char>,
    columns: Vec<String>,
}

fn indexes(
    conn: &Connection,
    table_oid: i64,
    table: &str,
    namespace: i64,
    columns: &[Column],
) -> rusqlite::Result<()> {
    let list: Vec<(String, bool, String)> = conn
        .prepare_cached("SELECT name, \"unique\", origin FROM pragma_index_list(?1)")?
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut found = Vec::new();
    for (sqlite_name, unique, origin) in list {
        let oid: i64 = conn
            .prepare_cached("SELECT rowid FROM main.sqlite_schema WHERE name = ?1")?
            .query_row([&sqlite_name], |r| r.get(0))?;
        let cols: Vec<String> = conn
            .prepare_cached("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?
            .query_map([&sqlite_name], |r| r.get::<_, Option<String>>(0))?
            .map(|r| r.map(|n| n.unwrap_or_else(|| "expression".to_owned())))
            .collect::<rusqlite::Result<_>>()?;
        let (name, constraint) = match origin.as_str() {
            "pk" => (format!("{table}_pkey"), Some('p')),
            "u" => (format!("{table}_{}_key", cols.join("_")), Some('u')),
            _ => (sqlite_name, None),
        };
        found.push(Index {
            oid: oid + FIRST_USER_OID,
            name,
            unique,
            constraint,
            columns: cols,
        });
    }
    let key: Vec<&Column> = columns.iter().filter(|c| c.pk).collect();
    if let [only] = key.as_slice()
        && only.decl.eq_ignore_ascii_case("INTEGER")
        && !found.iter().any(|i| i.constraint == Some('p'))
    {
        found.push(Index {
            oid: ROWID_KEY_INDEX + table_oid,
            name: format!("{table}_pkey"),
            unique: true,
            constraint: Some('p'),
            columns: vec![only.name.clone()],
        });
    }
    for index in &found {
        insert_index(conn, table_oid, table, namespace, columns, index)?;
    }
    if !found.is_empty() {
        conn.execute(
            "UPDATE pg_catalog.pg_class SET relhasindex = 1 WHERE oid = ?1",
            [table_oid],
        )?;
    }
    Ok(())
}

fn insert_index(
    conn: &Connection,
    table_oid: i64,
    table: &str,
    namespace: i64,
    columns: &[Column],
    index: &Index,
) -> rusqlite::Result<()> {
    let attnums: Vec<String> = index
        .columns
        .iter()
        .map(|c| {
            columns
                .iter()
                .position(|col| &col.name == c)
                .map_or(0, |p| p + 1)
                .to_string()
        })
        .collect();
    let n = index.columns.len() as i64;
    conn.prepare_cached(
        "INSERT INTO pg_catalog.pg_class (oid, relname, relnamespace, relam, relkind, relnatts)
         VALUES (?1, ?2, ?3, 403, 'i', ?4)",
    )?
    .execute(params![index.oid, index.name, namespace, n])?;
    let zeros = vec!["0"; index.columns.len()].join(" ");
    conn.prepare_cached(
        "INSERT INTO pg_catalog.pg_index (indexrelid, indrelid, indnatts, indnkeyatts,
             indisunique, indisprimary, indkey, indcollation, indclass, indoption)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
    )?
    .execute(params![
        index.oid,
        table_oid,
        n,
        index.unique,
        index.constraint == Some('p'),
        attnums.join(" "),
        zeros
    ])?;
    let quoted: Vec<String> = index.columns.iter().map(|c| pg_ident(c)).collect();
    let mut defs = conn.prepare_cached("INSERT INTO pg_catalog.tributary_defs VALUES (?1, ?2)")?;
    defs.execute(params![
        index.oid,
        format!(
            "CREATE {}INDEX {} ON public.{} USING btree ({})",
            if index.unique { "UNIQUE " } else { "" },
            pg_ident(&index.name),
            pg_ident(table),
            quoted.join(", ")
        )
    ])?;
    if let Some(kind) = index.constraint {
        let oid = CONSTRAINT + index.oid;
        conn.prepare_cached(
            "INSERT INTO pg_catalog.pg_constraint (oid, conname, connamespace, contype, conrelid,
                 conindid, conkey) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            oid,
            index.name,
            namespace,
            kind.to_string(),
            table_oid,
            index.oid,
            format!("{{{}}}", attnums.join(","))
        ])?;
        let what = if kind == 'p' { "PRIMARY KEY" } else { "UNIQUE" };
        defs.execute(params![oid, format!("{what} ({})", quoted.join(", "))])?;
    }
    Ok(())
}

/// An identifier as PostgreSQL prints it: quoted only when it must be.
pub(super) fn pg_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_owned()
    } else {
        replica::quote_ident(name)
    }
}

/// The type and modifier the catalog shows for a declared type: the type
/// results are sent as, with `varchar(n)`, `char(n)` and `numeric(p,s)`
/// kept as declared.
fn catalog_type(decl: &str) -> (Type, i64) {
    let upper = decl.to_ascii_uppercase();
    let (base, args) = match upper.split_once('(') {
        Some((b, rest)) => (b.trim(), rest.trim_end_matches(')')),
        None => (upper.trim(), ""),
    };
    let nums: Vec<i64> = args
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    match (base, nums.as_slice()) {
        ("VARCHAR" | "CHARACTER VARYING", [n]) => (Type::VARCHAR, n + 4),
        ("VARCHAR" | "CHARACTER VARYING", _) => (Type::VARCHAR, -1),
        ("CHAR" | "CHARACTER" | "BPCHAR", [n]) => (Type::BPCHAR, n + 4),
        ("NUMERIC" | "DECIMAL", [p]) => (Type::NUMERIC, (p << 16) + 4),
        ("NUMERIC" | "DECIMAL", [p, s]) => (Type::NUMERIC, ((p << 16) | s) + 4),
        _ => (crate::typing::pgtypes::type_for_decl(decl), -1),
    }
}
