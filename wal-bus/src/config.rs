//! The `[log]` section of the node configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which log implementation holds the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded file log in `<data-dir>/log` (one machine, no other service).
    #[default]
    File,
    /// An Apache Kafka (or Kafka-protocol) topic; needs the `kafka` feature.
    Kafka,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Kafka => "kafka",
        }
    }
}

/// `[log]`: where the shared log lives and how it is cut into segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log backend: `file` (embedded, the default) or `kafka`.
    pub backend: Backend,
    /// Directory of the file log's segments; defaults to `<data-dir>/log`.
    pub dir: Option<PathBuf>,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Largest record accepted (one transaction's JSON).
    pub max_record_bytes: usize,
    /// File log retention: once segments are covered by the newest snapshot
    /// and applied by every replica, remove the oldest while the log is
    /// larger than this (0: no size limit).
    pub retention_bytes: u64,
    /// … or while they are older than this (0: no age limit). With both 0,
    /// every segment a snapshot covers is removed. Only acts when snapshots
    /// are taken (`[snapshots] interval_s` or `tributary snapshot`).
    pub retention_ms: u64,
    /// `[log.kafka]`: the Kafka backend's settings.
    pub kafka: KafkaConfig,
}

/// `[log.kafka]`: where the Kafka log lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `"kafka1:9092,kafka2:9092"`.
    pub brokers: String,
    /// The log topic (one partition: the total order).
    pub topic: String,
    /// Compacted topic carrying replicas' applied offsets, keyed by replica.
    pub acks_topic: String,
    /// Create missing topics at start (needs the broker's permission).
    pub create_topics: bool,
    /// Replication factor for topics this node creates.
    pub replication_factor: i32,
    /// How long an append, a metadata call or start-up may take.
    pub timeout_ms: u64,
    /// Start even though the log topic's retention may delete records
    /// (`retention.ms` / `retention.bytes` not -1). Only safe when
    /// snapshots are taken more often than retention deletes: a replica
    /// that falls behind the deleted records stops and is rebuilt from a
    /// snapshot, never applying past the gap.
    pub allow_finite_retention: bool,
    /// Any librdkafka setting (`"security.protocol" = "SASL_SSL"`, `"sasl.mechanism"`, …).
    pub properties: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "tributary.log".into(),
            acks_topic: "tributary.acks".into(),
            create_topics: true,
            replication_factor: 1,
            timeout_ms: 10_000,
            allow_finite_retention: false,
            properties: Default::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            backend: Backend::File,
            dir: None,
            segment_bytes: 128 << 20,
            max_record_bytes: 64 << 20,
            retention_bytes: 0,
            retention_ms: 0,
            kafka: KafkaConfig::default(),
        }
    }
}

impl LogConfig {
    /// The retention rule of `retention_bytes` / `retention_ms`.
    pub fn retention(&self) -> crate::RetentionRule {
        crate::RetentionRule {
            max_bytes: self.retention_bytes,
            max_age_ms: self.retention_ms,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.backend == Backend::Kafka {
            if self.kafka.brokers.trim().is_empty() {
                return Err(Error::Config {
                    key: "log.kafka.brokers",
                    reason: "must name at least one broker (host:port)".into(),
                });
            }
            if self.kafka.topic.is_empty() || self.kafka.topic == self.kafka.acks_topic {
                return Err(Error::Config {
                    key: "log.kafka.topic",
                    reason: "must be non-empty and differ from log.kafka.acks_topic".into(),
                });
            }
            if self.kafka.timeout_ms == 0 || self.kafka.replication_factor < 1 {
                return Err(Error::Config {
                    key: "log.kafka",
                    reason: "timeout_ms and replication_factor must be positive".into(),
                });
            }
        }
        if !(4096..=(u32::MAX as u64)).contains(&self.segment_bytes) {
            return Err(Error::Config {
                key: "log.segment_bytes",
                reason: format!("{} is outside 4096..=4294967295", self.segment_bytes),
            });
        }
        if self.max_record_bytes == 0 || self.max_record_bytes as u64 > self.segment_bytes {
            return Err(Error::Config {
                key: "log.max_record_bytes",
                reason: format!(
                    "{} must be between 1 and log.segment_bytes ({})",
                    self.max_record_bytes, self.segment_bytes
                ),
            });
        }
        Ok(())
    }
}
