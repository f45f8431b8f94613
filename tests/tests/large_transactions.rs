//! Large transactions through a router under the default configuration:
//! records of several megabytes (streamed change by change on every
//! replica) insert, update and delete tens of thousands of rows
//! atomically, a 10 MB value arrives whole, and every replica ends with
//! the same rows. Sizes and timings are in BENCHMARKS.md; this checks
//! correctness only.

use anyhow::{Result, ensure};
use tests::Cluster;

const ROWS: i64 = 40_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_megabyte_transactions_apply_whole_on_every_replica() -> Result<()> {
    let cluster = Cluster::in_process(3, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "SET tributary.ack = 'sync';
         CREATE TABLE big (id int PRIMARY KEY, v text, n bigint NOT NULL)",
    )
    .await?;
    // ~4 MB of JSON: over the size from which replicas stream a record.
    let inserted = c
        .execute(
            &format!(
                "INSERT INTO big WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {ROWS}) SELECT x, 'value ' || x, x FROM s"
            ),
            &[],
        )
        .await?;
    ensure!(inserted == ROWS as u64, "{inserted} rows inserted");
    let updated = c
        .execute("UPDATE big SET n = n * 2, v = v || '!'", &[])
        .await?;
    ensure!(updated == ROWS as u64, "{updated} rows updated");
    let deleted = c.execute("DELETE FROM big WHERE id % 2 = 0", &[]).await?;
    ensure!(deleted == (ROWS / 2) as u64, "{deleted} rows deleted");
    let mb10 = 10 * 1024 * 1024;
    c.execute(
        "INSERT INTO big VALUES (0, repeat('x', $1::int), 0)",
        &[&(mb10 as i32)],
    )
    .await?;
    cluster.replicas_agree().await?;
    // Odd ids 1..ROWS, each n doubled: sum = 2 * (ROWS/2)^2.
    let expected_sum = 2 * (ROWS / 2) * (ROWS / 2);
    for i in 0..3 {
        let conn = rusqlite::Connection::open(cluster.replica_path(i))?;
        let (count, sum, bangs, long): (i64, i64, i64, i64) = conn.query_row(
            "SELECT count(*), sum(n), sum(v LIKE '%!'), max(length(v)) FROM big",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        ensure!(
            (count, sum, bangs, long) == (ROWS / 2 + 1, expected_sum, ROWS / 2, mb10),
            "replica {}: {count} rows, sum {sum}, {bangs} updated, longest {long}",
            i + 1
        );
    }
    cluster.shutdown().await;
    Ok(())
}
