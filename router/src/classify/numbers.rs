//! Number literals SQLite would round. PostgreSQL reads `1234567890.123456789`
//! as an exact numeric; SQLite reads any literal with a point, or an integer
//! past 64 bits, as a double. A literal the double does not hold exactly is
//! refused with 0A000 rather than computed or stored as another number.

use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Statement, Value, visit_expressions};

use crate::error::{Error, Result};
use crate::params::{inexact_numeric, numeric_is_exact, numeric_text};

/// Whether `sql` has a run of at least 16 digits (points between them
/// allowed): cheaper than walking the statement, and every literal a
/// double may not hold has one.
fn has_long_number(sql: &str) -> bool {
    let mut digits = 0;
    for b in sql.bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                if digits >= 16 {
                    return true;
                }
            }
            b'.' => {}
            _ => digits = 0,
        }
    }
    false
}

/// Refuses the statement if one of its number literals is not exact in
/// SQLite (see `params::numeric_is_exact`).
pub(super) fn check_literals(stmt: &Statement, sql: &str) -> Result<()> {
    if !has_long_number(sql) {
        return Ok(());
    }
    let found = visit_expressions(stmt, |e| {
        if let Expr::Value(v) = e
            && let Value::Number(n, _) = &v.value
            && let Some(canonical) = numeric_text(n)
            && !numeric_is_exact(&canonical)
        {
            return ControlFlow::Break(canonical);
        }
        ControlFlow::Continue(())
    });
    match found {
        ControlFlow::Break(value) => Err(Error::Unsupported {
            what: format!("the numeric literal {value}"),
            why: inexact_numeric(&value),
        }),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str) -> Result<()> {
        let stmts =
            sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .map_err(|e| Error::Syntax(e.to_string()))?;
        check_literals(&stmts[0], sql)
    }

    #[test]
    fn literals_a_double_rounds_are_refused() {
        for ok in [
            "SELECT 1.5, 0.1, 9223372036854775807",
            "SELECT 0.30000000000000004",
            "SELECT '12345678901234567.89'",
            "INSERT INTO t VALUES (100000000000000000000)",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "INSERT INTO t VALUES (12345678901234567.89)",
            "SELECT 99999999999999999999",
            "UPDATE t SET n = 0.12345678901234567891 WHERE id = 1",
        ] {
            let e = check(bad).expect_err(bad);
            assert_eq!(e.sqlstate(), "0A000", "{bad}: {e}");
        }
    }
}
