//! What a statement produced ([`Outcome`]) and what the client is told
//! besides ([`Feedback`]), before wire encoding; result rows and write
//! results shaped as PostgreSQL answers them.

use wal_bus::Offset;

use crate::classify::Classified;
use crate::exec::ResultSet;

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
    /// COPY TO STDOUT: rows to send as COPY data.
    CopyOut {
        rows: ResultSet,
        format: crate::copy_format::CopyFormat,
    },
    /// COPY FROM STDIN has begun: the client sends this many columns.
    CopyIn {
        columns: usize,
    },
}

/// What the client is told besides the statement's result, sent before
/// it: NOTICE/WARNING messages and the new `tributary.offset` parameter.
#[derive(Debug, Default)]
pub struct Feedback {
    pub notices: Vec<(&'static str, String)>,
    /// New value of the `tributary.offset` parameter after a write.
    pub offset: Option<Offset>,
}

/// Expressions with a fixed type (a comparison, an interval, a cast) are
/// typed as in Describe, also without one (the simple query protocol).
pub(super) fn fix_types(rows: &mut ResultSet, stmt: &Classified) {
    for (d, hint) in rows.decl_types.iter_mut().zip(&stmt.projection) {
        if d.as_deref().is_none_or(str::is_empty)
            && let Some(fixed) = hint.as_ref().and_then(crate::typing::Hint::fixed)
        {
            *d = Some(fixed);
        }
    }
}

pub(super) fn rows_outcome(rows: Option<ResultSet>, stmt: &Classified) -> Outcome {
    match rows {
        Some(mut rows) => {
            crate::typing::rename_columns(&mut rows.columns, stmt.column_names.as_deref());
            fix_types(&mut rows, stmt);
            Outcome::Rows { rows, tag: None }
        }
        None => Outcome::Command {
            tag: "SELECT".into(),
            rows: Some(0),
        },
    }
}

pub(super) fn write_outcome(tag: &str, result: Option<ResultSet>, affected: usize) -> Outcome {
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
        // PostgreSQL's TRUNCATE tag carries no row count.
        None => Outcome::Command {
            rows: (tag != "TRUNCATE TABLE").then_some(affected),
            tag,
        },
    }
}
