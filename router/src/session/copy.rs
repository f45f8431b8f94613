//! `COPY … TO STDOUT` (a read, at the session's consistency) and `COPY …
//! FROM STDIN`: the data is collected, parsed, and inserted as one write —
//! one record, inside the client's transaction block if there is one,
//! else in a block of its own, so a COPY is all or nothing.

use rusqlite::types::Value as SqlValue;

use super::{Feedback, Outcome, Session};
use crate::classify::{Classified, Kind};
use crate::copy_format::CopyFormat;
use crate::error::{Error, Result};

/// Data a COPY FROM STDIN may carry (the record holding its rows is
/// bounded by the log's `max_record_bytes` too).
const MAX_COPY_BYTES: usize = 256 << 20;

/// SQLite's limit on `?` parameters in one statement is 32,766.
const MAX_PARAMS: usize = 30_000;

/// A COPY FROM STDIN in progress.
pub(super) struct CopyIn {
    table: String,
    columns: Vec<String>,
    format: CopyFormat,
    data: Vec<u8>,
}

impl Session {
    /// `COPY … TO STDOUT`: the rows, for the handler to send as COPY data.
    pub(super) async fn copy_out(&mut self, stmt: &Classified, query: &str) -> Result<Outcome> {
        let read = Classified {
            sql: query.to_owned(),
            kind: Kind::Read,
            ..stmt.clone()
        };
        match self.read(&read, Vec::new()).await? {
            Outcome::Rows { rows, .. } => Ok(Outcome::CopyOut {
                rows,
                format: match &stmt.kind {
                    Kind::CopyOut { format, .. } => format.clone(),
                    _ => CopyFormat::text(),
                },
            }),
            _ => Err(Error::Internal("COPY TO produced no result set".into())),
        }
    }

    /// `COPY … FROM STDIN` begins: the columns it fills are known now, so
    /// a wrong table or column fails before any data is sent.
    pub(super) async fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        format: &CopyFormat,
    ) -> Result<Outcome> {
        let name = table.to_owned();
        let info = self
            .shared
            .readers
            .run(move |c| replica::table_info(c, &name))
            .await?
            .map_err(|e| Error::sqlite("reading the table schema", e))?
            .ok_or_else(|| Error::BadCopyData(format!("relation \"{table}\" does not exist")))?;
        let columns = if columns.is_empty() {
            info.columns
                .iter()
                .filter(|c| !replica::is_hidden_column(c))
                .cloned()
                .collect()
        } else {
            if let Some(c) = columns.iter().find(|c| !info.columns.contains(c)) {
                return Err(Error::BadCopyData(format!(
                    "column \"{c}\" of relation \"{table}\" does not exist"
                )));
            }
            columns.to_vec()
        };
        let n = columns.len();
        self.copy = Some(CopyIn {
            table: table.to_owned(),
            columns,
            format: format.clone(),
            data: Vec::new(),
        });
        Ok(Outcome::CopyIn { columns: n })
    }

    /// A CopyData message's bytes.
    pub fn copy_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(copy) = &mut self.copy else {
            return Err(Error::CopyFailed("no COPY FROM STDIN in progress".into()));
        };
        if copy.data.len() + bytes.len() > MAX_COPY_BYTES {
            self.copy = None;
            return Err(Error::CopyTooLarge {
                limit: MAX_COPY_BYTES,
            });
        }
        copy.data.extend_from_slice(bytes);
        Ok(())
    }

    /// The client gave up (CopyFail) or went away: nothing is written.
    pub fn copy_abort(&mut self) {
        self.copy = None;
    }

    /// CopyDone: inserts every row as one write; returns how many.
    pub async fn copy_done(&mut self, fb: &mut Feedback) -> Result<usize> {
        let Some(copy) = self.copy.take() else {
            return Err(Error::CopyFailed("no COPY FROM STDIN in progress".into()));
        };
        let result = self.insert_copied(copy, fb).await;
        if result.is_err()
            && let Some(txn) = &mut self.txn
        {
            txn.failed = true;
        }
        result
    }

    async fn insert_copied(&mut self, copy: CopyIn, fb: &mut Feedback) -> Result<usize> {
        let text = std::str::from_utf8(&copy.data).map_err(|_| {
            Error::BadCopyData("invalid byte sequence for encoding \"UTF8\"".into())
        })?;
        let rows = copy.format.parse(text, copy.columns.len())?;
        if rows.is_empty() {
            return Ok(0);
        }
        let own_block = self.txn.is_none();
        if own_block {
            self.begin(fb);
        }
        let inserted = self.insert_rows(&copy, &rows, fb).await;
        if own_block {
            match &inserted {
                Ok(_) => {
                    self.commit(fb).await?;
                }
                Err(_) => {
                    self.rollback(fb);
                }
            }
        }
        inserted
    }

    async fn insert_rows(
        &mut self,
        copy: &CopyIn,
        rows: &[Vec<Option<String>>],
        fb: &mut Feedback,
    ) -> Result<usize> {
        let cols: Vec<String> = copy
            .columns
            .iter()
            .map(|c| replica::quote_ident(c))
            .collect();
        let per_chunk = (MAX_PARAMS / cols.len().max(1)).max(1);
        for chunk in rows.chunks(per_chunk) {
            let mut params = Vec::with_capacity(chunk.len() * cols.len());
            let mut tuples = Vec::with_capacity(chunk.len());
            for row in chunk {
                let marks: Vec<String> = row
                    .iter()
                    .map(|v| {
                        params.push(v.clone().map_or(SqlValue::Null, SqlValue::Text));
                        // Numbered, not `$n`: SQLite looks named
                        // parameters up one by one, quadratic in their count.
                        format!("?{}", params.len())
                    })
                    .collect();
                tuples.push(format!("({})", marks.join(", ")));
            }
            let stmt = Classified {
                sql: format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    replica::quote_ident(&copy.table),
                    cols.join(", "),
                    tuples.join(", ")
                ),
                kind: Kind::Write { tag: "INSERT" },
                param_count: params.len(),
                param_columns: Default::default(),
                projection: Vec::new(),
                column_names: None,
                original: None,
            };
            self.write(&stmt, params, "INSERT", fb).await?;
        }
        Ok(rows.len())
    }
}
