//! PostgreSQL compatibility (issue 12), part by part: savepoints, the
//! utility statements drivers send on their own, session facts and the
//! functions ORMs call at connect, through tokio-postgres and psycopg.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, dump, python};
use tokio_postgres::Client;

fn code(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

async fn ints(c: &Client, sql: &str) -> Result<Vec<i64>> {
    Ok(c.query(sql, &[]).await?.iter().map(|r| r.get(0)).collect())
}

/// Savepoints cut the transaction's changes back to their mark, a failed
/// block is usable again after ROLLBACK TO, and what commits is exactly what
/// PostgreSQL would commit, on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_behave_as_in_postgresql() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BIGINT)")
        .await?;
    c.batch_execute("BEGIN; INSERT INTO t VALUES (1, 1); SAVEPOINT a; INSERT INTO t VALUES (2, 2); UPDATE t SET v = 10 WHERE id = 1")
        .await?;
    assert_eq!(ints(&c, "SELECT v FROM t ORDER BY id").await?, vec![10, 2]);
    c.batch_execute("ROLLBACK TO SAVEPOINT a").await?;
    assert_eq!(ints(&c, "SELECT v FROM t ORDER BY id").await?, vec![1]);
    // An error inside the block fails it until ROLLBACK TO.
    c.batch_execute("SAVEPOINT b").await?;
    let err = c
        .batch_execute("INSERT INTO t VALUES (1, 99)")
        .await
        .expect_err("duplicate key");
    assert_eq!(code(&err), "23505", "{err}");
    let err = c.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(code(&err), "25P02");
    let err = c.batch_execute("RELEASE b").await.expect_err("aborted");
    assert_eq!(code(&err), "25P02");
    c.batch_execute("ROLLBACK TO b; INSERT INTO t VALUES (3, 3); RELEASE SAVEPOINT a")
        .await?;
    // Releasing a released b with it; rolling back to either fails the block.
    let err = c
        .batch_execute("ROLLBACK TO b")
        .await
        .expect_err("released");
    assert_eq!(code(&err), "3B001", "{err}");
    let err = c.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(code(&err), "25P02");
    // COMMIT of a failed block rolls it back, as in PostgreSQL.
    c.batch_execute("COMMIT").await?;
    assert_eq!(
        ints(&c, "SELECT id FROM t ORDER BY id").await?,
        Vec::<i64>::new()
    );

    c.batch_execute("BEGIN; INSERT INTO t VALUES (1, 1); SAVEPOINT a; INSERT INTO t VALUES (2, 2); ROLLBACK TO a; INSERT INTO t VALUES (3, 3); RELEASE a; COMMIT")
        .await?;
    assert_eq!(ints(&c, "SELECT id FROM t ORDER BY id").await?, vec![1, 3]);
    let err = c.batch_execute("SAVEPOINT x").await.expect_err("no block");
    assert_eq!(code(&err), "25P01", "{err}");
    cluster.wait_converged().await?;
    let a = dump(&cluster.replica_path(0))?;
    ensure!(a == dump(&cluster.replica_path(1))?, "replicas differ");
    ensure!(
        a.contains("Integer(3)|Integer(3)") && !a.contains("Integer(2)|"),
        "{a}"
    );
    cluster.shutdown().await;
    Ok(())
}

/// DEALLOCATE, CLOSE, DISCARD, RESET, VACUUM, ANALYZE answer with
/// PostgreSQL's tags; TRUNCATE empties the table on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utility_statements_and_session_facts() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await?;
    // psql prints each command's tag.
    let out = cluster.psql(
        0,
        &[
            "DEALLOCATE ALL",
            "CLOSE ALL",
            "VACUUM",
            "ANALYZE t",
            "SET tributary.ack = 'sync'",
            "DISCARD ALL",
            "SHOW tributary.ack",
            "SET tributary.ack = 'sync'",
            "RESET tributary.ack",
            "SHOW tributary.ack",
            "TRUNCATE t",
        ],
    )?;
    for want in [
        "DEALLOCATE ALL",
        "CLOSE CURSOR ALL",
        "VACUUM",
        "ANALYZE",
        "NOTICE:  VACUUM ignored",
        "DISCARD ALL",
        "RESET",
        "TRUNCATE TABLE",
    ] {
        ensure!(out.contains(want), "no {want:?} in:\n{out}");
    }
    ensure!(
        !out.contains(" sync\n"),
        "DISCARD ALL and RESET restore the default:\n{out}"
    );
    cluster.wait_converged().await?;
    for r in 0..2 {
        let d = dump(&cluster.replica_path(r))?;
        ensure!(!d.contains("Integer("), "replica {r} kept rows:\n{d}");
    }
    assert_eq!(ints(&c, "SELECT count(*) FROM t").await?, vec![0]);
    let err = c.batch_execute("CLOSE nope").await.expect_err("no cursor");
    assert_eq!(code(&err), "34000");

    // Result columns are named as PostgreSQL names them.
    let row = c
        .query_one(
            "SELECT count(*), max(id), 1 + 1, id AS k FROM t GROUP BY id LIMIT 1",
            &[],
        )
        .await;
    ensure!(row.is_err(), "the table is empty: no row");
    let stmt = c
        .prepare("SELECT count(*), max(id), 1 + 1, id AS k, id FROM t GROUP BY id")
        .await?;
    let names: Vec<&str> = stmt.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, ["count", "max", "?column?", "k", "id"]);
    let out = cluster.psql(0, &["SELECT count(*) FROM t"])?;
    ensure!(out.trim_start().starts_with("count"), "{out}");

    // Casts convert as PostgreSQL converts, or fail with its SQLSTATE.
    let row = c
        .query_one(
            "SELECT '42'::int + 1, CAST('2024-01-02T03:04:05+02' AS timestamptz), 2.5::int, 'abcdef'::varchar(3)",
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, i32>(0), 43, "int is int4, as in PostgreSQL");
    assert_eq!(
        row.get::<_, chrono::DateTime<chrono::Utc>>(1).to_rfc3339(),
        "2024-01-02T01:04:05+00:00"
    );
    assert_eq!(row.get::<_, i32>(2), 2);
    assert_eq!(row.get::<_, String>(3), "abc");
    let err = c
        .query("SELECT 'abc'::int", &[])
        .await
        .expect_err("not a number");
    assert_eq!(code(&err), "22P02", "{err}");
    let t: String = c
        .query_one("SELECT 'integer'::regtype::text", &[])
        .await?
        .try_get(0)?;
    assert_eq!(t, "int4");
    c.batch_execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at TEXT)")
        .await?;
    // A regclass from a name is the relation's oid, named as PostgreSQL names it.
    let row = c.query_one("SELECT 'ev'::regclass", &[]).await?;
    assert_eq!(row.columns()[0].name(), "regclass");
    let oid: i64 = row.try_get(0)?;
    let name: String = c
        .query_one(
            "SELECT relname FROM pg_class WHERE oid = 'public.ev'::regclass",
            &[],
        )
        .await?
        .try_get(0)?;
    assert_eq!(name, "ev");
    let name: String = c
        .query_one(&format!("SELECT {oid}::regclass"), &[])
        .await?
        .try_get(0)?;
    assert_eq!(name, "ev", "an oid's regclass reads as the name");
    c.execute(
        "INSERT INTO ev VALUES (1, $1::text::timestamptz)",
        &[&"2024-05-06 07:08:09-01"],
    )
    .await?;
    let at = c.query_one("SELECT at FROM ev", &[]).await?;
    assert_eq!(at.get::<_, String>(0), "2024-05-06 08:08:09+00");

    // What ORMs ask at connect.
    let v = c.query_one("SELECT pg_catalog.version()", &[]).await?;
    ensure!(v.get::<_, String>(0).starts_with("PostgreSQL 15.0"));
    let schema = c.query_one("SELECT current_schema()", &[]).await?;
    assert_eq!(schema.get::<_, String>(0), "public");
    let tz = c.query_one("SHOW TimeZone", &[]).await?;
    assert_eq!(tz.get::<_, String>(0), "UTC");
    let sv = c.query_one("SHOW server_version", &[]).await?;
    assert_eq!(
        sv.get::<_, String>(0),
        tests_server_version(&cluster).await?
    );
    let set = c
        .query_one("SELECT set_config('TimeZone', 'UTC', false)", &[])
        .await?;
    assert_eq!(set.get::<_, String>(0), "UTC");
    // Values computed by functions are captured, never re-evaluated.
    c.batch_execute("CREATE TABLE u (id TEXT PRIMARY KEY, at TEXT)")
        .await?;
    c.batch_execute("INSERT INTO u VALUES (gen_random_uuid(), now())")
        .await?;
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// The `server_version` a client is told at startup (ParameterStatus).
async fn tests_server_version(cluster: &Cluster) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            "t",
            "-d",
            "t",
            "-p",
        ])
        .arg(cluster.router_port(0).to_string())
        .args(["-c", "\\echo :SERVER_VERSION_NAME"])
        .output()
        .context("running psql")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// psycopg's nested `transaction()` blocks (savepoints), an inner block
/// that raises, `executemany`, and the connection's rollback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_nested_transactions() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    cluster.run_driver("savepoints.py").await?;
    cluster.shutdown().await;
    Ok(())
}

/// PostgreSQL spellings SQLite does not take: `E''` strings, `ILIKE` (and a
/// case-sensitive `LIKE`), `COLLATE "default"`, `DROP TABLE a, b`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_rewrites() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE q (id INTEGER PRIMARY KEY)",
    )
    .await?;
    c.batch_execute(r"INSERT INTO p VALUES (1, E'Ann\'s'), (2, 'bob'), (3, 'BOB')")
        .await?;
    let names =
        |rows: Vec<tokio_postgres::Row>| -> Vec<String> { rows.iter().map(|r| r.get(0)).collect() };
    let like = c
        .query("SELECT name FROM p WHERE name LIKE 'b%' ORDER BY id", &[])
        .await?;
    assert_eq!(names(like), ["bob"], "LIKE is case-sensitive");
    let ilike = c
        .query(
            "SELECT name FROM p WHERE name ILIKE $1 ORDER BY id",
            &[&"b%"],
        )
        .await?;
    assert_eq!(names(ilike), ["bob", "BOB"]);
    let ann = c
        .query(
            "SELECT name FROM p WHERE id = 1 ORDER BY name COLLATE pg_catalog.\"default\"",
            &[],
        )
        .await?;
    assert_eq!(names(ann), ["Ann's"]);
    let any = c
        .query(
            "SELECT name FROM p WHERE id = ANY(ARRAY[1, 2]) AND name <> ALL(ARRAY['x']) ORDER BY id",
            &[],
        )
        .await?;
    assert_eq!(names(any), ["Ann's", "bob"]);
    // An array parameter, typed from the column (int8[] for the rowid key).
    let any = c
        .query(
            "SELECT name FROM p WHERE id = ANY($1) ORDER BY id",
            &[&vec![2i64, 7]],
        )
        .await?;
    assert_eq!(names(any), ["bob"]);
    let err = c
        .query("SELECT 1 FROM p WHERE id > ANY($1)", &[&vec![1i64]])
        .await
        .expect_err("another operator");
    assert_eq!(code(&err), "0A000", "{err}");
    c.batch_execute("DROP TABLE p, q").await?;
    let err = c.query("SELECT 1 FROM q", &[]).await.expect_err("dropped");
    assert_eq!(code(&err), "42P01", "{err}");
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// COPY in and out: psycopg (text and CSV, NULLs, escapes, a failed COPY
/// writes nothing) and psql's `\copy`; the rows reach every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let out = python("copy_rows.py", &[&cluster.router_port(0).to_string()])?;
    ensure!(out.contains("ok"), "{out}");

    let csv = cluster.dir.join("in.csv");
    std::fs::write(&csv, "7000,from psql,x\n7001,\"a, b\",\n")?;
    let out = cluster.psql(
        0,
        &[
            &format!("\\copy cp FROM '{}' WITH (FORMAT csv)", csv.display()),
            "\\copy (SELECT id, name FROM cp WHERE id >= 7000 ORDER BY id) TO STDOUT WITH (FORMAT csv)",
            "COPY cp TO '/tmp/x'",
        ],
    )?;
    ensure!(out.contains("COPY 2"), "{out}");
    ensure!(out.contains("7001,\"a, b\""), "{out}");
    ensure!(out.contains("not supported"), "{out}");
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// The new write paths under contention, checked by invariants a lost
/// update would break: 4 sessions on one row, each transaction rolling a
/// +100 back to a savepoint and committing +1, end at exactly the number of
/// commits; 4 concurrent COPYs into a SERIAL table get every row, each with
/// its own generated id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_and_copy_under_contention() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE ctr (id INTEGER PRIMARY KEY, n BIGINT); INSERT INTO ctr VALUES (1, 0);
         CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)",
    )
    .await?;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = cluster.connect(0).await?;
        tasks.push(tokio::spawn(async move {
            let mut committed = 0i64;
            for _ in 0..25 {
                s.batch_execute(
                    "BEGIN; SAVEPOINT a; UPDATE ctr SET n = n + 100 WHERE id = 1; ROLLBACK TO a;
                     UPDATE ctr SET n = n + 1 WHERE id = 1; COMMIT",
                )
                .await?;
                committed += 1;
            }
            anyhow::Ok(committed)
        }));
    }
    let mut copies = Vec::new();
    for w in 0..4 {
        let file = cluster.dir.join(format!("items{w}.txt"));
        let lines: String = (0..250).map(|i| format!("w{w}-{i}\n")).collect();
        std::fs::write(&file, lines)?;
        let port = cluster.router_port(0).to_string();
        copies.push(tokio::task::spawn_blocking(move || {
            Command::new("psql")
                .args([
                    "-X",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "t",
                    "-d",
                    "t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-p",
                ])
                .arg(&port)
                .arg("-c")
                .arg(format!("\\copy items (name) FROM '{}'", file.display()))
                .output()
        }));
    }
    let mut committed = 0;
    for t in tasks {
        committed += t.await??;
    }
    for cp in copies {
        let out = cp.await??;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Other sessions' commits: `session` reads promise only this
    // session's own writes, so read at `strong`.
    c.batch_execute("SET tributary.read_consistency = 'strong'")
        .await?;
    let n: i64 = c.query_one("SELECT n FROM ctr", &[]).await?.get(0);
    assert_eq!(n, committed, "every committed +1 and no rolled-back +100");
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT id), count(DISTINCT name) FROM items",
            &[],
        )
        .await?;
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(counts, (1000, 1000, 1000));
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}

/// DDL inside transaction blocks (psycopg's default mode): schema
/// statements and rows commit as one record, in order, or not at all; the
/// block's later statements are described on its own schema; every
/// replica ends with the same tables and rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_inside_transaction_blocks() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    cluster.run_driver("ddl_in_block.py").await?;
    let c = cluster.connect(0).await?;
    let n: i64 = c
        .query_one("SELECT count(*) FROM blk", &[])
        .await?
        .try_get(0)?;
    ensure!(n == 2, "blk has {n} rows");
    cluster.shutdown().await;
    Ok(())
}

/// Several statements in one simple query are one implicit transaction,
/// as in PostgreSQL: a failure in any of them keeps none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_queries_are_atomic() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE ms (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO ms VALUES (1, 'a'); UPDATE ms SET v = 'b'",
    )
    .await?;
    let err = c
        .batch_execute("INSERT INTO ms VALUES (2, 'x'); INSERT INTO ms VALUES (1, 'dup'); INSERT INTO ms VALUES (3, 'y')")
        .await
        .expect_err("duplicate key");
    ensure!(code(&err) == "23505", "{err:?}");
    ensure!(ints(&c, "SELECT id FROM ms ORDER BY id").await? == vec![1]);
    let v: String = c.query_one("SELECT v FROM ms", &[]).await?.try_get(0)?;
    ensure!(v == "b", "{v}");
    // The connection is idle again and usable.
    c.batch_execute("INSERT INTO ms VALUES (4, 'z')").await?;
    ensure!(ints(&c, "SELECT id FROM ms ORDER BY id").await? == vec![1, 4]);
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}
