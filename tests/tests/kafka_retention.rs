//! The Kafka log never skips records silently: its topic is created with
//! retention that never deletes; when records are deleted anyway (a broker
//! whose retention was changed), a replica that needs them stops with an
//! error naming both offsets, applies nothing past the gap, and is rebuilt
//! from a snapshot that covers it.
//!
//! tansu implements neither retention nor DeleteRecords; its SQLite storage
//! engine keeps records and the low watermark in tables, so the test does
//! to a stopped broker exactly what retention does (see
//! `Tansu::delete_records_before`).

use std::time::Duration;

use anyhow::{Result, ensure};
use tests::{Node, Tansu, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_stop_a_replica_and_a_snapshot_rebuilds_it() -> Result<()> {
    let mut broker = Tansu::start_durable().await?;
    let root = tempfile::tempdir()?;
    let mut n1 = Node::new(root.path(), "n1", &broker.brokers(), true, "")?;
    let mut n2 = Node::new(root.path(), "n2", &broker.brokers(), false, "")?;
    n1.spawn().await?;
    n2.spawn().await?;
    let port = n1.port.unwrap_or(0);
    let c = tests::connect_port(port).await?;
    c.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT)")
        .await?;
    for i in 0..10i64 {
        c.execute("INSERT INTO kv VALUES ($1, 'first')", &[&i])
            .await?;
    }
    // The log topic was created never to delete anything.
    ensure!(
        broker
            .topic_config("tributary.log", "retention.ms")?
            .as_deref()
            == Some("-1")
            && broker
                .topic_config("tributary.log", "retention.bytes")?
                .as_deref()
                == Some("-1"),
        "log topic retention: {:?} / {:?}",
        broker.topic_config("tributary.log", "retention.ms")?,
        broker.topic_config("tributary.log", "retention.bytes")?
    );
    let caught_up = |path: std::path::PathBuf, end: u64| async move {
        Ok((tests::applied_offset(&path)? >= end).then_some(()))
    };
    let end = tests::applied_offset(&n1.replica_path())?;
    eventually(Duration::from_secs(30), "n2 caught up", || {
        caught_up(n2.replica_path(), end)
    })
    .await?;
    // n2 falls behind; n1 goes on and takes a snapshot.
    n2.signal("STOP")?;
    let behind = tests::applied_offset(&n2.replica_path())?;
    for i in 10..30i64 {
        c.execute("INSERT INTO kv VALUES ($1, 'second')", &[&i])
            .await?;
    }
    let end = tests::applied_offset(&n1.replica_path())?;
    let out = std::process::Command::new(tests::binary()?)
        .arg("snapshot")
        .arg("--config")
        .arg(n1.config_path())
        .output()?;
    ensure!(
        out.status.success(),
        "snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Retention deletes the records n2 still needs.
    broker.kill9()?;
    let cut = end as i64 - 3;
    broker.delete_records_before("tributary.log", cut)?;
    broker.spawn().await?;
    n2.signal("CONT")?;
    let (expected, found) = eventually(Duration::from_secs(60), "n2 to stop at the gap", || {
        let log = std::fs::read_to_string(n2.dir.join("node.log")).unwrap_or_default();
        let offsets = log
            .split("the log skips from offset ")
            .nth(1)
            .and_then(|rest| {
                let mut words = rest.split([' ', ':']);
                let from: u64 = words.next()?.parse().ok()?;
                let to: u64 = words.nth(1)?.parse().ok()?;
                Some((from, to))
            });
        async move { Ok(offsets) }
    })
    .await
    .map_err(|e| e.context(n2.log_tail()))?;
    let applied = tests::applied_offset(&n2.replica_path())?;
    ensure!(
        expected == applied && applied >= behind && found == cut as u64,
        "gap reported from {expected} to {found}; n2 applied {applied} (frozen at {behind}), records cut before {cut}"
    );
    // The operator gives n2 a snapshot that covers the gap; on restart it
    // is rebuilt from it and catches up.
    n2.kill9()?;
    let from = n1.dir.join("data").join("snapshots");
    let to = n2.dir.join("data").join("snapshots");
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    n2.spawn().await?;
    c.execute("INSERT INTO kv VALUES (100, 'after')", &[])
        .await?;
    // The log position after that write: both replicas must reach it.
    let target: u64 = c
        .query_one("SHOW tributary.offset", &[])
        .await?
        .get::<_, String>(0)
        .parse()?;
    eventually(
        Duration::from_secs(60),
        "n1 and the rebuilt n2 caught up",
        || {
            let (a, b) = (n1.replica_path(), n2.replica_path());
            async move {
                let both =
                    tests::applied_offset(&a)? >= target && tests::applied_offset(&b)? >= target;
                Ok(both.then_some(()))
            }
        },
    )
    .await
    .map_err(|e| e.context(n2.log_tail()))?;
    ensure!(
        tests::dump(&n1.replica_path())? == tests::dump(&n2.replica_path())?,
        "n2 differs from n1 after its rebuild"
    );
    Ok(())
}
