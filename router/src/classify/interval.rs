//! `interval` in statements, on sqlparser's AST (see `crate::interval`):
//! `INTERVAL '1' DAY`, `INTERVAL '1 day'` and `x::interval` become
//! `tributary_interval(…)`; `a + interval`, `interval + a` and `a -
//! interval` become `tributary_interval_add(a, interval, ±1)`. Any other
//! operator on an interval is refused (0A000): SQLite would compute on the
//! text without a word.

use sqlparser::ast::{BinaryOperator, DataType, Expr, Value};

use super::translate::call;
use crate::error::{Error, Result};
use crate::interval::{ADD, PARSE};

/// Rewrites `e` if it is an interval form; whether it did.
pub(super) fn rewrite(e: &mut Expr) -> Result<bool> {
    let take = |e: &mut Box<Expr>| std::mem::replace(e.as_mut(), Expr::value(Value::Null));
    let replacement = match e {
        Expr::Interval(iv) => {
            let text = match (iv.value.as_ref(), &iv.leading_field) {
                (Expr::Value(v), field) => match (&v.value, field) {
                    (Value::SingleQuotedString(s), Some(f)) => format!("{s} {f}"),
                    (Value::SingleQuotedString(s), None) => s.clone(),
                    (Value::Number(n, _), Some(f)) => format!("{n} {f}"),
                    _ => return Err(unsupported("an INTERVAL of that form")),
                },
                _ => return Err(unsupported("an INTERVAL of an expression")),
            };
            call(PARSE, vec![Expr::value(Value::SingleQuotedString(text))])
        }
        Expr::Cast {
            expr,
            data_type: DataType::Interval { .. },
            ..
        } => call(PARSE, vec![take(expr)]),
        Expr::BinaryOp { left, op, right } if is_interval(left) || is_interval(right) => match op {
            BinaryOperator::Plus | BinaryOperator::Minus => {
                let sign = if *op == BinaryOperator::Minus { -1 } else { 1 };
                let (value, interval) = if is_interval(right) {
                    (take(left), take(right))
                } else if sign > 0 {
                    (take(right), take(left))
                } else {
                    return Err(unsupported("interval - timestamp"));
                };
                call(
                    ADD,
                    vec![
                        value,
                        interval,
                        Expr::value(Value::Number(sign.to_string(), false)),
                    ],
                )
            }
            other => return Err(unsupported(&format!("the operator {other} on an interval"))),
        },
        _ => return Ok(false),
    };
    *e = replacement;
    Ok(true)
}

fn is_interval(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => is_interval(inner),
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value == PARSE),
        _ => false,
    }
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported {
        what: what.to_owned(),
        why: "intervals are supported as literals and casts, added to or subtracted from a timestamp, date or interval".into(),
    }
}
