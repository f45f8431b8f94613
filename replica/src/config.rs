//! The `[[replica]]` entries of the node configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One `[[replica]]`: a SQLite file this process keeps up to date.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// Unique name, used in acks and status (`replica1`, …).
    pub name: String,
    /// SQLite file; defaults to `<data-dir>/<name>.db`.
    #[serde(default)]
    pub path: Option<PathBuf>,
}
