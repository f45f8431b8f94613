//! SQL-level prepared statements: `PREPARE name AS …`, `EXECUTE name(…)`,
//! and their part of `DEALLOCATE` / `DISCARD ALL`. (Protocol-level
//! prepared statements, what drivers use, live in pgwire's store.)

use rusqlite::types::Value as SqlValue;

use super::{Feedback, Outcome, Session};
use crate::classify::{Classified, Kind, classify};
use crate::error::{Error, Result};

impl Session {
    pub(super) fn prepare(&mut self, name: &str, statement: &Classified) -> Result<Outcome> {
        if self.prepared.contains_key(name) {
            return Err(Error::DuplicatePrepared(name.to_owned()));
        }
        self.prepared.insert(name.to_owned(), statement.clone());
        Ok(Outcome::Command {
            tag: "PREPARE".into(),
            rows: None,
        })
    }

    /// `EXECUTE name(args)`: the arguments are evaluated (they may be any
    /// expression, casts included), then the statement runs as if sent
    /// with them as parameters.
    pub(super) async fn execute_prepared(
        &mut self,
        name: &str,
        args: &[String],
        fb: &mut Feedback,
    ) -> Result<Outcome> {
        let statement = self
            .prepared
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchPrepared(name.to_owned()))?;
        if args.len() != statement.param_count {
            return Err(Error::WrongParameterCount {
                name: name.to_owned(),
                expected: statement.param_count,
                got: args.len(),
            });
        }
        let params = self.evaluate(args).await?;
        match &statement.kind {
            Kind::Read => self.read(&statement, params).await,
            Kind::Write { tag } => self.write(&statement, params, tag, fb).await,
            _ => Err(Error::Internal(
                "a prepared statement that is not a read or a write".into(),
            )),
        }
    }

    /// The values of `args`, through one `SELECT` (so they are translated
    /// and converted like any other expression).
    async fn evaluate(&self, args: &[String]) -> Result<Vec<SqlValue>> {
        if args.is_empty() {
            return Ok(Vec::new());
        }
        let select = classify(
            &format!("SELECT {}", args.join(", ")),
            self.shared.config.max_statement_bytes,
        )?;
        let sql = select
            .into_iter()
            .next()
            .map(|c| c.sql)
            .ok_or_else(|| Error::Syntax("EXECUTE arguments".into()))?;
        let (rows, _) = self
            .shared
            .readers
            .run(move |c| crate::exec::run_statement(c, &sql, &[], 1))
            .await??;
        Ok(rows
            .and_then(|r| r.rows.into_iter().next())
            .unwrap_or_default())
    }

    /// `DEALLOCATE name` / `ALL` (`None`) for SQL-level statements.
    pub(super) fn deallocate(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                self.prepared.remove(&n.to_lowercase());
            }
            None => self.prepared.clear(),
        }
    }
}
