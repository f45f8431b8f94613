//! `CREATE INDEX` as SQLite takes it: PostgreSQL's storage and planner
//! hints (`USING btree`/`hash`, operator classes such as Django's
//! `varchar_pattern_ops`, `CONCURRENTLY`, `WITH (fillfactor = …)`) are
//! dropped; access methods with other semantics (`gin`, `gist`, …) and
//! `INCLUDE` columns are refused with 0A000 naming them.

use sqlparser::ast::{IndexType, Statement};

use super::unsupported;
use crate::error::Result;

/// The SQL to run instead of `ci`, if it needs rewriting.
pub(super) fn translate(ci: &sqlparser::ast::CreateIndex) -> Result<Option<String>> {
    let mut out = ci.clone();
    let mut changed = false;
    match out.using.take() {
        None => {}
        Some(IndexType::BTree | IndexType::Hash) => changed = true,
        Some(other) => {
            return Err(unsupported(
                format!("CREATE INDEX … USING {other}"),
                "SQLite indexes are B-trees; btree and hash are accepted",
            ));
        }
    }
    if !out.include.is_empty() {
        return Err(unsupported(
            "CREATE INDEX … INCLUDE (…)",
            "list the columns in the index itself",
        ));
    }
    for c in &mut out.columns {
        if c.operator_class.take().is_some() {
            changed = true;
        }
    }
    if out.concurrently {
        out.concurrently = false;
        changed = true;
    }
    if !out.with.is_empty() {
        out.with.clear();
        changed = true;
    }
    Ok(changed.then(|| Statement::CreateIndex(out).to_string()))
}
