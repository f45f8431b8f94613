//! Applying the configured table placement (`[placement]`) at start-up:
//! if it differs from the placement in force, the move is checked (as the
//! SQL functions check each step) and appended before any router opens; a
//! problem stops start-up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use replica::ReplicaState;
use wal_bus::{HlcClock, Log, Placement, Record, RecordBody};

/// How long start-up waits for the replica to catch up and to apply the
/// new placement.
const CATCH_UP: Duration = Duration::from_secs(120);

pub async fn apply(
    desired: &Placement,
    log: &Arc<dyn Log>,
    clock: &HlcClock,
    replica: &Arc<ReplicaState>,
) -> anyhow::Result<()> {
    replica
        .wait_applied(log.end(), CATCH_UP)
        .await
        .context("catching up to check the placement")?;
    let conn = rusqlite::Connection::open_with_flags(
        &replica.path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let (version, current) = replica.placement();
    let Some(next) = router::placement::transition(&conn, &current, desired)
        .context("the configured [placement] cannot be put in force")?
    else {
        tracing::info!(version, "configured placement already in force");
        return Ok(());
    };
    let hlc = clock.now()?;
    let record = Record::new(
        format!("node-placement-{}", version + 1),
        "node",
        hlc,
        RecordBody::Placement {
            version: version + 1,
            placement: next,
        },
    );
    let offset = log.append(record.encode()).await?;
    tracing::info!(version = version + 1, offset, "table placement appended");
    replica
        .wait_applied(offset + 1, CATCH_UP)
        .await
        .context("applying the new placement")?;
    Ok(())
}
