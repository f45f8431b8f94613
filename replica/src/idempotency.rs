//! Idempotency keys: a transaction tagged with a key is applied once.
//!
//! Every replica applies records in log order, so "the first record with
//! key K in log order" is the same record everywhere: it applies and its
//! key goes into `_tributary_idempotency` in the same savepoint (a record
//! rejected by first-writer-wins or skipped leaves no key, so a retry may
//! try again); a later record with K, while K is remembered, is skipped
//! whole. Expiry is decided by record time (`ts_ms` + the window the record
//! carries), not by each replica's clock, so every replica decides alike;
//! expired keys are deleted now and then, which changes no decision.

use rusqlite::{Connection, OptionalExtension, params};
use wal_bus::{Idempotency, Offset, StatementResult};

/// Keyed records applied between deletions of expired keys.
const PRUNE_EVERY: u32 = 256;

/// A key as remembered: where it was applied and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyOutcome {
    /// Offset of the record that applied the key.
    pub offset: Offset,
    pub origin: String,
    pub expires_ms: u64,
    pub results: Vec<StatementResult>,
}

/// The key's outcome if `key` is remembered and unexpired at `now_ms`
/// (record time when applying, wall time when a router asks).
pub fn lookup(conn: &Connection, key: &str, now_ms: u64) -> rusqlite::Result<Option<KeyOutcome>> {
    let row = conn
        .prepare_cached(
            "SELECT log_offset, origin, expires_ms, results FROM _tributary_idempotency WHERE key = ?1",
        )?
        .query_row([key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(offset, origin, expires, results)| {
        let expires_ms = expires.max(0) as u64;
        (expires_ms >= now_ms).then(|| KeyOutcome {
            offset: offset.max(0) as u64,
            origin,
            expires_ms,
            // Written by `remember` from the same type; unreadable means
            // "no results kept", never a reason to stop applying.
            results: serde_json::from_str(&results).unwrap_or_default(),
        })
    }))
}

/// Remembers `idem` as applied by the record at `offset`.
pub(crate) fn remember(
    conn: &Connection,
    offset: Offset,
    origin: &str,
    ts_ms: u64,
    idem: &Idempotency,
) -> rusqlite::Result<()> {
    let results = serde_json::to_string(&idem.results).unwrap_or_else(|_| "[]".to_owned());
    let expires = ts_ms.saturating_add(idem.window_ms).min(i64::MAX as u64) as i64;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO _tributary_idempotency (key, log_offset, origin, expires_ms, results) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![idem.key, offset as i64, origin, expires, results])?;
    Ok(())
}

/// Deletes keys expired at record time `ts_ms`, every [`PRUNE_EVERY`] calls.
pub(crate) fn maybe_prune(
    conn: &Connection,
    counter: &mut u32,
    ts_ms: u64,
) -> rusqlite::Result<()> {
    *counter += 1;
    if *counter < PRUNE_EVERY {
        return Ok(());
    }
    *counter = 0;
    conn.prepare_cached("DELETE FROM _tributary_idempotency WHERE expires_ms < ?1")?
        .execute([ts_ms.min(i64::MAX as u64) as i64])?;
    Ok(())
}
