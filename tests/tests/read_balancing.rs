//! Read balancing against the real binary: one router's reads spread over
//! all three replicas of `tributary up`; a replica held back by a lock on
//! its file (another process's write transaction) gets no reads while it
//! lags, and gets them again once it has caught up. Reads are counted by
//! replica in `tributary_router_reads_total`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, eventually, free_ports};
use tokio_postgres::Client;

/// `tributary_router_reads_total` by replica, from `/metrics`.
fn reads(port: u16) -> Result<BTreeMap<String, u64>> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("tributary_router_reads_total{"))
    {
        let replica = line
            .split("replica=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .context("replica label")?;
        let n: f64 = line.rsplit(' ').next().context("value")?.parse()?;
        out.insert(replica.to_owned(), n as u64);
    }
    Ok(out)
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, replica: &str) -> u64 {
    after.get(replica).copied().unwrap_or(0) - before.get(replica).copied().unwrap_or(0)
}

async fn read_many(c: &Client, n: usize) -> Result<()> {
    for _ in 0..n {
        c.query_one("SELECT count(*) FROM kv", &[]).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_avoid_a_replica_held_back_until_it_catches_up() -> Result<()> {
    let mport = free_ports(1)?;
    let config = format!("[metrics]\nlisten = \"127.0.0.1:{mport}\"\n");
    let cluster = Cluster::start_with_config(3, 1, &[], Some(&config)).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "SET tributary.ack = 'async'; SET tributary.read_consistency = 'eventual';
         CREATE TABLE kv (id int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 1)",
    )
    .await?;
    cluster.wait_converged().await?;

    // Caught up: sequential reads take the replicas in turn.
    let before = reads(mport)?;
    read_many(&c, 150).await?;
    let after = reads(mport)?;
    for r in ["replica1", "replica2", "replica3"] {
        ensure!(
            delta(&before, &after, r) >= 30,
            "{r} got too few reads: {before:?} -> {after:?}"
        );
    }

    // replica3's applier is held back by another process's write lock.
    let lock = rusqlite::Connection::open(cluster.replica_path(2))?;
    lock.execute_batch("BEGIN IMMEDIATE")?;
    for i in 2..12 {
        c.execute("INSERT INTO kv VALUES ($1, 1)", &[&i]).await?;
    }
    let seen = eventually(
        Duration::from_secs(20),
        "replica1 applied the inserts",
        || async {
            let n: i64 = c.query_one("SELECT count(*) FROM kv", &[]).await?.get(0);
            Ok((n == 11).then_some(n))
        },
    )
    .await?;
    ensure!(seen == 11);
    let before = reads(mport)?;
    read_many(&c, 150).await?;
    let held = reads(mport)?;
    let (r1, r2, r3) = (
        delta(&before, &held, "replica1"),
        delta(&before, &held, "replica2"),
        delta(&before, &held, "replica3"),
    );
    println!("while replica3 is held back: replica1 {r1}, replica2 {r2}, replica3 {r3} reads");
    ensure!(r3 == 0, "the lagging replica served {r3} reads");
    ensure!(r1 + r2 >= 150, "{before:?} -> {held:?}");

    // Released: it catches up and serves reads again.
    lock.execute_batch("ROLLBACK")?;
    drop(lock);
    cluster.wait_converged().await?;
    eventually(
        Duration::from_secs(20),
        "replica3 serves reads again",
        || async {
            let before = reads(mport)?;
            read_many(&c, 30).await?;
            let after = reads(mport)?;
            Ok((delta(&before, &after, "replica3") > 0).then_some(()))
        },
    )
    .await?;
    Ok(())
}
