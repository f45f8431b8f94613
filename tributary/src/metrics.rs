//! The Prometheus endpoint (`[metrics] listen`), installed once per process.

use std::net::SocketAddr;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Serves every metric at `http://ADDR/metrics`.
pub fn install(addr: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = addr.parse().context("metrics.listen")?;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ])
        .context("metrics buckets")?
        .set_buckets_for_metric(
            Matcher::Full("tributary_log_group_commit_records".into()),
            &[
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
            ],
        )
        .context("metrics buckets")?
        .install()
        .with_context(|| format!("serving metrics on {addr}"))?;
    println!("metrics on http://{addr}/metrics");
    Ok(())
}
