//! The catalog clients read before they work (issue 12): psql's `\d`
//! family and SQLAlchemy's reflection, answered from the replica's schema
//! as PostgreSQL would answer them for the same DDL.

use anyhow::{Result, ensure};
use tests::Cluster;

/// psql's `\dt` reads the catalog (pg_class, pg_namespace, pg_am, `!~`,
/// `pg_table_is_visible`): the user's tables, not Tributary's, with a
/// pattern too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_tables() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let out = cluster.psql(
        0,
        &[
            "CREATE TABLE alpha (id INTEGER PRIMARY KEY)",
            "CREATE TABLE beta (note TEXT)",
            "\\dt",
            "\\dt al*",
        ],
    )?;
    ensure!(out.contains(" public | alpha | table"), "{out}");
    ensure!(out.contains(" public | beta  | table"), "{out}");
    ensure!(out.contains("(2 rows)") && out.contains("(1 row)"), "{out}");
    ensure!(!out.contains("tributary_conflicts"), "{out}");
    cluster.shutdown().await;
    Ok(())
}

/// `\d TABLE` shows each column's PostgreSQL type, nullability and
/// default, and the indexes by PostgreSQL's names (the primary key's and a
/// UNIQUE column's included); `\di`, `\du`, `\l`, `\df`, `\dv`, `\ds`
/// answer without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_a_table() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let out = cluster.psql(
        0,
        &[
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, qty integer NOT NULL DEFAULT 3, \
             price numeric(10,2), code varchar(12) UNIQUE, flag smallint)",
            "CREATE INDEX orders_qty ON orders (qty)",
            "\\d orders",
            "\\di",
            "\\du",
            "\\l",
            "\\df",
            "\\dv",
            "\\ds",
        ],
    )?;
    for line in [
        " id     | bigint                |           | not null | ",
        " qty    | integer               |           | not null | 3",
        " price  | numeric(10,2)         |           |          | ",
        " code   | character varying(12) |           |          | ",
        " flag   | smallint              |           |          | ",
        "    \"orders_pkey\" PRIMARY KEY, btree (id)",
        "    \"orders_code_key\" UNIQUE CONSTRAINT, btree (code)",
        "    \"orders_qty\" btree (qty)",
        " public | orders_qty      | index | tributary | orders",
        " tributary | Superuser",
        " tributary | tributary | UTF8",
    ] {
        ensure!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    ensure!(!out.contains("ERROR"), "{out}");
    ensure!(!out.contains("tributary_conflicts"), "{out}");
    cluster.shutdown().await;
    Ok(())
}

/// SQLAlchemy's `inspect().get_columns()` and `has_table()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_reflects_columns() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    cluster.run_driver("sqlalchemy_reflect.py").await?;
    cluster.shutdown().await;
    Ok(())
}
