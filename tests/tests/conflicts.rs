//! Multi-master conflicts end to end: three routers, concurrent clients on
//! the same keys, a policy file per strategy; every replica ends identical
//! and the outcome is what the policy promises.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tests::Cluster;
use tokio_postgres::Client;

const POLICY: &str = r#"
default = "lww"
priority = ["r1", "r2", "r3"]

[tables.counters]
columns.n = "counter"

[tables.orders]
strategy = "first-writer-wins"

[tables.prio]
strategy = "priority"
deletes = "delete-wins"

[tables.docs]
deletes = "update-wins"
columns.tags = "set"
columns.best = "max"
columns.low = "min"
columns.memo = "keep-local"
columns.nick = "prefer-non-null"
"#;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

async fn scalar(c: &Client, sql: &str) -> Result<String> {
    let rows = c.simple_query(sql).await?;
    Ok(rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default())
}

/// A and B open transactions on their routers; A commits first, then B.
async fn race(
    a: &Client,
    a_sql: &str,
    b: &Client,
    b_sql: &str,
) -> (
    Result<(), tokio_postgres::Error>,
    Result<(), tokio_postgres::Error>,
) {
    let ra = async {
        a.batch_execute("BEGIN").await?;
        a.batch_execute(a_sql).await
    }
    .await;
    let rb = async {
        b.batch_execute("BEGIN").await?;
        b.batch_execute(b_sql).await
    }
    .await;
    let ca = match ra {
        Ok(()) => a.batch_execute("COMMIT").await,
        Err(e) => Err(e),
    };
    let cb = match rb {
        Ok(()) => b.batch_execute("COMMIT").await,
        Err(e) => Err(e),
    };
    (ca, cb)
}

async fn setup() -> Result<(Cluster, Vec<Client>)> {
    let cluster = Cluster::in_process(3, 3, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
         CREATE TABLE orders (id BIGINT PRIMARY KEY, status TEXT, version BIGINT);
         CREATE TABLE order_log (id TEXT PRIMARY KEY, order_id BIGINT);
         CREATE TABLE prio (id BIGINT PRIMARY KEY, v TEXT);
         CREATE TABLE docs (id BIGINT PRIMARY KEY, tags JSON, best BIGINT, low BIGINT, memo TEXT, nick TEXT, body TEXT);
         INSERT INTO counters VALUES (1, 0), (2, 0), (3, 0);
         INSERT INTO orders VALUES (1, 'new', 0), (2, 'new', 0);
         INSERT INTO prio VALUES (1, 'init'), (2, 'init'), (3, 'init');
         INSERT INTO docs VALUES (1, '[\"a\",\"b\"]', 10, 10, 'orig', 'nick0', 'body0');",
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, POLICY)?;
    let out = cluster.tributary(&[
        "policy",
        "apply",
        &file.display().to_string(),
        "--router",
        &format!("127.0.0.1:{}", cluster.port),
    ])?;
    anyhow::ensure!(
        out.status.success(),
        "policy apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut clients = Vec::new();
    for r in 0..3 {
        let c = cluster.connect(r).await?;
        c.batch_execute("SET tributary.ack = 'sync'; SET tributary.read_consistency = 'strong'")
            .await?;
        clients.push(c);
    }
    Ok((cluster, clients))
}

async fn assert_replicas_identical(cluster: &Cluster) -> Result<String> {
    cluster.wait_converged().await?;
    let dumps: Vec<String> = (0..3)
        .map(|i| tests::dump(&cluster.replica_path(i)))
        .collect::<Result<_>>()?;
    for (i, d) in dumps.iter().enumerate() {
        assert_eq!(*d, dumps[0], "replica {} differs from replica 1", i + 1);
    }
    Ok(dumps[0].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_converges_and_keeps_its_promise() -> Result<()> {
    let (cluster, c) = setup().await?;

    // Counter: concurrent increments through all three routers add up.
    let expected: Arc<Mutex<BTreeMap<i64, i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..9u16 {
        let port = cluster.router_port(w % 3);
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let c = tests::connect_port(port).await?;
            c.batch_execute("SET tributary.ack = 'sync'").await?;
            for i in 0..15i64 {
                let key = 1 + (i + i64::from(w)) % 3;
                let delta = 1 + (i * 7 + i64::from(w) * 3) % 11 - 5;
                c.batch_execute("BEGIN").await?;
                c.execute(
                    "UPDATE counters SET n = n + $1 WHERE id = $2",
                    &[&delta, &key],
                )
                .await?;
                tokio::time::sleep(Duration::from_millis(3)).await;
                c.batch_execute("COMMIT").await?;
                *expected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(key)
                    .or_default() += delta;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Two sessions on one key, guaranteed concurrent.
    let (a, b) = race(
        &c[0],
        "UPDATE counters SET n = n + 5 WHERE id = 1",
        &c[1],
        "UPDATE counters SET n = n + 3 WHERE id = 1",
    )
    .await;
    a?;
    b?;
    *expected
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(1)
        .or_default() += 8;
    let sums = expected.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (key, sum) in sums {
        let n = scalar(&c[2], &format!("SELECT n FROM counters WHERE id = {key}")).await?;
        assert_eq!(
            n,
            sum.to_string(),
            "counter {key} = sum of acknowledged deltas"
        );
    }

    // First-writer-wins: the second of two concurrent transactions gets 40001
    // and leaves no trace; every acknowledged one is there.
    let mut acked = Vec::new();
    let mut rejected = Vec::new();
    for round in 0..4i64 {
        let key = 1 + round % 2;
        let (a_id, b_id) = (format!("a{round}"), format!("b{round}"));
        let (ra, rb) = race(
            &c[(round % 3) as usize],
            &format!("UPDATE orders SET status = 'A', version = version + 1 WHERE id = {key}; INSERT INTO order_log VALUES ('{a_id}', {key})"),
            &c[((round + 1) % 3) as usize],
            &format!("UPDATE orders SET status = 'B', version = version + 1 WHERE id = {key}; INSERT INTO order_log VALUES ('{b_id}', {key})"),
        )
        .await;
        for (id, r) in [(a_id, ra), (b_id, rb)] {
            match r {
                Ok(()) => acked.push(id),
                Err(e) => {
                    assert_eq!(sqlstate(&e), "40001", "{e:?}");
                    rejected.push(id);
                }
            }
        }
    }
    assert!(
        rejected.len() >= 4,
        "each race rejects the later committer: {rejected:?}"
    );
    for id in &acked {
        assert_eq!(
            scalar(
                &c[0],
                &format!("SELECT count(*) FROM order_log WHERE id = '{id}'")
            )
            .await?,
            "1",
            "{id}"
        );
    }
    for id in &rejected {
        assert_eq!(
            scalar(
                &c[0],
                &format!("SELECT count(*) FROM order_log WHERE id = '{id}'")
            )
            .await?,
            "0",
            "{id}"
        );
    }
    let versions = scalar(&c[0], "SELECT sum(version) FROM orders").await?;
    assert_eq!(
        versions,
        acked.len().to_string(),
        "only acknowledged transactions bumped versions"
    );

    // Priority: r1 beats r3 whichever commits last.
    let (a, b) = race(
        &c[2],
        "UPDATE prio SET v = 'r3' WHERE id = 1",
        &c[0],
        "UPDATE prio SET v = 'r1' WHERE id = 1",
    )
    .await;
    a?;
    b?;
    let (a, b) = race(
        &c[0],
        "UPDATE prio SET v = 'r1' WHERE id = 2",
        &c[2],
        "UPDATE prio SET v = 'r3' WHERE id = 2",
    )
    .await;
    a?;
    b?;
    assert_eq!(
        scalar(&c[1], "SELECT v FROM prio WHERE id = 1").await?,
        "r1"
    );
    assert_eq!(
        scalar(&c[1], "SELECT v FROM prio WHERE id = 2").await?,
        "r1"
    );
    // delete-wins: a concurrent update does not bring the row back.
    let (a, b) = race(
        &c[1],
        "DELETE FROM prio WHERE id = 3",
        &c[0],
        "UPDATE prio SET v = 'late' WHERE id = 3",
    )
    .await;
    a?;
    b?;
    assert_eq!(
        scalar(&c[2], "SELECT count(*) FROM prio WHERE id = 3").await?,
        "0"
    );

    // Column rules on one row: set merges, max/min keep extremes, keep-local
    // keeps, prefer-non-null ignores a NULL.
    let (a, b) = race(
        &c[0],
        "UPDATE docs SET tags = '[\"a\",\"b\",\"x\"]', best = 50, low = 5, memo = 'A', nick = NULL, body = 'A' WHERE id = 1",
        &c[1],
        "UPDATE docs SET tags = '[\"b\",\"y\"]', best = 20, low = 7, memo = 'B', nick = 'bee', body = 'B' WHERE id = 1",
    )
    .await;
    a?;
    b?;
    let row = c[2]
        .query_one(
            "SELECT tags, best, low, memo, nick, body FROM docs WHERE id = 1",
            &[],
        )
        .await?;
    // A JSON column is described as json: the set arrives as JSON.
    assert_eq!(
        row.get::<_, serde_json::Value>(0),
        serde_json::json!(["b", "x", "y"])
    );
    assert_eq!(row.get::<_, i64>(1), 50);
    assert_eq!(row.get::<_, i64>(2), 5);
    assert_eq!(
        row.get::<_, String>(3),
        "A",
        "keep-local keeps the value the replica had"
    );
    assert_eq!(row.get::<_, String>(4), "bee", "prefer-non-null");
    assert_eq!(row.get::<_, String>(5), "B", "lww: the later write wins");
    // update-wins: an update concurrent with a delete resurrects the row.
    let (a, b) = race(
        &c[0],
        "DELETE FROM docs WHERE id = 1",
        &c[1],
        "UPDATE docs SET body = 'alive' WHERE id = 1",
    )
    .await;
    a?;
    b?;
    assert_eq!(
        scalar(&c[2], "SELECT body FROM docs WHERE id = 1").await?,
        "alive"
    );

    // A set column refuses a value that is not a JSON array.
    let e = c[0]
        .batch_execute("UPDATE docs SET tags = 'nope' WHERE id = 1")
        .await
        .expect_err("not an array");
    assert_eq!(sqlstate(&e), "22P02");
    // Nobody writes the audit table.
    let e = c[0]
        .batch_execute("DELETE FROM tributary_conflicts")
        .await
        .expect_err("read-only");
    assert_eq!(sqlstate(&e), "42501");

    let dump = assert_replicas_identical(&cluster).await?;
    assert!(dump.contains("== tributary_conflicts"));
    let kinds = c[0]
        .query(
            "SELECT DISTINCT kind, strategy, outcome FROM tributary_conflicts ORDER BY 1, 2, 3",
            &[],
        )
        .await?;
    let kinds: Vec<(String, String, String)> = kinds
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for (kind, strategy) in [
        ("update_before_mismatch", "counter"),
        ("update_before_mismatch", "first-writer-wins"),
        ("update_before_mismatch", "priority"),
        ("update_vs_delete", "deletes=delete-wins"),
        ("update_vs_delete", "deletes=update-wins"),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(k, s, _)| k == kind && s.contains(strategy)),
            "no {kind}/{strategy} conflict recorded: {kinds:?}"
        );
    }
    let status =
        cluster.tributary(&["status", "--router", &format!("127.0.0.1:{}", cluster.port)])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("first-writer-wins") && text.contains("update_before_mismatch"),
        "{text}"
    );
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_policies_are_refused_with_nothing_appended() -> Result<()> {
    let cluster = Cluster::in_process(1, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, n BIGINT)")
        .await?;
    let end_before = scalar(&c, "SELECT log_end FROM tributary_replicas").await?;
    let dir = tempfile::tempdir()?;
    let data = cluster.dir.join("data").display().to_string();
    for (text, expect) in [
        ("[tables.nope]\n", "tables.nope: no such table"),
        ("[tables.t]\ncolumns.zz = \"max\"\n", "no such column"),
        (
            "[tables.t]\ncolumns.name = \"counter\"\n",
            "counter needs an INTEGER column",
        ),
        (
            "[tables.t]\ncolumns.name = \"set\"\n",
            "set needs a JSON column",
        ),
        ("default = \"fastest\"\n", "1:11"),
    ] {
        let file = dir.path().join("p.toml");
        std::fs::write(&file, text)?;
        let f = file.display().to_string();
        let check = cluster.tributary(&["policy", "check", &f, "--data-dir", &data])?;
        let err = String::from_utf8_lossy(&check.stderr);
        assert!(
            !check.status.success() && err.contains(expect),
            "check {text:?}: {err}"
        );
        let apply = cluster.tributary(&[
            "policy",
            "apply",
            &f,
            "--router",
            &format!("127.0.0.1:{}", cluster.port),
        ])?;
        let err = String::from_utf8_lossy(&apply.stderr);
        assert!(
            !apply.status.success() && err.contains(expect),
            "apply {text:?}: {err}"
        );
    }
    assert_eq!(
        scalar(&c, "SELECT log_end FROM tributary_replicas").await?,
        end_before,
        "nothing appended"
    );
    // A bad policy in the config stops start-up.
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[tables.nope]\n")?;
    let out = std::process::Command::new(tests::binary()?)
        .args(["up", "--data-dir"])
        .arg(dir.path().join("fresh"))
        .arg("--policy")
        .arg(&file)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", tests::free_ports(1)?))
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such table"));
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_policy_is_appended_only_when_it_changes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.toml");
    std::fs::write(&file, "default = \"lww\"\npriority = [\"r1\"]\n")?;
    let path = file.display().to_string();
    let mut cluster = Cluster::start(2, 1, &[("TRIBUTARY__CONFLICTS__POLICY", &path)]).await?;
    let version = |c: Client| async move { scalar(&c, "SHOW tributary.policy_version").await };
    assert_eq!(version(cluster.connect(0).await?).await?, "1");
    cluster.stop()?;
    cluster.spawn().await?;
    assert_eq!(
        version(cluster.connect(0).await?).await?,
        "1",
        "unchanged policy is not appended again"
    );
    cluster.stop()?;
    std::fs::write(&file, "default = \"first-writer-wins\"\n")?;
    cluster.spawn().await?;
    assert_eq!(version(cluster.connect(0).await?).await?, "2");
    cluster.wait_converged().await?;
    let out = cluster.tributary(&[
        "log",
        "tail",
        "--data-dir",
        &cluster.dir.join("data").display().to_string(),
    ])?;
    let policies = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"type\":\"policy\""))
        .count();
    assert_eq!(policies, 2);
    Ok(())
}
