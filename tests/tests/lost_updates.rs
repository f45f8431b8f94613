//! No acknowledged write is lost: invariants a lost update would break,
//! under real concurrency, through one router and across several.

use std::time::Duration;

use anyhow::{Result, ensure};
use tests::{Cluster, bank};

const ACCOUNTS: usize = 10;
const RUN: Duration = Duration::from_secs(4);

/// Every replica holds balances that match what clients were told.
async fn check_replicas(cluster: &Cluster, ledger: &bank::Ledger) -> Result<()> {
    cluster.wait_converged().await?;
    let first = tests::dump(&cluster.replica_path(0))?;
    for i in 0..cluster.replicas {
        let balances = bank::balances(&cluster.replica_path(i))?;
        ledger
            .check(&balances)
            .map_err(|e| e.context(format!("replica {}", i + 1)))?;
        ensure!(
            tests::dump(&cluster.replica_path(i))? == first,
            "replica {} differs from replica 1",
            i + 1
        );
    }
    Ok(())
}

/// 9 clients through one router under the default policy (lww), three in
/// each ack mode at once: the total is exact at every read and at the end,
/// and every account equals its start plus the acknowledged transfers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_through_one_router_keep_every_total() -> Result<()> {
    let cluster = Cluster::in_process(3, 1, None).await?;
    bank::create(&cluster.connect(0).await?, ACCOUNTS).await?;
    let setups = [
        "SET tributary.ack = 'async'",
        "SET tributary.ack = 'semi-sync'",
        "SET tributary.ack = 'sync'",
    ];
    let run = bank::start(&[cluster.port], 9, ACCOUNTS, &setups, 7);
    tokio::time::sleep(RUN).await;
    let out = run.stop().await?;
    let l = &out.ledger;
    eprintln!(
        "acked {} refused {:?} in doubt {} reads {}",
        l.acked, l.refused, l.in_doubt, out.reads
    );
    ensure!(l.acked > 50, "too few transfers to mean anything: {l:?}");
    ensure!(out.reads > 20, "too few checked reads: {}", out.reads);
    ensure!(l.in_doubt == 0, "no failure should be in doubt here: {l:?}");
    // Opposite transfers lock rows in opposite orders: deadlocks are
    // refused (40P01) exactly as PostgreSQL refuses them; nothing else is.
    ensure!(
        l.refused.keys().all(|c| c == "40P01"),
        "unexpected refusals: {:?}",
        l.refused
    );
    check_replicas(&cluster, l).await?;
    cluster.shutdown().await;
    Ok(())
}

/// `n = n + 1` from 8 autocommit sessions of one router never loses an
/// increment, and rows inserted without a key get distinct keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_one_router_are_all_kept() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
         INSERT INTO counters VALUES (1, 0);
         CREATE TABLE events (id INTEGER PRIMARY KEY, who BIGINT);",
    )
    .await?;
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let port = cluster.port;
        tasks.push(tokio::spawn(async move {
            let c = tests::connect_port(port).await?;
            for _ in 0..50 {
                c.execute("UPDATE counters SET n = n + 1 WHERE id = 1", &[])
                    .await?;
                c.execute("INSERT INTO events (who) VALUES ($1)", &[&w])
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    cluster.wait_converged().await?;
    for i in 0..2 {
        let conn = rusqlite::Connection::open(cluster.replica_path(i))?;
        let n: i64 = conn.query_row("SELECT n FROM counters WHERE id = 1", [], |r| r.get(0))?;
        ensure!(n == 400, "replica {}: counter {n}, expected 400", i + 1);
        let (rows, ids): (i64, i64) =
            conn.query_row("SELECT count(*), count(DISTINCT id) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        ensure!(
            rows == 400 && ids == 400,
            "replica {}: {rows} event rows with {ids} distinct ids, expected 400",
            i + 1
        );
        let conflicts: i64 =
            conn.query_row("SELECT count(*) FROM tributary_conflicts", [], |r| r.get(0))?;
        ensure!(
            conflicts == 0,
            "writes of one router met {conflicts} conflicts on replica {}",
            i + 1
        );
    }
    cluster.shutdown().await;
    Ok(())
}

async fn across_routers(policy: &str, ack: &str) -> Result<bank::Outcome> {
    let cluster = Cluster::in_process(3, 3, None).await?;
    let c = cluster.connect(0).await?;
    bank::create(&c, ACCOUNTS).await?;
    c.batch_execute(&format!(
        "SET tributary.apply_policy = '{}'",
        policy.replace('\'', "''")
    ))
    .await?;
    cluster.wait_converged().await?;
    let ports: Vec<u16> = (0..3).map(|r| cluster.router_port(r)).collect();
    let setup = format!("SET tributary.ack = '{ack}'");
    let run = bank::start(&ports, 9, ACCOUNTS, &[&setup], 11);
    tokio::time::sleep(RUN).await;
    let out = run.stop().await?;
    let l = &out.ledger;
    eprintln!(
        "{ack}: acked {} refused {:?} in doubt {} ({:?}) reads {}",
        l.acked, l.refused, l.in_doubt, l.last_doubt, out.reads
    );
    ensure!(l.acked > 30, "too few transfers to mean anything: {l:?}");
    ensure!(l.in_doubt == 0, "no failure should be in doubt here: {l:?}");
    check_replicas(&cluster, l).await?;
    Ok(out)
}

/// Across three routers a counter column merges concurrent transfers:
/// nothing is refused (but deadlocks inside one router) and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_across_routers_under_counter_keep_every_total() -> Result<()> {
    let policy = "default = \"lww\"\n[tables.bank]\ncolumns.balance = \"counter\"\n";
    for ack in ["semi-sync", "sync"] {
        let out = across_routers(policy, ack).await?;
        ensure!(
            out.ledger.refused.keys().all(|c| c == "40P01"),
            "{ack}: counter refused transfers: {:?}",
            out.ledger.refused
        );
    }
    Ok(())
}

/// Across three routers first-writer-wins refuses the later of two
/// conflicting transfers with 40001; what it accepts is all kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_across_routers_under_first_writer_wins_keep_every_total() -> Result<()> {
    let policy = "default = \"lww\"\n[tables.bank]\nstrategy = \"first-writer-wins\"\n";
    for ack in ["semi-sync", "sync"] {
        let out = across_routers(policy, ack).await?;
        ensure!(
            out.ledger
                .refused
                .keys()
                .all(|c| c == "40P01" || c == "40001"),
            "{ack}: unexpected refusals {:?}",
            out.ledger.refused
        );
        ensure!(
            out.ledger.refused.get("40001").copied().unwrap_or(0) > 0,
            "{ack}: 9 clients over 10 accounts on 3 routers met no conflict at all?"
        );
    }
    Ok(())
}

/// A counter that would leave the 64-bit range is refused with 22003 and
/// keeps its count: through one router (SQLite would turn it into a REAL)
/// and when two routers' increments merge past the range at apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_past_the_64_bit_range_are_refused_never_reset() -> Result<()> {
    let cluster = Cluster::in_process(2, 2, None).await?;
    let max = i64::MAX;
    let c = cluster.connect(0).await?;
    c.batch_execute(&format!(
        "CREATE TABLE hits (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO hits VALUES (1, {})",
        max - 10
    ))
    .await?;
    c.batch_execute(
        "SET tributary.apply_policy = 'default = \"lww\"\n[tables.hits]\ncolumns.n = \"counter\"\n'",
    )
    .await?;
    let code = |r: std::result::Result<u64, tokio_postgres::Error>| {
        r.err().and_then(|e| e.code().map(|c| c.code().to_owned()))
    };
    // One router: the statement itself would overflow.
    let err = code(
        c.execute("UPDATE hits SET n = n + 11 WHERE id = 1", &[])
            .await,
    );
    ensure!(err.as_deref() == Some("22003"), "one router: {err:?}");
    // Two routers: each increment fits, their merge does not.
    let a = cluster.connect(0).await?;
    let b = cluster.connect(1).await?;
    for s in [&a, &b] {
        s.batch_execute("SET tributary.ack = 'sync'").await?;
    }
    a.batch_execute("BEGIN; UPDATE hits SET n = n + 6 WHERE id = 1")
        .await?;
    b.execute("UPDATE hits SET n = n + 6 WHERE id = 1", &[])
        .await?;
    let err = a
        .batch_execute("COMMIT")
        .await
        .err()
        .and_then(|e| e.code().map(|c| c.code().to_owned()));
    ensure!(
        err.as_deref() == Some("22003"),
        "merge past the range: {err:?}"
    );
    cluster.wait_converged().await?;
    for i in 0..2 {
        let conn = rusqlite::Connection::open(cluster.replica_path(i))?;
        let n: i64 = conn.query_row("SELECT n FROM hits WHERE id = 1", [], |r| r.get(0))?;
        ensure!(
            n == max - 4,
            "replica {}: counter {n}, expected {}",
            i + 1,
            max - 4
        );
    }
    // The counter still counts.
    b.execute("UPDATE hits SET n = n - 4 WHERE id = 1", &[])
        .await?;
    let n: i64 = b
        .query_one("SELECT n FROM hits WHERE id = 1", &[])
        .await?
        .try_get(0)?;
    ensure!(n == max - 8, "after a decrement: {n}");
    cluster.shutdown().await;
    Ok(())
}
