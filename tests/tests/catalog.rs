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
/// UNIQUE column's included); `\d+` adds storage and a view's query;
/// `\di`, `\du`, `\l`, `\df`, `\dv`, `\ds`, `\dt+` answer without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_a_table() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let out = cluster.psql(
        0,
        &[
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, qty integer NOT NULL DEFAULT 3, \
             price numeric(10,2), code varchar(12) UNIQUE, flag smallint)",
            "CREATE INDEX orders_qty ON orders (qty)",
            "CREATE VIEW big_orders AS SELECT id, qty FROM orders WHERE qty > 10",
            "\\d orders",
            "\\d+ orders",
            "\\d+ big_orders",
            "\\dt+",
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
        " qty    | integer               |           | not null | 3       | plain    |",
        "View definition:",
        "SELECT id, qty FROM orders WHERE qty > 10",
        "Access method: heap",
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

/// `information_schema`: schemata, tables (and views), columns with
/// PostgreSQL's type names and sizes, constraints and their columns;
/// read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn information_schema_describes_the_schema() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE par (id int PRIMARY KEY, code varchar(10) UNIQUE);
         CREATE TABLE kid (id bigint PRIMARY KEY, p int REFERENCES par,
             amt numeric(8,2) NOT NULL DEFAULT 0);
         CREATE VIEW v AS SELECT id FROM par;",
    )
    .await?;
    let rows = c
        .query(
            "SELECT table_name, table_type FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY table_name",
            &[],
        )
        .await?;
    let tables: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ensure!(
        tables
            == [
                ("kid".into(), "BASE TABLE".into()),
                ("par".into(), "BASE TABLE".into()),
                ("v".into(), "VIEW".into())
            ],
        "{tables:?}"
    );
    let rows = c
        .query(
            "SELECT column_name, data_type, is_nullable, column_default,
                    character_maximum_length, numeric_precision, numeric_scale
             FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&"kid"],
        )
        .await?;
    let amt = &rows[2];
    ensure!(
        amt.get::<_, String>(0) == "amt"
            && amt.get::<_, String>(1) == "numeric"
            && amt.get::<_, String>(2) == "NO"
            && amt.get::<_, Option<String>>(3).as_deref() == Some("0")
            && amt.get::<_, Option<i64>>(5) == Some(8)
            && amt.get::<_, Option<i64>>(6) == Some(2),
        "{amt:?}"
    );
    let code: Option<i64> = c
        .query_one(
            "SELECT character_maximum_length FROM information_schema.columns
             WHERE table_name = 'par' AND column_name = 'code'",
            &[],
        )
        .await?
        .get(0);
    ensure!(code == Some(10), "{code:?}");
    let rows = c
        .query(
            "SELECT tc.constraint_type, kcu.column_name
             FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON kcu.constraint_name = tc.constraint_name AND kcu.table_name = tc.table_name
             WHERE tc.table_name = 'kid' ORDER BY 1",
            &[],
        )
        .await?;
    let constraints: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    ensure!(
        constraints
            == [
                ("FOREIGN KEY".into(), "p".into()),
                ("PRIMARY KEY".into(), "id".into())
            ],
        "{constraints:?}"
    );
    let err = c
        .batch_execute("DELETE FROM information_schema.tables")
        .await
        .expect_err("read-only");
    ensure!(err.code().map(|c| c.code()) == Some("42501"), "{err}");
    cluster.shutdown().await;
    Ok(())
}
