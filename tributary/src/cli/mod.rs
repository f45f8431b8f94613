//! One file per command. Shared here: loading the node configuration with
//! command-line overrides, connecting to a running router, and waiting for
//! a stop signal.

pub mod log;
pub mod node;
pub mod passwd;
pub mod policy;
pub mod snapshot;
pub mod status;
pub mod up;
pub mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use crate::config::NodeConfig;
use crate::node::{Layout, Node};

/// The configuration file (or the defaults), with `--data-dir` over it.
pub fn load_config(config: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<NodeConfig> {
    let mut cfg = NodeConfig::load(config)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    Ok(cfg)
}

/// Connection string for the CLI's own connections to a router: user and
/// password from `PGUSER` / `PGPASSWORD` when set (routers with
/// `[router.auth]` on need them), as psql does.
pub fn conn_string(host: &str, port: &str) -> String {
    let user = std::env::var("PGUSER").unwrap_or_else(|_| "tributary".to_owned());
    let mut s = format!(
        "host={host} port={port} user='{}' dbname=tributary connect_timeout=5",
        quote(&user)
    );
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        s.push_str(&format!(" password='{}'", quote(&pw)));
    }
    s
}

fn quote(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Connects to the router at `HOST:PORT`.
pub async fn connect(router: &str) -> anyhow::Result<Client> {
    let (host, port) = router
        .rsplit_once(':')
        .with_context(|| format!("--router {router:?} is not HOST:PORT"))?;
    let (client, connection) = tokio_postgres::connect(&conn_string(host, port), NoTls)
        .await
        .with_context(|| format!("cannot connect to router {router}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Starts a node, prints where its routers listen, runs until Ctrl-C or
/// SIGTERM, then drains it.
pub async fn serve_until_signal(config: NodeConfig, layout: Layout) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ack = config.replication.ack;
    let node = Node::start(config, layout, shutdown.clone()).await?;
    for r in &node.routers {
        println!(
            "router {} listening on {} (replica {})",
            r.name, r.addr, r.replica
        );
    }
    println!(
        "tributary: {} replicas, {} routers, log {}, ack {ack}; Ctrl-C stops",
        node.replicas.len(),
        node.routers.len(),
        node.log.describe(),
    );
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = node.stopping() => {}
    }
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
