//! The cluster on Kafka: a tansu broker and three `tributary node`
//! processes (two with routers). Concurrent writes in each ack mode, every
//! replica identical; kill -9 a node and restart it; freeze the broker:
//! writes fail clearly within the timeout, nothing acknowledged is lost, and
//! the cluster resumes.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use tests::{Node, Tansu, eventually};

/// Waits until every node applied the whole log (its end as a router sees
/// it now) and all replica files hold the same rows.
async fn converged(router_port: u16, nodes: &[&Node]) -> Result<()> {
    let c = tests::connect_port(router_port).await?;
    let end: u64 = c
        .simple_query("SELECT log_end FROM tributary_replicas")
        .await?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        })
        .unwrap_or(0);
    eventually(
        Duration::from_secs(60),
        "all replicas at the log end and identical",
        || async {
            let offsets: Vec<u64> = nodes
                .iter()
                .map(|n| tests::applied_offset(&n.replica_path()))
                .collect::<Result<_>>()?;
            if offsets.iter().any(|o| *o < end) {
                return Ok(None);
            }
            let dumps: Vec<String> = nodes
                .iter()
                .map(|n| tests::dump(&n.replica_path()))
                .collect::<Result<_>>()?;
            Ok(dumps.iter().all(|d| *d == dumps[0]).then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_kafka_survive_kills_and_a_frozen_broker() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let extra = "[replication]\nack_timeout_ms = 5000\n";
    let mut n1 = Node::new(root.path(), "n1", &broker.brokers(), true, extra)?;
    let mut n2 = Node::new(root.path(), "n2", &broker.brokers(), true, extra)?;
    let mut n3 = Node::new(root.path(), "n3", &broker.brokers(), false, extra)?;
    n1.spawn().await?;
    n2.spawn().await?;
    n3.spawn().await?;
    let (p1, p2) = (n1.port.unwrap_or(0), n2.port.unwrap_or(0));
    let a = tests::connect_port(p1).await?;
    a.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT)")
        .await?;
    // Cross-router writes are async with respect to each other: n2 knows the
    // table once its replica has applied the DDL.
    eventually(Duration::from_secs(30), "n2 has the table", || async move {
        let c = tests::connect_port(p2).await?;
        Ok(c.simple_query("SELECT count(*) FROM kv")
            .await
            .ok()
            .map(|_| ()))
    })
    .await?;
    let mut acked = BTreeSet::new();
    // Concurrent writes through both routers, each ack mode.
    for (round, mode) in ["async", "semi-sync", "sync"].iter().enumerate() {
        let mut tasks = Vec::new();
        for (w, port) in [p1, p2, p1, p2].into_iter().enumerate() {
            let mode = mode.to_string();
            tasks.push(tokio::spawn(async move {
                let c = tests::connect_port(port).await?;
                c.batch_execute(&format!("SET tributary.ack = '{mode}'"))
                    .await?;
                let mut ids = Vec::new();
                for i in 0..10i64 {
                    let id = (round as i64) * 1000 + (w as i64) * 100 + i;
                    c.execute("INSERT INTO kv VALUES ($1, $2)", &[&id, &mode])
                        .await?;
                    ids.push(id);
                }
                anyhow::Ok(ids)
            }));
        }
        for t in tasks {
            acked.extend(t.await??);
        }
    }
    converged(p1, &[&n1, &n2, &n3]).await?;

    // kill -9 a replica-only node, keep writing, restart it: it catches up.
    n3.kill9()?;
    for i in 0..20i64 {
        a.execute(
            "INSERT INTO kv VALUES ($1, 'while n3 was down')",
            &[&(5000 + i)],
        )
        .await?;
        acked.insert(5000 + i);
    }
    n3.spawn().await?;
    // And a router node: its clients reconnect after the restart.
    n2.kill9()?;
    n2.spawn().await?;
    let b = tests::connect_port(p2).await?;
    b.execute("INSERT INTO kv VALUES (6000, 'after n2 restart')", &[])
        .await?;
    acked.insert(6000);
    converged(p1, &[&n1, &n2, &n3]).await?;

    // Freeze the broker: a write fails with a clear error within the timeout.
    broker.signal("STOP")?;
    let started = std::time::Instant::now();
    let e = a
        .execute("INSERT INTO kv VALUES (7000, 'during outage')", &[])
        .await
        .expect_err("broker is frozen");
    let msg = format!("{e:?}");
    assert!(
        msg.contains("kafka") || msg.contains("log append failed"),
        "{msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed after {:?}",
        started.elapsed()
    );
    broker.signal("CONT")?;
    // The cluster resumes.
    eventually(
        Duration::from_secs(60),
        "writes to succeed again",
        || async {
            Ok(
                a.execute("INSERT INTO kv VALUES (7001, 'after outage')", &[])
                    .await
                    .ok()
                    .map(|_| ()),
            )
        },
    )
    .await?;
    acked.insert(7001);
    converged(p1, &[&n1, &n2, &n3]).await?;
    for n in [&n1, &n2, &n3] {
        let conn = rusqlite::Connection::open(n.replica_path())?;
        let ids: BTreeSet<i64> = conn
            .prepare("SELECT id FROM kv")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let missing: Vec<_> = acked.difference(&ids).take(5).collect();
        assert!(
            missing.is_empty(),
            "{} lost acknowledged writes: {missing:?}",
            n.id
        );
    }
    Ok(())
}
