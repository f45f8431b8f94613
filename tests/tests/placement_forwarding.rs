//! Forwarding between nodes (`[router.peers]`): three `tributary node`
//! processes on tansu with one replica each, each replica its own shard
//! group, so every router forwards two thirds of the work to its peers.
//! Files hold only their group's rows; reads and writes through any
//! router are right; the differential test runs through a router whose
//! reads are mostly on peers; transfers keep their total through one and
//! through three routers, and while peers are killed.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::differential::rows as text;
use tests::{Node, Tansu, connect_port, eventually, sqlite3};
use tokio_postgres::Client;

const CUSTOMERS: i64 = 90;

/// Forwarding: three `tributary node` processes on tansu with one replica
/// each, each replica its own shard group, so every router must forward
/// two thirds of the work to its peers (`[router.peers]`): writes are
/// speculated on the peer holding the rows and appended by the router the
/// client talks to, reads are held at one log offset on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_forward_to_the_nodes_holding_other_groups() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let nodes = forwarding_nodes(&broker, root.path()).await?;
    let ports: Vec<u16> = nodes
        .iter()
        .map(|n| n.port.context("a router"))
        .collect::<Result<_>>()?;
    let c = connect_port(ports[0]).await?;
    c.batch_execute(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
         SELECT tributary.shard_groups('n1', 'n2', 'n3');
         SELECT tributary.distribute('customers', 'customer_id', 'hash', 6);
         INSERT INTO customers (customer_id, name, balance)
           SELECT g, 'c' || (g % 7), 1000 FROM generate_series(1, 90) AS g;",
    )
    .await?;
    let nodes_ref = &nodes;
    let counts = eventually(
        Duration::from_secs(60),
        "the three files hold the 90 customers between them",
        || async move {
            let mut counts = Vec::new();
            for n in nodes_ref {
                let ids = sqlite3(&n.replica_path(), "SELECT customer_id FROM customers")?;
                counts.push(ids);
            }
            let all: BTreeSet<&String> = counts.iter().flatten().collect();
            let total: usize = counts.iter().map(Vec::len).sum();
            Ok((all.len() == 90 && total == 90).then_some(counts))
        },
    )
    .await?;
    ensure!(
        counts.iter().all(|c| !c.is_empty()),
        "a node holds no customers"
    );

    // Reads through each router, scattered over all three nodes.
    for port in &ports {
        let c = connect_port(*port).await?;
        let got = text(&c, "SELECT count(*), sum(balance) FROM customers").await?;
        ensure!(
            got == vec![vec![Some("90".into()), Some("90000".into())]],
            "{got:?}"
        );
        let got = text(
            &c,
            "SELECT customer_id, name FROM customers ORDER BY customer_id DESC LIMIT 3",
        )
        .await?;
        ensure!(
            got[0][0].as_deref() == Some("90") && got.len() == 3,
            "{got:?}"
        );
        for id in [1, 2, 3, 4, 5, 6] {
            let got = text(
                &c,
                &format!("SELECT name FROM customers WHERE customer_id = {id}"),
            )
            .await?;
            ensure!(
                got == vec![vec![Some(format!("c{}", id % 7))]],
                "customer {id}: {got:?}"
            );
        }
    }

    // Transfers through one router (exact under any policy), then through
    // all three (balance a counter column).
    for (round, routers) in [(0, 1), (1, 3)] {
        if round == 1 {
            c.batch_execute(
                "SET tributary.apply_policy = 'default = \"lww\"\n[tables.customers]\ncolumns.balance = \"counter\"\n'",
            )
            .await?;
        }
        let mut tasks = Vec::new();
        for w in 0..3usize {
            let client = connect_port(ports[w % routers]).await?;
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                let mut i = (w * 31 + round * 17) as i64;
                while done < 15 {
                    i += 11;
                    let (a, b) = (1 + i % CUSTOMERS, 1 + (i * 7) % CUSTOMERS);
                    if tests::differential::transfer(&client, a, b, 3).await? {
                        done += 1;
                    }
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        eventually(
            Duration::from_secs(60),
            "the total holds in the files and through every router",
            || async move {
                let mut files = 0i64;
                for n in nodes_ref {
                    let s = sqlite3(&n.replica_path(), "SELECT total(balance) FROM customers")?;
                    files += s.first().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as i64;
                }
                if files != CUSTOMERS * 1000 {
                    return Ok(None);
                }
                for n in nodes_ref {
                    let c = connect_port(n.port.unwrap_or(0)).await?;
                    let sum = text(&c, "SELECT sum(balance) FROM customers").await?;
                    if sum.first().and_then(|r| r[0].clone())
                        != Some((CUSTOMERS * 1000).to_string())
                    {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await
        .with_context(|| {
            nodes
                .iter()
                .map(Node::log_tail)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
    }
    Ok(())
}

/// Three nodes `n1`, `n2`, `n3` with one replica each, every router
/// naming the others as peers.
async fn forwarding_nodes(broker: &Tansu, root: &std::path::Path) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for id in ["n1", "n2", "n3"] {
        nodes.push(Node::new(root, id, &broker.brokers(), true, "")?);
    }
    let peers: String = nodes
        .iter()
        .map(|n| format!("{} = \"127.0.0.1:{}\"\n", n.id, n.port.unwrap_or(0)))
        .collect();
    for n in &mut nodes {
        let mut config = std::fs::read_to_string(n.config_path())?;
        config += &format!("[router.peers]\n{peers}");
        std::fs::write(n.config_path(), config)?;
        n.spawn().await?;
    }
    Ok(nodes)
}

/// The differential test across three nodes with one group each: loaded
/// through n1, 200 generated queries through n2 (every scattered read
/// reads two groups on peers) compared with one unsharded SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_queries_through_forwarding_routers() -> Result<()> {
    use tests::differential::{self, Rng, SCHEMA};
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let nodes = forwarding_nodes(&broker, root.path()).await?;
    let c1 = connect_port(nodes[0].port.context("n1 router")?).await?;
    let db = rusqlite::Connection::open_in_memory()?;
    db.execute_batch(SCHEMA)?;
    c1.batch_execute(SCHEMA).await?;
    for sql in differential::placement_sql(&["'n1'", "'n2'", "'n3'"]) {
        c1.simple_query(&sql).await.with_context(|| sql.clone())?;
    }
    let seed = std::env::var("PLACEMENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    let mut rng = Rng(seed | 1);
    differential::load(&c1, &db, &mut rng).await?;
    let c2 = connect_port(nodes[1].port.context("n2 router")?).await?;
    // Another router's session sees the load once it is handed the
    // offset after it (README, read consistency): `strong` alone reads to
    // the log end as n2 last polled it from the broker.
    let offset = c1
        .simple_query("SHOW tributary.offset")
        .await?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .context("SHOW tributary.offset")?;
    c2.batch_execute(&format!("SET tributary.min_offset = {offset}"))
        .await?;
    let (compared, refused) = differential::run(&c2, &db, &mut rng, 200, None).await?;
    ensure!(compared >= 190, "too many refusals: {refused}");
    eprintln!("forwarding differential: {compared} answers compared, {refused} refused");
    // Inside a block that has written, a read of groups on peers is
    // refused (0A000), never answered wrongly.
    c2.batch_execute(
        "BEGIN; UPDATE customers SET balance = 1 WHERE customer_id IN (1, 2, 3, 4, 5, 6)",
    )
    .await?;
    let e = c2
        .simple_query("SELECT count(*) FROM customers")
        .await
        .err()
        .context("a read of peers' groups inside a block was answered")?;
    ensure!(e.code().map(|s| s.code()) == Some("0A000"), "{e:?}");
    c2.batch_execute("ROLLBACK").await?;
    Ok(())
}

/// Forwarding under failure: cross-shard transfers through n1 while the
/// peers n2 and n3 (which hold two of the three groups) are killed -9 and
/// restarted six times. A transfer whose peer died fails or commits whole
/// (one record); afterwards the files and every router hold the exact
/// total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_transfers_survive_peer_kills() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let mut nodes = forwarding_nodes(&broker, root.path()).await?;
    let port = nodes[0].port.context("n1 router")?;
    let c = connect_port(port).await?;
    c.batch_execute(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, balance INTEGER);
         SELECT tributary.shard_groups('n1', 'n2', 'n3');
         SELECT tributary.distribute('customers', 'customer_id', 'hash', 6);
         INSERT INTO customers (customer_id, name, balance)
           SELECT g, 'c' || g, 1000 FROM generate_series(1, 30) AS g;",
    )
    .await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..3i64 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut client: Option<Client> = None;
            let mut i = w * 13;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(c) = client.as_ref().filter(|c| !c.is_closed()) else {
                    client = connect_port(port).await.ok();
                    continue;
                };
                i += 7;
                let (a, b) = (1 + i % 30, 1 + (i * 11) % 30);
                let r = c
                    .batch_execute(&format!(
                        "BEGIN; UPDATE customers SET balance = balance - 2 WHERE customer_id = {a};
                         UPDATE customers SET balance = balance + 2 WHERE customer_id = {b}; COMMIT"
                    ))
                    .await;
                match r {
                    Ok(()) => ok += 1,
                    Err(_) => {
                        failed += 1;
                        let _ = c.batch_execute("ROLLBACK").await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            anyhow::Ok((ok, failed))
        }));
    }
    for k in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let victim = 1 + k % 2;
        nodes[victim].kill9()?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        nodes[victim].spawn().await?;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await??;
        ok += o;
        failed += f;
    }
    ensure!(ok > 0, "no transfer committed ({failed} failed)");
    let nodes_ref = &nodes;
    eventually(
        Duration::from_secs(60),
        "the total holds in the files and through every router",
        || async move {
            let mut files = 0i64;
            let mut rows = 0usize;
            for n in nodes_ref {
                let s = sqlite3(
                    &n.replica_path(),
                    "SELECT total(balance), count(*) FROM customers",
                )?;
                let line = s.first().cloned().unwrap_or_default();
                let (t, n_rows) = line.split_once('|').unwrap_or(("0", "0"));
                files += t.parse::<f64>().unwrap_or(0.0) as i64;
                rows += n_rows.parse::<usize>().unwrap_or(0);
            }
            if files != 30_000 || rows != 30 {
                return Ok(None);
            }
            for n in nodes_ref {
                let c = connect_port(n.port.unwrap_or(0)).await?;
                c.batch_execute("SET tributary.read_consistency = 'strong'")
                    .await?;
                let sum = text(&c, "SELECT sum(balance), count(*) FROM customers").await?;
                if sum != vec![vec![Some("30000".to_owned()), Some("30".to_owned())]] {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
    .with_context(|| {
        format!(
            "{ok} transfers committed, {failed} failed\n{}",
            nodes
                .iter()
                .map(Node::log_tail)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    eprintln!("forwarded transfers under peer kills: {ok} committed, {failed} failed");
    Ok(())
}
