//! Keeping hidden row keys hidden: `SELECT *`, `t.*` and `RETURNING *`
//! over a table created without a primary key would show its
//! [`replica::HIDDEN_KEY`] column, so they are expanded into the table's
//! visible columns before SQLite sees them.
//!
//! Runs where a statement meets a connection (the schema decides), cached
//! per thread by database file, schema version and text, so a statement
//! without `*` or a schema without such tables costs a byte scan and, at
//! most, one `PRAGMA schema_version`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::ControlFlow;

use rusqlite::Connection;
use sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, Select, SelectItem,
    SelectItemQualifiedWildcardKind, Statement, TableFactor, VisitMut, VisitorMut,
    WildcardAdditionalOptions,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::classify::unsupported;
use crate::error::{Error, Result};
use crate::exec::sq;

/// Per thread: the schema it was computed for, the hidden-key tables'
/// visible columns (by lower-case name), and rewritten statements.
#[derive(Default)]
struct Cache {
    schema: Option<(String, i64)>,
    tables: HashMap<String, Vec<String>>,
    statements: HashMap<String, Option<String>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Drops this thread's cache (after a speculation ran schema statements
/// it then rolled back).
pub fn forget() {
    CACHE.with(|cache| *cache.borrow_mut() = Cache::default());
}

/// `sql` with every `*` that would show a hidden key expanded, or `None`
/// when it needs nothing.
pub fn expand(conn: &Connection, sql: &str) -> Result<Option<String>> {
    if !sql.contains('*') {
        return Ok(None);
    }
    let version: i64 = conn
        .prepare_cached("PRAGMA schema_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(sq("reading the schema version"))?;
    let schema = (conn.path().unwrap_or("").to_owned(), version);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.schema.as_ref() != Some(&schema) {
            cache.tables = hidden_tables(conn)?;
            cache.statements.clear();
            cache.schema = Some(schema);
        }
        if cache.tables.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = cache.statements.get(sql) {
            return Ok(hit.clone());
        }
        let rewritten = rewrite(sql, &cache.tables)?;
        if cache.statements.len() > 4096 {
            cache.statements.clear();
        }
        cache.statements.insert(sql.to_owned(), rewritten.clone());
        Ok(rewritten)
    })
}

/// Tables with a hidden row key → their visible columns in order.
fn hidden_tables(conn: &Connection) -> Result<HashMap<String, Vec<String>>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name IN (
                 SELECT t.name FROM sqlite_schema t JOIN pragma_table_info(t.name) k
                 WHERE t.type = 'table' AND k.name = ?1 AND k.pk = 1)
             ORDER BY m.name, p.cid",
        )
        .map_err(sq("reading the schema"))?;
    let rows = stmt
        .query_map([replica::HIDDEN_KEY], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sq("reading the schema"))?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for row in rows {
        let (table, column) = row.map_err(sq("reading the schema"))?;
        let cols = out.entry(table.to_lowercase()).or_default();
        if !replica::is_hidden_column(&column) {
            cols.push(column);
        }
    }
    Ok(out)
}

fn rewrite(sql: &str, tables: &HashMap<String, Vec<String>>) -> Result<Option<String>> {
    let Ok(mut stmts) = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .or_else(|_| Parser::parse_sql(&SQLiteDialect {}, sql))
    else {
        // SQLite will say what is wrong with it.
        return Ok(None);
    };
    let mut expander = Expander {
        tables,
        changed: false,
    };
    if let ControlFlow::Break(e) = stmts.visit(&mut expander) {
        return Err(e);
    }
    Ok(expander.changed.then(|| {
        stmts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }))
}

struct Expander<'a> {
    tables: &'a HashMap<String, Vec<String>>,
    changed: bool,
}

/// One FROM item as `*` sees it: what qualifies its columns, and its
/// visible columns when it is a table with a hidden key.
struct Relation {
    qualifier: Option<Ident>,
    hidden: Option<Vec<String>>,
}

fn last_ident(name: &ObjectName) -> Option<&Ident> {
    name.0.last().and_then(|p| p.as_ident())
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

fn plain_wildcard(opts: &WildcardAdditionalOptions) -> bool {
    opts.opt_ilike.is_none()
        && opts.opt_exclude.is_none()
        && opts.opt_except.is_none()
        && opts.opt_replace.is_none()
        && opts.opt_rename.is_none()
        && opts.opt_alias.is_none()
}

impl Expander<'_> {
    fn table(&self, name: &ObjectName, alias: Option<&Ident>) -> Relation {
        let table = last_ident(name);
        Relation {
            qualifier: alias.or(table).cloned(),
            hidden: table.and_then(|t| self.tables.get(&t.value.to_lowercase()).cloned()),
        }
    }

    fn relation(&self, factor: &TableFactor) -> Relation {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                self.table(name, alias.as_ref().map(|a| &a.name))
            }
            TableFactor::Derived { alias, .. } | TableFactor::Function { alias, .. } => Relation {
                qualifier: alias.as_ref().map(|a| a.name.clone()),
                hidden: None,
            },
            _ => Relation {
                qualifier: None,
                hidden: None,
            },
        }
    }

    fn columns(qualifier: &Ident, cols: &[String]) -> impl Iterator<Item = SelectItem> {
        cols.iter().map(move |c| {
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![qualifier.clone(), quoted(c)]))
        })
    }

    /// Expands `items` against `relations` (FROM order); `merged` says a
    /// join merges columns (USING, NATURAL), which `*` cannot spell out.
    fn expand_items(
        &mut self,
        items: &mut Vec<SelectItem>,
        relations: &[Relation],
        merged: bool,
    ) -> Result<()> {
        if relations.iter().all(|r| r.hidden.is_none()) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items.drain(..) {
            match item {
                SelectItem::Wildcard(opts) => {
                    if !plain_wildcard(&opts) || merged {
                        return Err(unsupported(
                            "this * over a table without a primary key",
                            "list the columns",
                        ));
                    }
                    for r in relations {
                        match (&r.qualifier, &r.hidden) {
                            (Some(q), Some(cols)) => out.extend(Self::columns(q, cols)),
                            (Some(q), None) => out.push(SelectItem::QualifiedWildcard(
                                SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(
                                    vec![q.clone()],
                                )),
                                WildcardAdditionalOptions::default(),
                            )),
                            (None, _) => {
                                return Err(unsupported(
                                    "* over a table without a primary key joined with an unnamed FROM item",
                                    "give the subquery or function an alias, or list the columns",
                                ));
                            }
                        }
                    }
                    self.changed = true;
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(ref name),
                    ref opts,
                ) if plain_wildcard(opts) => {
                    let found = last_ident(name).and_then(|q| {
                        relations
                            .iter()
                            .find_map(|r| match (&r.qualifier, &r.hidden) {
                                (Some(x), Some(cols)) if x.value.eq_ignore_ascii_case(&q.value) => {
                                    Some((x.clone(), cols))
                                }
                                _ => None,
                            })
                    });
                    match found {
                        Some((q, cols)) => {
                            out.extend(Self::columns(&q, cols));
                            self.changed = true;
                        }
                        None => out.push(item),
                    }
                }
                other => out.push(other),
            }
        }
        *items = out;
        Ok(())
    }

    fn select(&mut self, select: &mut Select) -> Result<()> {
        let mut relations = Vec::new();
        let mut merged = false;
        for twj in &select.from {
            relations.push(self.relation(&twj.relation));
            for j in &twj.joins {
                relations.push(self.relation(&j.relation));
                merged |= merges_columns(&j.join_operator);
            }
        }
        self.expand_items(&mut select.projection, &relations, merged)
    }

    fn returning(&mut self, statement: &mut Statement) -> Result<()> {
        let (relation, returning) = match statement {
            Statement::Insert(ins) => {
                let sqlparser::ast::TableObject::TableName(name) = &ins.table else {
                    return Ok(());
                };
                let alias = ins.table_alias.as_ref().map(|a| &a.alias);
                (self.table(name, alias), &mut ins.returning)
            }
            Statement::Update(up) => (self.relation(&up.table.relation), &mut up.returning),
            Statement::Delete(del) => {
                let (sqlparser::ast::FromTable::WithFromKeyword(from)
                | sqlparser::ast::FromTable::WithoutKeyword(from)) = &del.from;
                let Some(first) = from.first() else {
                    return Ok(());
                };
                (self.relation(&first.relation), &mut del.returning)
            }
            _ => return Ok(()),
        };
        let Some(items) = returning else {
            return Ok(());
        };
        self.expand_items(items, &[relation], false)
    }
}

fn merges_columns(op: &JoinOperator) -> bool {
    let constraint = match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => c,
        _ => return false,
    };
    matches!(
        constraint,
        JoinConstraint::Using(_) | JoinConstraint::Natural
    )
}

impl VisitorMut for Expander<'_> {
    type Break = Error;

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<Error> {
        match self.select(select) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn post_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<Error> {
        match self.returning(statement) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch(&format!(
            "CREATE TABLE h (a INT, b TEXT, {k} INTEGER PRIMARY KEY);
             CREATE TABLE k (id INTEGER PRIMARY KEY, note TEXT);
             INSERT INTO h (a, b, {k}) VALUES (1, 'x', 7);
             INSERT INTO k VALUES (1, 'n');",
            k = replica::HIDDEN_KEY
        ))
        .expect("schema");
        c
    }

    fn names(c: &Connection, sql: &str) -> Vec<String> {
        let sql = expand(c, sql)
            .expect("expand")
            .unwrap_or_else(|| sql.to_owned());
        let stmt = c.prepare(&sql).expect("prepare");
        stmt.column_names().map(str::to_owned).collect()
    }

    #[test]
    fn star_leaves_out_the_hidden_key() {
        let c = db();
        assert_eq!(names(&c, "SELECT * FROM h"), ["a", "b"]);
        assert_eq!(names(&c, "SELECT h.* FROM h"), ["a", "b"]);
        assert_eq!(names(&c, "SELECT x.* FROM h AS x"), ["a", "b"]);
        assert_eq!(
            names(&c, "SELECT * FROM h JOIN k ON k.id = h.a"),
            ["a", "b", "id", "note"]
        );
        assert_eq!(names(&c, "SELECT * FROM (SELECT * FROM h) s"), ["a", "b"]);
        assert_eq!(names(&c, "SELECT count(*) FROM h"), ["count(*)"]);
        assert_eq!(names(&c, "SELECT * FROM k"), ["id", "note"]);
        assert!(expand(&c, "SELECT * FROM k").expect("k").is_none());
        assert_eq!(
            names(&c, "DELETE FROM h WHERE a = 1 RETURNING *"),
            ["a", "b"]
        );
        assert_eq!(
            names(&c, "INSERT INTO h (a) VALUES (2) RETURNING *"),
            ["a", "b"]
        );
    }

    #[test]
    fn star_it_cannot_spell_out_is_refused() {
        let c = db();
        let e = expand(&c, "SELECT * FROM h JOIN h AS g USING (a)").expect_err("using");
        assert!(e.to_string().contains("list the columns"), "{e}");
    }

    #[test]
    fn schema_changes_are_seen() {
        let c = db();
        assert_eq!(names(&c, "SELECT * FROM h"), ["a", "b"]);
        c.execute_batch("ALTER TABLE h ADD COLUMN z INT")
            .expect("alter");
        assert_eq!(names(&c, "SELECT * FROM h"), ["a", "b", "z"]);
    }
}
