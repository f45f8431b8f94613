//! Handing a finished statement to the router's slow-query log with what
//! the session knows: its id, ack mode and read level, the rows it
//! returned or changed, and where its time went.

use std::time::Duration;

use rusqlite::types::Value as SqlValue;

use super::{Outcome, Session};
use crate::classify::Classified;
use crate::error::Result;
use crate::slow_query::Finished;

impl Session {
    pub(super) fn observe_slow(
        &self,
        stmt: &Classified,
        params: Option<&[SqlValue]>,
        total: Duration,
        result: &Result<Outcome>,
    ) {
        let rows = match result {
            Ok(Outcome::Rows { rows, .. } | Outcome::CopyOut { rows, .. }) => {
                Some(rows.rows.len() as u64)
            }
            Ok(Outcome::Command { rows, .. }) => rows.map(|n| n as u64),
            _ => None,
        };
        self.shared.slow.observe(Finished {
            session: self.id,
            sql: stmt.original.as_deref().unwrap_or(&stmt.sql),
            params,
            total,
            stages: self.stages,
            rows,
            ok: result.is_ok(),
            ack: self.ack.as_str(),
            read: self.read.as_str(),
            replica: matches!(stmt.kind, crate::classify::Kind::Read)
                .then_some(self.read_replica.as_deref())
                .flatten(),
        });
    }
}
