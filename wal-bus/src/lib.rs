//! `wal-bus`: the shared, totally ordered log that Tributary's replicas apply.
//!
//! It owns the versioned [`Record`] format (the contract with log consumers),
//! the hybrid logical clock wrapper ([`Hlc`]) and [`Value`]: these need no
//! async runtime, so the resolver depends on them with default features off.
//! With the `runtime` feature (default) it also owns log positions
//! ([`Offset`]), the [`Log`] trait, the embedded [`FileLog`], the Kafka log
//! (feature `kafka`), [`open`] (the one place a backend is chosen) and
//! [`AckBoard`], where replicas publish how far they have applied.
//!
//! It must not depend on rusqlite, sqlparser or pgwire: it knows records as
//! bytes and JSON, never as SQL.

mod error;
mod hlc;
mod placement;
mod record;
mod row;
mod stream;
mod value;
mod wall;

pub use error::{Error, Result};
pub use hlc::{Hlc, HlcClock};
pub use placement::{Method, Placement, TablePlacement};
pub use record::{
    Change, Idempotency, Op, RECORD_VERSION, Record, RecordBody, StatementResult, Step,
};
pub use row::Row;
pub use stream::{Stopped, for_each_change, txn_head};
pub use value::Value;
pub use wall::{now_ms, sync_dir};

#[cfg(feature = "runtime")]
mod acks;
#[cfg(feature = "runtime")]
mod cluster_id;
#[cfg(feature = "runtime")]
mod config;
#[cfg(feature = "runtime")]
mod dir_reader;
#[cfg(feature = "runtime")]
mod end_history;
#[cfg(feature = "runtime")]
mod file_log;
#[cfg(feature = "kafka")]
mod kafka_acks;
#[cfg(feature = "kafka")]
mod kafka_client;
#[cfg(feature = "kafka")]
mod kafka_log;
#[cfg(feature = "kafka")]
mod kafka_tail;
#[cfg(feature = "runtime")]
mod large_frame;
#[cfg(feature = "runtime")]
mod log;
#[cfg(feature = "runtime")]
mod open;
#[cfg(feature = "runtime")]
mod segment;

#[cfg(feature = "runtime")]
pub use acks::{AckBoard, AckSnapshot};
#[cfg(feature = "runtime")]
pub use config::{Backend, KafkaConfig, LogConfig};
#[cfg(feature = "runtime")]
pub use dir_reader::DirReader;
#[cfg(feature = "runtime")]
pub use file_log::FileLog;
#[cfg(feature = "kafka")]
pub use kafka_client::{KafkaPublisher, ensure_topic};
#[cfg(feature = "kafka")]
pub use kafka_log::KafkaLog;
#[cfg(feature = "runtime")]
pub use log::{AppendFuture, Log, LogEntry, Offset, RetentionRule, Subscription, Tail, tail};
#[cfg(feature = "runtime")]
pub use open::{open, open_log};
#[cfg(feature = "runtime")]
pub use segment::{FrameWalk, scan_frames};
