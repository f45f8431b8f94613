//! `ALTER TABLE t ADD [CONSTRAINT c] PRIMARY KEY (cols)` and `… ADD
//! [CONSTRAINT c] FOREIGN KEY (cols) REFERENCES p [(cols)]`, which SQLite
//! cannot do in place, as the SQLite script that rebuilds the table: a copy
//! with the key (a primary key replaces the hidden row key), its rows, the
//! table's indexes, then the copy takes the table's name. A foreign key is
//! checked against the rows first, as PostgreSQL validates it. `ALTER
//! COLUMN … TYPE / SET NOT NULL / DROP NOT NULL / SET DEFAULT / DROP
//! DEFAULT` are rebuilds too (see `alter_column`).
//!
//! The script is made on the schema the statement sees (the replica, the
//! router's overlay, the session's block) and carried in the `ddl` record.
//! It starts with a guard that fails on any replica where the table's
//! definition is not the one the script was made from (a concurrent schema
//! change from another router, ordered before it on the log): the record is
//! then refused the same way everywhere instead of dropping a column.

use rusqlite::{Connection, OptionalExtension};
use sqlparser::ast::{
    AlterTableOperation, ColumnOption, ColumnOptionDef, Expr, ForeignKeyConstraint, Ident,
    IndexColumn, ObjectName, OrderByExpr, PrimaryKeyConstraint, Statement, TableConstraint,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::exec::sq;

/// Name the rebuilt table has until it replaces the original.
const REBUILD: &str = "_tributary_rebuild";

fn sql_error(state: &'static str, message: String) -> Error {
    Error::Sqlite {
        context: "rebuilding the table",
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("SQLSTATE {state}: {message}")),
        ),
    }
}

fn quote(name: &str) -> String {
    replica::quote_ident(name)
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What an `ALTER TABLE` adds that takes a rebuild.
enum Added {
    /// The key columns.
    PrimaryKey(Vec<String>),
    ForeignKey(Box<ForeignKeyConstraint>),
    /// `ALTER COLUMN` operations (see `alter_column`).
    Columns(Vec<(Ident, sqlparser::ast::AlterColumnOperation)>),
    /// `DROP CONSTRAINT [IF EXISTS] name` (see `drop_constraint`).
    DropConstraint {
        name: String,
        if_exists: bool,
    },
}

/// `ALTER TABLE t ADD [CONSTRAINT c] PRIMARY KEY (cols)` or `… FOREIGN KEY
/// …` as its only operation: the table and what it adds.
fn added_constraint(sql: &str) -> Option<(String, Added)> {
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("PRIMARY")
        && !upper.contains("FOREIGN")
        && !upper.contains("ALTER COLUMN")
        && !upper.contains("DROP CONSTRAINT")
    {
        return None;
    }
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let [Statement::AlterTable(alter)] = stmts.as_slice() else {
        return None;
    };
    let columns: Vec<(Ident, sqlparser::ast::AlterColumnOperation)> = alter
        .operations
        .iter()
        .filter_map(|op| match op {
            AlterTableOperation::AlterColumn { column_name, op } => {
                Some((column_name.clone(), op.clone()))
            }
            _ => None,
        })
        .collect();
    if !columns.is_empty() && columns.len() == alter.operations.len() {
        let table = alter.name.0.last()?.as_ident()?.value.clone();
        return Some((table, Added::Columns(columns)));
    }
    if let [
        AlterTableOperation::DropConstraint {
            if_exists, name, ..
        },
    ] = alter.operations.as_slice()
    {
        let table = alter.name.0.last()?.as_ident()?.value.clone();
        return Some((
            table,
            Added::DropConstraint {
                name: name.value.clone(),
                if_exists: *if_exists,
            },
        ));
    }
    let [AlterTableOperation::AddConstraint { constraint, .. }] = alter.operations.as_slice()
    else {
        return None;
    };
    let table = alter.name.0.last()?.as_ident()?.value.clone();
    let added = match constraint {
        TableConstraint::PrimaryKey(pk) => Added::PrimaryKey(
            pk.columns
                .iter()
                .map(|c| match &c.column.expr {
                    Expr::Identifier(i) => Some(i.value.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        TableConstraint::ForeignKey(fk) => {
            let mut fk = fk.clone();
            // Checked at each statement: a speculation never commits, so a
            // deferred check would never run (docs: README, foreign keys).
            fk.characteristics = None;
            Added::ForeignKey(Box::new(fk))
        }
        _ => return None,
    };
    Some((table, added))
}

/// The script to run instead of `sql`, when `sql` adds a primary or
/// foreign key.
pub fn plan(conn: &Connection, sql: &str) -> Result<Option<String>> {
    let Some((table, added)) = added_constraint(sql) else {
        return Ok(None);
    };
    let created: Option<(String, String)> = conn
        .query_row(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [&table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sq("reading the table's definition"))?;
    let Some((table, created)) = created else {
        return Err(sql_error(
            "42P01",
            format!("relation \"{table}\" does not exist"),
        ));
    };
    let mut ct = match Parser::parse_sql(&PostgreSqlDialect {}, &created)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, &created))
        .ok()
        .and_then(|s| s.into_iter().next())
    {
        Some(Statement::CreateTable(ct)) => ct,
        _ => {
            return Err(Error::Unsupported {
                what: format!("ADD PRIMARY KEY on \"{table}\""),
                why: "its definition could not be read back to rebuild it".into(),
            });
        }
    };
    let info = replica::table_info(conn, &table)
        .map_err(sq("reading the table schema"))?
        .ok_or_else(|| sql_error("42P01", format!("relation \"{table}\" does not exist")))?;
    let keep_hidden = match added {
        Added::PrimaryKey(key) => {
            add_primary_key(&mut ct, &info, &table, &key)?;
            false
        }
        Added::ForeignKey(fk) => {
            crate::foreign_key::validate(conn, &info, &table, &fk)?;
            ct.constraints.push(TableConstraint::ForeignKey(*fk));
            true
        }
        Added::Columns(ops) => {
            crate::alter_column::apply(conn, &mut ct, &info, &table, &ops)?;
            true
        }
        Added::DropConstraint { name, if_exists } => {
            if !crate::drop_constraint::apply(conn, &mut ct, &table, &name, if_exists)? {
                // IF EXISTS, and it does not: nothing to do, as in PostgreSQL.
                return Ok(Some("SELECT 1;".into()));
            }
            true
        }
    };
    ct.name = ObjectName::from(vec![Ident::with_quote('"', REBUILD)]);
    ct.if_not_exists = false;
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )
        .and_then(|mut s| {
            s.query_map([&table], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(sq("reading the table's indexes"))?;
    let cols = info
        .columns
        .iter()
        .filter(|c| keep_hidden || !replica::is_hidden_column(c))
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let (q, rebuild) = (quote(&table), quote(REBUILD));
    let mut script = vec![
        // The guard: a CHECK that fails unless the definition is the same.
        "CREATE TEMP TABLE IF NOT EXISTS _tributary_guard (same INTEGER CHECK (same))".to_owned(),
        format!(
            "INSERT INTO temp._tributary_guard SELECT (SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = {}) IS {}",
            literal(&table),
            literal(&created)
        ),
        "DROP TABLE temp._tributary_guard".to_owned(),
        format!("DROP TABLE IF EXISTS {rebuild}"),
        ct.to_string(),
        format!("INSERT INTO {rebuild} ({cols}) SELECT {cols} FROM {q}"),
        // The legacy rename leaves views that name the table alone (they
        // name it again once the copy takes its name).
        "PRAGMA legacy_alter_table = ON".to_owned(),
        format!("DROP TABLE {q}"),
        format!("ALTER TABLE {rebuild} RENAME TO {q}"),
        "PRAGMA legacy_alter_table = OFF".to_owned(),
    ];
    script.extend(indexes);
    if !keep_hidden {
        // Conflict metadata was kept by the hidden key, which is gone.
        for meta in ["_tributary_rows", "_tributary_cols"] {
            script.push(format!(
                "DELETE FROM {meta} WHERE tbl = {}",
                literal(&table)
            ));
        }
    }
    Ok(Some(script.join(";\n") + ";"))
}

/// The new definition with the primary key on `key`, replacing the hidden
/// row key.
fn add_primary_key(
    ct: &mut sqlparser::ast::CreateTable,
    info: &replica::TableInfo,
    table: &str,
    key: &[String],
) -> Result<()> {
    let hidden = info.pk.len() == 1 && replica::is_hidden_column(&info.pk[0]);
    if !info.pk.is_empty() && !hidden {
        return Err(sql_error(
            "42P16",
            format!("multiple primary keys for table \"{table}\" are not allowed"),
        ));
    }
    let mut key_columns = Vec::with_capacity(key.len());
    for k in key {
        let Some(column) = info
            .columns
            .iter()
            .find(|c| c.eq_ignore_ascii_case(k) && !replica::is_hidden_column(c))
        else {
            return Err(sql_error(
                "42703",
                format!("column \"{k}\" of relation \"{table}\" does not exist"),
            ));
        };
        key_columns.push(column.clone());
    }
    ct.columns
        .retain(|c| !replica::is_hidden_column(&c.name.value));
    for c in &mut ct.columns {
        let is_key = key_columns.contains(&c.name.value);
        if is_key && !c.options.iter().any(|o| o.option == ColumnOption::NotNull) {
            // PostgreSQL's key columns are NOT NULL; SQLite's are not
            // unless said (a rowid alias aside).
            c.options.push(ColumnOptionDef {
                name: None,
                option: ColumnOption::NotNull,
            });
        }
    }
    ct.constraints
        .push(TableConstraint::PrimaryKey(PrimaryKeyConstraint {
            name: None,
            index_name: None,
            index_type: None,
            columns: key_columns
                .iter()
                .map(|k| IndexColumn {
                    column: OrderByExpr {
                        expr: Expr::Identifier(Ident::with_quote('"', k.clone())),
                        options: Default::default(),
                        with_fill: None,
                    },
                    operator_class: None,
                })
                .collect(),
            include: Vec::new(),
            index_options: Vec::new(),
            characteristics: None,
        }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch(&format!(
            "CREATE TABLE _tributary_rows (tbl TEXT, pk TEXT);
             CREATE TABLE _tributary_cols (tbl TEXT, pk TEXT, col TEXT);
             {sql}"
        ))
        .expect("schema");
        c
    }

    fn run(c: &Connection, sql: &str) -> Result<()> {
        let script = plan(c, sql)?.expect("a rebuild");
        c.execute_batch(&script).map_err(sq("running the rebuild"))
    }

    fn state(r: Result<()>) -> String {
        r.err().map(|e| e.sqlstate().to_owned()).unwrap_or_default()
    }

    #[test]
    fn add_primary_key_rebuilds_keeping_rows_and_indexes() -> Result<()> {
        let k = replica::HIDDEN_KEY;
        let c = db(&format!(
            "CREATE TABLE h (a int NOT NULL, b TEXT DEFAULT 'x', {k} INTEGER PRIMARY KEY);
             CREATE INDEX h_b ON h (b);
             INSERT INTO h (a, b, {k}) VALUES (1, 'p', 10), (2, 'q', 11);"
        ));
        run(&c, "ALTER TABLE h ADD PRIMARY KEY (a)")?;
        let info = replica::table_info(&c, "h")
            .map_err(sq("info"))?
            .expect("table");
        assert_eq!(info.pk, vec!["a".to_owned()]);
        assert_eq!(info.columns, vec!["a".to_owned(), "b".to_owned()]);
        let rows: Vec<(i64, String)> = c
            .prepare("SELECT a, b FROM h ORDER BY a")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(sq("rows"))?;
        assert_eq!(rows, vec![(1, "p".into()), (2, "q".into())]);
        let index: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'h_b' AND tbl_name = 'h'",
                [],
                |r| r.get(0),
            )
            .map_err(sq("index"))?;
        assert_eq!(index, 1);
        c.execute("INSERT INTO h (a) VALUES (3)", [])
            .map_err(sq("default kept"))?;
        assert!(c.execute("INSERT INTO h (a) VALUES (3)", []).is_err());
        Ok(())
    }

    #[test]
    fn refusals_carry_postgresql_sqlstates() {
        let k = replica::HIDDEN_KEY;
        let c = db(&format!(
            "CREATE TABLE n (a int, {k} INTEGER PRIMARY KEY);
             INSERT INTO n (a) VALUES (1), (NULL);
             CREATE TABLE d (a int, {k} INTEGER PRIMARY KEY);
             INSERT INTO d (a) VALUES (1), (1);
             CREATE TABLE p (a int PRIMARY KEY, b int);"
        ));
        assert_eq!(state(run(&c, "ALTER TABLE n ADD PRIMARY KEY (a)")), "23502");
        assert_eq!(state(run(&c, "ALTER TABLE d ADD PRIMARY KEY (a)")), "23505");
        assert_eq!(state(run(&c, "ALTER TABLE p ADD PRIMARY KEY (b)")), "42P16");
        assert_eq!(
            state(run(&c, "ALTER TABLE d ADD PRIMARY KEY (zz)")),
            "42703"
        );
        assert_eq!(
            state(run(&c, "ALTER TABLE nope ADD PRIMARY KEY (a)")),
            "42P01"
        );
    }

    #[test]
    fn a_changed_definition_stops_the_script() -> Result<()> {
        let k = replica::HIDDEN_KEY;
        let c = db(&format!("CREATE TABLE h (a int, {k} INTEGER PRIMARY KEY);"));
        let script =
            plan(&c, "ALTER TABLE h ADD CONSTRAINT h_pkey PRIMARY KEY (a)")?.expect("a rebuild");
        // Another router's column lands first.
        c.execute_batch("ALTER TABLE h ADD COLUMN z TEXT")
            .map_err(sq("alter"))?;
        assert!(c.execute_batch(&script).is_err(), "the guard held");
        Ok(())
    }

    #[test]
    fn add_foreign_key_checks_rows_and_keeps_the_table() -> Result<()> {
        let k = replica::HIDDEN_KEY;
        let c = db(&format!(
            "CREATE TABLE par (id INTEGER PRIMARY KEY, code TEXT UNIQUE, note TEXT);
             INSERT INTO par VALUES (1, 'a', 'x');
             CREATE TABLE kid (p INT4, {k} INTEGER PRIMARY KEY);
             INSERT INTO kid (p, {k}) VALUES (1, 5), (NULL, 6);
             CREATE TABLE bad (p INT4, {k} INTEGER PRIMARY KEY);
             INSERT INTO bad (p) VALUES (2);"
        ));
        c.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(sq("pragma"))?;
        run(
            &c,
            "ALTER TABLE kid ADD CONSTRAINT kid_p_fkey FOREIGN KEY (p) REFERENCES par (id) DEFERRABLE INITIALLY DEFERRED",
        )?;
        let rows: i64 = c
            .query_row(
                &format!("SELECT count(*) FROM kid WHERE {k} IN (5, 6)"),
                [],
                |r| r.get(0),
            )
            .map_err(sq("rows"))?;
        assert_eq!(rows, 2, "rows and their hidden keys kept");
        assert!(
            c.execute("INSERT INTO kid (p) VALUES (9)", []).is_err(),
            "enforced"
        );
        let orphan = run(&c, "ALTER TABLE bad ADD FOREIGN KEY (p) REFERENCES par");
        assert!(
            orphan
                .as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("(2)")),
            "{orphan:?}"
        );
        assert_eq!(state(orphan), "23503");
        assert_eq!(
            state(run(
                &c,
                "ALTER TABLE bad ADD FOREIGN KEY (p) REFERENCES par (note)"
            )),
            "42830"
        );
        assert_eq!(
            state(run(
                &c,
                "ALTER TABLE bad ADD FOREIGN KEY (p) REFERENCES nope"
            )),
            "42P01"
        );
        assert_eq!(
            state(run(
                &c,
                "ALTER TABLE bad ADD FOREIGN KEY (zz) REFERENCES par"
            )),
            "42703"
        );
        c.execute_batch("DELETE FROM bad").map_err(sq("delete"))?;
        run(
            &c,
            "ALTER TABLE bad ADD FOREIGN KEY (p) REFERENCES par (code)",
        )?;
        Ok(())
    }

    #[test]
    fn other_statements_are_left_alone() -> Result<()> {
        let c = db("CREATE TABLE t (id INTEGER PRIMARY KEY)");
        assert_eq!(
            plan(&c, "ALTER TABLE t ADD COLUMN primary_note TEXT")?,
            None
        );
        Ok(())
    }
}
