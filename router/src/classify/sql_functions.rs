//! PostgreSQL's special-syntax functions as the calls SQLite (or the
//! router's functions) take: `EXTRACT(field FROM x)` → `date_part('field',
//! x)`, `SUBSTRING(x FROM a FOR b)` → `substr(x, a, b)`, `POSITION(a IN b)`
//! → `instr(b, a)`, `json_agg`/`jsonb_agg` → `json_group_array`, and the
//! jsonb operators `@>`, `<@`, `?`, `?|`, `?&` → the functions of
//! `json_functions.rs`.

use sqlparser::ast::{BinaryOperator, Expr, Value};

use crate::json_functions::{CONTAINS, HAS_ALL, HAS_ANY, HAS_KEY};

use super::translate::call;

/// Rewrites `e` if it is one of the forms above; whether it did.
pub(super) fn rewrite(e: &mut Expr) -> bool {
    let take = |b: &mut Box<Expr>| std::mem::replace(b.as_mut(), Expr::value(Value::Null));
    match e {
        Expr::BinaryOp { left, op, right }
            if matches!(
                op,
                BinaryOperator::AtArrow
                    | BinaryOperator::ArrowAt
                    | BinaryOperator::Question
                    | BinaryOperator::QuestionPipe
                    | BinaryOperator::QuestionAnd
            ) =>
        {
            let (l, r) = (take(left), take(right));
            *e = match op {
                BinaryOperator::AtArrow => call(CONTAINS, vec![l, r]),
                BinaryOperator::ArrowAt => call(CONTAINS, vec![r, l]),
                BinaryOperator::Question => call(HAS_KEY, vec![l, r]),
                BinaryOperator::QuestionPipe => call(HAS_ANY, vec![l, r]),
                _ => call(HAS_ALL, vec![l, r]),
            };
            true
        }
        Expr::Extract { field, expr, .. } => {
            // `DateTimeField` prints as written (`YEAR`, `EPOCH`, or a
            // custom name); the function takes it lowercase.
            let name = field.to_string().trim_matches('\'').to_ascii_lowercase();
            let inner = take(expr);
            *e = call(
                "date_part",
                vec![Expr::value(Value::SingleQuotedString(name)), inner],
            );
            true
        }
        Expr::Substring {
            expr,
            substring_from,
            substring_for,
            special: false,
            ..
        } => {
            let mut args = vec![take(expr)];
            args.push(
                substring_from
                    .as_mut()
                    .map_or_else(|| Expr::value(Value::Number("1".into(), false)), take),
            );
            if let Some(n) = substring_for.as_mut() {
                args.push(take(n));
            }
            *e = call("substr", args);
            true
        }
        Expr::Position { expr, r#in } => {
            let (needle, haystack) = (take(expr), take(r#in));
            *e = call("instr", vec![haystack, needle]);
            true
        }
        Expr::Function(f)
            if f.name.0.len() == 1
                && f.name.0[0].as_ident().is_some_and(|i| {
                    i.value.eq_ignore_ascii_case("json_agg")
                        || i.value.eq_ignore_ascii_case("jsonb_agg")
                }) =>
        {
            f.name = sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new(
                "json_group_array",
            )]);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn run(sql: &str) -> Option<String> {
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        super::super::translate::translate(&stmt[0], sql).expect("translates")
    }

    #[test]
    fn special_syntax_becomes_calls() {
        assert_eq!(
            run("SELECT extract(year from born), EXTRACT(EPOCH FROM ts) FROM u").as_deref(),
            Some("SELECT date_part('year', born), date_part('epoch', ts) FROM u")
        );
        assert_eq!(
            run("SELECT substring(email from 2 for 3), substring(email from 4), position('@' in email) FROM u").as_deref(),
            Some("SELECT substr(email, 2, 3), substr(email, 4), instr(email, '@') FROM u")
        );
        assert_eq!(
            run("SELECT json_agg(name), jsonb_agg(id) FROM u").as_deref(),
            Some("SELECT json_group_array(name), json_group_array(id) FROM u")
        );
        assert_eq!(run("SELECT substr(email, 1, 2) FROM u"), None);
        assert_eq!(
            run("SELECT * FROM u WHERE data @> '{\"k\":5}' AND data ? 'k' AND '{}' <@ data AND data ?| '{a,b}' AND data ?& '{a}'").as_deref(),
            Some("SELECT * FROM u WHERE tributary_json_contains(data, '{\"k\":5}') AND tributary_json_has_key(data, 'k') AND tributary_json_contains(data, '{}') AND tributary_json_has_any(data, '{a,b}') AND tributary_json_has_all(data, '{a}')")
        );
    }
}
