//! `tributary verify` against the real binary: identical replicas while
//! writes go on (a difference would be lag, which verify must not report),
//! then one row changed and one deleted in one replica file with the
//! `sqlite3` shell behind Tributary's back: verify exits 1 and names the
//! table, the key and the replica, in text and JSON. An offset behind the
//! replicas is refused with exit status 2. On Kafka, through the routers
//! of two `tributary node` processes.

use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use tests::{Cluster, Node, Tansu};

fn verify(
    cluster_bin: &dyn Fn(&[&str]) -> Result<Output>,
    routers: &[u16],
    extra: &[&str],
) -> Result<(i32, String, String)> {
    let addrs: Vec<String> = routers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut args = vec!["verify"];
    for a in &addrs {
        args.extend(["--router", a.as_str()]);
    }
    args.extend(extra);
    let out = cluster_bin(&args)?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn sqlite3(path: &std::path::Path, sql: &str) -> Result<()> {
    let out = Command::new("sqlite3")
        .args(["-bail", "-cmd", ".timeout 10000"])
        .arg(path)
        .arg(sql)
        .output()
        .context("running sqlite3 (install the sqlite3 package)")?;
    ensure!(
        out.status.success(),
        "sqlite3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ignores_lag_and_names_a_corrupted_row() -> Result<()> {
    let cluster = Cluster::start(3, 2, &[]).await?;
    let bin = |args: &[&str]| cluster.tributary(args);
    let routers = [cluster.router_port(0), cluster.router_port(1)];
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE acc (id int PRIMARY KEY, bal bigint NOT NULL, note text);
         INSERT INTO acc SELECT g, 100, 'n' || g FROM generate_series(1, 3000) g;
         CREATE TABLE tags (name text, n int);
         INSERT INTO tags VALUES ('a', 1), ('b', 2), ('c', 3);",
    )
    .await?;

    // Transfers keep the replicas busy (each applies at its own pace)
    // while verify runs: it must find them identical every time.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let c = cluster.connect(1).await?;
        tokio::spawn(async move {
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = (i % 3000 + 1, (i * 7) % 3000 + 1);
                c.batch_execute(&format!(
                    "BEGIN; UPDATE acc SET bal = bal - 1 WHERE id = {a}; UPDATE acc SET bal = bal + 1 WHERE id = {b}; COMMIT"
                ))
                .await?;
                i += 1;
            }
            anyhow::Ok(i)
        })
    };
    let mut offsets = Vec::new();
    for _ in 0..4 {
        let (code, out, err) = verify(&bin, &routers, &["--json"])?;
        ensure!(code == 0, "verify under writes: exit {code}\n{out}\n{err}");
        let report: Value = serde_json::from_str(&out)?;
        ensure!(report["identical"] == true, "{report}");
        ensure!(
            report["replicas"].as_array().map(Vec::len) == Some(3),
            "{report}"
        );
        offsets.push(report["offset"].as_u64().context("offset")?);
    }
    stop.store(true, Ordering::Relaxed);
    let transfers = writer.await??;
    ensure!(transfers > 0, "the writer made no transfers");
    ensure!(
        offsets.windows(2).all(|w| w[0] <= w[1]) && offsets[0] < offsets[3],
        "verify's offsets did not follow the writes: {offsets:?}"
    );
    cluster.wait_converged().await?;

    // Behind Tributary's back: one value changed in replica2, one row gone.
    let victim = cluster.replica_path(1);
    sqlite3(
        &victim,
        "UPDATE acc SET note = 'tampered' WHERE id = 1234; DELETE FROM tags WHERE name = 'b';",
    )?;
    let (code, out, err) = verify(&bin, &routers, &[])?;
    ensure!(
        code == 1,
        "exit {code} for a corrupted replica\n{out}\n{err}"
    );
    for needed in [
        "table acc: DIFFERS",
        r#"key {"id":1234} differs on replica2"#,
        r#"replica2: {"bal":"#,
        "tampered",
        "table tags: DIFFERS",
        "(no such row)",
        "DIVERGENT: 2 of 2 tables differ",
    ] {
        ensure!(out.contains(needed), "{needed:?} missing from:\n{out}");
    }
    let (code, out, _) = verify(&bin, &routers, &["--json"])?;
    ensure!(code == 1);
    let report: Value = serde_json::from_str(&out)?;
    ensure!(report["identical"] == false);
    let acc = report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "acc"))
        .context("acc in the report")?;
    ensure!(acc["differing_key_count"] == 1, "{acc}");
    let key = &acc["differing_keys"][0];
    ensure!(key["key"]["id"] == 1234, "{key}");
    ensure!(
        key["differs_on"] == serde_json::json!(["replica2"]),
        "{key}"
    );
    ensure!(key["replicas"]["replica2"]["note"] == "tampered", "{key}");
    ensure!(key["replicas"]["replica1"]["note"] == "n1234", "{key}");
    let tags = report["tables"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "tags"))
        .context("tags in the report")?;
    ensure!(
        tags["rows"]["replica2"] == 2 && tags["rows"]["replica1"] == 3,
        "{tags}"
    );
    ensure!(
        tags["differing_keys"][0]["replicas"]["replica2"].is_null(),
        "{tags}"
    );

    // An offset every replica has passed cannot be verified: exit 2.
    let (code, _, err) = verify(&bin, &routers, &["--at", "1"])?;
    ensure!(
        code == 2 && err.contains("past --at 1"),
        "exit {code}: {err}"
    );
    // The cluster still takes writes (no hold left behind).
    c.batch_execute("UPDATE acc SET bal = bal + 1 WHERE id = 1")
        .await?;
    cluster.wait_converged().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_works_through_the_routers_of_kafka_nodes() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let mut n1 = Node::new(root.path(), "n1", &broker.brokers(), true, "")?;
    let mut n2 = Node::new(root.path(), "n2", &broker.brokers(), true, "")?;
    n1.spawn().await?;
    n2.spawn().await?;
    let ports = [n1.port.context("n1 router")?, n2.port.context("n2 router")?];
    let c = tests::connect_port(ports[0]).await?;
    c.batch_execute(
        "SET tributary.ack = 'sync'; CREATE TABLE kv (k text PRIMARY KEY, v int);
         INSERT INTO kv SELECT 'k' || g, g FROM generate_series(1, 500) g;",
    )
    .await?;
    let bin = |args: &[&str]| -> Result<Output> {
        Ok(Command::new(tests::binary()?).args(args).output()?)
    };
    let (code, out, err) = verify(&bin, &ports, &[])?;
    ensure!(
        code == 0,
        "exit {code}\n{out}\n{err}\n{}\n{}",
        n1.log_tail(),
        n2.log_tail()
    );
    ensure!(out.contains("2 replicas (n1, n2)"), "{out}");
    sqlite3(&n2.replica_path(), "UPDATE kv SET v = -1 WHERE k = 'k77';")?;
    let (code, out, err) = verify(&bin, &ports, &[])?;
    ensure!(code == 1, "exit {code}\n{out}\n{err}");
    ensure!(out.contains(r#"key {"k":"k77"} differs on n2"#), "{out}");
    ensure!(out.contains(r#"n2: {"k":"k77","v":-1}"#), "{out}");
    Ok(())
}
