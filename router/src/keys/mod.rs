//! Generated keys that are unique across the cluster.
//!
//! A table whose primary key is one INTEGER column (`INTEGER PRIMARY KEY`,
//! and `SERIAL`, `BIGSERIAL` or `GENERATED … AS IDENTITY`, which the DDL
//! translation turns into it) gets its keys from ranges that `ids` records
//! reserve for this router: every replica computes the same range for the
//! same record (replica's `ids` module), so two routers never hand out the
//! same key. An INSERT that leaves the key out (or gives NULL or DEFAULT) is
//! rewritten to call `tributary_next_id('table')`, a SQLite function on the
//! speculation connection that takes the next key of this router's range;
//! the speculation captures the value, so replicas never evaluate it.
//!
//! When the range runs out, the function fails, the router reserves a new
//! range (one record, at least [`BLOCK`] keys or twice what the statement
//! wanted) and speculates the statement again. Keys therefore grow in runs
//! of one router's range: within a router in order, across routers
//! interleaved by range, like PostgreSQL sequences with a cache (or PGD's
//! galloc sequences). Keys handed to a statement that then failed are
//! skipped, as `nextval` skips them in PostgreSQL.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use sqlparser::ast::{Expr, Ident, ObjectName, SetExpr, Statement, TableObject};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// Keys one `ids` record reserves at least.
pub const BLOCK: u64 = 1000;

/// The SQLite function that hands out this router's generated keys.
pub const NEXT_ID: &str = "tributary_next_id";
const FUNCTION: &str = NEXT_ID;

#[derive(Debug, Default)]
struct Ranges {
    /// Per table, reserved ranges `[next, end)` not used up yet.
    free: HashMap<String, VecDeque<(i64, i64)>>,
    /// Set by the function when a table's ranges ran out: the table and how
    /// many keys the statement had taken when it did.
    exhausted: Option<(String, u64)>,
    /// Keys taken by the statement being speculated.
    taken: u64,
}

/// This router's reserved key ranges and its INSERT rewrite cache.
#[derive(Debug, Default)]
pub struct Keys {
    ranges: Arc<Mutex<Ranges>>,
    /// `(schema_version, sql)` → what to run.
    plans: Mutex<HashMap<(i64, String), Plan>>,
    /// Whether `tributary_next_id` is on the speculation connection (one
    /// per router, for its life). Defining a function expires every
    /// prepared statement of the connection, so it is defined once.
    installed: std::sync::atomic::AtomicBool,
}

/// How to speculate one INSERT or UPDATE.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The statement to run instead of the client's (generated keys).
    pub run: Option<Arc<str>>,
    /// A query that finds a row of the target table whose key is NULL.
    /// SQLite's change capture skips such rows, so without this check the
    /// write would be acknowledged and never replicated.
    pub null_check: Option<Arc<crate::speculate::NullCheck>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a speculation needs before it can run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub table: String,
    pub count: u64,
}

impl Keys {
    /// Adds a range reserved for `table`.
    pub fn add(&self, table: &str, first: i64, count: i64) {
        if count > 0 {
            lock(&self.ranges)
                .free
                .entry(table.to_owned())
                .or_default()
                .push_back((first, first + count));
        }
    }

    /// Resets the per-statement counters and, the first time, installs
    /// `tributary_next_id` on the speculation connection (always the same
    /// one: a router has one).
    pub fn arm(&self, conn: &Connection) -> Result<()> {
        {
            let mut r = lock(&self.ranges);
            r.exhausted = None;
            r.taken = 0;
        }
        if self
            .installed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        let ranges = self.ranges.clone();
        conn.create_scalar_function(FUNCTION, 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
            let table: String = ctx.get(0)?;
            let mut r = lock(&ranges);
            r.taken += 1;
            let taken = r.taken;
            let free = r.free.entry(table.clone()).or_default();
            while let Some((next, end)) = free.front_mut() {
                if *next < *end {
                    let id = *next;
                    *next += 1;
                    return Ok(id);
                }
                free.pop_front();
            }
            r.exhausted = Some((table.clone(), taken));
            Err(rusqlite::Error::UserFunctionError(
                format!("no generated keys reserved for {table} yet").into(),
            ))
        })
        .map_err(|e| {
            self.installed
                .store(false, std::sync::atomic::Ordering::Release);
            Error::sqlite("installing tributary_next_id", e)
        })
    }

    /// After a failed speculation: the keys it ran short of, if that was why.
    pub fn shortage(&self) -> Option<Shortage> {
        lock(&self.ranges)
            .exhausted
            .take()
            .map(|(table, taken)| Shortage {
                table,
                count: BLOCK.max(taken.saturating_mul(2)),
            })
    }

    /// How to run an INSERT or UPDATE; cached per schema version when
    /// `cache` (not on a transaction block's own schema, whose version may
    /// come back with another schema).
    pub fn plan(&self, conn: &Connection, sql: &str, cache: bool) -> Result<Plan> {
        let version: i64 = conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(|e| Error::sqlite("reading the schema version", e))?;
        let key = (version, sql.to_owned());
        if cache && let Some(hit) = lock(&self.plans).get(&key) {
            return Ok(hit.clone());
        }
        let plan = Plan {
            run: rewrite_insert(conn, sql)?.map(Arc::<str>::from),
            null_check: null_check(conn, sql)?.map(Arc::new),
        };
        if !cache {
            return Ok(plan);
        }
        let mut cache = lock(&self.plans);
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(key, plan.clone());
        Ok(plan)
    }
}

/// The table an INSERT or UPDATE writes.
fn target_table(stmt: &Statement) -> Option<String> {
    let name = match stmt {
        Statement::Insert(ins) => match &ins.table {
            TableObject::TableName(name) => name,
            _ => return None,
        },
        Statement::Update(up) => match &up.table.relation {
            sqlparser::ast::TableFactor::Table { name, .. } => name,
            _ => return None,
        },
        _ => return None,
    };
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
}

/// `SELECT` finding a NULL-keyed row of the statement's target table, for
/// tables whose key SQLite would let be NULL (any key but a rowid alias).
fn null_check(conn: &Connection, sql: &str) -> Result<Option<crate::speculate::NullCheck>> {
    let Ok(stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    let Some(table) = stmts.first().and_then(target_table) else {
        return Ok(None);
    };
    if generated_key(conn, &table)?.is_some() {
        return Ok(None);
    }
    let Some(info) = replica::table_info(conn, &table)
        .map_err(|e| Error::sqlite("reading the table schema", e))?
    else {
        return Ok(None);
    };
    if info.pk.is_empty() {
        return Ok(None);
    }
    let cond: Vec<String> = info
        .pk
        .iter()
        .map(|k| format!("{} IS NULL", replica::quote_ident(k)))
        .collect();
    Ok(Some(crate::speculate::NullCheck {
        sql: format!(
            "SELECT 1 FROM {} WHERE {} LIMIT 1",
            replica::quote_ident(&table),
            cond.join(" OR ")
        ),
        column: info.pk.join(", "),
        table,
    }))
}

/// The single INTEGER key column of `table`, if its keys are generated.
fn generated_key(conn: &Connection, table: &str) -> Result<Option<(String, usize)>> {
    let Some(info) = replica::table_info(conn, table)
        .map_err(|e| Error::sqlite("reading the table schema", e))?
    else {
        return Ok(None);
    };
    let [key] = info.pk.as_slice() else {
        return Ok(None);
    };
    let decl: Option<String> = conn
        .query_row(
            "SELECT type FROM pragma_table_info(?1) WHERE name = ?2",
            [table, key.as_str()],
            |r| r.get(0),
        )
        .map_err(|e| Error::sqlite("reading the table schema", e))?;
    // Exactly SQLite's rowid alias: only then does a missing key mean "make
    // one" to SQLite too (any other key type would store NULL).
    if !decl.is_some_and(|d| d.eq_ignore_ascii_case("INTEGER")) {
        return Ok(None);
    }
    let pos = info.columns.iter().position(|c| c == key).unwrap_or(0);
    Ok(Some((key.clone(), pos)))
}

fn parse_expr(text: &str) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Error::Internal(format!("building a generated-key call: {e}")))
}

fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("DEFAULT"))
}

fn is_null(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Null))
}

/// An INSERT without a column list fills the leading visible columns, as
/// PostgreSQL fills the leading columns: names them, when it gives fewer
/// values than the table has visible columns or `always` (a table with a
/// hidden key, which must not be one of them). Then a generated key it
/// leaves out is generated, and SQLite takes fewer values.
pub(crate) fn name_visible_columns(
    conn: &Connection,
    table: &str,
    insert: &mut sqlparser::ast::Insert,
    always: bool,
) -> Result<()> {
    let Some(source) = insert.source.as_ref() else {
        return Ok(());
    };
    let width = match source.body.as_ref() {
        SetExpr::Values(v) => v.rows.first().map_or(0, |r| r.len()),
        _ => match conn.prepare(&source.to_string()) {
            Ok(query) => query.column_count(),
            // Only a hidden key needs the list; otherwise SQLite reports it.
            Err(_) if !always => return Ok(()),
            Err(e) => return Err(Error::sqlite("preparing the INSERT's query", e)),
        },
    };
    let info = replica::table_info(conn, table)
        .map_err(|e| Error::sqlite("reading the table schema", e))?
        .unwrap_or_else(|| replica::TableInfo {
            name: table.to_owned(),
            columns: Vec::new(),
            decl_types: Vec::new(),
            pk: Vec::new(),
        });
    let visible: Vec<&String> = info
        .columns
        .iter()
        .filter(|c| !replica::is_hidden_column(c))
        .collect();
    if width > visible.len() {
        return Err(Error::Syntax(
            "INSERT has more expressions than target columns".into(),
        ));
    }
    if width == 0 || (width == visible.len() && !always) {
        return Ok(());
    }
    insert.columns = visible
        .into_iter()
        .take(width)
        .map(|c| ObjectName::from(vec![Ident::with_quote('"', c.as_str())]))
        .collect();
    Ok(())
}

/// Rewrites an INSERT into a table with a generated key so every row it
/// inserts without a key gets `tributary_next_id(...)`.
fn rewrite_insert(conn: &Connection, sql: &str) -> Result<Option<String>> {
    let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    let [Statement::Insert(insert)] = stmts.as_mut_slice() else {
        return Ok(None);
    };
    let Some(table) = target_table(&Statement::Insert(insert.clone())) else {
        return Ok(None);
    };
    let Some((key, key_pos)) = generated_key(conn, &table)? else {
        return Ok(None);
    };
    let call = parse_expr(&format!("{FUNCTION}('{}')", table.replace('\'', "''")))?;
    if insert.columns.is_empty() {
        name_visible_columns(conn, &table, insert, replica::is_hidden_column(&key))?;
    }
    let listed = insert.columns.iter().position(|c| {
        c.0.last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case(&key))
    });
    let Some(source) = insert.source.as_mut() else {
        // DEFAULT VALUES.
        if insert.columns.is_empty() && insert.assignments.is_empty() {
            insert
                .columns
                .push(ObjectName::from(vec![Ident::new(&key)]));
            let query = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&format!("VALUES ({call})"))
                .and_then(|mut p| p.parse_query())
                .map_err(|e| Error::Internal(format!("building a generated-key insert: {e}")))?;
            insert.source = Some(query);
            return Ok(Some(stmts[0].to_string()));
        }
        return Ok(None);
    };
    let position = match listed {
        Some(i) => Some(i),
        None if insert.columns.is_empty() => Some(key_pos),
        None => None,
    };
    match (source.body.as_mut(), position) {
        (SetExpr::Values(values), Some(i)) => {
            let mut changed = false;
            for row in &mut values.rows {
                if let Some(e) = row.get_mut(i) {
                    if is_default(e) || is_null(e) {
                        *e = call.clone();
                        changed = true;
                    } else if !matches!(e, Expr::Value(v) if !matches!(v.value, sqlparser::ast::Value::Placeholder(_)))
                    {
                        // A parameter or expression may be NULL at run time.
                        *e = parse_expr(&format!("coalesce({e}, {call})"))?;
                        changed = true;
                    }
                }
            }
            Ok(changed.then(|| stmts[0].to_string()))
        }
        (SetExpr::Values(values), None) => {
            insert
                .columns
                .push(ObjectName::from(vec![Ident::new(&key)]));
            for row in &mut values.rows {
                row.push(call.clone());
            }
            Ok(Some(stmts[0].to_string()))
        }
        (_, None) => {
            // INSERT … SELECT without the key: add it to every row. The
            // `WHERE true` is SQLite's way to tell an `ON CONFLICT` after
            // it from a join's `ON`.
            let inner = source.to_string();
            *source = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&format!("SELECT *, {call} FROM ({inner}) WHERE true"))
                .and_then(|mut p| p.parse_query())
                .map_err(|e| Error::Internal(format!("building a generated-key insert: {e}")))?;
            insert
                .columns
                .push(ObjectName::from(vec![Ident::new(&key)]));
            Ok(Some(stmts[0].to_string()))
        }
        // INSERT … SELECT that gives the key: the values are the client's.
        (_, Some(_)) => Ok(None),
    }
}

mod create_table;

pub(crate) use create_table::integer_width;
pub use create_table::translate_create_table;

#[cfg(test)]
mod tests;
