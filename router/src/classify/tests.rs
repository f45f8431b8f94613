//! Classification: kinds, refusals, parameter and projection hints.

use super::*;

fn kind(sql: &str) -> Result<Kind> {
    classify(sql, 1 << 20).map(|mut v| v.remove(0).kind)
}

#[test]
fn serial_and_identity_become_generated_integer_keys() -> Result<()> {
    let one = |sql: &str| -> Result<String> { Ok(classify(sql, 1 << 20)?.remove(0).sql) };
    assert_eq!(
        one("CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)")?,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"
    );
    assert_eq!(
        one("CREATE TABLE h (hid BIGINT GENERATED ALWAYS AS IDENTITY, v INT, PRIMARY KEY (hid))")?,
        "CREATE TABLE h (hid INTEGER, v INT4, PRIMARY KEY (hid))"
    );
    // PostgreSQL's integer widths are kept; SQLite's rowid key stays.
    assert_eq!(
        one("CREATE TABLE w (id integer PRIMARY KEY, a smallint, b int, c integer, d bigint)")?,
        "CREATE TABLE w (id INTEGER PRIMARY KEY, a INT2, b INT4, c INT4, d BIGINT)"
    );
    assert_eq!(
        one("ALTER TABLE w ADD COLUMN e integer NOT NULL DEFAULT 0")?,
        "ALTER TABLE w ADD COLUMN e INT4 NOT NULL DEFAULT 0"
    );
    // Untouched when there is nothing to translate.
    assert_eq!(
        one("create table t (id bigint primary key)")?,
        "create table t (id bigint primary key)"
    );
    let err = classify("CREATE TABLE t (id INT PRIMARY KEY, n BIGSERIAL)", 1 << 20)
        .err()
        .map(|e| e.sqlstate());
    assert_eq!(err, Some("0A000"));
    Ok(())
}

#[test]
fn kinds() {
    assert_eq!(kind("SELECT 1").ok(), Some(Kind::Read));
    assert_eq!(
        kind("insert into t values (1)").ok(),
        Some(Kind::Write { tag: "INSERT" })
    );
    assert_eq!(
        kind("REPLACE INTO t (id) VALUES (1)").ok(),
        Some(Kind::Write { tag: "INSERT" })
    );
    assert_eq!(
        kind("INSERT OR REPLACE INTO t (id) VALUES (1)").ok(),
        Some(Kind::Write { tag: "INSERT" })
    );
    assert_eq!(
        kind("UPDATE t SET a = 1").ok(),
        Some(Kind::Write { tag: "UPDATE" })
    );
    assert_eq!(
        kind("DELETE FROM t").ok(),
        Some(Kind::Write { tag: "DELETE" })
    );
    assert_eq!(kind("BEGIN").ok(), Some(Kind::Begin));
    assert_eq!(kind("commit").ok(), Some(Kind::Commit));
    assert_eq!(kind("ROLLBACK").ok(), Some(Kind::Rollback));
    assert_eq!(
        kind("SET tributary.ack = 'sync'").ok(),
        Some(Kind::SetTributary {
            name: "ack".into(),
            value: "sync".into()
        })
    );
    assert_eq!(
        kind("SET lock_timeout = '2s'").ok(),
        Some(Kind::SetLockTimeout { value: "2s".into() })
    );
    assert_eq!(
        kind("set tributary.max_staleness_ms to 50").ok(),
        Some(Kind::SetTributary {
            name: "max_staleness_ms".into(),
            value: "50".into()
        })
    );
    assert_eq!(
        kind("SET client_encoding = 'UTF8'").ok(),
        Some(Kind::SetOther)
    );
    assert_eq!(
        kind("SHOW tributary.ack").ok(),
        Some(Kind::Show {
            name: "tributary.ack".into()
        })
    );
    assert_eq!(kind("PRAGMA table_info(t)").ok(), Some(Kind::Read));
    assert!(matches!(
        kind("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)"),
        Ok(Kind::Ddl { .. })
    ));
    assert!(matches!(
        kind("CREATE TABLE t (a INT, b INT, PRIMARY KEY (a, b))"),
        Ok(Kind::Ddl { .. })
    ));
}

#[test]
fn tables_without_a_key_get_the_hidden_one() {
    let c = classify(
        "CREATE TABLE h (tid int, delta int) WITH (fillfactor = 100)",
        1 << 20,
    )
    .expect("classify");
    assert!(matches!(c[0].kind, Kind::Ddl { .. }));
    assert!(c[0].sql.contains(replica::HIDDEN_KEY), "{}", c[0].sql);
    assert!(!c[0].sql.contains("fillfactor"), "{}", c[0].sql);
    assert_eq!(
        kind(&format!(
            "CREATE TABLE h (a int, {} int)",
            replica::HIDDEN_KEY
        ))
        .err()
        .map(|e| e.sqlstate()),
        Some("0A000")
    );
}

#[test]
fn refusals_carry_sqlstates() {
    let state = |sql: &str| kind(sql).err().map(|e| e.sqlstate());
    assert_eq!(state("CREATE TABLE t AS SELECT 1 AS a"), Some("0A000"));
    assert_eq!(state("SELEC 1"), Some("42601"));
    assert_eq!(state("ATTACH DATABASE 'x.db' AS x"), Some("0A000"));
    assert_eq!(state("PRAGMA journal_mode = DELETE"), Some("0A000"));
    assert_eq!(state("PRAGMA optimize"), Some("0A000"));
    assert!(
        matches!(kind("TRUNCATE a, \"B\""), Ok(Kind::Truncate { tables }) if tables == ["a", "\"B\""])
    );
    assert_eq!(state("TRUNCATE a RESTART IDENTITY"), Some("0A000"));
    assert_eq!(state("TRUNCATE tributary_conflicts"), Some("42501"));
    assert_eq!(state("CLOSE c1"), Some("34000"));
    assert_eq!(
        classify("SELECT 1", 3).err().map(|e| e.sqlstate()),
        Some("54000")
    );
}

#[test]
fn utility_statements_drivers_send() -> Result<()> {
    let k = |sql: &str| kind(sql);
    assert_eq!(k("SAVEPOINT Sp1")?, Kind::Savepoint { name: "sp1".into() });
    assert_eq!(
        k("RELEASE SAVEPOINT \"Sp1\"")?,
        Kind::Release { name: "Sp1".into() }
    );
    assert_eq!(
        k("ROLLBACK TO SAVEPOINT sp1")?,
        Kind::RollbackTo { name: "sp1".into() }
    );
    assert_eq!(
        k("ROLLBACK TO sp1")?,
        Kind::RollbackTo { name: "sp1".into() }
    );
    assert_eq!(k("DEALLOCATE ALL")?, Kind::Deallocate { name: None });
    assert_eq!(
        k("DEALLOCATE PREPARE _pg3_0")?,
        Kind::Deallocate {
            name: Some("_pg3_0".into())
        }
    );
    assert_eq!(k("DISCARD ALL")?, Kind::DiscardAll);
    assert_eq!(k("RESET ALL")?, Kind::Reset { name: None });
    assert!(matches!(k("CLOSE ALL")?, Kind::NoOp { .. }));
    assert!(matches!(
        k("VACUUM")?,
        Kind::NoOp {
            notice: Some(_),
            ..
        }
    ));
    assert!(matches!(
        k("ANALYZE t")?,
        Kind::NoOp {
            notice: Some(_),
            ..
        }
    ));
    let t = classify("TRUNCATE TABLE accounts", 1 << 20)?;
    assert_eq!(
        t[0].kind,
        Kind::Truncate {
            tables: vec!["accounts".into()]
        }
    );
    let d = classify("DROP TABLE IF EXISTS a, b", 1 << 20)?;
    assert_eq!(d[0].sql, "DROP TABLE IF EXISTS a; DROP TABLE IF EXISTS b");
    assert!(kind("DROP TABLE a CASCADE").is_err());
    let v = classify("SELECT pg_catalog.version()", 1 << 20)?;
    assert_eq!(v[0].sql, "SELECT version()");
    Ok(())
}

#[test]
fn splits_keeping_original_text() -> Result<()> {
    let v = classify(
        "SELECT 'a;b' ; INSERT INTO t VALUES (1);\nSELECT 2;",
        1 << 20,
    )?;
    let texts: Vec<&str> = v.iter().map(|c| c.sql.as_str()).collect();
    assert_eq!(
        texts,
        vec!["SELECT 'a;b'", "INSERT INTO t VALUES (1)", "SELECT 2"]
    );
    Ok(())
}

#[test]
fn parameter_hints() -> Result<()> {
    let c = classify(
        "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
        1 << 20,
    )?
    .remove(0);
    assert_eq!(c.param_count, 2);
    assert_eq!(
        c.param_columns.get(&1),
        Some(&Hint::Column("balance".into()))
    );
    assert_eq!(c.param_columns.get(&2), Some(&Hint::Column("id".into())));
    let c = classify("INSERT INTO kv (id, v) VALUES ($1, 'value-' || $1) ON CONFLICT (id) DO UPDATE SET v = excluded.v", 1 << 20)?
        .remove(0);
    assert_eq!(c.param_count, 1);
    assert_eq!(c.param_columns.get(&1), Some(&Hint::Column("id".into())));
    let c = classify("INSERT INTO n VALUES ($1, $2)", 1 << 20)?.remove(0);
    assert_eq!(
        c.param_columns.get(&2),
        Some(&Hint::Position {
            table: "n".into(),
            index: 1
        })
    );
    let c = classify("SELECT count(*), max(v), 'x' || v, 1.5 FROM t", 1 << 20)?.remove(0);
    assert_eq!(
        c.projection,
        vec![
            Some(Hint::Decl("INTEGER")),
            Some(Hint::Column("v".into())),
            Some(Hint::Decl("TEXT")),
            Some(Hint::Decl("REAL"))
        ]
    );
    Ok(())
}

#[test]
fn copy_takes_on_and_off_as_booleans() {
    let c =
        classify("copy pgbench_branches from stdin with (freeze on)", 1 << 20).expect("classify");
    assert!(matches!(c[0].kind, Kind::CopyIn { .. }), "{:?}", c[0].kind);
    let c = classify("COPY t TO STDOUT (FORMAT csv, HEADER off)", 1 << 20).expect("classify");
    assert!(matches!(c[0].kind, Kind::CopyOut { .. }), "{:?}", c[0].kind);
}

#[test]
fn postgresql_maintenance_forms_are_no_ops() {
    for sql in [
        "vacuum analyze pgbench_branches",
        "VACUUM (VERBOSE, ANALYZE) a, b",
        "ANALYZE VERBOSE t",
    ] {
        let c = classify(sql, 1 << 20).expect(sql);
        assert!(
            matches!(
                c[0].kind,
                Kind::NoOp {
                    notice: Some(_),
                    ..
                }
            ),
            "{sql}"
        );
    }
    assert!(classify("vacuum analyze t; drop table t", 1 << 20).is_err());
}

#[test]
fn unlisten_is_a_no_op_and_listen_is_refused() {
    for sql in ["UNLISTEN *", "UNLISTEN jobs"] {
        let c = classify(sql, 1 << 20).expect(sql);
        assert!(
            matches!(&c[0].kind, Kind::NoOp { tag, notice: None } if tag == "UNLISTEN"),
            "{sql}"
        );
    }
    assert_eq!(
        kind("LISTEN jobs").err().map(|e| e.sqlstate()),
        Some("0A000")
    );
}

#[test]
fn add_unique_constraint_is_a_unique_index() {
    let c = classify(
        "ALTER TABLE \"ct\" ADD CONSTRAINT \"ct_uniq\" UNIQUE (\"app\", \"model\")",
        1 << 20,
    )
    .expect("classify");
    assert_eq!(
        c[0].sql,
        "CREATE UNIQUE INDEX \"ct_uniq\" ON \"ct\" (\"app\", \"model\")"
    );
    let c = classify("ALTER TABLE t ADD UNIQUE (a)", 1 << 20).expect("classify");
    assert_eq!(c[0].sql, "CREATE UNIQUE INDEX \"t_a_key\" ON \"t\" (\"a\")");
}

#[test]
fn drop_column_cascade_and_add_foreign_key() {
    let c = classify("ALTER TABLE t DROP COLUMN c CASCADE", 1 << 20).expect("classify");
    assert_eq!(c[0].sql, "ALTER TABLE t DROP COLUMN c");
    // A foreign key is DDL the router rebuilds the table for (`rebuild`).
    assert!(matches!(
        kind(
            "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES c (id) DEFERRABLE INITIALLY DEFERRED"
        ),
        Ok(Kind::Ddl { .. })
    ));
    let c = classify(
        "CREATE TABLE k (id INTEGER PRIMARY KEY, p INTEGER REFERENCES par (id) DEFERRABLE INITIALLY DEFERRED)",
        1 << 20,
    )
    .expect("classify");
    assert!(!c[0].sql.contains("DEFERRABLE"), "{}", c[0].sql);
}

#[test]
fn index_hints_are_dropped_and_other_methods_refused() {
    let c = classify(
        "CREATE INDEX CONCURRENTLY \"g_like\" ON \"g\" USING btree (\"name\" varchar_pattern_ops) WITH (fillfactor = 70)",
        1 << 20,
    )
    .expect("classify");
    assert_eq!(c[0].sql, "CREATE INDEX \"g_like\" ON \"g\"(\"name\")");
    let err = classify("CREATE INDEX j ON t USING gin (doc)", 1 << 20)
        .err()
        .map(|e| e.sqlstate());
    assert_eq!(err, Some("0A000"));
}
