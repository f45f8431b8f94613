//! The transaction block: BEGIN, COMMIT (one record with the block's net
//! row changes), ROLLBACK, and what a vanished client leaves behind.

use wal_bus::RecordBody;

use super::{Feedback, Outcome, Session};
use crate::error::Result;
use crate::write_order::Replay;

/// A transaction block in progress: the net changeset of its writes.
#[derive(Debug, Default)]
pub(super) struct Txn {
    /// Net SQLite changeset, replayed before each later statement.
    pub(super) changeset: Vec<u8>,
    /// Net row changes with full images: what COMMIT appends.
    pub(super) changes: Vec<wal_bus::Change>,
    pub(super) failed: bool,
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
        self.finish(queued??, fb).await?;
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
