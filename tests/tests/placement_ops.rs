//! Table placement operations against the real binary: growing a shard
//! group (a replica added to it is rebuilt from the group's snapshot and
//! tails the log; moving a replica between groups is refused), and
//! asyncpg, which uses only the extended protocol, against distributed
//! tables.

use anyhow::{Context, Result, ensure};
use tests::{Cluster, sqlite3};

/// Growth: a replica added to a shard group is rebuilt from a snapshot
/// of that group (taken after it joined) and then tails the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_to_a_group_is_rebuilt_from_the_groups_snapshot() -> Result<()> {
    let mut cluster = Cluster::start(6, 1, &[]).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) AS g;
         SELECT tributary.shard_groups('replica1,replica2', 'replica3,replica4', 'replica5,replica6');
         SELECT tributary.distribute('t', 'id', 'hash', 6);",
    )
    .await?;
    // Moving a replica between groups would move rows: refused.
    let moved = c
        .simple_query("SELECT tributary.shard_groups('replica1', 'replica3,replica4,replica2', 'replica5,replica6')")
        .await
        .err()
        .context("moving a replica was accepted")?;
    ensure!(moved.code().map(|s| s.code()) == Some("0A000"), "{moved:?}");
    c.batch_execute(
        "SELECT tributary.shard_groups('replica1,replica2,replica7', 'replica3,replica4', 'replica5,replica6');
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(301, 400) AS g;",
    )
    .await?;
    cluster.wait_converged().await?;
    cluster.stop()?;
    let data = cluster.dir.join("data");
    let out = cluster.tributary(&["snapshot", "--data-dir", &data.to_string_lossy()])?;
    let printed = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && printed.contains("(shard group 1)"),
        "snapshot: {printed} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.replicas = 7;
    cluster.spawn().await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(401, 450) AS g")
        .await?;
    cluster.wait_converged().await?;
    let ids = |r: usize| sqlite3(&cluster.replica_path(r), "SELECT id FROM t ORDER BY id");
    let (first, joined) = (ids(0)?, ids(6)?);
    ensure!(
        !first.is_empty() && first == joined,
        "replica7 holds {} rows, replica1 {}",
        joined.len(),
        first.len()
    );
    ensure!(
        first
            .iter()
            .any(|i| i.parse::<i64>().is_ok_and(|i| i > 400)),
        "rows after the restart reached the group"
    );
    ensure!(
        cluster
            .log_tail()
            .contains("restoring replica from snapshot")
            || std::fs::read_to_string(cluster.dir.join("tributary.log"))?
                .contains("restoring replica from snapshot"),
        "replica7 was not restored from a snapshot"
    );
    cluster.shutdown().await;
    Ok(())
}

/// asyncpg against distributed tables (tests/python/asyncpg_sharded.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_reads_and_writes_distributed_tables() -> Result<()> {
    let cluster = Cluster::in_process(4, 1, None).await?;
    // Not `run_driver`: the replicas of different groups hold different rows.
    let out = tests::python("asyncpg_sharded.py", &[&cluster.router_port(0).to_string()])?;
    ensure!(out.contains("ok"), "asyncpg_sharded.py: {out}");
    cluster.shutdown().await;
    Ok(())
}

/// `[placement]` in the node config: put in force at start-up (again
/// harmlessly at every restart), and a table it distributes must be
/// created with its shard key in the primary key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_from_the_node_config() -> Result<()> {
    let config = r#"
[placement]
groups = [["replica1", "replica2"], ["replica3", "replica4"]]

[placement.tables.events]
column = "day"
method = "range"
splits = [100, 200]
"#;
    let mut cluster = Cluster::start_with_config(4, 1, &[], Some(config)).await?;
    let c = cluster.connect(0).await?;
    let refused = c
        .batch_execute("CREATE TABLE events (day integer, id integer PRIMARY KEY)")
        .await
        .err()
        .context("a table without the shard key in its key was created")?;
    ensure!(
        refused.code().map(|s| s.code()) == Some("0A000"),
        "{refused:?}"
    );
    c.batch_execute(
        "CREATE TABLE events (day integer, id integer, PRIMARY KEY (day, id));
         INSERT INTO events SELECT g, g FROM generate_series(1, 300) AS g;",
    )
    .await?;
    cluster.wait_converged().await?;
    // Days 1–99 and 200–300 are shards 0 and 2 (group 1), 100–199 shard 1.
    let count = |r: usize| sqlite3(&cluster.replica_path(r), "SELECT count(*) FROM events");
    ensure!(
        count(0)? == ["200"] && count(2)? == ["100"],
        "{:?} {:?}",
        count(0)?,
        count(2)?
    );
    cluster.stop()?;
    cluster.spawn().await?;
    let c = cluster.connect(0).await?;
    let version = c
        .simple_query("SELECT max(version) FROM tributary_placement")
        .await?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
    ensure!(
        version.as_deref() == Some("1"),
        "a restart appended the placement again: {version:?}"
    );
    cluster.shutdown().await;
    Ok(())
}
