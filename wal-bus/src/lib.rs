//! `wal-bus`: the shared, totally ordered log that Tributary's replicas apply.
//!
//! It owns the versioned [`Record`] format (the contract with log consumers),
//! log positions ([`Offset`]), the hybrid logical clock wrapper ([`Hlc`]), the
//! [`Log`] trait with its embedded [`FileLog`] implementation, and [`AckBoard`],
//! where replicas publish how far they have applied.

mod acks;
mod config;
mod dir_reader;
mod end_history;
mod error;
mod file_log;
mod hlc;
#[cfg(feature = "kafka")]
mod kafka_acks;
#[cfg(feature = "kafka")]
mod kafka_log;
mod log;
mod record;
mod segment;
mod value;

pub use acks::{AckBoard, AckSnapshot};
pub use config::{KafkaConfig, LogConfig};
pub use dir_reader::DirReader;
pub use error::{Error, Result};
pub use file_log::FileLog;
pub use hlc::{Hlc, HlcClock};
#[cfg(feature = "kafka")]
pub use kafka_acks::KafkaAcks;
#[cfg(feature = "kafka")]
pub use kafka_log::{KafkaLog, ensure_topic};
pub use log::{AppendFuture, Log, LogEntry, Offset, RetentionRule, Subscription, Tail, tail};
pub use record::{Change, Op, RECORD_VERSION, Record, RecordBody, Row};
pub use segment::{FrameWalk, scan_frames};
pub use value::Value;
