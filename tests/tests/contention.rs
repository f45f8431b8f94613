//! The write paths PostgreSQL compatibility added, under contention:
//! transaction blocks that mix DDL and rows, and implicit transactions of
//! multi-statement query strings, checked by invariants a lost update
//! breaks.

use anyhow::Result;
use tests::Cluster;

/// The block and implicit-transaction write paths under contention, by an
/// invariant a lost update breaks: 4 sessions on one counter, each commit
/// a block that also creates a table (a `block` record) or a two-statement
/// query string (one implicit transaction, +2), end at exactly what was
/// committed, with every created table on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_implicit_transactions_under_contention() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE ctr (id INTEGER PRIMARY KEY, n BIGINT); INSERT INTO ctr VALUES (1, 0)",
    )
    .await?;
    let mut tasks = Vec::new();
    for s in 0..4 {
        let session = cluster.connect(0).await?;
        tasks.push(tokio::spawn(async move {
            let mut added = 0i64;
            for i in 0..10 {
                if i % 2 == 0 {
                    session
                        .batch_execute(&format!(
                            "BEGIN; CREATE TABLE made_{s}_{i} (k INTEGER PRIMARY KEY);
                             UPDATE ctr SET n = n + 1 WHERE id = 1; COMMIT"
                        ))
                        .await?;
                    added += 1;
                } else {
                    session
                        .batch_execute(
                            "UPDATE ctr SET n = n + 1 WHERE id = 1; UPDATE ctr SET n = n + 1 WHERE id = 1",
                        )
                        .await?;
                    added += 2;
                }
            }
            anyhow::Ok(added)
        }));
    }
    let mut committed = 0;
    for t in tasks {
        committed += t.await??;
    }
    c.batch_execute("SET tributary.read_consistency = 'strong'")
        .await?;
    let n: i64 = c.query_one("SELECT n FROM ctr", &[]).await?.try_get(0)?;
    assert_eq!(n, committed, "every committed +1, nothing lost");
    let made: i64 = c
        .query_one(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'made\\_%' ESCAPE '\\'",
            &[],
        )
        .await?
        .try_get(0)?;
    assert_eq!(made, 20);
    cluster.replicas_agree().await?;
    cluster.shutdown().await;
    Ok(())
}
