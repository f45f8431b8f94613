//! Transaction and session utility statements drivers send on their own:
//! savepoints, `DEALLOCATE`, `CLOSE`, `DISCARD`, `RESET`, `VACUUM`/`ANALYZE`,
//! and `TRUNCATE` (replicated as a delete of every row).

use sqlparser::ast::{CloseCursor, DiscardObject, Ident, Statement};

use super::{Kind, object_name, refuse_internal, unsupported};
use crate::error::{Error, Result};

/// An identifier as PostgreSQL reads it: folded to lower case unless quoted.
fn folded(i: &Ident) -> String {
    match i.quote_style {
        Some(_) => i.value.clone(),
        None => i.value.to_lowercase(),
    }
}

/// The kind of a utility statement, with its text for SQLite when it runs
/// as something else; `None` when `stmt` is not one of these.
pub(super) fn classify(stmt: &Statement) -> Result<Option<(Kind, Option<String>)>> {
    let kind = match stmt {
        Statement::Savepoint { name } => Kind::Savepoint { name: folded(name) },
        Statement::ReleaseSavepoint { name } => Kind::Release { name: folded(name) },
        Statement::Rollback {
            savepoint: Some(name),
            ..
        } => Kind::RollbackTo { name: folded(name) },
        Statement::Deallocate { name, .. } => Kind::Deallocate {
            name: (!(name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all")))
                .then(|| name.value.clone()),
        },
        Statement::Close { cursor } => match cursor {
            // No statement opens a cursor here, so there is none to close.
            CloseCursor::All => Kind::NoOp {
                tag: "CLOSE CURSOR ALL".into(),
                notice: None,
            },
            CloseCursor::Specific { name } => {
                return Err(Error::NoSuchCursor(folded(name)));
            }
        },
        Statement::Discard { object_type } => match object_type {
            DiscardObject::ALL => Kind::DiscardAll,
            DiscardObject::PLANS | DiscardObject::SEQUENCES | DiscardObject::TEMP => Kind::NoOp {
                tag: format!("DISCARD {object_type}"),
                notice: None,
            },
        },
        Statement::Reset(r) => Kind::Reset {
            name: match &r.reset {
                sqlparser::ast::Reset::ALL => None,
                sqlparser::ast::Reset::ConfigurationParameter(n) => {
                    Some(object_name(n).to_ascii_lowercase())
                }
                sqlparser::ast::Reset::SessionAuthorization => {
                    return Err(unsupported(
                        "RESET SESSION AUTHORIZATION",
                        "sessions keep the user they logged in as",
                    ));
                }
            },
        },
        // Nothing is ever listened to (LISTEN is refused), so stopping is
        // a no-op, as PostgreSQL's is then: asyncpg's pool sends it on
        // every release.
        Statement::UNLISTEN { .. } => Kind::NoOp {
            tag: "UNLISTEN".into(),
            notice: None,
        },
        Statement::Vacuum(_) => maintenance("VACUUM"),
        Statement::Analyze(_) => maintenance("ANALYZE"),
        Statement::Truncate(t) => return truncate(t).map(Some),
        Statement::Prepare {
            name, statement, ..
        } => {
            let inner = super::classify_one(statement, statement.to_string())?;
            if !matches!(inner.kind, Kind::Read | Kind::Write { .. }) {
                return Err(unsupported(
                    "PREPARE of this statement",
                    "prepare SELECT, INSERT, UPDATE or DELETE",
                ));
            }
            Kind::Prepare {
                name: folded(name),
                statement: Box::new(inner),
            }
        }
        Statement::Execute {
            name: Some(name),
            parameters,
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => Kind::Execute {
            name: object_name(name).to_lowercase(),
            args: parameters.iter().map(ToString::to_string).collect(),
        },
        _ => return Ok(None),
    };
    Ok(Some((kind, None)))
}

fn maintenance(verb: &str) -> Kind {
    Kind::NoOp {
        tag: verb.into(),
        notice: Some(format!(
            "{verb} ignored: each replica maintains its own SQLite file"
        )),
    }
}

/// PostgreSQL's `VACUUM [FULL] [FREEZE] [VERBOSE] [ANALYZE] [(options)]
/// [tables]` and `ANALYZE [VERBOSE] [tables]` forms sqlparser does not
/// parse (pgbench sends `vacuum analyze pgbench_branches`): one statement
/// of names, commas and parentheses after the verb is the same no-op.
pub(super) fn maintenance_fallback(sql: &str) -> Option<Kind> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut words = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    let verb = match words.next()? {
        Token::Word(w) if w.keyword == Keyword::VACUUM => "VACUUM",
        Token::Word(w) if w.keyword == Keyword::ANALYZE => "ANALYZE",
        _ => return None,
    };
    let plain = words.all(|t| {
        matches!(
            t,
            Token::Word(_) | Token::Comma | Token::LParen | Token::RParen | Token::Period
        )
    });
    plain.then(|| maintenance(verb))
}

/// `TRUNCATE a, b` deletes every row of each table through the log (one
/// record, like `DELETE FROM a; DELETE FROM b` in one transaction); what
/// needs more than that is refused by name.
fn truncate(t: &sqlparser::ast::Truncate) -> Result<(Kind, Option<String>)> {
    if t.cascade == Some(sqlparser::ast::CascadeOption::Cascade) {
        return Err(unsupported(
            "TRUNCATE … CASCADE",
            "truncate the referencing tables first",
        ));
    }
    if matches!(
        t.identity,
        Some(sqlparser::ast::TruncateIdentityOption::Restart)
    ) {
        return Err(unsupported(
            "TRUNCATE … RESTART IDENTITY",
            "generated keys are cluster-wide ranges and never restart",
        ));
    }
    let mut tables = Vec::with_capacity(t.table_names.len());
    for target in &t.table_names {
        refuse_internal(&target.name.to_string())?;
        tables.push(target.name.to_string());
    }
    Ok((Kind::Truncate { tables }, None))
}
