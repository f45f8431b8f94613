//! `tributary log tail` (records or Debezium change events as JSON lines)
//! and `tributary log publish` (the Debezium view onto per-table topics).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use router::config::NodeConfig;
use router::core::now_ms;
use router::debezium;
use wal_bus::{DirReader, KafkaLog, Log, LogEntry, Record};

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

fn load(data_dir: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<NodeConfig> {
    let mut cfg = NodeConfig::load(config.as_deref())?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    Ok(cfg)
}

/// Prints one entry; false when stdout is gone (e.g. `| head`).
fn print(out: &mut impl Write, entry: &LogEntry, format: Format, offsets: bool) -> bool {
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
        (Format::Debezium, Ok(rec)) => debezium::events(&rec, entry.offset, now_ms())
            .into_iter()
            .map(|e| e.envelope.to_string())
            .collect(),
        (Format::Debezium, Err(_)) => Vec::new(),
    };
    lines.iter().all(|l| writeln!(out, "{l}").is_ok())
}

pub async fn run(
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    from: u64,
    follow: bool,
    offsets: bool,
    format: Format,
) -> anyhow::Result<()> {
    let mut cfg = load(data_dir, config)?;
    if cfg.log.backend == "kafka" {
        cfg.log.kafka.create_topics = false;
        let log: Arc<dyn Log> = KafkaLog::open(&cfg.log).await?;
        let end = log.end();
        let mut tail = wal_bus::tail(log, from)?;
        let stdout = std::io::stdout();
        while follow || tail.position() < end {
            let batch = tail.next_batch().await?;
            let mut out = stdout.lock();
            for e in &batch {
                if !follow && e.offset >= end {
                    return Ok(());
                }
                if !print(&mut out, e, format, offsets) {
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
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        while let Some(entry) = reader.next_entry()? {
            if !print(&mut out, &entry, format, offsets) {
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
pub async fn publish(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    prefix: String,
) -> anyhow::Result<()> {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::util::Timeout;

    let cfg = load(data_dir, config)?;
    anyhow::ensure!(
        cfg.log.backend == "kafka",
        "log publish needs [log] backend = \"kafka\""
    );
    std::fs::create_dir_all(&cfg.data_dir)?;
    let pos_file = cfg.data_dir.join(format!("debezium-{prefix}.offset"));
    let from: u64 = std::fs::read_to_string(&pos_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let log: Arc<dyn Log> = KafkaLog::open(&cfg.log).await?;
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &cfg.log.kafka.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5");
    for (k, v) in &cfg.log.kafka.properties {
        pc.set(k, v);
    }
    let producer: FutureProducer = pc.create().context("creating the Debezium producer")?;
    let timeout = Timeout::After(Duration::from_millis(cfg.log.kafka.timeout_ms));
    let mut tail = wal_bus::tail(log, from)?;
    let mut topics = std::collections::BTreeSet::new();
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
            for ev in debezium::events(&rec, entry.offset, now_ms()) {
                let topic = format!("{prefix}.{}", ev.table);
                if !topics.contains(&topic) {
                    // Compacted, so the tombstone after a delete lets Kafka forget the row.
                    wal_bus::ensure_topic(&cfg.log.kafka, &topic, true).await?;
                    topics.insert(topic.clone());
                }
                let payload = ev.envelope.to_string();
                producer
                    .send(
                        FutureRecord::to(&topic).key(&ev.key).payload(&payload),
                        timeout,
                    )
                    .await
                    .map_err(|(e, _)| anyhow::anyhow!("publishing to {topic}: {e}"))?;
                if ev.envelope["op"] == "d" {
                    producer
                        .send(FutureRecord::<String, ()>::to(&topic).key(&ev.key), timeout)
                        .await
                        .map_err(|(e, _)| {
                            anyhow::anyhow!("publishing a tombstone to {topic}: {e}")
                        })?;
                }
            }
        }
        std::fs::write(&pos_file, tail.position().to_string())
            .with_context(|| format!("writing {}", pos_file.display()))?;
    }
}
