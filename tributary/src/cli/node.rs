//! `tributary node`: one node of a multi-process cluster.

use std::path::PathBuf;

use crate::config::NodeConfig;
use crate::node::Layout;

#[derive(clap::Args)]
pub struct Args {
    /// Node configuration file (TOML; see tributary.example.toml).
    #[arg(long, short)]
    config: PathBuf,
}

/// One replica (named after the node unless `[[replica]]` says otherwise)
/// and a router named after the node.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let config = NodeConfig::load(Some(&args.config))?;
    let layout = Layout::single(&config)?;
    super::serve_until_signal(config, layout).await
}
