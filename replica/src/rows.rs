//! The row API the router shares with the applier: which tables hold
//! replicated rows, the primary-key `WHERE` clause, and reading one row by
//! key. One copy, so speculation and apply agree on what a row is.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use wal_bus::Value;

use crate::meta::INTERNAL_PREFIX;
use crate::schema::{TableInfo, quote_ident};
use crate::values::{from_value_ref, to_sql_value};

/// Tables that are not replicated user data: Tributary's own
/// (`_tributary_*` bookkeeping, `tributary_*` such as `tributary_conflicts`,
/// which each replica writes locally) and SQLite's (`sqlite_*`). Clients may
/// read them, never write them, and their changes are never captured.
pub fn is_internal_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(INTERNAL_PREFIX)
        || lower.starts_with("tributary_")
        || lower.starts_with("sqlite_")
}

/// `"k1" IS ?n AND "k2" IS ?m` over a row's key columns, pushing the
/// values (missing ones as NULL) onto `params`, numbered after what is
/// there already. `IS`, so a NULL matches a NULL as a changeset does.
pub fn key_where<'c, 'v>(
    params: &mut Vec<SqlValue>,
    key: impl IntoIterator<Item = (&'c str, Option<&'v Value>)>,
) -> String {
    let mut parts = Vec::new();
    for (c, v) in key {
        params.push(v.map_or(SqlValue::Null, to_sql_value));
        parts.push(format!("{} IS ?{}", quote_ident(c), params.len()));
    }
    parts.join(" AND ")
}

/// The row with primary key `key` (values in key-column order), every
/// column in table order, or `None` when there is none.
pub fn read_row<'a>(
    conn: &Connection,
    info: &TableInfo,
    key: impl IntoIterator<Item = Option<&'a Value>>,
) -> rusqlite::Result<Option<Vec<Value>>> {
    let mut params = Vec::new();
    let cols: Vec<String> = info.columns.iter().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {}",
        cols.join(", "),
        quote_ident(&info.name),
        key_where(&mut params, info.pk.iter().map(String::as_str).zip(key))
    );
    conn.prepare_cached(&sql)?
        .query_row(params_from_iter(params.iter()), |r| {
            (0..info.columns.len())
                .map(|i| r.get_ref(i).map(from_value_ref))
                .collect()
        })
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_tables_are_one_rule() {
        for t in [
            "_tributary_rows",
            "tributary_conflicts",
            "TRIBUTARY_REPLICAS",
            "sqlite_sequence",
        ] {
            assert!(is_internal_table(t), "{t}");
        }
        for t in ["accounts", "my_tributary_x"] {
            assert!(!is_internal_table(t), "{t}");
        }
    }

    #[test]
    fn reads_a_row_by_composite_key() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE t (a INTEGER, b TEXT, v REAL, PRIMARY KEY (a, b));
             INSERT INTO t VALUES (1, 'x', 1.5), (1, 'y', 2.5);",
        )
        .expect("schema");
        let info = crate::schema::table_info(&conn, "t")
            .expect("info")
            .expect("table");
        let (a, y) = (Value::Integer(1), Value::Text("y".into()));
        let row = read_row(&conn, &info, [Some(&a), Some(&y)]).expect("read");
        assert_eq!(row, Some(vec![a.clone(), y, Value::Real(2.5)]));
        let z = Value::Text("z".into());
        assert_eq!(
            read_row(&conn, &info, [Some(&a), Some(&z)]).expect("read"),
            None
        );
        assert_eq!(
            read_row(&conn, &info, [Some(&a), None]).expect("read"),
            None
        );
    }
}
