//! Idempotent retries: `SET tributary.idempotency_key = '…'` tags the
//! session's next write transaction (an autocommit INSERT, UPDATE, DELETE
//! or TRUNCATE, or a transaction block) with a key its record carries.
//!
//! Before the transaction's first write the router waits for its replica
//! to hold the whole log and looks the key up there: if a record with the
//! key was applied, the retry gets that transaction's answers (each
//! write's command tag and RETURNING rows, then COMMIT) and appends
//! nothing. If not, the transaction runs and its record carries the key
//! and its answers; replicas apply the first record with a key in log
//! order and skip later ones (`replica::idempotency`), so two routers
//! racing with one key apply once, and the router of the skipped one
//! answers with the first one's outcome once its replica has applied it.

use wal_bus::{Idempotency, Offset, StatementResult, Value, now_ms};

use super::{Feedback, Outcome, Session};
use crate::error::{Error, Result};
use crate::exec::ResultSet;
use replica::idempotency::KeyOutcome;

/// Longest key accepted.
pub(super) const MAX_KEY_BYTES: usize = 256;
/// RETURNING rows of one statement kept for retries, as JSON; beyond it a
/// retry gets the command tag and a notice.
const MAX_KEPT_ROWS_BYTES: usize = 64 << 10;

/// A transaction block's key, and what its writes answered so far (or,
/// when the key was already applied, what the retry is answered).
#[derive(Debug)]
pub(super) struct KeyedBlock {
    pub(super) key: String,
    pub(super) results: Vec<StatementResult>,
    pub(super) replay: Option<Replaying>,
}

/// A retried block whose key was applied at `offset`.
#[derive(Debug)]
pub(super) struct Replaying {
    offset: Offset,
    results: Vec<StatementResult>,
    next: usize,
}

/// What one write answered, to keep in its record.
pub(super) fn statement_result(
    tag: &str,
    result: Option<&ResultSet>,
    affected: usize,
) -> StatementResult {
    let verb = if tag == "INSERT" { "INSERT 0" } else { tag };
    let Some(rows) = result else {
        let tag = if verb == "TRUNCATE TABLE" {
            verb.to_owned()
        } else {
            format!("{verb} {affected}")
        };
        return StatementResult {
            tag,
            ..Default::default()
        };
    };
    let values: Vec<Vec<Value>> = rows
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| replica::from_value_ref(v.into()))
                .collect()
        })
        .collect();
    let size: usize = values
        .iter()
        .flatten()
        .map(|v| match v {
            Value::Text(t) => t.len() + 8,
            Value::Blob(b) => b.len() * 4 / 3 + 16,
            _ => 16,
        })
        .sum();
    let keep = size <= MAX_KEPT_ROWS_BYTES;
    StatementResult {
        tag: format!("{verb} {}", rows.rows.len()),
        columns: rows.columns.clone(),
        types: rows.decl_types.clone(),
        rows: if keep { values } else { Vec::new() },
        rows_omitted: !keep,
    }
}

/// A kept answer as the client gets it again.
fn replayed(r: &StatementResult, fb: &mut Feedback) -> Outcome {
    if r.columns.is_empty() || r.rows_omitted {
        if r.rows_omitted {
            fb.notices.push((
                "NOTICE",
                format!(
                    "the RETURNING rows of the original statement were over {MAX_KEPT_ROWS_BYTES} bytes and were not kept; its command tag is {}",
                    r.tag
                ),
            ));
        }
        return Outcome::Command {
            tag: r.tag.clone(),
            rows: None,
        };
    }
    // The row count goes back on from the rows.
    let verb = match r.tag.rsplit_once(' ') {
        Some((verb, n)) if n.chars().all(|c| c.is_ascii_digit()) => verb,
        _ => r.tag.as_str(),
    };
    Outcome::Rows {
        rows: ResultSet {
            columns: r.columns.clone(),
            decl_types: r.types.clone(),
            rows: r
                .rows
                .iter()
                .map(|row| row.iter().map(replica::to_sql_value).collect())
                .collect(),
        },
        tag: Some(verb.to_owned()),
    }
}

fn already(key: &str, first: &KeyOutcome) -> String {
    format!(
        "a transaction with idempotency key {key:?} was committed at log offset {} (by {}): this is its original result; nothing was appended",
        first.offset, first.origin
    )
}

impl Session {
    /// The key for a record: it and its answers.
    pub(super) fn idempotency(&self, key: String, results: Vec<StatementResult>) -> Idempotency {
        Idempotency {
            key,
            window_ms: self.shared.config.idempotency_window_s.saturating_mul(1000),
            results,
        }
    }

    /// Waits until the replica holds the whole log, then looks `key` up.
    pub(super) async fn find_key(&self, key: &str) -> Result<Option<KeyOutcome>> {
        self.shared.wait_applied(self.shared.log.end()).await?;
        self.lookup(key).await
    }

    async fn lookup(&self, key: &str) -> Result<Option<KeyOutcome>> {
        let key = key.to_owned();
        self.shared
            .readers
            .run(move |c| replica::idempotency::lookup(c, &key, now_ms()))
            .await?
            .map_err(|e| Error::sqlite("looking up an idempotency key", e))
    }

    /// After this session's keyed record (ending before `target`) was
    /// appended: waits for the replica to apply it and says whether an
    /// earlier record with the key won (`Some(first)`). A keyed record
    /// rejected by first-writer-wins is an error here in every ack mode.
    pub(super) async fn settle_key(
        &mut self,
        key: &str,
        target: Offset,
    ) -> Result<Option<KeyOutcome>> {
        self.shared.wait_applied(target).await?;
        if let Some(reason) = self.shared.acks.rejection(target - 1) {
            return Err(Error::SerializationFailure(reason));
        }
        let first = self.lookup(key).await?;
        Ok(first.filter(|f| f.offset != target - 1))
    }

    /// An autocommit write whose key was applied already: its answer.
    pub(super) fn replay_autocommit(
        &mut self,
        key: &str,
        first: &KeyOutcome,
        fb: &mut Feedback,
    ) -> Outcome {
        fb.notices.push(("NOTICE", already(key, first)));
        self.note_replayed_offset(first.offset, fb);
        match first.results.first() {
            Some(r) => replayed(r, fb),
            None => Outcome::Command {
                tag: "COMMIT".into(),
                rows: None,
            },
        }
    }

    fn note_replayed_offset(&mut self, offset: Offset, fb: &mut Feedback) {
        self.last_write = self.last_write.max(offset + 1);
        fb.offset = Some(self.last_write);
    }

    /// At a write in a block: takes the pending key as the block's (looking
    /// it up), and answers the write from the kept results when the block
    /// is a retry of one that committed.
    pub(super) async fn keyed_block_write(&mut self, fb: &mut Feedback) -> Result<Option<Outcome>> {
        if let Some(key) = self.idem_key.take() {
            let found = self.find_key(&key).await?;
            if let Some(first) = &found {
                fb.notices.push(("NOTICE", already(&key, first)));
            }
            if let Some(txn) = &mut self.txn {
                txn.keyed = Some(KeyedBlock {
                    key,
                    results: Vec::new(),
                    replay: found.map(|f| Replaying {
                        offset: f.offset,
                        results: f.results,
                        next: 0,
                    }),
                });
            }
        }
        let Some(replay) = self
            .txn
            .as_mut()
            .and_then(|t| t.keyed.as_mut())
            .and_then(|k| k.replay.as_mut())
        else {
            return Ok(None);
        };
        let Some(r) = replay.results.get(replay.next) else {
            return Err(Error::IdempotencyKey(format!(
                "this retry has more writes than the transaction committed with its idempotency key at log offset {} ({}); roll back",
                replay.offset,
                replay.results.len()
            )));
        };
        replay.next += 1;
        let r = r.clone();
        Ok(Some(replayed(&r, fb)))
    }

    /// At COMMIT of a retried block: the offset it was committed at.
    pub(super) fn commit_replayed(&mut self, keyed: &KeyedBlock, fb: &mut Feedback) -> bool {
        match &keyed.replay {
            Some(r) => {
                self.note_replayed_offset(r.offset, fb);
                true
            }
            None => false,
        }
    }
}
