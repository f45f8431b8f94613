//! Holding one replica of each shard group at the same log offset, so a
//! read spread over the groups sees one prefix of the log, as one file
//! holding every row would: a transaction that moved money between shards
//! is seen whole or not at all (found by the sharded crash harness: a
//! `strong` sum over three groups read each group at its own offset and
//! saw a credit without its debit).
//!
//! The holds stop each replica's applier at offset N, the log end when the
//! read starts (or its target if later); the read runs once every replica
//! has reached N; dropping the holds lets them go on. N is the log end,
//! not the furthest replica's offset: with reads overlapping back to back,
//! each new read would otherwise hold at the offset where the last one
//! parked the appliers, and apply would never move again.

use std::sync::Arc;
use std::time::Duration;

use replica::{ApplyHold, ReplicaState};
use wal_bus::Offset;

use crate::error::{Error, Result};

/// Holds a scatter read's replicas should not need for long; a holder that
/// vanishes without dropping them loses them after this.
const LAPSE: Duration = Duration::from_secs(60);

/// Holds `replicas` at one offset: `log_end`, or later if `floor` is or a
/// replica already is; returns the holds (drop them when the read is done)
/// and the offset.
pub async fn hold_aligned(
    replicas: &[Arc<ReplicaState>],
    floor: Offset,
    log_end: Offset,
    timeout: Duration,
) -> Result<(Vec<ApplyHold>, Offset)> {
    let mut at = replicas
        .iter()
        .map(|r| r.applied())
        .fold(floor.max(log_end), Offset::max);
    let mut holds: Vec<ApplyHold> = replicas.iter().map(|r| r.hold_for(at, LAPSE)).collect();
    // A replica in the middle of a batch is held where the batch ends:
    // move the others there too (a batch is finite, so this settles).
    for _ in 0..16 {
        let furthest = holds.iter().map(ApplyHold::at).max().unwrap_or(at);
        if holds.iter().all(|h| h.at() == furthest) {
            at = furthest;
            break;
        }
        for h in &mut holds {
            h.move_to(furthest);
        }
    }
    if holds.iter().any(|h| h.at() != at) {
        return Err(Error::SerializationFailure(
            "could not hold the shard groups' replicas at one log offset; run the read again"
                .into(),
        ));
    }
    for h in &holds {
        h.reached(timeout).await?;
    }
    Ok((holds, at))
}
