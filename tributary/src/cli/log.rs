//! `tributary log tail` (records or Debezium change events as JSON lines)
//! and `tributary log publish` (the Debezium view onto per-table topics).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use wal_bus::{Backend, DirReader, LogEntry, Record, now_ms};

use crate::debezium;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print records as JSON lines (one record per line, in log order).
    Tail {
        /// Data directory of the node (its log is in <data-dir>/log).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Read the data directory and log settings from this config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// First offset to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep printing new records as they are appended.
        #[arg(long)]
        follow: bool,
        /// Wrap each record as {"offset": N, "record": {...}} (records format).
        #[arg(long)]
        offsets: bool,
        /// `records` (as stored) or `debezium` (one change event per row change).
        #[arg(long, value_enum, default_value = "records")]
        format: Format,
    },
    /// Publish the Debezium change-event view to per-table Kafka topics
    /// `<prefix>.<table>`, keyed by the primary key, with a tombstone after
    /// each delete. Runs until stopped; resumes where it left off.
    Publish {
        /// Node configuration with `[log] backend = "kafka"`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where the publisher keeps its position.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Topic prefix.
        #[arg(long, default_value = "tributary")]
        prefix: String,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Tail {
            data_dir,
            config,
            from,
            follow,
            offsets,
            format,
        } => tail(data_dir, config, from, follow, offsets, format).await,
        Command::Publish {
            config,
            data_dir,
            prefix,
        } => publish(config, data_dir, prefix).await,
    }
}

/// How often `--follow` on a file log looks for records written by another process.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

/// Output format of `log tail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The records as stored (docs/record-format.md).
    Records,
    /// One Debezium change event per row change.
    Debezium,
}

/// Prints one entry; false when stdout is gone (e.g. `| head`).
fn print(
    out: &mut impl Write,
    entry: &LogEntry,
    format: Format,
    offsets: bool,
    retries: &mut debezium::Retries,
) -> bool {
    let record = Record::decode(&entry.payload);
    if let Err(e) = &record {
        eprintln!(
            "warning: entry at offset {} is not a record: {e}",
            entry.offset
        );
    }
    let lines: Vec<String> = match (format, record) {
        (Format::Records, _) => {
            let text = String::from_utf8_lossy(&entry.payload);
            vec![if offsets {
                format!("{{\"offset\":{},\"record\":{text}}}", entry.offset)
            } else {
                text.into_owned()
            }]
        }
        (Format::Debezium, Ok(rec)) if retries.skip(&rec) => Vec::new(),
        (Format::Debezium, Ok(rec)) => debezium::events(&rec, entry.offset, now_ms())
            .into_iter()
            .map(|e| e.envelope.to_string())
            .collect(),
        (Format::Debezium, Err(_)) => Vec::new(),
    };
    lines.iter().all(|l| writeln!(out, "{l}").is_ok())
}

async fn tail(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    from: u64,
    follow: bool,
    offsets: bool,
    format: Format,
) -> anyhow::Result<()> {
    let mut cfg = super::load_config(config.as_deref(), data_dir)?;
    if cfg.log.backend == Backend::Kafka {
        cfg.log.kafka.create_topics = false;
        let cancel = CancellationToken::new();
        let _stop = cancel.clone().drop_guard();
        let log = wal_bus::open_log(&cfg.log, &cfg.log_dir(), &cancel).await?;
        let end = log.end();
        let mut tail = wal_bus::tail(log, from)?;
        let mut retries = debezium::Retries::default();
        let stdout = std::io::stdout();
        while follow || tail.position() < end {
            let batch = tail.next_batch().await?;
            let mut out = stdout.lock();
            for e in &batch {
                if !follow && e.offset >= end {
                    return Ok(());
                }
                if !print(&mut out, e, format, offsets, &mut retries) {
                    return Ok(());
                }
            }
            let _ = out.flush();
        }
        return Ok(());
    }
    let dir = cfg.log_dir();
    let mut reader = DirReader::open(&dir, from, cfg.log.max_record_bytes)
        .with_context(|| format!("opening the log in {}", dir.display()))?;
    let mut retries = debezium::Retries::default();
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        while let Some(entry) = reader.next_entry()? {
            if !print(&mut out, &entry, format, offsets, &mut retries) {
                return Ok(());
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

/// Publishes the Debezium view to `<prefix>.<table>` topics, keyed by the
/// primary key as JSON, with a tombstone after each delete. Resumes from the
/// position saved in `<data-dir>/debezium-<prefix>.offset` (at-least-once:
/// after a crash the last batch may be published again).
async fn publish(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    prefix: String,
) -> anyhow::Result<()> {
    let cfg = super::load_config(config.as_deref(), data_dir)?;
    anyhow::ensure!(
        cfg.log.backend == Backend::Kafka,
        "log publish needs [log] backend = \"kafka\""
    );
    std::fs::create_dir_all(&cfg.data_dir)?;
    let pos_file = cfg.data_dir.join(format!("debezium-{prefix}.offset"));
    let from: u64 = std::fs::read_to_string(&pos_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let log = wal_bus::open_log(&cfg.log, &cfg.log_dir(), &cancel).await?;
    let publisher = publisher(&cfg.log.kafka)?;
    let mut tail = wal_bus::tail(log, from)?;
    let mut topics = std::collections::BTreeSet::new();
    let mut retries = debezium::Retries::default();
    eprintln!("publishing the Debezium view to {prefix}.<table> from offset {from}");
    loop {
        let batch = tail.next_batch().await?;
        for entry in &batch {
            let rec = match Record::decode(&entry.payload) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(offset = entry.offset, error = %e, "skipping an entry that is not a record");
                    continue;
                }
            };
            if retries.skip(&rec) {
                continue;
            }
            for ev in debezium::events(&rec, entry.offset, now_ms()) {
                let topic = format!("{prefix}.{}", ev.table);
                if !topics.contains(&topic) {
                    // Compacted, so the tombstone after a delete lets Kafka forget the row.
                    publisher.ensure_topic(&topic, true).await?;
                    topics.insert(topic.clone());
                }
                let payload = ev.envelope.to_string();
                publisher.send(&topic, &ev.key, Some(&payload)).await?;
                if ev.envelope["op"] == "d" {
                    publisher
                        .send(&topic, &ev.key, None)
                        .await
                        .context("publishing a tombstone")?;
                }
            }
        }
        std::fs::write(&pos_file, tail.position().to_string())
            .with_context(|| format!("writing {}", pos_file.display()))?;
    }
}

#[cfg(feature = "kafka")]
fn publisher(k: &wal_bus::KafkaConfig) -> anyhow::Result<wal_bus::KafkaPublisher> {
    Ok(wal_bus::KafkaPublisher::new(k)?)
}

#[cfg(not(feature = "kafka"))]
fn publisher(_: &wal_bus::KafkaConfig) -> anyhow::Result<Never> {
    anyhow::bail!("log publish needs the `kafka` feature, which this build of Tributary lacks")
}

/// Stands in for the publisher in builds without Kafka (never constructed).
#[cfg(not(feature = "kafka"))]
enum Never {}

#[cfg(not(feature = "kafka"))]
impl Never {
    async fn ensure_topic(&self, _: &str, _: bool) -> anyhow::Result<()> {
        match *self {}
    }

    async fn send(&self, _: &str, _: &str, _: Option<&str>) -> anyhow::Result<()> {
        match *self {}
    }
}
