//! The transaction block: BEGIN, COMMIT (one record with the block's net
//! row changes), ROLLBACK, savepoints, and what a vanished client leaves
//! behind.

use wal_bus::RecordBody;

use super::{Feedback, Outcome, Session};
use crate::error::{Error, Result};
use crate::write_order::Replay;

/// A transaction block in progress: the net changeset of its writes.
#[derive(Debug, Default)]
pub(super) struct Txn {
    /// Net SQLite changeset, replayed before each later statement.
    pub(super) changeset: Vec<u8>,
    /// Net row changes with full images: what COMMIT appends.
    pub(super) changes: crate::speculate::NetChanges,
    pub(super) failed: bool,
    /// Open savepoints, oldest first: what the block held when each began.
    savepoints: Vec<Savepoint>,
}

/// The transaction's state when `SAVEPOINT name` ran.
#[derive(Debug)]
struct Savepoint {
    name: String,
    changeset: Vec<u8>,
    changes: crate::speculate::NetChanges,
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

    /// `SAVEPOINT name`: remembers the block's changes so far.
    pub(super) fn savepoint(&mut self, name: &str) -> Result<Outcome> {
        let txn = self
            .txn
            .as_mut()
            .ok_or(Error::NoActiveTransaction("SAVEPOINT"))?;
        txn.savepoints.push(Savepoint {
            name: name.to_owned(),
            changeset: txn.changeset.clone(),
            changes: txn.changes.clone(),
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
        txn.changeset = mark.changeset.clone();
        txn.changes = mark.changes.clone();
        txn.failed = false;
        Ok(command("ROLLBACK"))
    }

    pub(super) fn rollback(&mut self, fb: &mut Feedback) -> Outcome {
        self.shared.order.release(self.id);
        if self.txn.take().is_none() {
            fb.notices
                .push(("WARNING", "there is no transaction in progress".into()));
        }
        Outcome::TxnEnd { tag: "ROLLBACK" }
    }

    pub(super) async fn commit(&mut self, fb: &mut Feedback) -> Result<Outcome> {
        // Whatever happens next, the transaction is over (a failed COMMIT
        // ends it, as in PostgreSQL).
        let Some(txn) = self.txn.take() else {
            fb.notices
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
        let changes = txn.changes.into_changes();
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
        self.finish(queued??, fb).await?;
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
