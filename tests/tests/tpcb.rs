//! pgbench's built-in TPC-B-like transaction through one router: the sums
//! of account, teller and branch balances and of the history deltas stay
//! equal in every ack mode (a lost update makes them drift apart).

use std::process::Command;

use anyhow::{Context, Result, ensure};
use tests::Cluster;

/// pgbench's tables at scale 1 (what `pgbench -i -s 1` creates, less the
/// accounts rows), with a generated key on the history table so it
/// replicates: the schema `bench/tpcb.sh` uses.
const SCHEMA: &str = include_str!("../../bench/tpcb_schema.sql");

async fn sums(cluster: &Cluster) -> Result<[i64; 4]> {
    let c = cluster.connect(0).await?;
    c.batch_execute("SET tributary.read_consistency = 'strong'")
        .await?;
    let mut out = [0; 4];
    for (i, sql) in [
        "SELECT CAST(coalesce(sum(abalance), 0) AS BIGINT) FROM pgbench_accounts",
        "SELECT CAST(coalesce(sum(tbalance), 0) AS BIGINT) FROM pgbench_tellers",
        "SELECT CAST(coalesce(sum(bbalance), 0) AS BIGINT) FROM pgbench_branches",
        "SELECT CAST(coalesce(sum(delta), 0) AS BIGINT) FROM pgbench_history",
    ]
    .iter()
    .enumerate()
    {
        out[i] = c.query_one(*sql, &[]).await?.try_get(0)?;
    }
    Ok(out)
}

fn pgbench(cluster: &Cluster, args: &[&str]) -> Result<String> {
    let out = Command::new("pgbench")
        .args(args)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "test",
            "test",
        ])
        .output()
        .context("running pgbench (install postgresql)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    Ok(text)
}

/// 8 clients of pgbench's TPC-B-like transaction for 5 s; then the sums
/// agree and every replica holds the same rows.
async fn run_tpcb(cluster: &Cluster, label: &str) -> Result<()> {
    let text = pgbench(
        cluster,
        &["-n", "-b", "tpcb-like", "-c", "8", "-j", "2", "-T", "5"],
    )?;
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps"))
        .unwrap_or("tps: ?");
    let processed = text
        .lines()
        .find(|l| l.contains("number of transactions actually processed"))
        .unwrap_or("?");
    eprintln!("{label}: {processed}; {tps}");
    ensure!(
        text.contains("number of failed transactions: 0"),
        "pgbench reported failures:\n{text}"
    );
    let s = sums(cluster).await?;
    eprintln!(
        "{label}: accounts {} tellers {} branches {} history {}",
        s[0], s[1], s[2], s[3]
    );
    ensure!(
        s[0] == s[1] && s[1] == s[2] && s[2] == s[3],
        "{label}: TPC-B sums disagree: accounts {} tellers {} branches {} history {}",
        s[0],
        s[1],
        s[2],
        s[3]
    );
    cluster.wait_converged().await?;
    let first = tests::dump(&cluster.replica_path(0))?;
    for i in 1..cluster.replicas {
        ensure!(
            tests::dump(&cluster.replica_path(i))? == first,
            "{label}: replica {} differs from replica 1",
            i + 1
        );
    }
    Ok(())
}

async fn tpcb(ack: &str) -> Result<()> {
    let config = format!("[replication]\nack = \"{ack}\"\n");
    let cluster = Cluster::in_process(3, 1, Some(&config)).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(SCHEMA).await?;
    for chunk in 0..10 {
        c.batch_execute(&format!(
            "INSERT INTO pgbench_accounts WITH RECURSIVE s(x) AS (SELECT {lo} UNION ALL SELECT x + 1 FROM s WHERE x < {hi}) SELECT x, 1, 0, NULL FROM s",
            lo = chunk * 10_000 + 1,
            hi = (chunk + 1) * 10_000
        ))
        .await?;
    }
    run_tpcb(&cluster, ack).await?;
    cluster.shutdown().await;
    Ok(())
}

/// `pgbench -i` exactly as users run it: tables without primary keys (a
/// hidden row key), `WITH (fillfactor=…)`, `TRUNCATE` of four tables and
/// `COPY … WITH (freeze on)` in one block, `vacuum analyze`, then
/// `ALTER TABLE … ADD PRIMARY KEY` rebuilding each table in log order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_init_unchanged_then_tpcb_like() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let init = pgbench(&cluster, &["-i", "-s", "1"])?;
    ensure!(init.contains("done in"), "{init}");
    let c = cluster.connect(0).await?;
    let accounts: i64 = c
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await?
        .try_get(0)?;
    ensure!(accounts == 100_000, "pgbench -i loaded {accounts} accounts");
    // The keys pgbench added are real: a duplicate is refused.
    let dup = c
        .batch_execute("INSERT INTO pgbench_branches (bid, bbalance) VALUES (1, 0)")
        .await
        .err()
        .and_then(|e| e.code().map(|s| s.code().to_owned()));
    ensure!(dup.as_deref() == Some("23505"), "duplicate branch: {dup:?}");
    run_tpcb(&cluster, "pgbench -i").await?;
    // History has no key: its hidden one stays out of `SELECT *`.
    let row = c
        .query("SELECT * FROM pgbench_history LIMIT 1", &[])
        .await?;
    let names: Vec<&str> = row
        .first()
        .map(|r| r.columns().iter().map(|c| c.name()).collect())
        .unwrap_or_default();
    ensure!(
        names == ["tid", "bid", "aid", "delta", "mtime", "filler"],
        "SELECT * shows {names:?}"
    );
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_like_sums_stay_equal_in_async() -> Result<()> {
    tpcb("async").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_like_sums_stay_equal_in_semi_sync() -> Result<()> {
    tpcb("semi-sync").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_like_sums_stay_equal_in_sync() -> Result<()> {
    tpcb("sync").await
}
