//! Snapshots and retention through the real binary: `tributary snapshot`
//! while the node runs, log segments removed once covered, and a replica
//! whose file is deleted (or damaged) rebuilt from the snapshot plus the log
//! on restart, with no manual step.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, dump, eventually};

fn segments(cluster: &Cluster) -> Result<Vec<String>> {
    segments_in(&cluster.dir)
}

/// Segment file names of the cluster in `dir`, in offset order.
fn segments_in(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("data").join("log"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_damaged_replicas_rebuild_from_a_snapshot_after_retention() -> Result<()> {
    // Small segments so retention has something to remove; retention runs
    // once a minute in the node, so the test restarts it to see the effect.
    let env = [
        ("TRIBUTARY__LOG__SEGMENT_BYTES", "8192"),
        ("TRIBUTARY__LOG__MAX_RECORD_BYTES", "8192"),
        ("TRIBUTARY__SNAPSHOTS__KEEP", "1"),
    ];
    let mut cluster = Cluster::start(3, 1, &env).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await?;
    for i in 0..300 {
        c.execute(
            "INSERT INTO kv VALUES ($1, $2)",
            &[&(i as i64), &format!("value-{i}")],
        )
        .await?;
    }
    cluster.wait_converged().await?;

    let out = cluster.tributary(&[
        "snapshot",
        "--data-dir",
        cluster.dir.join("data").to_str().context("utf-8 path")?,
    ])?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "snapshot failed: {text}");
    ensure!(text.contains("covers log offsets 0..301"), "{text}");

    // More writes after the snapshot: a rebuilt replica needs snapshot + log.
    for i in 300..400 {
        c.execute(
            "UPDATE kv SET v = $2 WHERE id = $1",
            &[&((i - 300) as i64), &format!("later-{i}")],
        )
        .await?;
    }
    cluster.wait_converged().await?;
    let before_segments = segments(&cluster)?;
    ensure!(
        before_segments.len() > 3,
        "small segments: {before_segments:?}"
    );
    drop(c);
    cluster.stop()?;

    // Lose replica2 entirely and damage replica3.
    std::fs::remove_file(cluster.replica_path(1))?;
    let p3 = cluster.replica_path(2);
    let mut bytes = std::fs::read(&p3)?;
    for b in &mut bytes[100..] {
        *b = 0xa5;
    }
    std::fs::write(&p3, &bytes)?;

    cluster.spawn().await?;
    cluster.wait_converged().await?;
    let reference = dump(&cluster.replica_path(0))?;
    for i in 1..3 {
        let d = dump(&cluster.replica_path(i))?;
        ensure!(d == reference, "replica{} differs after rebuild", i + 1);
    }
    let log = std::fs::read_to_string(cluster.dir.join("tributary.log"))?;
    ensure!(
        log.contains("restoring replica from snapshot"),
        "{}",
        cluster.log_tail()
    );
    ensure!(log.contains("damaged"), "{}", cluster.log_tail());
    let kept_aside = std::fs::read_dir(cluster.dir.join("data"))?
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("replica3.db.damaged-")
        });
    ensure!(kept_aside, "the damaged file is kept, not deleted");

    // Reads see the rebuilt data.
    let c = cluster.connect(0).await?;
    let row = c.query_one("SELECT v FROM kv WHERE id = 5", &[]).await?;
    ensure!(row.get::<_, String>(0) == "later-305");
    cluster.stop()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_only_segments_a_snapshot_covers() -> Result<()> {
    let env = [
        ("TRIBUTARY__LOG__SEGMENT_BYTES", "8192"),
        ("TRIBUTARY__LOG__MAX_RECORD_BYTES", "8192"),
        ("TRIBUTARY__SNAPSHOTS__INTERVAL_S", "1"),
    ];
    let mut cluster = Cluster::start(2, 1, &env).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT NOT NULL)")
        .await?;
    for i in 0..300 {
        c.execute("INSERT INTO kv VALUES ($1, 'x')", &[&(i as i64)])
            .await?;
    }
    cluster.wait_converged().await?;
    // The node snapshots every second and then trims what the snapshot covers.
    let dir = cluster.dir.clone();
    eventually(Duration::from_secs(20), "old segments removed", || {
        let dir = dir.clone();
        async move {
            let now = segments_in(&dir)?;
            let first_gone = now.first().is_some_and(|f| f != "00000000000000000000.log");
            Ok(first_gone.then_some(()))
        }
    })
    .await
    .with_context(|| cluster.log_tail())?;
    let snaps: Vec<_> = std::fs::read_dir(cluster.dir.join("data").join("snapshots"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n.ends_with(".snapshot.db"))
        .collect();
    ensure!(
        !snaps.is_empty() && snaps.len() <= 2,
        "keep = 2 by default: {snaps:?}"
    );
    // Everything is still readable and writable.
    c.execute("INSERT INTO kv VALUES (1000, 'after')", &[])
        .await?;
    let n: i64 = c.query_one("SELECT count(*) FROM kv", &[]).await?.get(0);
    ensure!(n == 301);
    cluster.stop()?;
    Ok(())
}
