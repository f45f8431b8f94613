//! What needs the real `tributary` process: a refused configuration's exit
//! status, a clean stop (SIGTERM) and restart on the same data, and the
//! process-wide Prometheus endpoint.

use std::time::Duration;

use anyhow::Result;
use tests::{Cluster, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_config_exits_non_zero_naming_the_key() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[replication]\nsemi_sync_k = 9\n")?;
    let out = std::process::Command::new(tests::binary()?)
        .args(["up", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("replication.semi_sync_k"),
        "{err}"
    );
    std::fs::write(&bad, "[router]\nlisten_addr = 1\n")?;
    let out = std::process::Command::new(tests::binary()?)
        .args(["up", "--config"])
        .arg(&bad)
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_addr"));
    let help = std::process::Command::new(tests::binary()?)
        .args(["up", "--help"])
        .output()?;
    assert!(String::from_utf8_lossy(&help.stdout).contains("--replicas"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_and_status_shows_replicas() -> Result<()> {
    let mut cluster = Cluster::start(3, 1, &[]).await?;
    cluster.psql(
        0,
        &[
            "CREATE TABLE r (id BIGINT PRIMARY KEY, v TEXT)",
            "INSERT INTO r VALUES (1, 'a')",
        ],
    )?;
    let status = cluster.stop()?;
    assert!(status.success(), "clean shutdown on SIGTERM");
    cluster.spawn().await?;
    let out = cluster.psql(
        0,
        &[
            "INSERT INTO r VALUES (2, 'b')",
            "SELECT count(*) AS n FROM r",
        ],
    )?;
    assert!(out.contains(" 2\n") || out.contains("2\n("), "{out}");
    cluster.wait_converged().await?;
    let text =
        cluster.tributary(&["status", "--router", &format!("127.0.0.1:{}", cluster.port)])?;
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("log end: 3") && text.matches("replica").count() >= 3,
        "{text}"
    );
    eventually(Duration::from_secs(5), "nothing", || async { Ok(Some(())) }).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_endpoint() -> Result<()> {
    let port = tests::free_ports(1)?;
    let addr = format!("127.0.0.1:{port}");
    let cluster = Cluster::start(2, 1, &[("TRIBUTARY__METRICS__LISTEN", &addr)]).await?;
    cluster.psql(
        0,
        &[
            "CREATE TABLE m (id BIGINT PRIMARY KEY)",
            "INSERT INTO m VALUES (1)",
            "SELECT * FROM m",
        ],
    )?;
    cluster.wait_converged().await?;
    let body = eventually(Duration::from_secs(10), "metrics", || {
        let addr = addr.clone();
        async move {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(&addr)?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body.contains("tributary_log_end_offset").then_some(body))
        }
    })
    .await?;
    for name in [
        "tributary_log_end_offset 2",
        "tributary_replica_applied_offset{replica=\"replica2\"} 2",
        "tributary_replica_lag_records",
        "tributary_log_group_commit_records_bucket",
        "tributary_router_statement_seconds_bucket{kind=\"write\"",
        "tributary_replica_apply_lag_seconds",
    ] {
        assert!(body.contains(name), "{name} missing from:\n{body}");
    }
    Ok(())
}
