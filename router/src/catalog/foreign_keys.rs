//! `pg_constraint` rows for foreign keys (SQLite's `pragma_foreign_key_list`)
//! with the parent's columns and backing index, and the definitions
//! `pg_get_constraintdef` returns (`FOREIGN KEY (p) REFERENCES par(id) ON
//! DELETE CASCADE`). Tables with one, either side, are marked as having
//! triggers, where PostgreSQL keeps them and psql looks.

use rusqlite::{Connection, params};

use super::fill::{Column, pg_ident};

/// Oid of a foreign key: this plus 64 × its table's oid plus SQLite's id.
const FOREIGN_KEY: i64 = 3_000_000;

/// One foreign key as SQLite lists it, its columns gathered.
struct ForeignKey {
    id: i64,
    parent: String,
    from: Vec<String>,
    /// Empty for `REFERENCES p` without columns (p's key).
    to: Vec<String>,
    on_update: String,
    on_delete: String,
}

/// A table's foreign keys (SQLite's `pragma_foreign_key_list`), named as
/// PostgreSQL names them (`t_col_fkey`).
pub(super) fn fill(
    conn: &Connection,
    table_oid: i64,
    table: &str,
    namespace: i64,
    columns: &[Column],
) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String, String, Option<String>, String, String)> = conn
        .prepare_cached(
            "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
             FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )?
        .query_map([table], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut keys: Vec<ForeignKey> = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in rows {
        match keys.last_mut() {
            Some(k) if k.id == id => {
                k.from.push(from);
                k.to.extend(to);
            }
            _ => keys.push(ForeignKey {
                id,
                parent,
                from: vec![from],
                to: to.into_iter().collect(),
                on_update,
                on_delete,
            }),
        }
    }
    for ForeignKey {
        id,
        parent,
        from,
        to,
        on_update,
        on_delete,
    } in keys
    {
        let parent_oid: Option<i64> = conn
            .prepare_cached(
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = ?1 AND relkind = 'r'",
            )?
            .query_row([&parent], |r| r.get(0))
            .ok();
        let to = if to.is_empty() {
            // `REFERENCES p` without columns: p's key.
            conn.prepare_cached("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")?
                .query_map([&parent], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?
        } else {
            to
        };
        let attnum = |c: &String| {
            columns
                .iter()
                .position(|col| &col.name == c)
                .map_or(0, |p| p + 1)
                .to_string()
        };
        // The parent's columns by number, and the index that backs them
        // (its key or a unique index), as PostgreSQL records them.
        let mut parent_attnums = Vec::with_capacity(to.len());
        for c in &to {
            let n: Option<i64> = conn
                .prepare_cached(
                    "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = ?1 AND attname = ?2",
                )?
                .query_row(params![parent_oid.unwrap_or(0), c], |r| r.get(0))
                .ok();
            parent_attnums.push(n.unwrap_or(0).to_string());
        }
        let backing: i64 = conn
            .prepare_cached(
                "SELECT indexrelid FROM pg_catalog.pg_index WHERE indrelid = ?1 AND indkey = ?2 AND indisunique",
            )?
            .query_row(params![parent_oid.unwrap_or(0), parent_attnums.join(" ")], |r| {
                r.get(0)
            })
            .unwrap_or(0);
        let oid = FOREIGN_KEY + 64 * table_oid + id;
        let name = format!("{table}_{}_fkey", from.join("_"));
        conn.prepare_cached(
            "INSERT INTO pg_catalog.pg_constraint (oid, conname, connamespace, contype, conrelid,
                 conindid, confrelid, confupdtype, confdeltype, confmatchtype, conkey, confkey)
             VALUES (?1, ?2, ?3, 'f', ?4, ?9, ?5, ?6, ?7, 's', ?8, ?10)",
        )?
        .execute(params![
            oid,
            name,
            namespace,
            table_oid,
            parent_oid.unwrap_or(0),
            action_code(&on_update),
            action_code(&on_delete),
            format!(
                "{{{}}}",
                from.iter().map(attnum).collect::<Vec<_>>().join(",")
            ),
            backing,
            format!("{{{}}}", parent_attnums.join(","))
        ])?;
        let mut def = format!(
            "FOREIGN KEY ({}) REFERENCES {}({})",
            from.iter()
                .map(|c| pg_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            pg_ident(&parent),
            to.iter()
                .map(|c| pg_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (when, action) in [("UPDATE", &on_update), ("DELETE", &on_delete)] {
            if action != "NO ACTION" {
                def.push_str(&format!(" ON {when} {action}"));
            }
        }
        conn.prepare_cached("INSERT INTO pg_catalog.tributary_defs VALUES (?1, ?2)")?
            .execute(params![oid, def])?;
        // PostgreSQL keeps foreign keys with triggers, and psql looks for
        // them only on tables that have some.
        conn.prepare_cached(
            "UPDATE pg_catalog.pg_class SET relhastriggers = 1 WHERE oid IN (?1, ?2)",
        )?
        .execute(params![table_oid, parent_oid.unwrap_or(0)])?;
    }
    Ok(())
}

/// PostgreSQL's one-letter code for a referential action.
fn action_code(action: &str) -> &'static str {
    match action {
        "CASCADE" => "c",
        "RESTRICT" => "r",
        "SET NULL" => "n",
        "SET DEFAULT" => "d",
        _ => "a",
    }
}
