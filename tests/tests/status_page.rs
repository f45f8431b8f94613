//! The status page served by the metrics listener, against the real
//! binary: `/status.json` has the replicas, conflicts by kind and strategy
//! and slow queries; `/` rendered by headless Chromium (its script run)
//! shows the replica names, their applied offsets and the conflict, and a
//! screenshot of it is taken; `/metrics` still serves Prometheus text.

use std::io::{Read, Write};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use tests::{Cluster, free_ports};

/// `GET path` over HTTP/1.0; the body.
fn get(port: u16, path: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP header")?;
    ensure!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    Ok(body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_replicas_conflicts_and_slow_queries() -> Result<()> {
    let mport = free_ports(1)?;
    let config =
        format!("[metrics]\nlisten = \"127.0.0.1:{mport}\"\n[router]\nslow_query_ms = 1\n");
    let cluster = Cluster::start_with_config(2, 2, &[], Some(&config)).await?;
    let (a, b) = (cluster.connect(0).await?, cluster.connect(1).await?);
    a.batch_execute("CREATE TABLE kv (id int PRIMARY KEY, v text); INSERT INTO kv VALUES (1, 'x')")
        .await?;
    cluster.wait_converged().await?;
    // Two routers update the same row in open transactions, then commit:
    // the second record applied was computed without the first (lww).
    a.batch_execute("BEGIN; UPDATE kv SET v = 'a' WHERE id = 1")
        .await?;
    b.batch_execute("BEGIN; UPDATE kv SET v = 'b' WHERE id = 1")
        .await?;
    a.batch_execute("COMMIT").await?;
    b.batch_execute("COMMIT").await?;
    a.query_one(
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 200000) SELECT count(*) FROM s",
        &[],
    )
    .await?;
    cluster.wait_converged().await?;

    let status: serde_json::Value = serde_json::from_str(&get(mport, "/status.json")?)?;
    let end = status["log"]["end"].as_u64().context("log end")?;
    let replicas = status["replicas"].as_array().context("replicas")?;
    ensure!(replicas.len() == 2, "{status}");
    for (i, r) in replicas.iter().enumerate() {
        ensure!(r["name"] == format!("replica{}", i + 1).as_str(), "{r}");
        ensure!(r["applied_offset"].as_u64() == Some(end), "{r}");
    }
    let conflicts = status["conflicts"].as_array().context("conflicts")?;
    ensure!(
        conflicts.len() == 2
            && conflicts
                .iter()
                .all(|c| c["kind"] == "update_before_mismatch" && c["count"] == 1),
        "one conflict per replica: {status}"
    );
    let slow = status["slow_queries"].as_array().context("slow queries")?;
    ensure!(
        slow.iter().any(|q| q["statement"]
            .as_str()
            .is_some_and(|s| s.starts_with("WITH RECURSIVE"))),
        "{status}"
    );
    ensure!(get(mport, "/metrics")?.contains("tributary_replica_records_applied_total"));
    let page = get(mport, "/")?;
    ensure!(page.contains("<title>Tributary status</title>"));
    for outside in ["<link", "src=", "@import", "url("] {
        ensure!(
            !page.contains(outside),
            "the page must load nothing from elsewhere ({outside})"
        );
    }

    // The page as a browser shows it, after its script has run.
    let dir = tempfile::tempdir()?;
    let shot = dir.path().join("status.png");
    let url = format!("http://127.0.0.1:{mport}/");
    let chromium = |extra: &[&str]| -> Result<std::process::Output> {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1100,1000",
                "--virtual-time-budget=5000",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(extra)
            .arg(&url)
            .output()
            .context("running chromium (installed by scripts/setup.sh)")
    };
    let dom = chromium(&["--dump-dom"])?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "replica1",
        "replica2",
        "update_before_mismatch",
        "lww",
        "WITH RECURSIVE",
    ] {
        ensure!(
            dom.contains(expected),
            "rendered page lacks {expected}:\n{dom}"
        );
    }
    ensure!(
        dom.contains(&format!("<td class=\"n\">{end}</td>")),
        "rendered page lacks the applied offset {end}:\n{dom}"
    );
    chromium(&[&format!("--screenshot={}", shot.display())])?;
    let png = std::fs::read(&shot).context("the screenshot")?;
    ensure!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    cluster.shutdown().await;
    Ok(())
}
