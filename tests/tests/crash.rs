//! kill -9 mid-load, restart on the same data directory: every acknowledged
//! write is on every replica, no transaction is half-applied, nothing was
//! applied twice, and all replicas are identical.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tests::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_load_loses_no_acknowledged_write() -> Result<()> {
    let mut cluster = Cluster::start(3, 2, &[]).await?;
    let setup = cluster.connect(0).await?;
    setup
        .batch_execute(
            "CREATE TABLE pairs (id BIGINT PRIMARY KEY, grp BIGINT NOT NULL);
             CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
             INSERT INTO counter VALUES (1, 0);",
        )
        .await?;
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let counter_acked = Arc::new(Mutex::new(0i64));
    let counter_tried = Arc::new(Mutex::new(0i64));
    let mut writers = Vec::new();
    for w in 0..6i64 {
        let port = cluster.router_port((w % 2) as u16);
        let acked = acked.clone();
        let (counter_acked, counter_tried) = (counter_acked.clone(), counter_tried.clone());
        writers.push(tokio::spawn(async move {
            let Ok(c) = tests::connect_port(port).await else { return };
            let mode = ["async", "semi-sync", "sync"][(w % 3) as usize];
            if c.batch_execute(&format!("SET tributary.ack = '{mode}'")).await.is_err() {
                return;
            }
            for k in 0.. {
                let grp = w * 1_000_000 + k;
                let bump = w == 0;
                let mut sql = format!(
                    "BEGIN; INSERT INTO pairs VALUES ({}, {grp}); INSERT INTO pairs VALUES ({}, {grp});",
                    2 * grp,
                    2 * grp + 1
                );
                if bump {
                    sql.push_str(" UPDATE counter SET n = n + 1 WHERE id = 1;");
                    *counter_tried.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
                sql.push_str(" COMMIT");
                if c.batch_execute(&sql).await.is_err() {
                    return;
                }
                acked.lock().unwrap_or_else(|p| p.into_inner()).extend([2 * grp, 2 * grp + 1]);
                if bump {
                    *counter_acked.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                }
            }
        }));
    }
    // Let load build up, then kill the whole node without warning.
    let a2 = acked.clone();
    eventually(Duration::from_secs(60), "some acknowledged writes", || {
        let a2 = a2.clone();
        async move { Ok((a2.lock().unwrap_or_else(|p| p.into_inner()).len() >= 400).then_some(())) }
    })
    .await?;
    cluster.kill9()?;
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let counter_acked = *counter_acked.lock().unwrap_or_else(|p| p.into_inner());
    let counter_tried = *counter_tried.lock().unwrap_or_else(|p| p.into_inner());

    cluster.spawn().await?;
    cluster.wait_converged().await?;
    let dumps: Vec<String> = (0..3)
        .map(|i| tests::dump(&cluster.replica_path(i)))
        .collect::<Result<_>>()?;
    assert!(
        dumps.iter().all(|d| *d == dumps[0]),
        "replicas differ after restart"
    );
    for i in 0..3 {
        let conn = rusqlite::Connection::open(cluster.replica_path(i))?;
        let ids: BTreeSet<i64> = conn
            .prepare("SELECT id FROM pairs")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let missing: Vec<_> = acked.difference(&ids).take(5).collect();
        assert!(
            missing.is_empty(),
            "replica {i} lost acknowledged writes, e.g. {missing:?}"
        );
        let partial: i64 = conn.query_row(
            "SELECT count(*) FROM (SELECT grp FROM pairs GROUP BY grp HAVING count(*) <> 2)",
            [],
            |r| r.get(0),
        )?;
        assert_eq!(partial, 0, "replica {i} shows a partial transaction");
        let n: i64 = conn.query_row("SELECT n FROM counter WHERE id = 1", [], |r| r.get(0))?;
        assert!(
            n >= counter_acked && n <= counter_tried,
            "replica {i}: counter {n} outside [{counter_acked}, {counter_tried}] (double apply or loss)"
        );
    }
    assert!(acked.len() >= 400);
    Ok(())
}
