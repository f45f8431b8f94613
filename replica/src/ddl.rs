//! Running a `ddl` record's statement, the one way every replica and the
//! router's speculation run schema changes.
//!
//! Most statements go to SQLite as written. Two PostgreSQL features SQLite
//! lacks are built here, from the schema at the record's log position, so
//! every replica computes the same result:
//!
//! * tables without a primary key carry a hidden, cluster-unique row key,
//!   the [`HIDDEN_KEY`] column (`INTEGER PRIMARY KEY`, so SQLite's rowid,
//!   kept stable by VACUUM), which the router fills from generated-key
//!   ranges and leaves out of `SELECT *`;
//! * `ALTER TABLE t ADD [CONSTRAINT c] PRIMARY KEY (cols)`, which SQLite
//!   cannot do in place, rebuilds the table: a copy with the key, the rows,
//!   the table's indexes, then the copy takes the table's name. The hidden
//!   key goes away with it.

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{AlterTableOperation, Statement, TableConstraint};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::schema::quote_ident;

/// The hidden row key of a table created without a primary key.
pub const HIDDEN_KEY: &str = "_tributary_rowid";

/// Whether `column` is a hidden row key (left out of `SELECT *`, COPY and
/// INSERTs without a column list).
pub fn is_hidden_column(column: &str) -> bool {
    column.eq_ignore_ascii_case(HIDDEN_KEY)
}

/// Name the rebuilt table has until it replaces the original.
const REBUILD_NAME: &str = "_tributary_rebuild";

/// An error a client sees with a PostgreSQL SQLSTATE (the router maps the
/// `SQLSTATE xxxxx:` prefix); deterministic, so a replica skips the record.
fn refused(state: &str, message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(format!("SQLSTATE {state}: {message}")),
    )
}

/// Runs one `ddl` record's SQL on `conn` (inside the caller's savepoint).
pub fn run_ddl(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    if let Some((table, key)) = added_primary_key(sql) {
        return add_primary_key(conn, &table, &key);
    }
    conn.execute_batch(sql)
}

/// `ALTER TABLE t ADD [CONSTRAINT c] PRIMARY KEY (cols)` as its only
/// operation: the table and the key columns.
fn added_primary_key(sql: &str) -> Option<(String, Vec<String>)> {
    // Cheap test first: this runs for every DDL record.
    if !sql.to_ascii_uppercase().contains("PRIMARY") {
        return None;
    }
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let [Statement::AlterTable(alter)] = stmts.as_slice() else {
        return None;
    };
    let [
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::PrimaryKey(pk),
            ..
        },
    ] = alter.operations.as_slice()
    else {
        return None;
    };
    let table = alter.name.0.last()?.as_ident()?.value.clone();
    let columns = pk
        .columns
        .iter()
        .map(|c| match &c.column.expr {
            sqlparser::ast::Expr::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((table, columns))
}

fn parse_create(sql: &str) -> Option<sqlparser::ast::CreateTable> {
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, sql))
        .ok()?;
    match stmts.into_iter().next()? {
        Statement::CreateTable(ct) => Some(ct),
        _ => None,
    }
}

/// Rebuilds `table` with `key` as its primary key, as PostgreSQL's
/// `ADD PRIMARY KEY` would: refused when the table has a real key already,
/// when a key column is missing or holds NULL, or when keys repeat.
fn add_primary_key(conn: &Connection, table: &str, key: &[String]) -> rusqlite::Result<()> {
    let created: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| r.get(0),
        )
        .optional()?;
    let Some(created) = created else {
        return Err(refused(
            "42P01",
            format!("relation \"{table}\" does not exist"),
        ));
    };
    let Some(mut ct) = parse_create(&created) else {
        return Err(refused(
            "0A000",
            format!("ADD PRIMARY KEY cannot rebuild \"{table}\": its definition could not be read"),
        ));
    };
    // The stored spelling of the name (the client's may differ in case).
    let table = ct
        .name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map_or_else(|| table.to_owned(), |i| i.value.clone());
    let info = crate::schema::table_info(conn, &table)?.unwrap_or_else(|| crate::TableInfo {
        name: table.clone(),
        columns: Vec::new(),
        decl_types: Vec::new(),
        pk: Vec::new(),
    });
    let hidden = info.pk.len() == 1 && is_hidden_column(&info.pk[0]);
    if !info.pk.is_empty() && !hidden {
        return Err(refused(
            "42P16",
            format!("multiple primary keys for table \"{table}\" are not allowed"),
        ));
    }
    for k in key {
        if !info.columns.iter().any(|c| c.eq_ignore_ascii_case(k)) || is_hidden_column(k) {
            return Err(refused(
                "42703",
                format!("column \"{k}\" of relation \"{table}\" does not exist"),
            ));
        }
        let has_null: bool = conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {} IS NULL)",
                quote_ident(&table),
                quote_ident(k)
            ),
            [],
            |r| r.get(0),
        )?;
        if has_null {
            return Err(refused(
                "23502",
                format!("column \"{k}\" of relation \"{table}\" contains null values"),
            ));
        }
    }
    ct.columns.retain(|c| !is_hidden_column(&c.name.value));
    for c in &mut ct.columns {
        if key.iter().any(|k| k.eq_ignore_ascii_case(&c.name.value))
            && !c
                .options
                .iter()
                .any(|o| matches!(o.option, sqlparser::ast::ColumnOption::NotNull))
        {
            // PostgreSQL's key columns are NOT NULL; SQLite's are not
            // unless said (except a rowid alias).
            c.options.push(sqlparser::ast::ColumnOptionDef {
                name: None,
                option: sqlparser::ast::ColumnOption::NotNull,
            });
        }
    }
    ct.constraints.push(TableConstraint::PrimaryKey(
        sqlparser::ast::PrimaryKeyConstraint {
            name: None,
            index_name: None,
            index_type: None,
            columns: key
                .iter()
                .map(|k| sqlparser::ast::IndexColumn {
                    column: sqlparser::ast::OrderByExpr {
                        expr: sqlparser::ast::Expr::Identifier(sqlparser::ast::Ident::with_quote(
                            '"',
                            k.clone(),
                        )),
                        options: Default::default(),
                        with_fill: None,
                    },
                    operator_class: None,
                })
                .collect(),
            include: Vec::new(),
            index_options: Vec::new(),
            characteristics: None,
        },
    ));
    ct.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::with_quote(
        '"',
        REBUILD_NAME,
    )]);
    ct.if_not_exists = false;
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )?
        .query_map([&table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let visible: Vec<String> = info
        .columns
        .iter()
        .filter(|c| !is_hidden_column(c))
        .map(|c| quote_ident(c))
        .collect();
    let cols = visible.join(", ");
    let q = quote_ident(&table);
    let rebuild = quote_ident(REBUILD_NAME);
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {rebuild}; {ct};"))?;
    let copied = conn.execute(
        &format!("INSERT INTO {rebuild} ({cols}) SELECT {cols} FROM {q}"),
        [],
    );
    if let Err(e) = copied {
        return Err(match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                refused(
                    "23505",
                    format!(
                        "could not create unique index \"{table}_pkey\": key ({}) is duplicated",
                        key.join(", ")
                    ),
                )
            }
            other => other,
        });
    }
    // The legacy rename leaves views and triggers that name the table alone
    // (they name it again once the copy takes its name).
    let legacy: bool = conn.query_row("PRAGMA legacy_alter_table", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA legacy_alter_table = ON")?;
    let renamed = conn.execute_batch(&format!(
        "DROP TABLE {q}; ALTER TABLE {rebuild} RENAME TO {q};"
    ));
    conn.execute_batch(&format!(
        "PRAGMA legacy_alter_table = {}",
        if legacy { "ON" } else { "OFF" }
    ))?;
    renamed?;
    for index in indexes {
        conn.execute_batch(&index)?;
    }
    // Conflict metadata was kept by the hidden key, which no longer exists.
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = '_tributary_rows')",
        [],
        |r| r.get(0),
    )?;
    if has_meta {
        conn.execute("DELETE FROM _tributary_rows WHERE tbl = ?1", [&table])?;
        conn.execute("DELETE FROM _tributary_cols WHERE tbl = ?1", [&table])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch(sql).expect("schema");
        c
    }

    fn message(e: rusqlite::Error) -> String {
        e.to_string()
    }

    #[test]
    fn add_primary_key_rebuilds_keeping_rows_and_indexes() {
        let c = db(&format!(
            "CREATE TABLE h (a int NOT NULL, b TEXT DEFAULT 'x', {HIDDEN_KEY} INTEGER PRIMARY KEY);
             CREATE INDEX h_b ON h (b);
             INSERT INTO h (a, b, {HIDDEN_KEY}) VALUES (1, 'p', 10), (2, 'q', 11);"
        ));
        run_ddl(&c, "ALTER TABLE h ADD PRIMARY KEY (a)").expect("rebuild");
        let info = crate::schema::table_info(&c, "h")
            .expect("info")
            .expect("table");
        assert_eq!(info.pk, vec!["a".to_owned()]);
        assert_eq!(info.columns, vec!["a".to_owned(), "b".to_owned()]);
        let rows: Vec<(i64, String)> = c
            .prepare("SELECT a, b FROM h ORDER BY a")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(rows, vec![(1, "p".into()), (2, "q".into())]);
        let index: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'h_b' AND tbl_name = 'h'",
                [],
                |r| r.get(0),
            )
            .expect("index");
        assert_eq!(index, 1);
        c.execute("INSERT INTO h (a) VALUES (3)", [])
            .expect("default kept");
        let dup = c.execute("INSERT INTO h (a) VALUES (3)", []);
        assert!(dup.is_err(), "the new key is enforced");
    }

    #[test]
    fn add_primary_key_refuses_nulls_duplicates_and_a_second_key() {
        let c = db(&format!(
            "CREATE TABLE h (a int, {HIDDEN_KEY} INTEGER PRIMARY KEY);
             INSERT INTO h (a) VALUES (1), (NULL);
             CREATE TABLE d (a int, {HIDDEN_KEY} INTEGER PRIMARY KEY);
             INSERT INTO d (a) VALUES (1), (1);
             CREATE TABLE k (a int PRIMARY KEY, b int);"
        ));
        let e = message(run_ddl(&c, "ALTER TABLE h ADD PRIMARY KEY (a)").expect_err("null"));
        assert!(
            e.contains("SQLSTATE 23502") && e.contains("null values"),
            "{e}"
        );
        let e = message(run_ddl(&c, "ALTER TABLE d ADD PRIMARY KEY (a)").expect_err("dup"));
        assert!(e.contains("SQLSTATE 23505"), "{e}");
        let e = message(run_ddl(&c, "ALTER TABLE k ADD PRIMARY KEY (b)").expect_err("second"));
        assert!(e.contains("SQLSTATE 42P16"), "{e}");
        let e = message(run_ddl(&c, "ALTER TABLE d ADD PRIMARY KEY (zz)").expect_err("column"));
        assert!(e.contains("SQLSTATE 42703"), "{e}");
        let e = message(run_ddl(&c, "ALTER TABLE nope ADD PRIMARY KEY (a)").expect_err("table"));
        assert!(e.contains("SQLSTATE 42P01"), "{e}");
    }

    #[test]
    fn other_statements_run_as_written() {
        let c = db("CREATE TABLE t (id INTEGER PRIMARY KEY)");
        run_ddl(&c, "ALTER TABLE t ADD COLUMN primary_note TEXT").expect("add column");
        run_ddl(&c, "CREATE TABLE u (id INTEGER PRIMARY KEY); DROP TABLE u").expect("batch");
    }
}
