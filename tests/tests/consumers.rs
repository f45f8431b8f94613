//! Log topic consumers: the Debezium view published to per-table Kafka
//! topics, read back by kafka-python (a client no one here wrote), and
//! `tributary log tail --format debezium` on the same log.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use tests::{Node, Tansu, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_consumer_sees_every_acknowledged_write() -> Result<()> {
    let broker = Tansu::start().await?;
    let root = tempfile::tempdir()?;
    let mut n1 = Node::new(root.path(), "n1", &broker.brokers(), true, "")?;
    n1.spawn().await?;
    let c = tests::connect_port(n1.port.unwrap_or(0)).await?;
    c.batch_execute("CREATE TABLE kv (id BIGINT PRIMARY KEY, v TEXT)")
        .await?;
    let mut expected = Vec::new();
    for i in 1..=20i64 {
        c.execute("INSERT INTO kv VALUES ($1, $2)", &[&i, &format!("v{i}")])
            .await?;
        expected.push(json!({"op": "c", "key": {"id": i}, "before": null, "after": {"id": i, "v": format!("v{i}")}}));
    }
    for i in (1..=20i64).filter(|i| i % 2 == 1) {
        c.execute(
            "UPDATE kv SET v = $1 WHERE id = $2",
            &[&format!("u{i}"), &i],
        )
        .await?;
        expected.push(json!({"op": "u", "key": {"id": i}, "before": {"id": i, "v": format!("v{i}")}, "after": {"id": i, "v": format!("u{i}")}}));
    }
    for i in (1..=20i64).filter(|i| i % 5 == 0) {
        c.execute("DELETE FROM kv WHERE id = $1", &[&i]).await?;
        let before = if i % 2 == 1 {
            format!("u{i}")
        } else {
            format!("v{i}")
        };
        expected.push(
            json!({"op": "d", "key": {"id": i}, "before": {"id": i, "v": before}, "after": null}),
        );
    }
    let config = n1.dir.join("node.toml").display().to_string();
    let publisher_dir = root.path().join("publisher");
    let mut publisher = Command::new(tests::binary()?)
        .args([
            "log",
            "publish",
            "--config",
            &config,
            "--prefix",
            "tb",
            "--data-dir",
        ])
        .arg(&publisher_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let expected_file = root.path().join("expected.json");
    std::fs::write(&expected_file, serde_json::to_string(&expected)?)?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/debezium_consumer.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(broker.brokers())
        .arg("tb.kv")
        .arg(&expected_file)
        .output()?;
    let _ = publisher.kill();
    let _ = publisher.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python consumer: {text}");
    assert!(text.contains("missing: 0"), "{text}");

    // The same events from `log tail --format debezium` on the Kafka log.
    let tail = eventually(Duration::from_secs(30), "log tail output", || async {
        let out = Command::new(tests::binary()?)
            .args(["log", "tail", "--config", &config, "--format", "debezium"])
            .output()?;
        let lines = String::from_utf8_lossy(&out.stdout).lines().count();
        Ok((lines == expected.len()).then_some(String::from_utf8_lossy(&out.stdout).to_string()))
    })
    .await?;
    let first: serde_json::Value = serde_json::from_str(tail.lines().next().unwrap_or("{}"))?;
    assert_eq!(first["op"], "c");
    assert_eq!(first["source"]["table"], "kv");
    assert_eq!(first["source"]["node"], "n1");

    // Another producer writes garbage to the log topic: the replica skips it,
    // says so, counts it, and keeps applying.
    let produce = Command::new("python3")
        .args([
            "-c",
            "import sys; from kafka import KafkaProducer; p = KafkaProducer(bootstrap_servers=sys.argv[1]); \
             p.send('tributary.log', b'not a tributary record'); p.flush()",
            &broker.brokers(),
        ])
        .output()?;
    assert!(
        produce.status.success(),
        "{}",
        String::from_utf8_lossy(&produce.stderr)
    );
    c.execute("INSERT INTO kv VALUES (100, 'after garbage')", &[])
        .await?;
    let skipped = eventually(
        Duration::from_secs(30),
        "the foreign entry to be counted",
        || async {
            let rows = c
                .simple_query("SELECT skipped_entries, state FROM tributary_replicas")
                .await?;
            Ok(rows.iter().find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("1") => {
                    r.get(1).map(str::to_owned)
                }
                _ => None,
            }))
        },
    )
    .await?;
    assert_eq!(skipped, "applying");
    let n: i64 = c
        .query_one("SELECT count(*) FROM kv WHERE id = 100", &[])
        .await?
        .get(0);
    assert_eq!(n, 1);
    assert!(n1.log_tail().contains("not a Tributary record"));
    Ok(())
}
