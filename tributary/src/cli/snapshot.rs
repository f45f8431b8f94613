//! `tributary snapshot`.

use std::path::PathBuf;

use crate::snapshots::take;

#[derive(clap::Args)]
pub struct Args {
    /// Node configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Data directory (overrides the configuration's `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// `tributary snapshot`: works whether or not the node is running.
pub async fn run(args: Args) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || snapshot(args)).await?
}

fn snapshot(args: Args) -> anyhow::Result<()> {
    let config = super::load_config(args.config.as_deref(), args.data_dir)?;
    let mut replicas = config.replica_paths();
    // `tributary node` names its one replica after the node.
    replicas.push((config.node_id.clone(), config.node_replica_path()));
    for snap in take(&replicas, &config.snapshot_dir(), config.snapshots.keep)? {
        let group = match snap.shard_group {
            None => String::new(),
            Some(0) => " (full tables only)".to_owned(),
            Some(g) => format!(" (shard group {g})"),
        };
        println!(
            "snapshot {} covers log offsets 0..{} ({} bytes){group}",
            snap.path.display(),
            snap.offset,
            snap.bytes
        );
    }
    Ok(())
}
