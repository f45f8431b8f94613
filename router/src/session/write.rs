//! Writes: each statement is speculated on the router's replica (one job
//! at a time, holding the write gate) on top of the overlay and the open
//! transaction; it waits for rows another session's transaction holds,
//! reserves generated keys when it runs out, and in autocommit queues its
//! record in the same job (so queue order is log order).

use rusqlite::types::Value as SqlValue;
use wal_bus::RecordBody;

use super::{Feedback, Outcome, Session, write_outcome};
use crate::classify::Classified;
use crate::error::{Error, Result};
use crate::shared::{Queued, Shared};
use crate::write_order::Replay;

/// What one speculation job produced.
enum Spec {
    /// The statement's changes touch rows another session holds: wait
    /// until they are free (or handed to this session), speculate again.
    Blocked(Vec<crate::write_order::Lock>),
    /// The statement ran out of reserved keys: reserve more, run it again.
    NeedKeys(crate::keys::Shortage),
    /// A peer router was busy (see `placement::peers`): run it again.
    Retry,
    Done {
        out: crate::speculate::SpecOutcome,
        /// The record, when the write was queued (autocommit).
        queued: Option<Queued>,
    },
}

/// Runs on the speculation connection (one job at a time per router, holding
/// the replica's write gate): replays the router's overlay, runs the
/// statement, checks row locks, and either takes the locks (inside a
/// transaction block) or queues the record (autocommit).
#[allow(clippy::too_many_arguments)]
fn speculate_job(
    shared: &Shared,
    conn: &rusqlite::Connection,
    session: u64,
    in_txn: bool,
    insert_or_update: bool,
    prior: &crate::speculate::Prior,
    sql: &str,
    params: &[SqlValue],
    keyed: Option<(&str, wal_bus::Idempotency)>,
) -> Result<Spec> {
    let keys = insert_or_update.then_some(&shared.keys);
    let limit = shared.log.max_record_bytes();
    let (_, placement) = shared.replica.placement();
    // A sharded write takes each group's overlay itself (`with_runs`).
    let spec = if placement.is_sharded() {
        crate::placement::write::speculate(shared, conn, &placement, prior, sql, params, keys)
    } else {
        let overlay = shared.overlay();
        metrics::histogram!("tributary_router_overlay_records", "router" => shared.name.clone())
            .record(overlay.len() as f64);
        crate::speculate::speculate_after(conn, &overlay, prior, sql, params, keys, limit)
    };
    let mut out = match spec {
        Ok(out) => out,
        Err(Error::PeerBusy) => return Ok(Spec::Retry),
        Err(e) => {
            if let Some(short) = shared.keys.shortage() {
                return Ok(Spec::NeedKeys(short));
            }
            return Err(e);
        }
    };
    let locks = std::mem::take(&mut out.locks);
    if shared.order.holder_of(session, &locks).is_some() {
        return Ok(Spec::Blocked(locks));
    }
    if in_txn {
        shared.order.lock(session, locks);
        return Ok(Spec::Done { out, queued: None });
    }
    // Only a transaction block keeps these; a large statement's need not
    // coexist with its record.
    drop(locks);
    out.changeset = Vec::new();
    // A keyed write is recorded even when it changed no rows, so its
    // retry is answered, not run again.
    if out.changes.is_empty() && keyed.is_none() {
        return Ok(Spec::Done { out, queued: None });
    }
    crate::policy::check_set_values(&shared.replica.policy().1, &out.changes)?;
    let idempotency = keyed.map(|(tag, mut idem)| {
        idem.results = vec![super::idempotent::statement_result(
            tag,
            out.result.as_ref(),
            out.affected,
        )];
        idem
    });
    let changes = std::mem::take(&mut out.changes);
    let queued = shared.enqueue_keyed(
        session,
        RecordBody::Txn { changes },
        idempotency,
        |body| match body {
            RecordBody::Txn { changes } => Some(Replay::Rows(changes.into())),
            _ => None,
        },
    )?;
    Ok(Spec::Done {
        out,
        queued: Some(queued),
    })
}

impl Session {
    pub(super) async fn write(
        &mut self,
        stmt: &Classified,
        params: Vec<SqlValue>,
        tag: &str,
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        // A write is computed on the router's replica plus its overlay: the
        // replica must hold every transaction committed before this session
        // began, or a reconnecting client (say, after a router restart,
        // while the replica catches up) would compute from stale rows and
        // lose updates (found by the crash harness on Kafka).
        let waited = std::time::Instant::now();
        // The idempotency key of an autocommit write is its own; a retry
        // of one that was applied is answered without running it.
        let key = if self.txn.is_none() {
            self.idem_key.take()
        } else {
            if let Some(out) = self.keyed_block_write(fb).await? {
                return Ok(out);
            }
            None
        };
        if let Some(k) = &key
            && let Some(first) = self.find_key(k).await?
        {
            return Ok(self.replay_autocommit(k, &first, fb));
        }
        self.shared
            .wait_applied(self.min_offset.max(self.floor))
            .await?;
        self.shared
            .wait_groups_applied(self.min_offset.max(self.floor))
            .await?;
        self.shared.ready_to_write().await?;
        self.stages.consistency_wait += waited.elapsed();
        let lock_timeout = (self.lock_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(self.lock_timeout_ms));
        loop {
            let shared = self.shared.clone();
            let (session, in_txn) = (self.id, self.txn.is_some());
            let prior = self
                .txn
                .as_ref()
                .map(|t| t.block.prior())
                .unwrap_or_default();
            let sql = stmt.sql.clone();
            let params = params.clone();
            let insert = tag == "INSERT" || tag == "UPDATE";
            let started = std::time::Instant::now();
            let idem = key.clone().map(|k| self.idempotency(k, Vec::new()));
            let tag_owned = tag.to_owned();
            let job = move |c: &mut rusqlite::Connection| {
                let keyed = idem.map(|i| (tag_owned.as_str(), i));
                speculate_job(
                    &shared, c, session, in_txn, insert, &prior, &sql, &params, keyed,
                )
            };
            // A job that may wait on a peer runs on the pool's own thread.
            let spec = if self.shared.has_remote_groups() {
                self.shared.writer.run_on_thread(job).await
            } else {
                self.shared.writer.run(job).await
            };
            // Rows handed to an autocommit write while it waited are held
            // only until its record is queued (or it failed).
            if !in_txn {
                self.shared.order.release(self.id);
            }
            let spec = spec??;
            // Queueing for the replica's one write connection included.
            metrics::histogram!("tributary_router_speculate_seconds", "router" => self.shared.name.clone())
                .record(started.elapsed().as_secs_f64());
            match spec {
                Spec::NeedKeys(short) => self.reserve_keys(short).await?,
                Spec::Retry => {
                    let pause = 5 + rand::random::<u64>() % 40;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Spec::Blocked(rows) => {
                    metrics::counter!("tributary_router_lock_waits_total", "router" => self.shared.name.clone())
                        .increment(1);
                    let waited = self
                        .shared
                        .order
                        .wait_for_rows(self.id, rows, lock_timeout)
                        .await;
                    if waited.is_err() && self.txn.is_none() {
                        self.shared.order.release(self.id);
                    }
                    waited?;
                }
                Spec::Done { mut out, queued } => {
                    if let Some(rows) = &mut out.result {
                        crate::typing::rename_columns(
                            &mut rows.columns,
                            stmt.column_names.as_deref(),
                        );
                        super::outcome::fix_types(rows, stmt);
                    }
                    if let Some(txn) = &mut self.txn {
                        if let Some(k) = &mut txn.keyed {
                            k.results.push(super::idempotent::statement_result(
                                tag,
                                out.result.as_ref(),
                                out.affected,
                            ));
                        }
                        txn.block.add_rows(out.changeset, out.changes);
                    }
                    if let Some(queued) = queued {
                        self.finish(queued, fb).await?;
                        if let Some(k) = &key
                            && let Some(first) = self.settle_key(k, self.last_write).await?
                        {
                            return Ok(self.replay_autocommit(k, &first, fb));
                        }
                    }
                    return Ok(write_outcome(tag, out.result, out.affected));
                }
            }
        }
    }

    /// `TRUNCATE a, b`: `DELETE FROM` each table, all in one record (the
    /// client's block, or one of its own).
    pub(super) async fn truncate(
        &mut self,
        tables: &[String],
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        let own_block = self.txn.is_none();
        if own_block {
            self.begin(fb);
        }
        let mut result = Ok(());
        for table in tables {
            let stmt = Classified {
                sql: format!("DELETE FROM {table}"),
                kind: crate::classify::Kind::Write {
                    tag: "TRUNCATE TABLE",
                },
                param_count: 0,
                param_columns: Default::default(),
                projection: Vec::new(),
                column_names: None,
                original: None,
            };
            if let Err(e) = self.write(&stmt, Vec::new(), "TRUNCATE TABLE", fb).await {
                result = Err(e);
                break;
            }
        }
        if own_block {
            match result {
                Ok(()) => {
                    self.commit(fb).await?;
                }
                Err(e) => {
                    self.rollback(fb);
                    return Err(e);
                }
            }
        }
        result?;
        Ok(Outcome::Command {
            tag: "TRUNCATE TABLE".into(),
            rows: None,
        })
    }

    /// Reserves a range of generated keys for this router (an `ids`
    /// record) and waits until its replica has computed the range.
    async fn reserve_keys(&mut self, short: crate::keys::Shortage) -> Result<()> {
        let shared = self.shared.clone();
        let session = self.id;
        let body = RecordBody::Ids {
            table: short.table.clone(),
            count: short.count,
        };
        let queued = self
            .shared
            .writer
            .run(move |_| shared.enqueue(session, body, None))
            .await??;
        let target = self.shared.durable(queued).await?;
        self.shared.wait_applied(target).await?;
        let block = self
            .shared
            .readers
            .run(move |c| replica::id_block_at(c, target - 1))
            .await?
            .map_err(|e| Error::sqlite("reading a reserved key range", e))?;
        match block {
            Some(b) if b.count > 0 => {
                self.shared.keys.add(&short.table, b.first, b.count);
                Ok(())
            }
            _ => Err(Error::KeysExhausted { table: short.table }),
        }
    }
}
