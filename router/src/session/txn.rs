//! The transaction block: BEGIN, COMMIT (one record with the block's net
//! row changes), ROLLBACK, savepoints, and what a vanished client leaves
//! behind.

use wal_bus::{RecordBody, Step};

use super::{Feedback, Outcome, Session};
use crate::error::{Error, Result};

/// A transaction block in progress: its writes and schema statements.
#[derive(Debug, Default)]
pub(super) struct Txn {
    /// Replayed before each later statement; what COMMIT appends.
    pub(super) block: crate::speculate::Block,
    pub(super) failed: bool,
    /// Open savepoints, oldest first: what the block held when each began.
    savepoints: Vec<Savepoint>,
    /// The block's idempotency key, from its first write on.
    pub(super) keyed: Option<super::idempotent::KeyedBlock>,
}

/// The transaction's state when `SAVEPOINT name` ran.
#[derive(Debug)]
struct Savepoint {
    name: String,
    block: crate::speculate::Block,
}

impl Txn {
    /// The newest open savepoint called `name`.
    fn find(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|s| s.name == name)
            .ok_or_else(|| Error::NoSuchSavepoint(name.to_owned()))
    }
}

impl Session {
    pub(super) fn begin(&mut self, fb: &mut Feedback) -> Outcome {
        if self.txn.is_some() {
            fb.notices.push((
                "WARNING",
                "there is already a transaction in progress".into(),
            ));
        } else {
            self.txn = Some(Txn::default());
        }
        Outcome::TxnStart
    }

    pub fn in_block(&self) -> bool {
        self.txn.is_some()
    }

    /// Opens the implicit block of a multi-statement query string.
    pub fn begin_implicit(&mut self) {
        self.txn = Some(Txn::default());
    }

    /// Ends the implicit block after one of its statements failed: nothing
    /// of it is kept.
    pub fn end_implicit(&mut self) {
        self.shared.order.release(self.id);
        self.txn = None;
        self.show_block_schema();
    }

    /// `SAVEPOINT name`: remembers the block's changes so far.
    pub(super) fn savepoint(&mut self, name: &str) -> Result<Outcome> {
        let txn = self
            .txn
            .as_mut()
            .ok_or(Error::NoActiveTransaction("SAVEPOINT"))?;
        txn.savepoints.push(Savepoint {
            name: name.to_owned(),
            block: txn.block.clone(),
        });
        Ok(command("SAVEPOINT"))
    }

    /// `RELEASE name`: forgets the savepoint and every later one; the
    /// changes made since stay in the block.
    pub(super) fn release(&mut self, name: &str) -> Result<Outcome> {
        let txn = self
            .txn
            .as_mut()
            .ok_or(Error::NoActiveTransaction("RELEASE SAVEPOINT"))?;
        let at = txn.find(name)?;
        txn.savepoints.truncate(at);
        Ok(command("RELEASE"))
    }

    /// `ROLLBACK TO name`: the block's changes go back to what they were at
    /// the savepoint, which stays open; a failed block is usable again.
    /// Rows locked since stay locked until the block ends (PostgreSQL
    /// releases them; holding them longer is safe, never a lost update).
    pub(super) fn rollback_to(&mut self, name: &str) -> Result<Outcome> {
        let txn = self
            .txn
            .as_mut()
            .ok_or(Error::NoActiveTransaction("ROLLBACK TO SAVEPOINT"))?;
        let at = txn.find(name)?;
        txn.savepoints.truncate(at + 1);
        let mark = &txn.savepoints[at];
        txn.block = mark.block.clone();
        txn.failed = false;
        self.show_block_schema();
        Ok(command("ROLLBACK"))
    }

    pub(super) fn rollback(&mut self, fb: &mut Feedback) -> Outcome {
        self.shared.order.release(self.id);
        // A key is for the next transaction, whichever way it ends.
        self.idem_key = None;
        let ended = self.txn.take();
        self.show_block_schema();
        if ended.is_none() {
            fb.notices
                .push(("WARNING", "there is no transaction in progress".into()));
        }
        Outcome::TxnEnd { tag: "ROLLBACK" }
    }

    pub async fn commit(&mut self, fb: &mut Feedback) -> Result<Outcome> {
        // Whatever happens next, the transaction is over (a failed COMMIT
        // ends it, as in PostgreSQL).
        let Some(txn) = self.txn.take() else {
            fb.notices
                .push(("WARNING", "there is no transaction in progress".into()));
            return Ok(Outcome::TxnEnd { tag: "COMMIT" });
        };
        self.show_block_schema();
        self.idem_key = None;
        let mut txn = txn;
        let keyed = txn.keyed.take();
        if let Some(k) = &keyed
            && !txn.failed
            && self.commit_replayed(k, fb)
        {
            self.shared.order.release(self.id);
            return Ok(Outcome::TxnEnd { tag: "COMMIT" });
        }
        // A keyed block is recorded even when it changed no rows, so its
        // retry is answered, not run again.
        if txn.failed || (txn.block.is_empty() && keyed.is_none()) {
            self.shared.order.release(self.id);
            let tag = if txn.failed { "ROLLBACK" } else { "COMMIT" };
            return Ok(Outcome::TxnEnd { tag });
        }
        let shared = self.shared.clone();
        let session = self.id;
        let had_ddl = txn.block.has_ddl();
        let key = keyed.as_ref().map(|k| k.key.clone());
        let idempotency = keyed.map(|k| self.idempotency(k.key, k.results));
        let (body, replay) = txn.block.into_record();
        // Queued and unlocked in one job: a waiter retries on a state that
        // includes this transaction.
        let queued = self
            .shared
            .writer
            .run(move |_| {
                let policy = shared.replica.policy().1;
                let checked = match &body {
                    RecordBody::Txn { changes } => {
                        crate::policy::check_set_values(&policy, changes)
                    }
                    RecordBody::Block { steps } => steps.iter().try_for_each(|s| match s {
                        Step::Rows { changes } => crate::policy::check_set_values(&policy, changes),
                        Step::Ddl { .. } => Ok(()),
                    }),
                    _ => Ok(()),
                };
                let queued = checked.and_then(|()| {
                    shared.enqueue_keyed(session, body, idempotency, |_| Some(replay))
                });
                shared.order.release(session);
                queued
            })
            .await;
        self.shared.order.release(self.id);
        self.finish(queued??, fb).await?;
        if let Some(key) = key
            && let Some(first) = self.settle_key(&key, self.last_write).await?
        {
            fb.notices.push((
                "NOTICE",
                format!(
                    "another transaction with idempotency key {key:?} was committed first, at log offset {}: this one was not applied",
                    first.offset
                ),
            ));
        }
        if had_ddl {
            // Reads on this router must see the new schema.
            self.shared.wait_applied(self.last_write).await?;
        }
        Ok(Outcome::TxnEnd { tag: "COMMIT" })
    }
}

fn command(tag: &str) -> Outcome {
    Outcome::Command {
        tag: tag.to_owned(),
        rows: None,
    }
}

impl Drop for Session {
    /// A client that vanishes mid-transaction leaves nothing behind: its
    /// row locks go with it (its writes were never queued).
    fn drop(&mut self) {
        self.shared.order.release(self.id);
    }
}
