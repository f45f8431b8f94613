//! Idempotent retries against the real binary: a client vanishes during
//! COMMIT of a keyed transfer, the retry on another router is answered
//! with the original outcome and appends nothing; two routers racing with
//! one key apply it once; RETURNING rows come back on retry; keys survive
//! a kill -9 of the node; a key is forgotten after its window.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, eventually, python};
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

/// A client whose notices are collected.
async fn client(port: u16) -> Result<(Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    let (c, mut conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=test dbname=test"),
        tokio_postgres::NoTls,
    )
    .await?;
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = notices.clone();
    tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        use futures::StreamExt;
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notice(n) = m {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(n.message().to_owned());
            }
        }
    });
    Ok((c, notices))
}

/// Command tags and rows of a simple query, in order.
async fn run(c: &Client, sql: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for m in c.simple_query(sql).await? {
        match m {
            SimpleQueryMessage::CommandComplete(n) => out.push(format!("complete {n}")),
            SimpleQueryMessage::Row(r) => out.push(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => {}
        }
    }
    Ok(out)
}

async fn balances(c: &Client) -> Result<(i64, i64)> {
    let rows = c
        .query(
            "SELECT bal::int8 FROM acc WHERE id IN (1, 2) ORDER BY id",
            &[],
        )
        .await?;
    ensure!(rows.len() == 2);
    Ok((rows[0].get(0), rows[1].get(0)))
}

async fn log_end(c: &Client) -> Result<u64> {
    let r = run(c, "SELECT max(log_end) FROM tributary_replicas").await?;
    r.first().and_then(|v| v.parse().ok()).context("log end")
}

const TRANSFER: &str = "BEGIN; UPDATE acc SET bal = bal - 10 WHERE id = 1; UPDATE acc SET bal = bal + 10 WHERE id = 2; COMMIT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_a_key_apply_once_across_routers_and_restarts() -> Result<()> {
    let mut cluster = Cluster::start(2, 2, &[]).await?;
    let (a, _) = client(cluster.router_port(0)).await?;
    a.batch_execute(
        "SET tributary.ack = 'sync';
         CREATE TABLE acc (id int PRIMARY KEY, bal int NOT NULL);
         INSERT INTO acc VALUES (1, 1000), (2, 1000);
         CREATE TABLE items (id serial PRIMARY KEY, name text)",
    )
    .await?;

    // 1. The client vanishes during COMMIT on router 0; the COMMIT lands.
    python(
        "vanish_at_commit.py",
        &[&cluster.router_port(0).to_string(), "transfer-1"],
    )?;
    let (b, b_notices) = client(cluster.router_port(1)).await?;
    eventually(
        Duration::from_secs(20),
        "the vanished client's COMMIT applied",
        || async { Ok(balances(&b).await.ok().filter(|x| *x == (990, 1010))) },
    )
    .await?;
    // Its retry on router 1 is answered as the original was, appending nothing.
    let end = log_end(&b).await?;
    let answers = run(
        &b,
        &format!("SET tributary.idempotency_key = 'transfer-1'; {TRANSFER}"),
    )
    .await?;
    ensure!(
        answers
            == [
                "complete 0",
                "complete 0",
                "complete 1",
                "complete 1",
                "complete 0"
            ],
        "answers to the retry: {answers:?}"
    );
    ensure!(
        balances(&b).await? == (990, 1010),
        "the retry applied again"
    );
    ensure!(log_end(&b).await? == end, "the retry appended a record");
    ensure!(
        b_notices
            .lock()
            .map(|n| n
                .iter()
                .any(|m| m.contains("\"transfer-1\" was committed at log offset")))
            .unwrap_or(false),
        "no notice about the original: {:?}",
        b_notices.lock().map(|n| n.clone())
    );
    // The key is for one transaction: the next one runs.
    b.batch_execute(TRANSFER).await?;
    ensure!(balances(&b).await? == (980, 1020));

    // 2. Two routers race with the same key, twenty times: each key applies once.
    let (c0, _) = client(cluster.router_port(0)).await?;
    let (c1, _) = client(cluster.router_port(1)).await?;
    for i in 0..20 {
        let sql = format!("SET tributary.idempotency_key = 'race-{i}'; {TRANSFER}");
        let (x, y) = tokio::join!(c0.batch_execute(&sql), c1.batch_execute(&sql));
        x?;
        y?;
    }
    eventually(
        Duration::from_secs(20),
        "every race applied once",
        || async {
            let seen = (balances(&c0).await?, balances(&c1).await?);
            Ok((seen.0 == (780, 1220) && seen.1 == (780, 1220)).then_some(()))
        },
    )
    .await
    .with_context(|| {
        format!(
            "balances {:?}",
            futures::FutureExt::now_or_never(balances(&c0))
        )
    })?;

    // 3. RETURNING: the retry gets the id the original generated.
    let first = run(&c0, "SET tributary.idempotency_key = 'item-1'; INSERT INTO items (name) VALUES ('x') RETURNING id, name").await?;
    let again = run(&c1, "SET tributary.idempotency_key = 'item-1'; INSERT INTO items (name) VALUES ('x') RETURNING id, name").await?;
    ensure!(
        first.len() == 3 && first == again,
        "original {first:?}, retry {again:?}"
    );
    ensure!(run(&c1, "SELECT count(*) FROM items").await? == ["1", "complete 1"]);

    // 4. The node is killed and restarted: the keys are in the replica files.
    cluster.kill9()?;
    cluster.spawn().await?;
    let (d, _) = client(cluster.router_port(1)).await?;
    let answers = run(
        &d,
        &format!("SET tributary.idempotency_key = 'race-7'; {TRANSFER}"),
    )
    .await?;
    ensure!(answers.len() == 5, "{answers:?}");
    ensure!(
        balances(&d).await? == (780, 1220),
        "a retry after restart applied again"
    );

    // 5. A retry with more writes than the original is refused (55000).
    let err = d
        .batch_execute("SET tributary.idempotency_key = 'race-8'; BEGIN; UPDATE acc SET bal = bal - 10 WHERE id = 1; UPDATE acc SET bal = bal + 10 WHERE id = 2; UPDATE acc SET bal = bal WHERE id = 1; COMMIT")
        .await
        .err()
        .context("a longer retry was accepted")?;
    ensure!(err.code().map(|c| c.code()) == Some("55000"), "{err:?}");
    d.batch_execute("ROLLBACK").await?;
    ensure!(balances(&d).await? == (780, 1220));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_forgotten_after_its_window() -> Result<()> {
    let cluster =
        Cluster::start_with_config(1, 1, &[], Some("[router]\nidempotency_window_s = 1\n")).await?;
    let (c, _) = client(cluster.router_port(0)).await?;
    c.batch_execute("CREATE TABLE t (id serial PRIMARY KEY, v int)")
        .await?;
    let keyed = "SET tributary.idempotency_key = 'once'; INSERT INTO t (v) VALUES (1)";
    c.batch_execute(keyed).await?;
    c.batch_execute(keyed).await?;
    ensure!(run(&c, "SELECT count(*) FROM t").await? == ["1", "complete 1"]);
    eventually(
        Duration::from_secs(20),
        "the key expired and the write ran again",
        || async {
            c.batch_execute(keyed).await?;
            let n = run(&c, "SELECT count(*) FROM t").await?;
            Ok((n[0] == "2").then_some(()))
        },
    )
    .await?;
    Ok(())
}
