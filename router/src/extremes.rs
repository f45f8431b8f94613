//! PostgreSQL's `greatest(…)` and `least(…)` as SQLite functions: NULL
//! arguments are ignored and the result is NULL only when all are (SQLite's
//! multi-argument `max`/`min` return NULL if any argument is). Values
//! compare as SQLite orders them: numbers by value (integers and reals
//! together), then text, then blobs.

use std::cmp::Ordering;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value, ValueRef};

fn rank(v: &ValueRef<'_>) -> u8 {
    match v {
        ValueRef::Null => 0,
        ValueRef::Integer(_) | ValueRef::Real(_) => 1,
        ValueRef::Text(_) => 2,
        ValueRef::Blob(_) => 3,
    }
}

fn compare(a: &ValueRef<'_>, b: &ValueRef<'_>) -> Ordering {
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(y),
        (ValueRef::Integer(x), ValueRef::Real(y)) => (*x as f64).total_cmp(y),
        (ValueRef::Real(x), ValueRef::Integer(y)) => x.total_cmp(&(*y as f64)),
        (ValueRef::Real(x), ValueRef::Real(y)) => x.total_cmp(y),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    for (name, want) in [("greatest", Ordering::Greater), ("least", Ordering::Less)] {
        conn.create_scalar_function(
            name,
            -1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            move |ctx| {
                let mut best: Option<ValueRef<'_>> = None;
                for i in 0..ctx.len() {
                    let v = ctx.get_raw(i);
                    if matches!(v, ValueRef::Null) {
                        continue;
                    }
                    if best.as_ref().is_none_or(|b| compare(&v, b) == want) {
                        best = Some(v);
                    }
                }
                Ok(best.map_or(Value::Null, replica::owned_value))
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_ignored_and_numbers_compare_by_value() {
        let c = Connection::open_in_memory().expect("open");
        register(&c).expect("register");
        let q = |sql: &str| -> String {
            c.query_row(sql, [], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Null => "NULL".to_owned(),
                    ValueRef::Integer(i) => i.to_string(),
                    ValueRef::Real(f) => f.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(_) => "blob".to_owned(),
                })
            })
            .expect("query")
        };
        assert_eq!(q("SELECT greatest(1, 3, 2)"), "3");
        assert_eq!(q("SELECT least(1, NULL, 0.5)"), "0.5");
        assert_eq!(q("SELECT greatest(NULL, 2)"), "2");
        assert_eq!(q("SELECT greatest(NULL, NULL)"), "NULL");
        assert_eq!(q("SELECT least('b', 'a', 'c')"), "a");
        assert_eq!(q("SELECT greatest(2, 10.5)"), "10.5");
    }
}
