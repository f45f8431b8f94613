//! The slow-query log against the real binary: a statement over
//! `router.slow_query_ms` is in the `tributary_slow_queries` view with its
//! time attributed where it went — a long recursive CTE to execution, a
//! strong read held behind a lagging replica to the consistency wait — and
//! in the log.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_queries_are_kept_with_their_time_attributed() -> Result<()> {
    let cluster = Cluster::start_with_config(
        2,
        2,
        &[],
        // Reads stay on each router's own replica, so the strong read below
        // waits for the locked one (balancing would serve it elsewhere).
        Some("[router]\nslow_query_ms = 100\nslow_query_params = true\nread_balance = false\n"),
    )
    .await?;
    let r1 = cluster.connect(0).await?;
    let r2 = cluster.connect(1).await?;
    r1.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await?;
    r1.execute("INSERT INTO t VALUES (1, 'fast')", &[]).await?;
    cluster.wait_converged().await?;

    // Execution: enough rows that this takes well over 100 ms.
    let n: i64 = r1
        .query_one(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < $1::bigint) SELECT count(*) FROM s",
            &[&1_000_000i64],
        )
        .await?
        .get(0);
    ensure!(n == 1_000_000);

    // Consistency wait: replica 1 (router 1's) cannot apply while another
    // connection holds its write lock; a write through router 2 goes in the
    // log, so a strong read on router 1 waits until the lock is released.
    let replica1 = rusqlite::Connection::open(cluster.replica_path(0))?;
    replica1.execute_batch("BEGIN IMMEDIATE")?;
    r2.execute("INSERT INTO t VALUES (2, 'through router 2')", &[])
        .await?;
    r1.batch_execute("SET tributary.read_consistency = 'strong'")
        .await?;
    let read = tokio::spawn(async move {
        let n: i64 = r1.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
        anyhow::Ok((r1, n))
    });
    // The lag this test needs is this long: the read must wait for it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    replica1.execute_batch("COMMIT")?;
    let (r1, n) = read.await??;
    ensure!(n == 2, "the strong read saw {n} rows");

    r1.batch_execute("SET tributary.read_consistency = 'eventual'")
        .await?;
    let rows = r1
        .query(
            "SELECT statement, params, total_ms, consistency_wait_ms, execution_ms, append_ms, ack_wait_ms, rows, replica, read
             FROM tributary_slow_queries ORDER BY at_ms",
            &[],
        )
        .await?;
    ensure!(rows.len() == 2, "{} slow queries: {rows:?}", rows.len());
    let cte = &rows[0];
    let statement: String = cte.get(0);
    ensure!(
        statement
            == "WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + ? FROM s WHERE x < $1::bigint) SELECT count(*) FROM s",
        "{statement}"
    );
    ensure!(cte.get::<_, Option<String>>(1).as_deref() == Some("$1 = 1000000"));
    let (total, wait, exec): (f64, f64, f64) = (cte.get(2), cte.get(3), cte.get(4));
    ensure!(
        exec >= 100.0 && wait < exec && (total - exec - wait).abs() < 1.0,
        "{total} {wait} {exec}"
    );
    ensure!(cte.get::<_, Option<i64>>(7) == Some(1));
    let strong = &rows[1];
    ensure!(strong.get::<_, String>(0) == "SELECT count(*) FROM t");
    let (wait, exec): (f64, f64) = (strong.get(3), strong.get(4));
    ensure!(
        wait >= 300.0 && exec < wait,
        "wait {wait} ms, execution {exec} ms"
    );
    ensure!(strong.get::<_, String>(8) == "replica1" && strong.get::<_, String>(9) == "strong");
    let log = cluster.log_tail();
    ensure!(
        log.contains("slow query") && log.contains("consistency_wait_ms"),
        "no slow-query line in the log:\n{log}"
    );
    let metrics_free = r2
        .query("SELECT count(*) FROM tributary_slow_queries", &[])
        .await
        .context("router 2's own ring")?;
    ensure!(
        metrics_free[0].get::<_, i64>(0) == 0,
        "router 2 had no slow query"
    );
    cluster.shutdown().await;
    Ok(())
}
