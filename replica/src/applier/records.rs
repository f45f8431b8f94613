//! Applying one decoded record inside the batch's transaction: a savepoint
//! per record, row changes with conflict resolution, blocks, schema
//! statements, key reservations and policy switches; and a large `txn`
//! record streamed change by change from its bytes.

use std::sync::Arc;

use resolver::{Policy, Stamp};
use wal_bus::{Offset, Record, RecordBody, Step, Stopped};

use super::{Applied, Applier};
use crate::apply::{ChangeCtx, ChangeResult, apply_change, is_deterministic};
use crate::conflicts::record_conflict;
use crate::error::{Error, Result, SqliteContext};
use crate::meta::store_policy;

impl Applier {
    /// Applies a transaction's changes; conflicts are recorded, and a
    /// first-writer-wins rejection rolls the whole record back.
    fn apply_txn(
        &mut self,
        offset: Offset,
        record: &Record,
        changes: &[wal_bus::Change],
    ) -> Result<Applied> {
        self.apply_changes(offset, record, |apply| {
            for change in changes {
                if apply(change)? == Applied::Rejected {
                    return Ok(Applied::Rejected);
                }
            }
            Ok(Applied::Done)
        })
    }

    /// A large `txn` record's changes, parsed one at a time from `payload`
    /// and applied as they come, so the replica never holds them all.
    fn apply_txn_streamed(
        &mut self,
        offset: Offset,
        record: &Record,
        payload: &[u8],
    ) -> Result<Applied> {
        self.apply_changes(offset, record, |apply| {
            let mut outcome = Applied::Done;
            let streamed = wal_bus::for_each_change(payload, |change| match apply(&change) {
                Ok(Applied::Done) => Ok(()),
                Ok(Applied::Rejected) => {
                    outcome = Applied::Rejected;
                    Err(None)
                }
                Err(e) => Err(Some(e)),
            });
            match streamed {
                Ok(()) | Err(Stopped::Caller(None)) => Ok(outcome),
                Err(Stopped::Caller(Some(e))) => Err(e),
                Err(Stopped::Decode(source)) => Err(Error::BadRecord { offset, source }),
            }
        })
    }

    /// Runs `feed`, which hands each change of a record to the function it
    /// is given (stopping when that says `Rejected`); records conflicts, and
    /// on a rejection rolls back to the record's savepoint.
    fn apply_changes(
        &mut self,
        offset: Offset,
        record: &Record,
        feed: impl FnOnce(&mut dyn FnMut(&wal_bus::Change) -> Result<Applied>) -> Result<Applied>,
    ) -> Result<Applied> {
        let stamp = Stamp::new(record.hlc, record.origin.clone());
        let ctx = ChangeCtx {
            conn: &self.conn,
            path: &self.path,
            offset,
            txn_id: &record.id,
            stamp: &stamp,
            replica: &self.name,
            policy: &self.policy,
            policy_version: self.policy_version,
        };
        let cache = &mut self.cache;
        let filter = &self.filter;
        let mut conflicts = Vec::new();
        let mut rejected = None;
        feed(&mut |change| {
            // Another shard group's row: not kept here (see `placement`).
            if !filter.keeps(change) {
                return Ok(Applied::Done);
            }
            match apply_change(&ctx, cache, change)? {
                ChangeResult::Clean => Ok(Applied::Done),
                ChangeResult::Conflict(c) => {
                    conflicts.push(c);
                    Ok(Applied::Done)
                }
                ChangeResult::Reject(c) => {
                    rejected = Some(c);
                    Ok(Applied::Rejected)
                }
            }
        })?;
        if let Some(c) = rejected {
            self.conn
                .execute_batch("ROLLBACK TO record")
                .ctx(&self.path, "rolling back a rejected transaction")?;
            let reason = if c.resolution.strategy == resolver::COUNTER_OVERFLOW {
                format!(
                    "transaction {} was rejected: counter column {} of {} key {} would leave the range of a 64-bit integer ({})",
                    record.id,
                    c.resolution.columns.join(", "),
                    c.table,
                    c.key,
                    crate::OUT_OF_RANGE
                )
            } else {
                format!(
                    "transaction {} conflicts on {} key {} ({}) and was rejected by first-writer-wins",
                    record.id, c.table, c.key, c.kind
                )
            };
            record_conflict(&ctx, &c)?;
            self.rejections.push((offset, reason));
            return Ok(Applied::Rejected);
        }
        for c in &conflicts {
            record_conflict(&ctx, c)?;
        }
        Ok(Applied::Done)
    }

    /// A `block` record: schema statements and row changes in order; a
    /// rejected run of changes rejects the whole block (already rolled
    /// back to the record's savepoint).
    fn apply_block(&mut self, offset: Offset, record: &Record, steps: &[Step]) -> Result<Applied> {
        for step in steps {
            match step {
                Step::Ddl { sql } => {
                    self.cache.clear();
                    crate::ddl::run_ddl(&self.conn, sql)
                        .ctx(&self.path, "applying a schema statement of a block")?;
                }
                Step::Rows { changes } => {
                    if self.apply_txn(offset, record, changes)? == Applied::Rejected {
                        return Ok(Applied::Rejected);
                    }
                }
            }
        }
        Ok(Applied::Done)
    }

    /// Remembers an applied record's idempotency key (inside its savepoint,
    /// so a record that is skipped after all leaves none).
    fn remember_key(
        &mut self,
        offset: Offset,
        record: &Record,
        keyed: Option<&wal_bus::Idempotency>,
        applied: Applied,
    ) -> Result<()> {
        let (Some(idem), Applied::Done) = (keyed, applied) else {
            return Ok(());
        };
        crate::idempotency::remember(&self.conn, offset, &record.origin, record.ts_ms, idem)
            .and_then(|()| {
                crate::idempotency::maybe_prune(
                    &self.conn,
                    &mut self.keys_since_prune,
                    record.ts_ms,
                )
            })
            .ctx(&self.path, "remembering an idempotency key")
    }

    /// Applies one record atomically (a savepoint), or skips it whole when it
    /// fails for a reason every replica shares (see `is_deterministic`).
    /// `payload` is given when `record` is a `txn` header whose changes are
    /// to be streamed from it (`wal_bus::txn_head`).
    pub(super) fn apply_record(
        &mut self,
        offset: Offset,
        record: &Record,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        self.conn
            .execute_batch("SAVEPOINT record")
            .ctx(&self.path, "opening a record savepoint")?;
        let keyed = record.idempotency.as_ref().filter(|_| {
            matches!(
                record.body,
                RecordBody::Txn { .. } | RecordBody::Block { .. }
            )
        });
        if let Some(idem) = keyed
            && let Some(first) = crate::idempotency::lookup(&self.conn, &idem.key, record.ts_ms)
                .ctx(&self.path, "looking up an idempotency key")?
        {
            metrics::counter!("tributary_replica_idempotent_duplicates_total", "replica" => self.name.clone()).increment(1);
            tracing::info!(replica = %self.name, offset, id = %record.id, key = %idem.key, first = first.offset,
                "record skipped: its idempotency key was applied before");
            return self
                .conn
                .execute_batch("RELEASE record")
                .ctx(&self.path, "releasing a record savepoint");
        }
        let result = match &record.body {
            RecordBody::Txn { changes } => match payload {
                Some(bytes) => self.apply_txn_streamed(offset, record, bytes),
                None => self.apply_txn(offset, record, changes),
            }
            .and_then(|applied| self.remember_key(offset, record, keyed, applied)),
            RecordBody::Block { steps } => {
                let applied = self.apply_block(offset, record, steps);
                self.cache.clear();
                applied.and_then(|applied| self.remember_key(offset, record, keyed, applied))
            }
            RecordBody::Ddl { sql } => {
                self.cache.clear();
                crate::ddl::run_ddl(&self.conn, sql).ctx(&self.path, "applying a DDL record")
            }
            RecordBody::Ids { table, count } => {
                crate::ids::reserve(&self.conn, offset, table, &record.origin, *count)
                    .map(|_| ())
                    .ctx(&self.path, "reserving generated keys")
            }
            RecordBody::Placement { version, placement } => {
                self.switch_placement(offset, *version, placement)
            }
            RecordBody::Policy { version, policy } => {
                match Policy::parse(policy, "policy record") {
                    Ok(p) => {
                        store_policy(&self.conn, *version, policy)
                            .ctx(&self.path, "storing the policy")?;
                        tracing::info!(replica = %self.name, offset, version, "conflict policy switched");
                        self.policy = Arc::new(p);
                        self.policy_version = *version;
                        Ok(())
                    }
                    Err(source) => Err(Error::Resolve { offset, source }),
                }
            }
        };
        match result {
            Ok(()) => self
                .conn
                .execute_batch("RELEASE record")
                .ctx(&self.path, "releasing a record savepoint"),
            Err(e) if is_deterministic(&e) => {
                self.conn
                    .execute_batch("ROLLBACK TO record; RELEASE record")
                    .ctx(&self.path, "rolling back a skipped record")?;
                self.cache.clear();
                metrics::counter!("tributary_replica_records_skipped_total", "replica" => self.name.clone()).increment(1);
                tracing::error!(replica = %self.name, offset, id = %record.id, error = %e,
                    "record skipped: it cannot apply on any replica");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Applier {
    /// A `placement` record: stores it and, from here on, keeps only this
    /// replica's group's rows of sharded tables, deleting the others now.
    fn switch_placement(
        &mut self,
        offset: Offset,
        version: u64,
        placement: &wal_bus::Placement,
    ) -> Result<()> {
        let filter = crate::placement::GroupFilter {
            group: placement.group_of(&self.name),
            placement: Arc::new(placement.clone()),
        };
        // A replica that held no group's rows while tables were
        // distributed cannot take on a group's rows from the log alone.
        if self.filter.placement.is_sharded()
            && self.filter.group.is_none()
            && let Some(g) = filter.group
        {
            return Err(Error::JoinedGroup {
                replica: self.name.clone(),
                group: g + 1,
                offset,
                path: self.path.clone(),
            });
        }
        crate::placement::store_placement(&self.conn, version, placement, filter.group)
            .ctx(&self.path, "storing the placement")?;
        let purged = crate::placement::purge_foreign_rows(&self.conn, &filter)
            .ctx(&self.path, "deleting rows of other shard groups")?;
        tracing::info!(replica = %self.name, offset, version, group = ?filter.group, purged,
            "table placement switched");
        self.filter = filter;
        self.placement_version = version;
        Ok(())
    }
}
