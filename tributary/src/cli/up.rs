//! `tributary up`: the whole cluster in one process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use router::config::AckMode;

use crate::config::NodeConfig;
use crate::node::Layout;

#[derive(clap::Args)]
pub struct Args {
    /// Node configuration file (TOML; see tributary.example.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Directory for the log and the replica files [config: data_dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Number of replicas [config: replicas; default 3].
    #[arg(long)]
    replicas: Option<usize>,
    /// Number of routers; router i listens on the --listen port + i
    /// [config: router.routers; default 1].
    #[arg(long)]
    routers: Option<usize>,
    /// Address of the first router [config: router.listen; default 127.0.0.1:5433].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Default ack mode: async, semi-sync or sync [config: replication.ack].
    #[arg(long, value_parser = parse_ack)]
    ack: Option<AckMode>,
    /// Serve the status page at http://HOST:PORT/, Prometheus metrics at /metrics and status JSON at /status.json [config: metrics.listen].
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Conflict-policy file; appended as a new policy version at start-up
    /// when it differs from the one in force [config: conflicts.policy].
    #[arg(long)]
    policy: Option<PathBuf>,
}

fn parse_ack(s: &str) -> Result<AckMode, String> {
    s.parse()
        .map_err(|()| format!("allowed: {}", AckMode::ALLOWED))
}

/// Loads the config file and applies the command-line flags over it.
fn config_from(args: Args) -> anyhow::Result<NodeConfig> {
    let mut config = NodeConfig::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(n) = args.replicas {
        if !config.replica_list.is_empty() {
            bail!("--replicas conflicts with the [[replica]] list in the config file");
        }
        config.replicas = n;
    }
    if let Some(m) = args.routers {
        config.router.routers = m;
    }
    if let Some(l) = args.listen {
        config.router.listen = l.to_string();
    }
    if let Some(a) = args.ack {
        config.replication.ack = a;
    }
    if let Some(p) = args.policy {
        config.conflicts.policy = Some(p);
    }
    if let Some(m) = args.metrics {
        config.metrics.listen = Some(m.to_string());
    }
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("command line: {e}"))?;
    Ok(config)
}

/// N replicas and M routers named r1..rM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = config_from(args)?;
    let layout = Layout::cluster(&config)?;
    super::serve_until_signal(config, layout).await
}
