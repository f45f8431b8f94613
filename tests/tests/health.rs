//! Replica health in sync mode: a silent replica leaves the wait set (the
//! client gets a NOTICE, status says so), later writes do not wait for it,
//! and it rejoins once it has caught up.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use tests::{Cluster, dump};

fn replica_health(cluster: &Cluster) -> Result<String> {
    let out = cluster.tributary(&[
        "status",
        "--router",
        &format!("127.0.0.1:{}", cluster.router_port(0)),
    ])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_replica_leaves_the_sync_wait_set_and_rejoins() -> Result<()> {
    let cluster = Cluster::in_process(
        3,
        1,
        Some("[replication]\nack_timeout_ms = 20000\nreplica_silent_ms = 500\n"),
    )
    .await?;
    cluster.psql(0, &["CREATE TABLE s (id BIGINT PRIMARY KEY)"])?;
    cluster.wait_converged().await?;

    // replica3 stops applying (its write lock is held from outside).
    let blocker = rusqlite::Connection::open(cluster.replica_path(2))?;
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let started = Instant::now();
    let out = cluster.psql(
        0,
        &["SET tributary.ack = 'sync'", "INSERT INTO s VALUES (1)"],
    )?;
    let waited = started.elapsed();
    ensure!(out.contains("INSERT 0 1"), "{out}");
    ensure!(
        out.contains("NOTICE") && out.contains("replica3") && out.contains("silent"),
        "the client is told: {out}"
    );
    ensure!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(15),
        "waited {waited:?}: the silence threshold, not the ack timeout"
    );
    // The other two applied it before the reply (sync on the healthy ones).
    for i in 0..2 {
        let n: i64 = rusqlite::Connection::open(cluster.replica_path(i))?.query_row(
            "SELECT count(*) FROM s",
            [],
            |r| r.get(0),
        )?;
        ensure!(n == 1, "replica{} has the write at reply time", i + 1);
    }
    let status = replica_health(&cluster)?;
    ensure!(
        status
            .lines()
            .any(|l| l.starts_with("replica3") && l.contains("unhealthy")),
        "{status}"
    );

    // Later writes do not wait for it.
    let started = Instant::now();
    let out = cluster.psql(
        0,
        &["SET tributary.ack = 'sync'", "INSERT INTO s VALUES (2)"],
    )?;
    ensure!(
        out.contains("INSERT 0 1") && out.contains("silent"),
        "{out}"
    );
    ensure!(
        started.elapsed() < Duration::from_millis(2000),
        "no wait: {:?}",
        started.elapsed()
    );

    // It comes back, catches up and is waited for again.
    blocker.execute_batch("ROLLBACK")?;
    drop(blocker);
    cluster.wait_converged().await?;
    let out = cluster.psql(
        0,
        &["SET tributary.ack = 'sync'", "INSERT INTO s VALUES (3)"],
    )?;
    ensure!(
        out.contains("INSERT 0 1") && !out.contains("NOTICE"),
        "{out}"
    );
    let n: i64 = rusqlite::Connection::open(cluster.replica_path(2))?.query_row(
        "SELECT count(*) FROM s",
        [],
        |r| r.get(0),
    )?;
    ensure!(n == 3, "replica3 is in the wait set again");
    let status = replica_health(&cluster)?;
    ensure!(!status.contains("unhealthy"), "{status}");
    let reference = dump(&cluster.replica_path(0))?;
    for i in 1..3 {
        ensure!(dump(&cluster.replica_path(i))? == reference);
    }
    cluster.shutdown().await;
    Ok(())
}
