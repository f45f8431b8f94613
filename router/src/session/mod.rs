//! One client session, independent of the wire protocol: how each kind of
//! statement is carried out. Settings (`SET`/`SHOW`, read targets) are in
//! `settings.rs`, the transaction block in `txn.rs`, writes (speculation,
//! row locks, generated keys) in `write.rs`.

mod copy;
mod idempotent;
pub(super) mod outcome;
mod peer;
mod prepared;
mod settings;
mod sharded;
mod slow;
mod txn;
mod write;

use std::sync::Arc;

use pgwire::messages::response::TransactionStatus;
use rusqlite::types::Value as SqlValue;
use wal_bus::{Offset, RecordBody};

use crate::classify::{Classified, Kind};
use crate::config::{AckMode, ReadConsistency};
use crate::error::{Error, Result};
use crate::exec::{self, ResultSet};
use crate::shared::{Queued, Shared};
use crate::status::{needs_status, refresh_status_table};
use crate::write_order::Replay;
use txn::Txn;

pub use outcome::{Feedback, Outcome};
use outcome::{rows_outcome, write_outcome};

pub struct Session {
    pub id: u64,
    shared: Arc<Shared>,
    ack: AckMode,
    read: ReadConsistency,
    max_staleness_ms: u64,
    min_offset: Offset,
    /// How long a write waits for rows another transaction holds (0: for
    /// as long as it takes), PostgreSQL's `lock_timeout`.
    lock_timeout_ms: u64,
    /// Log position after this session's latest write.
    last_write: Offset,
    txn: Option<Txn>,
    /// The log end when the session began.
    floor: Offset,
    /// A `COPY … FROM STDIN` waiting for its data.
    copy: Option<copy::CopyIn>,
    /// SQL-level prepared statements (`PREPARE`), by name.
    prepared: std::collections::HashMap<String, Classified>,
    block_schema: BlockSchema,
    /// Where the current statement's time went (the slow-query log).
    stages: crate::slow_query::Stages,
    /// A `tributary verify` run's holds and snapshot.
    verify: crate::verify::VerifyState,
    /// `SET tributary.idempotency_key`: for the next write transaction.
    idem_key: Option<String>,
    /// The replica the last read ran on (the slow-query log shows it).
    read_replica: Option<String>,
}

/// An open block's uncommitted schema, when it has schema statements:
/// statements described while it is open are described on it.
pub type BlockSchema = Arc<std::sync::Mutex<Option<crate::speculate::Prior>>>;

impl Session {
    pub fn new(shared: Arc<Shared>) -> Session {
        Session {
            id: shared.new_session_id(),
            ack: shared.replication.ack,
            read: shared.config.read_consistency,
            max_staleness_ms: shared.config.max_staleness_ms,
            min_offset: 0,
            lock_timeout_ms: shared.config.lock_timeout_ms,
            // Everything committed before the session began: its writes are
            // speculated on at least that (see `write`).
            floor: shared.log.end(),
            last_write: 0,
            txn: None,
            copy: None,
            prepared: Default::default(),
            block_schema: Default::default(),
            stages: Default::default(),
            verify: Default::default(),
            idem_key: None,
            read_replica: None,
            shared,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The transaction status PostgreSQL would report in ReadyForQuery:
    /// a failed COMMIT ends the transaction (idle), an error inside a block
    /// leaves it failed until ROLLBACK.
    pub fn transaction_status(&self) -> TransactionStatus {
        match &self.txn {
            None => TransactionStatus::Idle,
            Some(t) if t.failed => TransactionStatus::Error,
            Some(_) => TransactionStatus::Transaction,
        }
    }

    /// Runs one statement; an error inside a transaction block aborts it.
    pub async fn execute(
        &mut self,
        stmt: &Classified,
        params: Vec<SqlValue>,
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        let kind = &stmt.kind;
        if let Some(txn) = &self.txn
            && txn.failed
            && !matches!(
                kind,
                Kind::Commit | Kind::Rollback | Kind::RollbackTo { .. }
            )
        {
            return Err(Error::TxnAborted);
        }
        let started = std::time::Instant::now();
        self.stages = Default::default();
        let kept = self.shared.slow.wants_params().then(|| params.clone());
        let result = self.dispatch(stmt, params, fb).await;
        self.observe_slow(stmt, kept.as_deref(), started.elapsed(), &result);
        if result.is_err()
            && let Some(txn) = &mut self.txn
            && !matches!(kind, Kind::Commit | Kind::Rollback)
        {
            txn.failed = true;
        }
        let label = match kind {
            Kind::Read => "read",
            Kind::Write { .. } => "write",
            Kind::Ddl { .. } => "ddl",
            _ => "other",
        };
        metrics::counter!("tributary_router_statements_total", "kind" => label, "ok" => if result.is_ok() { "true" } else { "false" })
            .increment(1);
        metrics::histogram!("tributary_router_statement_seconds", "kind" => label)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn dispatch(
        &mut self,
        stmt: &Classified,
        params: Vec<SqlValue>,
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        match &stmt.kind {
            Kind::Read => self.read(stmt, params).await,
            Kind::Write { tag } => self.write(stmt, params, tag, fb).await,
            Kind::Ddl { tag } => self.ddl(stmt, tag, fb).await,
            Kind::Begin => Ok(self.begin(fb)),
            Kind::Verify(op) => Ok(Outcome::Rows {
                rows: self.verify.run(&self.shared, op.clone()).await?,
                tag: None,
            }),
            Kind::Placement(op) => self.placement(op, fb).await,
            Kind::Commit => self.commit(fb).await,
            Kind::Rollback => Ok(self.rollback(fb)),
            Kind::SetTributary { name, value } if name == "apply_policy" => {
                self.apply_policy(value, fb).await?;
                Ok(Outcome::Command {
                    tag: "SET".into(),
                    rows: None,
                })
            }
            Kind::SetTributary { name, value } => {
                self.set(name, value)?;
                Ok(Outcome::Command {
                    tag: "SET".into(),
                    rows: None,
                })
            }
            Kind::SetLockTimeout { value } => {
                self.lock_timeout_ms =
                    settings::parse_duration_ms(value).ok_or_else(|| Error::InvalidSetting {
                        name: "lock_timeout".into(),
                        value: value.clone(),
                        allowed: "a duration: milliseconds, or a number with ms, s, min, h or d"
                            .into(),
                    })?;
                Ok(Outcome::Command {
                    tag: "SET".into(),
                    rows: None,
                })
            }
            Kind::SetOther => Ok(Outcome::Command {
                tag: "SET".into(),
                rows: None,
            }),
            Kind::Savepoint { name } => self.savepoint(name),
            Kind::Release { name } => self.release(name),
            Kind::RollbackTo { name } => self.rollback_to(name),
            Kind::Prepare { name, statement } => self.prepare(name, statement),
            Kind::Execute { name, args } => self.execute_prepared(name, args, fb).await,
            // The handler drops the protocol-level statements.
            Kind::Deallocate { name } => {
                self.deallocate(name.as_deref());
                Ok(Outcome::Command {
                    tag: if name.is_some() {
                        "DEALLOCATE"
                    } else {
                        "DEALLOCATE ALL"
                    }
                    .into(),
                    rows: None,
                })
            }
            Kind::DiscardAll => {
                if self.txn.is_some() {
                    return Err(Error::NotInTransactionBlock("DISCARD ALL".into()));
                }
                self.reset(None);
                self.deallocate(None);
                Ok(Outcome::Command {
                    tag: "DISCARD ALL".into(),
                    rows: None,
                })
            }
            Kind::Reset { name } => {
                self.reset(name.as_deref());
                Ok(Outcome::Command {
                    tag: "RESET".into(),
                    rows: None,
                })
            }
            Kind::NoOp { tag, notice } => {
                if let Some(n) = notice {
                    fb.notices.push(("NOTICE", n.clone()));
                }
                Ok(Outcome::Command {
                    tag: tag.clone(),
                    rows: None,
                })
            }
            Kind::Truncate { tables } => self.truncate(tables, fb).await,
            Kind::CopyOut { query, .. } => self.copy_out(stmt, query).await,
            Kind::CopyIn {
                table,
                columns,
                format,
            } => self.copy_in(table, columns, format).await,
            Kind::Show { name } => {
                let value = self.show(name)?;
                Ok(Outcome::Rows {
                    rows: ResultSet {
                        columns: vec![name.rsplit('.').next().unwrap_or(name).to_owned()],
                        decl_types: vec![Some("TEXT".into())],
                        rows: vec![vec![SqlValue::Text(value)]],
                    },
                    tag: Some("SHOW".into()),
                })
            }
        }
    }

    async fn read(&mut self, stmt: &Classified, params: Vec<SqlValue>) -> Result<Outcome> {
        if let Some(out) = self.sharded_read(stmt, &params).await? {
            return Ok(out);
        }
        if let Some(txn) = &self.txn
            && txn.block.started()
        {
            // The transaction's writes sit on top of the router's queued
            // ones (the overlay), which the replica may not have applied yet.
            let prior = txn.block.prior();
            let sql = stmt.sql.clone();
            let max_rows = self.shared.config.max_result_rows;
            let shared = self.shared.clone();
            let (rows, _) = self
                .shared
                .writer
                .run(move |c| {
                    let overlay = shared.overlay();
                    crate::speculate::read_in_txn(c, &overlay, &prior, &sql, &params, max_rows)
                })
                .await??;
            return Ok(rows_outcome(rows, stmt));
        }
        let waited = std::time::Instant::now();
        let target = self.read_target();
        let shared = self.shared.clone();
        let on = match shared.balance.pick(target, &shared.acks.unhealthy()) {
            Some(on) => on,
            None => {
                shared.wait_applied(target).await?;
                shared.balance.home()
            }
        };
        self.stages.consistency_wait += waited.elapsed();
        self.read_replica = Some(on.state.name.clone());
        let sql = stmt.sql.clone();
        let status = needs_status(&sql).then(|| self.shared.status());
        let slow = crate::slow_query::names_view(&sql).then(|| self.shared.slow.snapshot());
        let placed =
            crate::placement::view::names_view(&sql).then(|| self.shared.replica.placement());
        let max_rows = self.shared.config.max_result_rows;
        let sleeps = crate::status::mentions(&sql, "pg_sleep");
        let (rows, _) = shared
            .balance
            .read(on, sleeps, move |c| {
                if let Some(status) = status {
                    refresh_status_table(c, &status)?;
                }
                if let Some(slow) = slow {
                    crate::slow_query::refresh_view(c, &slow)?;
                }
                if let Some((version, placement)) = placed {
                    crate::placement::view::refresh(c, version, &placement)?;
                }
                exec::run_statement(c, &sql, &params, max_rows)
            })
            .await??;
        Ok(rows_outcome(rows, stmt))
    }

    /// Waits for a queued record to be durable and for the ack mode.
    async fn finish(&mut self, queued: Queued, fb: &mut Feedback) -> Result<()> {
        let appending = std::time::Instant::now();
        let target = self.shared.durable(queued).await?;
        self.stages.append += appending.elapsed();
        self.last_write = target;
        fb.offset = Some(target);
        let acking = std::time::Instant::now();
        let notice = self.shared.await_acks(target, self.ack).await?;
        self.stages.ack_wait += acking.elapsed();
        if let Some(notice) = notice {
            fb.notices.push(("NOTICE", notice));
        }
        // First-writer-wins rejects at apply; a replica that applied the
        // record knows (async writes learn it from tributary_conflicts).
        if self.ack != AckMode::Async
            && let Some(reason) = self.shared.acks.rejection(target - 1)
        {
            if reason.contains(replica::OUT_OF_RANGE) {
                return Err(Error::OutOfRange(reason));
            }
            return Err(Error::SerializationFailure(reason));
        }
        Ok(())
    }

    /// Queues a record that changes no rows (policy) and waits like a write.
    pub(super) async fn append_plain(&mut self, body: RecordBody, fb: &mut Feedback) -> Result<()> {
        let shared = self.shared.clone();
        let session = self.id;
        let queued = self
            .shared
            .writer
            .run(move |_| shared.enqueue(session, body, None))
            .await??;
        self.finish(queued, fb).await
    }

    /// `SET tributary.apply_policy = '<policy TOML>'`: validate against the
    /// schema, append as the next policy version, wait until applied here.
    async fn apply_policy(&mut self, text: &str, fb: &mut Feedback) -> Result<()> {
        if self.txn.is_some() {
            return Err(Error::NotInTransactionBlock("applying a policy".into()));
        }
        self.shared.wait_applied(self.shared.log.end()).await?;
        let owned = text.to_owned();
        let replica = self.shared.replica.clone();
        let proposal = self
            .shared
            .readers
            .run(move |c| crate::policy::propose(c, &replica, &owned, "policy"))
            .await??;
        let version = proposal.version;
        self.append_plain(proposal.body, fb).await?;
        let target = self.last_write;
        self.shared.wait_applied(target).await?;
        fb.notices.push((
            "NOTICE",
            format!(
                "conflict policy version {version} in force from log offset {}",
                target - 1
            ),
        ));
        Ok(())
    }

    /// A schema statement inside `BEGIN`: checked on the block so far and
    /// kept in it; COMMIT appends it with the block's rows, in order.
    async fn ddl_in_block(&mut self, stmt: &Classified, tag: &str) -> Result<Outcome> {
        let prior = self
            .txn
            .as_ref()
            .map(|t| t.block.prior())
            .unwrap_or_default();
        let shared = self.shared.clone();
        let sql = stmt.sql.clone();
        let sql = self
            .shared
            .writer
            .run(move |c| crate::speculate::check_ddl(c, &shared.overlay(), &prior, &sql))
            .await??;
        if let Some(txn) = &mut self.txn {
            txn.block.add_ddl(&sql);
        }
        self.show_block_schema();
        Ok(Outcome::Command {
            tag: tag.to_owned(),
            rows: None,
        })
    }

    /// Lets the connection's Describe see the open block's own schema.
    pub(super) fn show_block_schema(&self) {
        let view = self
            .txn
            .as_ref()
            .map(|t| t.block.prior())
            .filter(crate::speculate::Prior::has_ddl);
        *self.block_schema.lock().unwrap_or_else(|p| p.into_inner()) = view;
    }

    /// The open block's schema view (see `show_block_schema`), shared with
    /// the connection's statement parser.
    pub fn block_schema(&self) -> BlockSchema {
        self.block_schema.clone()
    }

    async fn ddl(&mut self, stmt: &Classified, tag: &str, fb: &mut Feedback) -> Result<Outcome> {
        crate::placement::check_ddl(&self.shared.replica.placement().1, &stmt.sql)?;
        if self.txn.is_some() {
            return self.ddl_in_block(stmt, tag).await;
        }
        self.shared
            .wait_applied(self.min_offset.max(self.floor))
            .await?;
        self.shared.ready_to_write().await?;
        let shared = self.shared.clone();
        let session = self.id;
        let sql = stmt.sql.clone();
        let queued = self
            .shared
            .writer
            .run(move |c| {
                let overlay = shared.overlay();
                let sql = crate::speculate::check_ddl(c, &overlay, &Default::default(), &sql)?;
                let replay = Replay::Ddl(sql.as_str().into());
                shared.enqueue(session, RecordBody::Ddl { sql }, Some(replay))
            })
            .await??;
        self.finish(queued, fb).await?;
        // Reads on this router must see the new schema.
        self.shared.wait_applied(self.last_write).await?;
        Ok(Outcome::Command {
            tag: tag.to_owned(),
            rows: None,
        })
    }
}
