//! Statement classification with sqlparser: what each statement is, so the
//! router knows whether to read, write through the log, replicate DDL,
//! handle transaction control or a session setting, or refuse it.
//!
//! Clients speak PostgreSQL's SQL, the replicas run SQLite's: a statement is
//! parsed with the PostgreSQL dialect first and the SQLite dialect second
//! (for `REPLACE INTO`, `INSERT OR …`, `PRAGMA`), then executed as written.

use std::collections::BTreeMap;

use sqlparser::ast::{Expr, ObjectName, SetExpr, Statement, Value};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::error::{Error, Result};
use crate::typing::Hint;

/// What a statement is, for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Runs on the router's replica at the session's read consistency.
    Read,
    /// Runs speculatively, becomes row changes in a `txn` record. `tag` is
    /// the command tag verb (INSERT, UPDATE, DELETE).
    Write {
        tag: &'static str,
    },
    /// Replicated as a `ddl` record; `tag` is the command tag.
    Ddl {
        tag: String,
    },
    Begin,
    Commit,
    Rollback,
    /// `SET tributary.NAME = value`.
    SetTributary {
        name: String,
        value: String,
    },
    /// `SET lock_timeout = …`: a PostgreSQL setting the router honours.
    SetLockTimeout {
        value: String,
    },
    /// Another `SET` (client_encoding, application_name, …): accepted, no effect.
    SetOther,
    /// `SHOW name`.
    Show {
        name: String,
    },
    /// `SAVEPOINT name` inside a transaction block.
    Savepoint {
        name: String,
    },
    /// `RELEASE [SAVEPOINT] name`.
    Release {
        name: String,
    },
    /// `ROLLBACK TO [SAVEPOINT] name`.
    RollbackTo {
        name: String,
    },
    /// `DEALLOCATE name` (a protocol-level prepared statement), or
    /// `DEALLOCATE ALL` (`None`).
    Deallocate {
        name: Option<String>,
    },
    /// `DISCARD ALL`: the session's settings back to their defaults.
    DiscardAll,
    /// `RESET name` / `RESET ALL` (`None`).
    Reset {
        name: Option<String>,
    },
    /// Accepted and has no effect here; `notice` says why when it matters.
    NoOp {
        tag: String,
        notice: Option<String>,
    },
    /// `PREPARE name AS statement` (a read or a write).
    Prepare {
        name: String,
        statement: Box<Classified>,
    },
    /// `EXECUTE name [(args)]`; each argument is an expression's text.
    Execute {
        name: String,
        args: Vec<String>,
    },
    /// `COPY table [(columns)] FROM STDIN`: rows become one write.
    CopyIn {
        table: String,
        columns: Vec<String>,
        format: crate::copy_format::CopyFormat,
    },
    /// `TRUNCATE a, b, …`: every row of each table deleted, in one record.
    /// Each name is as the client wrote it (quoted if it was).
    Truncate {
        tables: Vec<String>,
    },
    /// A step of `tributary verify` (`SELECT * FROM tributary.verify_…(…)`).
    Verify(crate::verify::VerifyOp),
    /// `SELECT tributary.distribute(…)` and the other placement functions.
    Placement(crate::placement::PlacementOp),
    /// `COPY table|(query) TO STDOUT`: a read whose rows go out as COPY data.
    CopyOut {
        query: String,
        format: crate::copy_format::CopyFormat,
    },
}

/// One classified statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The statement's own text, as the client wrote it.
    pub sql: String,
    pub kind: Kind,
    /// Highest `$n` placeholder used.
    pub param_count: usize,
    /// For `$n`, the column it is compared with or assigned to, if evident.
    pub param_columns: BTreeMap<usize, Hint>,
    /// For a plain SELECT, a type hint per result column (used when SQLite
    /// has no declared type, e.g. `count(*)`).
    pub projection: Vec<Option<Hint>>,
    /// For a plain SELECT, PostgreSQL's column names where SQLite's differ.
    pub column_names: Option<Vec<Option<String>>>,
    /// The client's text of this statement when `sql` is a translation of
    /// it (what the slow-query log shows).
    pub original: Option<std::sync::Arc<str>>,
}

pub(crate) fn unsupported(what: impl Into<String>, why: impl Into<String>) -> Error {
    Error::Unsupported {
        what: what.into(),
        why: why.into(),
    }
}

/// Parses and classifies every statement in `sql` (one simple-query string).
pub fn classify(sql: &str, max_bytes: usize) -> Result<Vec<Classified>> {
    if sql.len() > max_bytes {
        return Err(Error::StatementTooLarge {
            size: sql.len(),
            limit: max_bytes,
        });
    }
    let pg = PostgreSqlDialect {};
    let lite = SQLiteDialect {};
    let normalized = copy::normalize_booleans(sql);
    let sql = normalized.as_deref().unwrap_or(sql);
    let (statements, dialect): (Vec<Statement>, &dyn Dialect) = match Parser::parse_sql(&pg, sql) {
        Ok(s) => (s, &pg),
        Err(pg_err) => match Parser::parse_sql(&lite, sql) {
            Ok(s) => (s, &lite),
            Err(_) => {
                // sqlparser only takes literal PRAGMA arguments; SQLite takes names too.
                let fallback = match pragma::fallback(sql)? {
                    Some(kind) => Some(kind),
                    None => utility::maintenance_fallback(sql),
                };
                if let Some(kind) = fallback {
                    return Ok(vec![Classified {
                        sql: sql.trim().trim_end_matches(';').trim().to_owned(),
                        kind,
                        param_count: 0,
                        param_columns: BTreeMap::new(),
                        projection: Vec::new(),
                        column_names: None,
                        original: None,
                    }]);
                }
                return Err(Error::Syntax(pg_err.to_string()));
            }
        },
    };
    let texts = split::split_texts(sql, dialect, &statements);
    statements
        .iter()
        .zip(texts)
        .map(|(stmt, text)| {
            let original: std::sync::Arc<str> = text.as_str().into();
            classify_one(stmt, text).map(|mut c| {
                if *c.sql != *original {
                    c.original = Some(original);
                }
                c
            })
        })
        .collect()
}

pub(crate) fn object_name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| {
            p.as_ident()
                .map_or_else(|| p.to_string(), |i| i.value.clone())
        })
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        },
        Expr::Identifier(i) => i.value.clone(),
        other => other.to_string(),
    }
}

pub(super) fn classify_one(stmt: &Statement, mut sql: String) -> Result<Classified> {
    let special = match crate::verify::parse(stmt)? {
        Some(op) => Some((Kind::Verify(op), None)),
        None => match crate::placement::ops::parse(stmt)? {
            Some(op) => Some((Kind::Placement(op), None)),
            None => utility::classify(stmt)?,
        },
    };
    if let Some((kind, text)) = special {
        return Ok(Classified {
            sql: text.unwrap_or(sql),
            kind,
            param_count: 0,
            param_columns: BTreeMap::new(),
            projection: Vec::new(),
            column_names: None,
            original: None,
        });
    }
    let kind = match stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) => {
                return Err(unsupported(
                    "data-modifying WITH",
                    "write with a plain INSERT, UPDATE or DELETE",
                ));
            }
            _ => Kind::Read,
        },
        Statement::Explain { .. } | Statement::ExplainTable { .. } => Kind::Read,
        Statement::Insert(ins) => {
            refuse_internal(&ins.table.to_string())?;
            Kind::Write { tag: "INSERT" }
        }
        Statement::Update(up) => {
            refuse_internal(&up.table.relation.to_string())?;
            Kind::Write { tag: "UPDATE" }
        }
        Statement::Delete(del) => {
            let (sqlparser::ast::FromTable::WithFromKeyword(from)
            | sqlparser::ast::FromTable::WithoutKeyword(from)) = &del.from;
            for t in from {
                refuse_internal(&t.relation.to_string())?;
            }
            Kind::Write { tag: "DELETE" }
        }
        Statement::CreateTable(ct) => {
            if ct.temporary {
                return Err(unsupported(
                    "CREATE TEMP TABLE",
                    "temporary tables are not replicated",
                ));
            }
            if ct.query.is_some() {
                return Err(unsupported(
                    "CREATE TABLE … AS",
                    "create the table, then INSERT … SELECT into it",
                ));
            }
            if let Some(translated) = crate::keys::translate_create_table(ct)? {
                sql = translated;
            }
            Kind::Ddl {
                tag: "CREATE TABLE".into(),
            }
        }
        Statement::CreateIndex(ci) => {
            if let Some(rewritten) = index::translate(ci)? {
                sql = rewritten;
            }
            Kind::Ddl {
                tag: "CREATE INDEX".into(),
            }
        }
        Statement::CreateView(_) => Kind::Ddl {
            tag: "CREATE VIEW".into(),
        },
        Statement::AlterTable(at) => {
            if let Some(rewritten) = alter::translate(at)? {
                sql = rewritten;
            }
            Kind::Ddl {
                tag: "ALTER TABLE".into(),
            }
        }
        Statement::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            if *cascade {
                return Err(unsupported(
                    format!("DROP {object_type} … CASCADE"),
                    "drop the dependent objects first",
                ));
            }
            for n in names {
                refuse_internal(&n.to_string())?;
            }
            // SQLite drops one object per statement; one record holds them all.
            if names.len() > 1 {
                let exists = if *if_exists { "IF EXISTS " } else { "" };
                sql = names
                    .iter()
                    .map(|n| format!("DROP {object_type} {exists}{n}"))
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            Kind::Ddl {
                tag: format!("DROP {object_type}"),
            }
        }
        Statement::CreateTrigger(_) => {
            return Err(unsupported(
                "CREATE TRIGGER",
                "replicas apply row changes that already include a trigger's effects, so it would run twice",
            ));
        }
        Statement::CreateVirtualTable { .. } => {
            return Err(unsupported(
                "CREATE VIRTUAL TABLE",
                "virtual tables cannot be replicated by row changes",
            ));
        }
        Statement::StartTransaction { .. } => Kind::Begin,
        Statement::Commit { .. } => Kind::Commit,
        Statement::Rollback { .. } => Kind::Rollback,
        Statement::Set(set) => classify_set(set),
        Statement::ShowVariable { variable } => Kind::Show {
            name: variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join("."),
        },
        Statement::Pragma { name, value, is_eq } => {
            pragma::kind(&object_name(name), value.is_some(), *is_eq)?
        }
        Statement::AttachDatabase { .. }
        | Statement::AttachDuckDBDatabase { .. }
        | Statement::DetachDuckDBDatabase { .. } => {
            return Err(unsupported(
                "ATTACH/DETACH",
                "replicas hold one database each; attached files are not replicated",
            ));
        }
        Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } => copy::classify(source, *to, target, options, legacy_options)?,
        other => {
            let text = other.to_string();
            let verb: String = text
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            return Err(unsupported(
                verb,
                "Tributary routes queries, row writes, DDL and transaction control",
            ));
        }
    };
    if matches!(kind, Kind::Read | Kind::Write { .. }) {
        numbers::check_literals(stmt, &sql)?;
    }
    if matches!(kind, Kind::Read | Kind::Write { .. })
        && let Some(rewritten) = translate::translate(stmt, &sql)?
    {
        sql = rewritten;
    }
    let (param_count, param_columns) = crate::typing::params_of(stmt);
    let projection = crate::typing::projection_of(stmt);
    Ok(Classified {
        sql,
        kind,
        param_count,
        param_columns,
        projection,
        column_names: crate::typing::column_names_of(stmt),
        original: None,
    })
}

/// Writes to Tributary's own tables (`tributary_conflicts`, `_tributary_*`) are refused.
fn refuse_internal(target: &str) -> Result<()> {
    let name = target
        .rsplit('.')
        .next()
        .unwrap_or(target)
        .trim_matches('"')
        .to_ascii_lowercase();
    // pg_catalog's and information_schema's tables are the router's
    // read-only view of the schema.
    let schema_view = target
        .to_ascii_lowercase()
        .trim_start_matches('"')
        .starts_with("information_schema");
    if replica::is_internal_table(&name) || name.starts_with("pg_") || schema_view {
        return Err(Error::ReadOnlyTable { table: name });
    }
    Ok(())
}

fn classify_set(set: &sqlparser::ast::Set) -> Kind {
    use sqlparser::ast::Set;
    if let Set::SingleAssignment {
        variable, values, ..
    } = set
    {
        let name = object_name(variable).to_ascii_lowercase();
        if let Some(rest) = name.strip_prefix("tributary.") {
            let value = values.iter().map(expr_text).collect::<Vec<_>>().join(",");
            return Kind::SetTributary {
                name: rest.to_owned(),
                value,
            };
        }
        if name == "lock_timeout" {
            let value = values.iter().map(expr_text).collect::<Vec<_>>().join(",");
            return Kind::SetLockTimeout { value };
        }
    }
    Kind::SetOther
}

mod alter;
mod catalog_sql;
mod copy;
mod index;
mod interval;
mod like;
mod numbers;
mod pragma;
mod split;
mod sql_functions;
mod srf;
mod translate;
mod utility;

#[cfg(test)]
mod tests;
