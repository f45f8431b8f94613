//! `tributary log tail`: the log's records as JSON lines, for consumers.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use router::config::NodeConfig;
use wal_bus::{DirReader, Record};

/// How often `--follow` looks for new records written by another process.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

pub async fn run(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    from: u64,
    follow: bool,
    offsets: bool,
) -> anyhow::Result<()> {
    let mut cfg = NodeConfig::load(config.as_deref())?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    let dir = cfg.log_dir();
    let mut reader = DirReader::open(&dir, from, cfg.log.max_record_bytes)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        while let Some(entry) = reader.next_entry()? {
            if let Err(e) = Record::decode(&entry.payload) {
                eprintln!(
                    "warning: record at offset {} does not decode: {e}",
                    entry.offset
                );
            }
            let text = String::from_utf8_lossy(&entry.payload);
            let line = if offsets {
                format!("{{\"offset\":{},\"record\":{text}}}", entry.offset)
            } else {
                text.into_owned()
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // reader went away (e.g. `| head`)
            }
        }
        let _ = out.flush();
        drop(out);
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}
