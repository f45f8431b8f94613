//! The `[log]` section of the node configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[log]`: where the shared log lives and how it is cut into segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log backend: `file` (embedded, the default).
    pub backend: String,
    /// Directory of the file log's segments; defaults to `<data-dir>/log`.
    pub dir: Option<PathBuf>,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Largest record accepted (one transaction's JSON).
    pub max_record_bytes: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            backend: "file".into(),
            dir: None,
            segment_bytes: 64 << 20,
            max_record_bytes: 16 << 20,
        }
    }
}

impl LogConfig {
    pub fn validate(&self) -> Result<()> {
        if self.backend != "file" {
            return Err(Error::Config {
                key: "log.backend",
                reason: format!("unknown backend {:?}; allowed: \"file\"", self.backend),
            });
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
