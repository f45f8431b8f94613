//! Applying the configured conflict policy (`[conflicts] policy`) at
//! start-up: if it differs from the one in force, it is validated and
//! appended before any router opens; a problem stops start-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replica::ReplicaState;
use wal_bus::{HlcClock, Log, Record};

/// How long start-up waits for the replica to catch up (to check the
/// policy against the current schema) and to apply the new version.
const CATCH_UP: Duration = Duration::from_secs(120);

pub async fn apply(
    file: &Path,
    log: &Arc<dyn Log>,
    clock: &HlcClock,
    replica: &Arc<ReplicaState>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading policy {}", file.display()))?;
    replica
        .wait_applied(log.end(), CATCH_UP)
        .await
        .context("catching up to check the policy")?;
    let conn = rusqlite::Connection::open_with_flags(
        &replica.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let name = file.display().to_string();
    let proposal = router::policy::propose(&conn, replica, &text, &name)?;
    if proposal.in_force {
        tracing::info!(
            version = proposal.version - 1,
            "configured policy already in force"
        );
        return Ok(());
    }
    let hlc = clock.now()?;
    let id = format!("node-policy-{}", proposal.version);
    let record = Record::new(id, "node", hlc, proposal.body);
    let offset = log.append(record.encode()).await?;
    tracing::info!(version = proposal.version, offset, file = %name, "conflict policy appended");
    // Routers open only once the new policy is in force on their replica.
    replica
        .wait_applied(offset + 1, CATCH_UP)
        .await
        .context("applying the new policy")?;
    Ok(())
}
