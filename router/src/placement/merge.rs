//! Merging per-group answers of a scattered read into the answer one
//! SQLite file holding every row would give: rows concatenated, sorted in
//! SQLite's order, de-duplicated for DISTINCT, cut by OFFSET and LIMIT;
//! or partial aggregates combined by group key.

use std::cmp::Ordering;
use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;

use crate::error::{Error, Result};
use crate::exec::ResultSet;

/// A sort key: a result column by position or name.
#[derive(Debug, Clone)]
pub enum KeyRef {
    Pos(usize),
    Name(String),
}

#[derive(Debug, Clone)]
pub struct SortKey {
    pub key: KeyRef,
    pub desc: bool,
    pub nulls_first: bool,
}

/// How one aggregate is made from the groups' partials (positions in the
/// per-group row).
#[derive(Debug, Clone)]
pub enum Out {
    Count(usize),
    Sum(usize),
    Min(usize),
    Max(usize),
    Avg { sum: usize, count: usize },
}

/// How per-group answers merge.
#[derive(Debug)]
pub enum Merge {
    /// One group answered: as it is.
    AsIs,
    Rows {
        order: Vec<SortKey>,
        distinct: bool,
        offset: u64,
        limit: Option<u64>,
    },
    Aggregate {
        /// Leading per-group columns that are the group key.
        keys: usize,
        aggs: Vec<Out>,
        /// Run over `__tributary_merged` (see `rewrite::AggregatePlan`).
        final_sql: String,
    },
}

/// SQLite's order of two values (BINARY collation).
pub fn compare(a: &SqlValue, b: &SqlValue) -> Ordering {
    use SqlValue::*;
    let class = |v: &SqlValue| match v {
        Null => 0,
        Integer(_) | Real(_) => 1,
        Text(_) => 2,
        Blob(_) => 3,
    };
    match (a, b) {
        (Integer(x), Integer(y)) => x.cmp(y),
        (Integer(x), Real(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal),
        (Real(x), Integer(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal),
        (Real(x), Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Text(x), Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Blob(x), Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

/// A value as a hash key (integral reals equal the integers they are).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HashValue {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

fn hash_value(v: &SqlValue) -> HashValue {
    match v {
        SqlValue::Null => HashValue::Null,
        SqlValue::Integer(i) => HashValue::Int(*i),
        SqlValue::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => HashValue::Int(*f as i64),
        SqlValue::Real(f) => HashValue::Real(f.to_bits()),
        SqlValue::Text(t) => HashValue::Text(t.clone()),
        SqlValue::Blob(b) => HashValue::Blob(b.clone()),
    }
}

fn resolve(keys: &[SortKey], columns: &[String]) -> Result<Vec<(usize, bool, bool)>> {
    keys.iter()
        .map(|k| {
            let pos = match &k.key {
                KeyRef::Pos(p) if *p < columns.len() => *p,
                KeyRef::Pos(p) => {
                    return Err(Error::Unsupported {
                        what: format!("ORDER BY {} over distributed tables", p + 1),
                        why: "the result has fewer columns".into(),
                    });
                }
                KeyRef::Name(n) => {
                    let hits: Vec<usize> = columns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.eq_ignore_ascii_case(n))
                        .map(|(i, _)| i)
                        .collect();
                    match hits.as_slice() {
                        [p] => *p,
                        _ => {
                            return Err(Error::Unsupported {
                                what: format!("ORDER BY {n} over distributed tables, which is not exactly one result column"),
                                why: "select it once and order by its name or position".into(),
                            });
                        }
                    }
                }
            };
            Ok((pos, k.desc, k.nulls_first))
        })
        .collect()
}

fn sort(rows: &mut [Vec<SqlValue>], keys: &[(usize, bool, bool)]) {
    rows.sort_by(|a, b| {
        for &(p, desc, nulls_first) in keys {
            let (x, y) = (&a[p], &b[p]);
            let o = match (x, y) {
                (SqlValue::Null, SqlValue::Null) => Ordering::Equal,
                (SqlValue::Null, _) => {
                    if nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (_, SqlValue::Null) => {
                    if nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                _ if desc => compare(y, x),
                _ => compare(x, y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

fn cut(rows: &mut Vec<Vec<SqlValue>>, offset: u64, limit: Option<u64>) {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(rows.len());
    rows.drain(..offset);
    if let Some(l) = limit {
        rows.truncate(usize::try_from(l).unwrap_or(usize::MAX));
    }
}

/// Merges the groups' answers (at least one).
pub fn merge(merge: &Merge, mut parts: Vec<ResultSet>) -> Result<ResultSet> {
    let Some(first) = parts.first() else {
        return Err(Error::Internal("a scattered read ran on no group".into()));
    };
    let (columns, decl_types) = (first.columns.clone(), first.decl_types.clone());
    match merge {
        Merge::AsIs => Ok(parts.swap_remove(0)),
        Merge::Rows {
            order,
            distinct,
            offset,
            limit,
        } => {
            let keys = resolve(order, &columns)?;
            let mut rows: Vec<Vec<SqlValue>> = parts.into_iter().flat_map(|p| p.rows).collect();
            if !keys.is_empty() {
                sort(&mut rows, &keys);
            }
            if *distinct {
                let mut seen = std::collections::HashSet::new();
                rows.retain(|r| seen.insert(r.iter().map(hash_value).collect::<Vec<_>>()));
            }
            cut(&mut rows, *offset, *limit);
            Ok(ResultSet {
                columns,
                decl_types,
                rows,
            })
        }
        Merge::Aggregate {
            keys,
            aggs,
            final_sql,
        } => {
            let mut groups: Vec<Vec<SqlValue>> = Vec::new();
            let mut index: HashMap<Vec<HashValue>, usize> = HashMap::new();
            for row in parts.into_iter().flat_map(|p| p.rows) {
                let key: Vec<HashValue> = row[..*keys].iter().map(hash_value).collect();
                match index.get(&key) {
                    None => {
                        index.insert(key, groups.len());
                        groups.push(row);
                    }
                    Some(&i) => combine(&mut groups[i], &row, aggs)?,
                }
            }
            let merged: Vec<Vec<SqlValue>> = groups
                .iter()
                .map(|g| {
                    g[..*keys]
                        .iter()
                        .cloned()
                        .chain(aggs.iter().map(|o| finish(g, o)))
                        .collect()
                })
                .collect();
            let key_types = decl_types.get(..*keys).unwrap_or_default();
            finish_query(key_types, aggs.len(), &merged, final_sql)
        }
    }
}

/// Runs the final query of an aggregate plan over the merged groups, on
/// an in-memory SQLite connection with the router's functions.
fn finish_query(
    key_types: &[Option<String>],
    aggs: usize,
    rows: &[Vec<SqlValue>],
    sql: &str,
) -> Result<ResultSet> {
    let sq = |e| Error::sqlite("merging aggregates across shards", e);
    let conn = rusqlite::Connection::open_in_memory().map_err(sq)?;
    crate::functions::register(&conn).map_err(sq)?;
    let mut cols: Vec<String> = key_types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("__k{i} {}", t.as_deref().unwrap_or("")))
        .collect();
    cols.extend((0..aggs).map(|i| format!("__a{i}")));
    conn.execute_batch(&format!(
        "CREATE TABLE __tributary_merged ({})",
        cols.join(", ")
    ))
    .map_err(sq)?;
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    {
        let mut ins = conn
            .prepare(&format!(
                "INSERT INTO __tributary_merged VALUES ({})",
                marks.join(", ")
            ))
            .map_err(sq)?;
        for r in rows {
            ins.execute(rusqlite::params_from_iter(r.iter()))
                .map_err(sq)?;
        }
    }
    let (rows, _) = crate::exec::run_statement(&conn, sql, &[], usize::MAX)?;
    rows.ok_or_else(|| Error::Internal("the merge query returned no columns".into()))
}

/// SQLite's sum of two partial sums: integers stay integers (and
/// overflow is an error, as in SQLite), NULL means no rows.
fn add(a: &SqlValue, b: &SqlValue) -> Result<SqlValue> {
    use SqlValue::*;
    Ok(match (a, b) {
        (Null, x) | (x, Null) => x.clone(),
        (Integer(x), Integer(y)) => {
            Integer(x.checked_add(*y).ok_or_else(|| {
                Error::OutOfRange("integer overflow in a sum across shards".into())
            })?)
        }
        (Integer(x), Real(y)) | (Real(y), Integer(x)) => Real(*x as f64 + y),
        (Real(x), Real(y)) => Real(x + y),
        _ => Real(0.0),
    })
}

fn combine(acc: &mut [SqlValue], row: &[SqlValue], aggs: &[Out]) -> Result<()> {
    for o in aggs {
        match *o {
            Out::Count(i) | Out::Sum(i) => acc[i] = add(&acc[i], &row[i])?,
            Out::Avg { sum, count } => {
                acc[sum] = add(&acc[sum], &row[sum])?;
                acc[count] = add(&acc[count], &row[count])?;
            }
            Out::Min(i) => {
                if takes(&acc[i], &row[i], Ordering::Less) {
                    acc[i] = row[i].clone();
                }
            }
            Out::Max(i) => {
                if takes(&acc[i], &row[i], Ordering::Greater) {
                    acc[i] = row[i].clone();
                }
            }
        }
    }
    Ok(())
}

/// Whether `new` replaces `acc` as the minimum (`Less`) or maximum
/// (`Greater`): NULL is no value.
fn takes(acc: &SqlValue, new: &SqlValue, wanted: Ordering) -> bool {
    match (acc, new) {
        (_, SqlValue::Null) => false,
        (SqlValue::Null, _) => true,
        (a, b) => compare(b, a) == wanted,
    }
}

/// A result value from a group's combined partials.
fn finish(g: &[SqlValue], o: &Out) -> SqlValue {
    match *o {
        Out::Count(i) | Out::Sum(i) | Out::Min(i) | Out::Max(i) => g[i].clone(),
        Out::Avg { sum, count } => match (&g[sum], &g[count]) {
            (_, SqlValue::Integer(0)) | (SqlValue::Null, _) => SqlValue::Null,
            (SqlValue::Integer(s), SqlValue::Integer(c)) => SqlValue::Real(*s as f64 / *c as f64),
            (SqlValue::Real(s), SqlValue::Integer(c)) => SqlValue::Real(s / *c as f64),
            _ => SqlValue::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(rows: Vec<Vec<SqlValue>>) -> ResultSet {
        ResultSet {
            columns: vec!["k".into(), "a".into(), "b".into()],
            decl_types: vec![None, None, None],
            rows,
        }
    }

    #[test]
    fn sorts_merged_rows_in_sqlite_order_and_cuts() {
        use SqlValue::*;
        let m = Merge::Rows {
            order: vec![SortKey {
                key: KeyRef::Name("a".into()),
                desc: false,
                nulls_first: true,
            }],
            distinct: false,
            offset: 1,
            limit: Some(3),
        };
        let out = merge(
            &m,
            vec![
                rs(vec![
                    vec![Integer(1), Integer(2), Null],
                    vec![Integer(2), Text("x".into()), Null],
                ]),
                rs(vec![
                    vec![Integer(3), Null, Null],
                    vec![Integer(4), Real(1.5), Null],
                ]),
            ],
        )
        .expect("merges");
        let a: Vec<SqlValue> = out.rows.iter().map(|r| r[1].clone()).collect();
        assert_eq!(a, vec![Real(1.5), Integer(2), Text("x".into())]);
    }

    #[test]
    fn combines_partial_aggregates_by_key_then_runs_the_final_query() {
        use SqlValue::*;
        // Per group: key, count, sum, min, sum-for-avg, count-for-avg.
        let m = Merge::Aggregate {
            keys: 1,
            aggs: vec![
                Out::Count(1),
                Out::Sum(2),
                Out::Min(3),
                Out::Avg { sum: 4, count: 5 },
            ],
            final_sql:
                "SELECT __k0 AS k, __a0 AS n, coalesce(__a1, 0) AS s, __a2 AS lo, __a3 AS avg \
                        FROM __tributary_merged WHERE __a0 > 1 ORDER BY k DESC"
                    .into(),
        };
        let part = |rows: Vec<Vec<SqlValue>>| ResultSet {
            columns: (0..6).map(|i| format!("c{i}")).collect(),
            decl_types: vec![Some("INTEGER".into()), None, None, None, None, None],
            rows,
        };
        let out = merge(
            &m,
            vec![
                part(vec![vec![
                    Integer(1),
                    Integer(2),
                    Integer(10),
                    Integer(4),
                    Integer(10),
                    Integer(2),
                ]]),
                part(vec![
                    vec![Integer(1), Integer(1), Null, Null, Null, Integer(0)],
                    vec![
                        Integer(2),
                        Integer(3),
                        Null,
                        Integer(-1),
                        Integer(3),
                        Integer(3),
                    ],
                    vec![
                        Integer(3),
                        Integer(1),
                        Integer(1),
                        Integer(1),
                        Integer(1),
                        Integer(1),
                    ],
                ]),
            ],
        )
        .expect("merges");
        assert_eq!(out.columns, vec!["k", "n", "s", "lo", "avg"]);
        assert_eq!(out.decl_types[0].as_deref(), Some("INTEGER"));
        assert_eq!(
            out.rows,
            vec![
                vec![Integer(2), Integer(3), Integer(0), Integer(-1), Real(1.0)],
                vec![Integer(1), Integer(3), Integer(10), Integer(4), Real(5.0)],
            ]
        );
    }
}
