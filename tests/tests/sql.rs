//! End-to-end SQL through in-process routers with psql and tokio-postgres:
//! each ack mode and read consistency, transactions, errors, status and the
//! log tail. What needs the real process is in `process.rs`.

use std::time::Duration;

use anyhow::Result;
use tests::Cluster;
use tokio_postgres::SimpleQueryMessage;

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_writes_and_reads_at_every_level() -> Result<()> {
    let cluster = Cluster::in_process(3, 1, None).await?;
    let out = cluster.psql(0, &["CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT)"])?;
    assert!(out.contains("CREATE TABLE"), "{out}");
    for (i, mode) in ["async", "semi-sync", "sync"].iter().enumerate() {
        let out = cluster.psql(
            0,
            &[
                &format!("SET tributary.ack = '{mode}'"),
                &format!("INSERT INTO kv VALUES ({i}, '{mode}')"),
                &format!("UPDATE kv SET v = v || '!' WHERE id = {i}"),
                "SHOW tributary.ack",
            ],
        )?;
        assert!(
            out.contains("INSERT 0 1") && out.contains("UPDATE 1"),
            "{out}"
        );
        assert!(out.contains(mode), "{out}");
    }
    for level in ["eventual", "session", "bounded", "strong"] {
        let out = cluster.psql(
            0,
            &[
                &format!("SET tributary.read_consistency = '{level}'"),
                "SET tributary.max_staleness_ms = 100",
                "SELECT v FROM kv ORDER BY id",
            ],
        )?;
        if level != "eventual" {
            assert!(
                out.contains("async!") && out.contains("semi-sync!") && out.contains("sync!"),
                "{level}: {out}"
            );
        }
        assert!(!out.contains("ERROR"), "{level}: {out}");
    }
    let out = cluster.psql(
        0,
        &["DELETE FROM kv WHERE id = 0", "SELECT count(*) FROM kv"],
    )?;
    assert!(out.contains("DELETE 1"), "{out}");
    cluster.wait_converged().await?;
    let status = cluster.tributary(&[
        "status",
        "--router",
        &format!("127.0.0.1:{}", cluster.port),
        "--json",
    ])?;
    let v: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    let end = v["log_end"].as_u64().unwrap_or(0);
    assert_eq!(end, 8, "{v}");
    for r in v["replicas"].as_array().cloned().unwrap_or_default() {
        assert_eq!(r["applied_offset"].as_u64(), Some(end), "{v}");
        assert_eq!(r["lag_records"].as_u64(), Some(0), "{v}");
    }
    let dumps: Vec<String> = (0..3)
        .map(|i| tests::dump(&cluster.replica_path(i)))
        .collect::<Result<_>>()?;
    assert!(
        dumps.iter().all(|d| *d == dumps[0]),
        "replicas differ: {dumps:?}"
    );
    assert!(dumps[0].contains("semi-sync!"));
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_with_parameters_and_types() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, score REAL, data BLOB, flag BOOLEAN)",
    )
    .await?;
    let n = c
        .execute(
            "INSERT INTO t (id, name, score, data, flag) VALUES ($1, $2, $3, $4, $5)",
            &[&1i64, &"alice", &1.5f64, &vec![0u8, 1, 255], &true],
        )
        .await?;
    assert_eq!(n, 1);
    let stmt = c
        .prepare("INSERT INTO t (id, name) VALUES ($1, $2) RETURNING id, name")
        .await?;
    for i in 2..6i64 {
        let rows = c.query(&stmt, &[&i, &format!("user{i}")]).await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>(0), i);
    }
    let row = c
        .query_one(
            "SELECT id, name, score, data, flag FROM t WHERE id = $1",
            &[&1i64],
        )
        .await?;
    assert_eq!(row.get::<_, String>(1), "alice");
    assert_eq!(row.get::<_, f64>(2), 1.5);
    assert_eq!(row.get::<_, Vec<u8>>(3), vec![0u8, 1, 255]);
    assert!(row.get::<_, bool>(4));
    let n = c
        .execute(
            "UPDATE t SET score = score + $1 WHERE id >= $2",
            &[&2.0f64, &3i64],
        )
        .await?;
    assert_eq!(n, 3);
    let n = c.execute("DELETE FROM t WHERE id = $1", &[&5i64]).await?;
    assert_eq!(n, 1);
    let count: i64 = c.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
    assert_eq!(count, 4);
    let nulls = c
        .query_one("SELECT name, score FROM t WHERE id = $1", &[&2i64])
        .await?;
    assert_eq!(
        nulls.get::<_, Option<f64>>(1),
        None,
        "NULL score stays NULL"
    );

    // Bad input: clear SQLSTATEs, and the connection stays usable.
    let e = c.batch_execute("SELEC 1").await.expect_err("syntax error");
    assert_eq!(sqlstate(&e), "42601");
    let e = c
        .execute("INSERT INTO t (id) VALUES ($1)", &[&1i64])
        .await
        .expect_err("duplicate key");
    assert_eq!(sqlstate(&e), "23505", "{e:?}");
    let e = c
        .batch_execute("CREATE TABLE nopk AS SELECT 1 AS a")
        .await
        .expect_err("create table as");
    assert_eq!(sqlstate(&e), "0A000");
    let e = c
        .batch_execute("ATTACH DATABASE 'x.db' AS x")
        .await
        .expect_err("attach");
    assert_eq!(sqlstate(&e), "0A000");
    let e = c.batch_execute("LISTEN events").await.expect_err("listen");
    assert_eq!(sqlstate(&e), "0A000");
    let e = c
        .batch_execute("PRAGMA journal_mode = DELETE")
        .await
        .expect_err("pragma");
    assert_eq!(sqlstate(&e), "0A000");
    let e = c
        .batch_execute("SET tributary.ack = 'fast'")
        .await
        .expect_err("bad value");
    assert_eq!(sqlstate(&e), "22023");
    assert!(e.to_string().contains("semi-sync") || format!("{e:?}").contains("semi-sync"));
    let e = c
        .batch_execute("SET tributary.nope = 1")
        .await
        .expect_err("unknown");
    assert_eq!(sqlstate(&e), "42704");
    let huge = format!("SELECT '{}'", "x".repeat(2 << 20));
    let e = c.batch_execute(&huge).await.expect_err("too large");
    assert_eq!(sqlstate(&e), "54000");
    let e = c
        .batch_execute("SELECT * FROM missing")
        .await
        .expect_err("missing table");
    assert_eq!(sqlstate(&e), "42P01");
    let count: i64 = c.query_one("SELECT count(*) FROM t", &[]).await?.get(0);
    assert_eq!(count, 4, "connection still usable");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_atomic_and_leave_no_trace_when_abandoned() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE acct (id BIGINT PRIMARY KEY, bal BIGINT NOT NULL)")
        .await?;
    c.batch_execute("INSERT INTO acct VALUES (1, 100), (2, 100)")
        .await?;

    // BEGIN … COMMIT becomes one record; reads inside see the transaction's writes.
    c.batch_execute("BEGIN").await?;
    c.execute("UPDATE acct SET bal = bal - 30 WHERE id = 1", &[])
        .await?;
    let inside: i64 = c
        .query_one("SELECT bal FROM acct WHERE id = 1", &[])
        .await?
        .get(0);
    assert_eq!(inside, 70);
    c.execute("UPDATE acct SET bal = bal + 30 WHERE id = 2", &[])
        .await?;
    c.execute("INSERT INTO acct VALUES (3, 0)", &[]).await?;

    // Meanwhile another client is not blocked by the open transaction.
    let other = cluster.connect(0).await?;
    tokio::time::timeout(
        Duration::from_secs(10),
        other.execute("INSERT INTO acct VALUES (10, 1)", &[]),
    )
    .await??;
    let outside: i64 = other
        .query_one("SELECT bal FROM acct WHERE id = 1", &[])
        .await?
        .get(0);
    assert_eq!(outside, 100, "uncommitted write invisible to others");
    c.batch_execute("COMMIT").await?;
    let rows = c.query("SELECT id, bal FROM acct ORDER BY id", &[]).await?;
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, 70), (2, 130), (3, 0), (10, 1)]);

    // ROLLBACK leaves no trace.
    c.batch_execute("BEGIN; INSERT INTO acct VALUES (4, 4); ROLLBACK")
        .await?;
    // An error aborts the block until ROLLBACK/COMMIT.
    c.batch_execute("BEGIN").await?;
    let e = c
        .batch_execute("INSERT INTO acct VALUES (1, 0)")
        .await
        .expect_err("dup");
    assert_eq!(sqlstate(&e), "23505");
    let e = c
        .batch_execute("INSERT INTO acct VALUES (5, 5)")
        .await
        .expect_err("aborted");
    assert_eq!(sqlstate(&e), "25P02");
    c.batch_execute("COMMIT").await?;

    // A client that disconnects inside a transaction leaves no trace.
    {
        let gone = cluster.connect(0).await?;
        gone.batch_execute("BEGIN; INSERT INTO acct VALUES (6, 6)")
            .await?;
    }
    let c2 = cluster.connect(0).await?;
    c2.batch_execute("INSERT INTO acct VALUES (7, 7)").await?;
    let ids: Vec<i64> = c2
        .query("SELECT id FROM acct ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 7, 10]);

    // The committed transaction is exactly one txn record with three changes.
    let out = cluster.tributary(&[
        "log",
        "tail",
        "--data-dir",
        &cluster.dir.join("data").display().to_string(),
    ])?;
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let three = records
        .iter()
        .filter(|r| r["type"] == "txn" && r["changes"].as_array().map(Vec::len) == Some(3))
        .count();
    assert_eq!(three, 1, "{records:#?}");
    assert!(records.iter().all(|r| r["v"] == 1));
    assert_eq!(records.len(), 5, "ddl, insert, insert(10), txn, insert(7)");
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_across_routers_with_min_offset() -> Result<()> {
    let cluster = Cluster::in_process(2, 2, None).await?;
    let a = cluster.connect(0).await?;
    let b = cluster.connect(1).await?;
    a.batch_execute("CREATE TABLE n (id BIGINT PRIMARY KEY)")
        .await?;
    for i in 0..20i64 {
        a.execute("INSERT INTO n VALUES ($1)", &[&i]).await?;
        let offset = a
            .simple_query("SHOW tributary.offset")
            .await?
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap_or_default();
        b.batch_execute(&format!(
            "SET tributary.read_consistency = 'eventual'; SET tributary.min_offset = {offset}"
        ))
        .await?;
        let seen: i64 = b
            .query_one("SELECT count(*) FROM n WHERE id = $1", &[&i])
            .await?
            .get(0);
        assert_eq!(seen, 1, "router 2 sees the write at offset {offset}");
    }
    // Strong reads on router 2 see router 1's writes without an offset.
    b.batch_execute("SET tributary.min_offset = 0; SET tributary.read_consistency = 'strong'")
        .await?;
    a.execute("INSERT INTO n VALUES (100)", &[]).await?;
    let seen: i64 = b.query_one("SELECT count(*) FROM n", &[]).await?.get(0);
    assert_eq!(seen, 21);
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_timeout_errors_or_degrades() -> Result<()> {
    let cluster = Cluster::in_process(
        2,
        1,
        Some("[replication]\nack_timeout_ms = 300\non_ack_timeout = \"error\"\n"),
    )
    .await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE s (id BIGINT PRIMARY KEY)")
        .await?;
    cluster.wait_converged().await?;
    // Hold replica2's write lock so it cannot apply (a stuck replica).
    let blocker = rusqlite::Connection::open(cluster.replica_path(1))?;
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    c.batch_execute("SET tributary.ack = 'semi-sync'").await?;
    c.execute("INSERT INTO s VALUES (1)", &[]).await?; // replica1 suffices
    c.batch_execute("SET tributary.ack = 'sync'").await?;
    let e = c
        .execute("INSERT INTO s VALUES (2)", &[])
        .await
        .expect_err("sync times out");
    assert_eq!(sqlstate(&e), "57014", "{e:?}");
    let text = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default();
    assert!(text.contains("durable in the log"), "{text}");
    // The message counts what the mode needs and names who applied.
    assert!(
        text.contains("ack mode sync needs 2 replica(s)")
            && text.contains("1 did (applied: replica1; not yet: replica2)"),
        "{text}"
    );
    blocker.execute_batch("ROLLBACK")?;
    drop(blocker);
    // The timed-out write was durable and still applies everywhere.
    cluster.wait_converged().await?;
    let n: i64 = c.query_one("SELECT count(*) FROM s", &[]).await?.get(0);
    assert_eq!(n, 2);
    drop(c);
    drop(cluster);

    let cluster = Cluster::in_process(
        2,
        1,
        Some("[replication]\nack_timeout_ms = 300\non_ack_timeout = \"degrade\"\n"),
    )
    .await?;
    cluster.psql(0, &["CREATE TABLE s (id BIGINT PRIMARY KEY)"])?;
    cluster.wait_converged().await?;
    let blocker = rusqlite::Connection::open(cluster.replica_path(1))?;
    blocker.execute_batch("BEGIN IMMEDIATE")?;
    let out = cluster.psql(
        0,
        &["SET tributary.ack = 'sync'", "INSERT INTO s VALUES (1)"],
    )?;
    assert!(
        out.contains("NOTICE") && out.contains("replied as async") && out.contains("INSERT 0 1"),
        "{out}"
    );
    blocker.execute_batch("ROLLBACK")?;
    cluster.wait_converged().await?;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_writes_of_one_session_build_on_each_other() -> Result<()> {
    // A session does not wait for its replica between writes; each write is
    // speculated on top of the session's earlier, maybe unapplied, writes.
    let cluster = Cluster::in_process(3, 1, None).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE ctr (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO ctr VALUES (1, 0)")
        .await?;
    let stmt = c.prepare("UPDATE ctr SET n = n + 1 WHERE id = 1").await?;
    for _ in 0..300 {
        c.execute(&stmt, &[]).await?;
    }
    c.batch_execute("INSERT INTO ctr VALUES (2, 0); UPDATE ctr SET n = n + 5 WHERE id = 2; DELETE FROM ctr WHERE id = 2; INSERT INTO ctr VALUES (2, 7)")
        .await?;
    cluster.wait_converged().await?;
    let rows = c.query("SELECT id, n FROM ctr ORDER BY id", &[]).await?;
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, 300), (2, 7)]);
    let dumps: Vec<String> = (0..3)
        .map(|i| tests::dump(&cluster.replica_path(i)))
        .collect::<Result<_>>()?;
    assert!(dumps.iter().all(|d| *d == dumps[0]));
    cluster.shutdown().await;
    Ok(())
}

/// A transaction is one log record: a statement whose row changes cannot
/// fit in `log.max_record_bytes` is refused with 54000 while its changes
/// are being captured (not after building them all), and so is a block
/// whose statements fit one by one but not together. Nothing of either is
/// applied; smaller transactions go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_larger_than_one_record_get_54000() -> Result<()> {
    let cluster = Cluster::in_process(2, 1, Some("[log]\nmax_record_bytes = 65536\n")).await?;
    let c = cluster.connect(0).await?;
    c.batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
        .await?;
    let rows = |from: u32, to: u32| {
        format!(
            "INSERT INTO big WITH RECURSIVE s(x) AS (SELECT {from} UNION ALL SELECT x + 1 FROM s WHERE x < {to}) SELECT x, 'value ' || x FROM s"
        )
    };
    let err = c
        .batch_execute(&rows(1, 5000))
        .await
        .expect_err("too large");
    let state = err.code().map(|s| s.code().to_owned()).unwrap_or_default();
    anyhow::ensure!(state == "54000", "{err}");
    anyhow::ensure!(
        format!("{err:?}").contains("max_record_bytes of 65536"),
        "{err:?}"
    );
    c.batch_execute("BEGIN").await?;
    for k in 0..3 {
        c.batch_execute(&rows(10_000 + k * 300, 10_000 + k * 300 + 299))
            .await?;
    }
    let err = c
        .batch_execute("COMMIT")
        .await
        .expect_err("the block is too large");
    let state = err.code().map(|s| s.code().to_owned()).unwrap_or_default();
    anyhow::ensure!(state == "54000", "{err}");
    c.batch_execute(&rows(20_000, 20_099)).await?;
    cluster.replicas_agree().await?;
    let n: i64 = c.query_one("SELECT count(*) FROM big", &[]).await?.get(0);
    anyhow::ensure!(n == 100, "{n} rows");
    cluster.shutdown().await;
    Ok(())
}
