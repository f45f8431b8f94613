//! Recognizes the verify functions (`SELECT * FROM tributary.verify_…(…)`)
//! that `tributary verify` calls on each router.

use sqlparser::ast::{FunctionArg, FunctionArgExpr, SetExpr, Statement, TableFactor};

use crate::classify::{expr_text, unsupported};
use crate::error::{Error, Result};

/// One step of a verify run, in the order `tributary verify` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOp {
    /// `verify_hold([offset])`: hold every local replica's apply at the
    /// offset (default: the log end), or where it already is if later.
    Hold { at: Option<u64> },
    /// `verify_snapshot(offset, timeout_ms)`: wait for every replica to
    /// reach its hold, open a read transaction on each there, release.
    Snapshot { at: u64, timeout_ms: u64 },
    /// `verify_tables()`: per replica and table, rows and digest.
    Tables,
    /// `verify_buckets(table)`: per replica, the table's bucket digests.
    Buckets { table: String },
    /// `verify_rows(table, 'b1,b2,…')`: the rows in those buckets.
    Rows { table: String, buckets: Vec<u32> },
    /// `verify_end()`: releases holds and snapshots.
    End,
}

/// `Some(op)` when `stmt` is a call of a verify function.
pub fn parse(stmt: &Statement) -> Result<Option<VerifyOp>> {
    let Statement::Query(q) = stmt else {
        return Ok(None);
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Ok(None);
    };
    let [from] = select.from.as_slice() else {
        return Ok(None);
    };
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = &from.relation
    else {
        return Ok(None);
    };
    let name = crate::classify::object_name(name).to_ascii_lowercase();
    let Some(function) = name.strip_prefix("tributary.verify_") else {
        return Ok(None);
    };
    let mut texts = Vec::new();
    for a in &args.args {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => texts.push(expr_text(e)),
            other => {
                return Err(bad(&name, format!("takes literal arguments, not {other}")));
            }
        }
    }
    let number = |i: usize, what: &str| -> Result<u64> {
        let t = texts
            .get(i)
            .ok_or_else(|| bad(&name, format!("needs {what}")))?;
        t.parse()
            .map_err(|_| bad(&name, format!("{what} must be a whole number, not {t:?}")))
    };
    let text = |i: usize, what: &str| -> Result<String> {
        texts
            .get(i)
            .cloned()
            .ok_or_else(|| bad(&name, format!("needs {what}")))
    };
    let op = match function {
        "hold" => VerifyOp::Hold {
            at: if texts.is_empty() {
                None
            } else {
                Some(number(0, "an offset")?)
            },
        },
        "snapshot" => VerifyOp::Snapshot {
            at: number(0, "an offset")?,
            timeout_ms: number(1, "a timeout in ms")?,
        },
        "tables" => VerifyOp::Tables,
        "buckets" => VerifyOp::Buckets {
            table: text(0, "a table")?,
        },
        "rows" => {
            let list = text(1, "a list of buckets")?;
            let buckets = list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse::<u32>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| bad(&name, format!("buckets must be numbers, not {list:?}")))?;
            VerifyOp::Rows {
                table: text(0, "a table")?,
                buckets,
            }
        }
        "end" => VerifyOp::End,
        _ => {
            return Err(unsupported(
                format!("function {name}"),
                "the verify functions are verify_hold, verify_snapshot, verify_tables, verify_buckets, verify_rows and verify_end",
            ));
        }
    };
    Ok(Some(op))
}

fn bad(function: &str, reason: String) -> Error {
    Error::VerifyArgument {
        function: function.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn op(sql: &str) -> Result<Option<VerifyOp>> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        parse(&stmts[0])
    }

    #[test]
    fn recognizes_each_step() {
        assert_eq!(
            op("SELECT * FROM tributary.verify_hold()").expect("ok"),
            Some(VerifyOp::Hold { at: None })
        );
        assert_eq!(
            op("select * from TRIBUTARY.VERIFY_HOLD(42)").expect("ok"),
            Some(VerifyOp::Hold { at: Some(42) })
        );
        assert_eq!(
            op("SELECT * FROM tributary.verify_snapshot(42, 5000)").expect("ok"),
            Some(VerifyOp::Snapshot {
                at: 42,
                timeout_ms: 5000
            })
        );
        assert_eq!(
            op("SELECT * FROM tributary.verify_rows('t', '3,17')").expect("ok"),
            Some(VerifyOp::Rows {
                table: "t".into(),
                buckets: vec![3, 17]
            })
        );
        assert_eq!(op("SELECT * FROM t").expect("ok"), None);
        assert_eq!(op("SELECT * FROM generate_series(1, 3)").expect("ok"), None);
        assert!(op("SELECT * FROM tributary.verify_snapshot('x', 1)").is_err());
        assert!(op("SELECT * FROM tributary.verify_nope()").is_err());
    }
}
