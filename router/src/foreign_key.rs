//! Foreign keys. The router's speculation connection enforces them (SQLite's
//! `foreign_keys` pragma, on that connection only), so a write through a
//! router is checked against the rows it sees, as PostgreSQL checks it;
//! replicas apply records without checking again, so every replica takes
//! the same rows (writes from different routers that race, a parent's
//! delete against a child's insert, are the conflict policy's business).
//!
//! Checks run at the end of each statement: a speculation is always rolled
//! back, so a check deferred to COMMIT would never run. `DEFERRABLE` and
//! `INITIALLY DEFERRED` are accepted and dropped. Replicas' connections
//! turn the bundled SQLite's default enforcement off (`replica::meta`);
//! within one router, parent rows are locked by the transactions that
//! reference them (`speculate::references`).
//!
//! This file validates `ALTER TABLE … ADD FOREIGN KEY` against the rows
//! already there (the table rebuild is `rebuild`'s) and takes the deferral
//! out of `CREATE TABLE`.

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{ColumnOption, ForeignKeyConstraint, TableConstraint};

use crate::error::{Error, Result};
use crate::exec::sq;

fn refused(state: &'static str, message: String) -> Error {
    Error::Sqlite {
        context: "adding a foreign key",
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("SQLSTATE {state}: {message}")),
        ),
    }
}

/// Drops `DEFERRABLE`/`INITIALLY DEFERRED` from a table's foreign keys;
/// whether anything changed.
pub fn immediate(ct: &mut sqlparser::ast::CreateTable) -> bool {
    let mut changed = false;
    let mut clear = |fk: &mut ForeignKeyConstraint| {
        if fk.characteristics.take().is_some() {
            changed = true;
        }
    };
    for col in &mut ct.columns {
        for o in &mut col.options {
            if let ColumnOption::ForeignKey(fk) = &mut o.option {
                clear(fk);
            }
        }
    }
    for c in &mut ct.constraints {
        if let TableConstraint::ForeignKey(fk) = c {
            clear(fk);
        }
    }
    changed
}

/// Checks `fk` can be added to `table` (described by `info`): its columns
/// exist, the referenced columns are the parent's key or a unique index,
/// and every row's reference is there (NULLs reference nothing).
pub fn validate(
    conn: &Connection,
    info: &replica::TableInfo,
    table: &str,
    fk: &ForeignKeyConstraint,
) -> Result<()> {
    let q = replica::quote_ident;
    let mut local = Vec::with_capacity(fk.columns.len());
    for c in &fk.columns {
        let Some(found) = info
            .columns
            .iter()
            .find(|x| x.eq_ignore_ascii_case(&c.value) && !replica::is_hidden_column(x))
        else {
            return Err(refused(
                "42703",
                format!(
                    "column \"{}\" referenced in foreign key constraint does not exist",
                    c.value
                ),
            ));
        };
        local.push(found.clone());
    }
    let parent_name = fk
        .foreign_table
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let parent = replica::table_info(conn, &parent_name)
        .map_err(sq("reading the referenced table"))?
        .ok_or_else(|| {
            refused(
                "42P01",
                format!("relation \"{parent_name}\" does not exist"),
            )
        })?;
    let referred: Vec<String> = if fk.referred_columns.is_empty() {
        parent.pk.clone()
    } else {
        fk.referred_columns
            .iter()
            .map(|c| c.value.clone())
            .collect()
    };
    let unique = same_columns(&referred, &parent.pk)
        || unique_indexes(conn, &parent.name)?
            .iter()
            .any(|cols| same_columns(&referred, cols));
    if referred.len() != local.len()
        || !unique
        || referred.iter().any(|c| replica::is_hidden_column(c))
    {
        return Err(refused(
            "42830",
            format!(
                "there is no unique constraint matching given keys for referenced table \"{}\"",
                parent.name
            ),
        ));
    }
    let not_null: Vec<String> = local
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", q(c)))
        .collect();
    let matches: Vec<String> = local
        .iter()
        .zip(&referred)
        .map(|(c, p)| format!("p.{} = c.{}", q(p), q(c)))
        .collect();
    let orphan: Option<String> = conn
        .query_row(
            &format!(
                "SELECT {} FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {}) LIMIT 1",
                local
                    .iter()
                    .map(|c| format!("quote(c.{})", q(c)))
                    .collect::<Vec<_>>()
                    .join(" || ', ' || "),
                q(table),
                not_null.join(" AND "),
                q(&parent.name),
                matches.join(" AND ")
            ),
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sq("checking the rows against the foreign key"))?;
    if let Some(key) = orphan {
        let name = fk.name.as_ref().map_or_else(
            || format!("{table}_{}_fkey", local.join("_")),
            |n| n.value.clone(),
        );
        return Err(refused(
            "23503",
            format!(
                "insert or update on table \"{table}\" violates foreign key constraint \"{name}\": key ({})=({key}) is not present in table \"{}\"",
                local.join(", "),
                parent.name
            ),
        ));
    }
    Ok(())
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

/// The column lists of a table's unique indexes.
fn unique_indexes(conn: &Connection, table: &str) -> Result<Vec<Vec<String>>> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND partial = 0")
        .and_then(|mut s| s.query_map([table], |r| r.get(0))?.collect())
        .map_err(sq("reading the referenced table's indexes"))?;
    names
        .iter()
        .map(|n| {
            conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .and_then(|mut s| {
                    s.query_map([n], |r| r.get::<_, Option<String>>(0))?
                        .map(|r| r.map(Option::unwrap_or_default))
                        .collect()
                })
                .map_err(sq("reading the referenced table's indexes"))
        })
        .collect()
}

/// One foreign key as the schema declares it.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The table holding the reference.
    pub child: String,
    /// The referenced table, as the schema spells it (as written in the
    /// REFERENCES clause when no such table exists).
    pub parent: String,
    /// The referenced table's primary key (empty when it does not exist).
    pub parent_pk: Vec<String>,
    /// Child columns and the parent columns they reference, in order (the
    /// parent's key where the clause names none).
    pub pairs: Vec<(String, String)>,
}

/// Every foreign key of the main schema (what lock planning, DROP TABLE and
/// DROP CONSTRAINT check against).
pub fn declared(conn: &Connection) -> Result<Vec<Declared>> {
    let children: Vec<String> = conn
        .prepare_cached(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table'
                 AND upper(sql) LIKE '%REFERENCES%'",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sq("listing tables with foreign keys"))?;
    let mut out = Vec::new();
    for child in children {
        // (id, parent, from, to): `to` is NULL for the parent's key.
        type FkRow = (i64, String, String, Option<String>);
        let rows: Vec<FkRow> = conn
            .prepare_cached(
                "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1)
                     ORDER BY id, seq",
            )
            .and_then(|mut s| {
                s.query_map([&child], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect()
            })
            .map_err(sq("reading foreign keys"))?;
        let mut start = 0;
        while start < rows.len() {
            let id = rows[start].0;
            let end = rows[start..]
                .iter()
                .position(|r| r.0 != id)
                .map_or(rows.len(), |n| start + n);
            let group = &rows[start..end];
            start = end;
            let written = group[0].1.clone();
            let parent: Option<String> = conn
                .prepare_cached(
                    "SELECT name FROM main.sqlite_schema WHERE type = 'table'
                         AND name = ?1 COLLATE NOCASE",
                )
                .and_then(|mut s| s.query_row([&written], |r| r.get(0)).optional())
                .map_err(sq("reading a referenced table"))?;
            let parent_pk = match &parent {
                Some(p) => replica::table_info(conn, p)
                    .map_err(sq("reading a referenced table"))?
                    .map(|i| i.pk)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let pairs = if group.iter().all(|r| r.3.is_none()) {
                group
                    .iter()
                    .map(|r| r.2.clone())
                    .zip(parent_pk.iter().cloned())
                    .collect()
            } else {
                group
                    .iter()
                    .map(|r| (r.2.clone(), r.3.clone().unwrap_or_default()))
                    .collect()
            };
            out.push(Declared {
                child: child.clone(),
                parent: parent.unwrap_or(written),
                parent_pk,
                pairs,
            });
        }
    }
    Ok(out)
}
