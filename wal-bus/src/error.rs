//! The one error type of the `wal-bus` crate.

use std::path::PathBuf;

/// Everything that can go wrong in the log layer, with the context needed to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record at offset {offset} is corrupt: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error(
        "segment {path} is corrupt at byte {position} (not the last segment, so it cannot be truncated): {reason}"
    )]
    CorruptSegment {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("record could not be decoded: {0}")]
    Decode(String),
    #[error(
        "record version {found} is newer than this build understands (max {supported}); upgrade Tributary"
    )]
    UnsupportedVersion { found: u64, supported: u64 },
    #[error("record of {size} bytes exceeds the log's max_record_bytes of {limit}")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("offset {requested} is beyond the log end {end}")]
    OffsetOutOfRange { requested: u64, end: u64 },
    #[error(
        "offset {requested} was removed by log retention (the log now starts at {start}); a replica this far behind is rebuilt from a snapshot"
    )]
    Trimmed { requested: u64, start: u64 },
    #[error(
        "the log skips from offset {expected} to {found}: records {expected}..{found} are gone (deleted by the broker's retention?); nothing past the gap is applied, and the replica is rebuilt from a snapshot that covers offset {found}"
    )]
    Gap { expected: u64, found: u64 },
    #[error("the log is closed")]
    Closed,
    #[error("clock error: {0}")]
    Clock(String),
    #[error("kafka: {context}: {reason}")]
    Kafka { context: String, reason: String },
    #[error(
        "log.backend = \"{backend}\" needs the `{feature}` feature, which this build of Tributary lacks; rebuild with `--features {feature}`"
    )]
    FeatureMissing {
        backend: &'static str,
        feature: &'static str,
    },
    #[error("invalid log configuration: {key}: {reason}")]
    Config { key: &'static str, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "runtime")]
impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
