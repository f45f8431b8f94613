//! One client session: its settings, its open transaction, and how each kind
//! of statement is carried out (independent of the wire protocol).

use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use wal_bus::{Offset, RecordBody};

use crate::classify::{Classified, Kind};
use crate::config::{AckMode, ReadConsistency};
use crate::error::{Error, Result};
use crate::exec::{self, ResultSet};
use crate::shared::{Queued, Shared};
use crate::status::{needs_status, refresh_status_table};
use crate::write_order::{Replay, row_ids};
use pgwire::messages::response::TransactionStatus;
use wal_bus::now_ms;

/// A transaction block in progress: the net changeset of its writes.
#[derive(Debug, Default)]
struct Txn {
    /// Net SQLite changeset, replayed before each later statement.
    changeset: Vec<u8>,
    /// Net row changes with full images: what COMMIT appends.
    changes: Vec<wal_bus::Change>,
    failed: bool,
}

/// What a statement produced, before wire encoding.
#[derive(Debug)]
pub enum Outcome {
    Rows {
        rows: ResultSet,
        tag: Option<String>,
    },
    Command {
        tag: String,
        rows: Option<usize>,
    },
    TxnStart,
    TxnEnd {
        tag: &'static str,
    },
}

/// Messages to send the client before the statement's result.
#[derive(Debug, Default)]
pub struct Side {
    pub notices: Vec<(&'static str, String)>,
    /// New value of the `tributary.offset` parameter after a write.
    pub offset: Option<Offset>,
}

pub struct Session {
    pub id: u64,
    shared: Arc<Shared>,
    ack: AckMode,
    read: ReadConsistency,
    max_staleness_ms: u64,
    min_offset: Offset,
    /// Log position after this session's latest write.
    last_write: Offset,
    txn: Option<Txn>,
    /// The log end when the session began.
    floor: Offset,
}

/// What one speculation job produced.
enum Spec {
    /// The statement's changes touch rows another session holds: wait
    /// until they are free (or handed to this session), speculate again.
    Blocked(Vec<crate::write_order::RowId>),
    /// The statement ran out of reserved keys: reserve more, run it again.
    NeedKeys(crate::keys::Shortage),
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
    prior: &[u8],
    sql: &str,
    params: &[SqlValue],
) -> Result<Spec> {
    let overlay = shared
        .order
        .unapplied(shared.replica.applied_hlc(&shared.name));
    metrics::histogram!("tributary_router_overlay_records", "router" => shared.name.clone())
        .record(overlay.len() as f64);
    let plan = if insert_or_update {
        shared.keys.plan(conn, sql)?
    } else {
        crate::keys::Plan::default()
    };
    if plan.run.is_some() {
        shared.keys.arm(conn)?;
    }
    let run = plan.run.as_deref().unwrap_or(sql);
    let check = plan.null_check.as_deref();
    let mut out = match crate::speculate::speculate_after(conn, &overlay, prior, run, params, check)
    {
        Ok(out) => out,
        Err(e) => {
            if plan.run.is_some()
                && let Some(short) = shared.keys.shortage()
            {
                return Ok(Spec::NeedKeys(short));
            }
            return Err(e);
        }
    };
    let rows = row_ids(&out.changes);
    if shared.order.holder_of(session, &rows).is_some() {
        return Ok(Spec::Blocked(rows));
    }
    if in_txn {
        shared.order.lock(session, rows);
        return Ok(Spec::Done { out, queued: None });
    }
    if out.changes.is_empty() {
        return Ok(Spec::Done { out, queued: None });
    }
    crate::policy::check_set_values(&shared.replica.policy().1, &out.changes)?;
    let changes = std::mem::take(&mut out.changes);
    let replay = Replay::Rows(changes.clone().into());
    let queued = shared.enqueue(session, RecordBody::Txn { changes }, Some(replay))?;
    Ok(Spec::Done {
        out,
        queued: Some(queued),
    })
}

const SETTINGS: &str =
    "tributary.ack, tributary.read_consistency, tributary.max_staleness_ms, tributary.min_offset";

impl Session {
    pub fn new(shared: Arc<Shared>) -> Session {
        Session {
            id: shared.new_session_id(),
            ack: shared.replication.ack,
            read: shared.config.read_consistency,
            max_staleness_ms: shared.config.max_staleness_ms,
            min_offset: 0,
            // Everything committed before the session began: its writes are
            // speculated on at least that (see `write`).
            floor: shared.log.end(),
            last_write: 0,
            txn: None,
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
        side: &mut Side,
    ) -> Result<Outcome> {
        let kind = &stmt.kind;
        if let Some(txn) = &self.txn
            && txn.failed
            && !matches!(kind, Kind::Commit | Kind::Rollback)
        {
            return Err(Error::TxnAborted);
        }
        let started = std::time::Instant::now();
        let result = self.dispatch(stmt, params, side).await;
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
        side: &mut Side,
    ) -> Result<Outcome> {
        match &stmt.kind {
            Kind::Read => self.read(stmt, params).await,
            Kind::Write { tag } => self.write(stmt, params, tag, side).await,
            Kind::Ddl { tag } => self.ddl(stmt, tag, side).await,
            Kind::Begin => {
                if self.txn.is_some() {
                    side.notices.push((
                        "WARNING",
                        "there is already a transaction in progress".into(),
                    ));
                } else {
                    self.txn = Some(Txn::default());
                }
                Ok(Outcome::TxnStart)
            }
            Kind::Commit => self.commit(side).await,
            Kind::Rollback => {
                self.shared.order.release(self.id);
                if self.txn.take().is_none() {
                    side.notices
                        .push(("WARNING", "there is no transaction in progress".into()));
                }
                Ok(Outcome::TxnEnd { tag: "ROLLBACK" })
            }
            Kind::SetTributary { name, value } if name == "apply_policy" => {
                self.apply_policy(value, side).await?;
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
            Kind::SetOther => Ok(Outcome::Command {
                tag: "SET".into(),
                rows: None,
            }),
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

    fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let invalid = |allowed: &str| Error::InvalidSetting {
            name: format!("tributary.{name}"),
            value: value.to_owned(),
            allowed: allowed.to_owned(),
        };
        match name {
            "ack" => self.ack = value.parse().map_err(|()| invalid(AckMode::ALLOWED))?,
            "read_consistency" => {
                self.read = value
                    .parse()
                    .map_err(|()| invalid(ReadConsistency::ALLOWED))?
            }
            "max_staleness_ms" => {
                self.max_staleness_ms = value
                    .parse()
                    .map_err(|_| invalid("a whole number of milliseconds"))?
            }
            "min_offset" => {
                self.min_offset = value
                    .parse()
                    .map_err(|_| invalid("a log offset (whole number)"))?
            }
            _ => {
                return Err(Error::UnknownSetting {
                    name: format!("tributary.{name}"),
                    allowed: SETTINGS.into(),
                });
            }
        }
        Ok(())
    }

    fn show(&self, name: &str) -> Result<String> {
        Ok(match name {
            "tributary.ack" => self.ack.to_string(),
            "tributary.read_consistency" => self.read.as_str().to_owned(),
            "tributary.max_staleness_ms" => self.max_staleness_ms.to_string(),
            "tributary.min_offset" => self.min_offset.to_string(),
            "tributary.offset" => self.last_write.to_string(),
            "tributary.node" => self.shared.name.clone(),
            "tributary.replica" => self.shared.replica.name.clone(),
            "tributary.policy_version" => self.shared.replica.policy().0.to_string(),
            "server_version" => "15.0 (Tributary)".into(),
            "transaction_isolation" => "read committed".into(),
            "client_encoding" | "server_encoding" => "UTF8".into(),
            "standard_conforming_strings" => "on".into(),
            _ => {
                return Err(Error::UnknownSetting {
                    name: name.to_owned(),
                    allowed: format!(
                        "{SETTINGS}, tributary.offset, tributary.node, tributary.replica"
                    ),
                });
            }
        })
    }

    /// The offset a read must see, by consistency level.
    fn read_target(&self) -> Offset {
        let level = match self.read {
            ReadConsistency::Eventual => 0,
            ReadConsistency::Session => self.last_write,
            ReadConsistency::Bounded => self
                .shared
                .log
                .end_as_of(now_ms().saturating_sub(self.max_staleness_ms))
                .max(self.last_write),
            ReadConsistency::Strong => self.shared.log.end(),
        };
        level.max(self.min_offset)
    }

    async fn read(&mut self, stmt: &Classified, params: Vec<SqlValue>) -> Result<Outcome> {
        if let Some(txn) = &self.txn
            && !txn.changeset.is_empty()
        {
            // The transaction's writes sit on top of the router's queued
            // ones (the overlay), which the replica may not have applied yet.
            let prior = txn.changeset.clone();
            let sql = stmt.sql.clone();
            let max_rows = self.shared.config.max_result_rows;
            let shared = self.shared.clone();
            let (rows, _) = self
                .shared
                .writer
                .run(move |c| {
                    let overlay = shared
                        .order
                        .unapplied(shared.replica.applied_hlc(&shared.name));
                    crate::speculate::read_in_txn(c, &overlay, &prior, &sql, &params, max_rows)
                })
                .await??;
            return Ok(rows_outcome(rows));
        }
        self.shared.wait_applied(self.read_target()).await?;
        let sql = stmt.sql.clone();
        let status = needs_status(&sql).then(|| self.shared.status());
        let max_rows = self.shared.config.max_result_rows;
        let (rows, _) = self
            .shared
            .readers
            .run(move |c| {
                if let Some(status) = status {
                    refresh_status_table(c, &status)?;
                }
                exec::run_statement(c, &sql, &params, max_rows)
            })
            .await??;
        Ok(rows_outcome(rows))
    }

    async fn write(
        &mut self,
        stmt: &Classified,
        params: Vec<SqlValue>,
        tag: &str,
        side: &mut Side,
    ) -> Result<Outcome> {
        // A write is computed on the router's replica plus its overlay: the
        // replica must hold every transaction committed before this session
        // began, or a reconnecting client (say, after a router restart,
        // while the replica catches up) would compute from stale rows and
        // lose updates (found by the crash harness on Kafka).
        self.shared
            .wait_applied(self.min_offset.max(self.floor))
            .await?;
        self.shared.ready_to_write().await?;
        let lock_timeout = (self.shared.config.lock_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(self.shared.config.lock_timeout_ms));
        loop {
            let shared = self.shared.clone();
            let (session, in_txn) = (self.id, self.txn.is_some());
            let prior = self
                .txn
                .as_ref()
                .map(|t| t.changeset.clone())
                .unwrap_or_default();
            let sql = stmt.sql.clone();
            let params = params.clone();
            let insert = tag == "INSERT" || tag == "UPDATE";
            let started = std::time::Instant::now();
            let spec = self
                .shared
                .writer
                .run(move |c| {
                    speculate_job(&shared, c, session, in_txn, insert, &prior, &sql, &params)
                })
                .await;
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
                Spec::Done { out, queued } => {
                    if let Some(txn) = &mut self.txn {
                        txn.changeset = out.changeset;
                        crate::speculate::compose(&mut txn.changes, out.changes);
                    }
                    if let Some(queued) = queued {
                        self.finish(queued, side).await?;
                    }
                    return Ok(write_outcome(tag, out.result, out.affected));
                }
            }
        }
    }

    /// Waits for a queued record to be durable and for the ack mode.
    async fn finish(&mut self, queued: Queued, side: &mut Side) -> Result<()> {
        let target = self.shared.durable(queued).await?;
        self.last_write = target;
        side.offset = Some(target);
        if let Some(notice) = self.shared.await_acks(target, self.ack).await? {
            side.notices.push(("NOTICE", notice));
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

    /// Queues a record that changes no rows (policy) and waits like a write.
    async fn append_plain(&mut self, body: RecordBody, side: &mut Side) -> Result<()> {
        let shared = self.shared.clone();
        let session = self.id;
        let queued = self
            .shared
            .writer
            .run(move |_| shared.enqueue(session, body, None))
            .await??;
        self.finish(queued, side).await
    }

    /// `SET tributary.apply_policy = '<policy TOML>'`: validate against the
    /// schema, append as the next policy version, wait until applied here.
    async fn apply_policy(&mut self, text: &str, side: &mut Side) -> Result<()> {
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
        self.append_plain(proposal.body, side).await?;
        let target = self.last_write;
        self.shared.wait_applied(target).await?;
        side.notices.push((
            "NOTICE",
            format!(
                "conflict policy version {version} in force from log offset {}",
                target - 1
            ),
        ));
        Ok(())
    }

    async fn ddl(&mut self, stmt: &Classified, tag: &str, side: &mut Side) -> Result<Outcome> {
        if self.txn.is_some() {
            return Err(Error::NotInTransactionBlock(tag.to_owned()));
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
                let overlay = shared
                    .order
                    .unapplied(shared.replica.applied_hlc(&shared.name));
                crate::speculate::check_ddl(c, &overlay, &sql)?;
                let replay = Replay::Ddl(sql.as_str().into());
                shared.enqueue(session, RecordBody::Ddl { sql }, Some(replay))
            })
            .await??;
        self.finish(queued, side).await?;
        // Reads on this router must see the new schema.
        self.shared.wait_applied(self.last_write).await?;
        Ok(Outcome::Command {
            tag: tag.to_owned(),
            rows: None,
        })
    }

    async fn commit(&mut self, side: &mut Side) -> Result<Outcome> {
        // Whatever happens next, the transaction is over (a failed COMMIT
        // ends it, as in PostgreSQL).
        let Some(txn) = self.txn.take() else {
            side.notices
                .push(("WARNING", "there is no transaction in progress".into()));
            return Ok(Outcome::TxnEnd { tag: "COMMIT" });
        };
        if txn.failed || txn.changes.is_empty() {
            self.shared.order.release(self.id);
            let tag = if txn.failed { "ROLLBACK" } else { "COMMIT" };
            return Ok(Outcome::TxnEnd { tag });
        }
        let shared = self.shared.clone();
        let session = self.id;
        let changes = txn.changes;
        // Queued and unlocked in one job: a waiter retries on a state that
        // includes this transaction.
        let queued = self
            .shared
            .writer
            .run(move |_| {
                let queued = crate::policy::check_set_values(&shared.replica.policy().1, &changes)
                    .and_then(|()| {
                        let replay = Replay::Rows(changes.clone().into());
                        shared.enqueue(session, RecordBody::Txn { changes }, Some(replay))
                    });
                shared.order.release(session);
                queued
            })
            .await;
        self.shared.order.release(self.id);
        self.finish(queued??, side).await?;
        Ok(Outcome::TxnEnd { tag: "COMMIT" })
    }
}

impl Drop for Session {
    /// A client that vanishes mid-transaction leaves nothing behind: its
    /// row locks go with it (its writes were never queued).
    fn drop(&mut self) {
        self.shared.order.release(self.id);
    }
}

fn rows_outcome(rows: Option<ResultSet>) -> Outcome {
    match rows {
        Some(rows) => Outcome::Rows { rows, tag: None },
        None => Outcome::Command {
            tag: "SELECT".into(),
            rows: Some(0),
        },
    }
}

fn write_outcome(tag: &str, result: Option<ResultSet>, affected: usize) -> Outcome {
    let tag = if tag == "INSERT" {
        "INSERT 0".to_owned()
    } else {
        tag.to_owned()
    };
    match result {
        Some(rows) => Outcome::Rows {
            rows,
            tag: Some(tag),
        },
        None => Outcome::Command {
            tag,
            rows: Some(affected),
        },
    }
}
