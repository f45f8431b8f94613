//! The `[conflicts]` section of the node configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[conflicts]`: where the conflict policy comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConflictsConfig {
    /// Conflict-policy file, applied at start-up when it differs from the
    /// policy in force (appended to the log as a new policy version).
    pub policy: Option<PathBuf>,
}
