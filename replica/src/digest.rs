//! Table digests for `tributary verify`: what a replica's user tables hold,
//! reduced to one 128-bit digest per table and per key bucket, so replicas
//! compare with a few kilobytes and a difference narrows to its rows.
//!
//! Each row hashes (SipHash-1-3, 128 bits, fixed keys: the same on every
//! machine and version) its values in column order with a type tag, so
//! `1`, `1.0` and `'1'` differ. A row's bucket is a hash of its primary
//! key alone, so a row whose values differ lands in the same bucket on
//! every replica. A bucket's digest is the wrapping sum of its rows'
//! hashes (order-free: no sort); a table's is its row count, its columns
//! and its buckets' digests. Tributary's own tables are left out (each
//! replica writes `tributary_conflicts` and its bookkeeping locally).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::rows::is_internal_table;
use crate::schema::{quote_ident, table_info};

/// Key buckets per table: a difference in a table of a million rows
/// narrows to ~250 rows in one pass.
pub const BUCKETS: u32 = 4096;

/// One table of one replica, digested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    pub table: String,
    /// Column names in table order (a schema difference shows here).
    pub columns: Vec<String>,
    pub rows: u64,
    pub digest: u128,
    /// Digest per non-empty key bucket.
    pub buckets: BTreeMap<u32, u128>,
}

/// One row of a bucket drilled into: its key and values as JSON objects
/// (column → value; blobs as `\x…` hex) and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDigest {
    pub bucket: u32,
    pub key: String,
    pub hash: u128,
    pub row: String,
}

/// The user tables of a replica file, by name.
pub fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name COLLATE BINARY",
    )?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for n in names {
        let n = n?;
        if !is_internal_table(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Scans `table` once: its digest and its buckets' digests.
pub fn table_digest(conn: &Connection, table: &str) -> rusqlite::Result<TableDigest> {
    let mut buckets: BTreeMap<u32, u128> = BTreeMap::new();
    let mut rows = 0u64;
    let columns = scan(conn, table, |bucket, hash, _| {
        let b = buckets.entry(bucket).or_default();
        *b = b.wrapping_add(hash);
        rows += 1;
        Ok(())
    })?;
    let mut h = SipHasher13::new_with_keys(KEY0, KEY1);
    h.write_u64(rows);
    for c in &columns {
        write_bytes(&mut h, c.as_bytes());
    }
    for (b, d) in &buckets {
        h.write_u32(*b);
        h.write_u128(*d);
    }
    Ok(TableDigest {
        table: table.to_owned(),
        columns,
        rows,
        digest: h.finish128().as_u128(),
        buckets,
    })
}

/// Every row of `table` in the given buckets, with its key, hash and values.
pub fn bucket_rows(
    conn: &Connection,
    table: &str,
    wanted: &BTreeSet<u32>,
) -> rusqlite::Result<Vec<RowDigest>> {
    let mut out = Vec::new();
    scan(conn, table, |bucket, hash, row| {
        if wanted.contains(&bucket) {
            let (key, values) = row();
            out.push(RowDigest {
                bucket,
                key,
                hash,
                row: values,
            });
        }
        Ok(())
    })?;
    Ok(out)
}

const KEY0: u64 = 0x7472_6962_7574_6172; // "tributar"
const KEY1: u64 = 0x7920_7665_7269_6679; // "y verify"

/// Calls `each(bucket, row hash, render)` for every row of `table`;
/// `render()` gives the row's key and values as JSON. Returns the columns.
fn scan(
    conn: &Connection,
    table: &str,
    mut each: impl FnMut(u32, u128, &dyn Fn() -> (String, String)) -> rusqlite::Result<()>,
) -> rusqlite::Result<Vec<String>> {
    let info = table_info(conn, table)?.ok_or_else(|| {
        rusqlite::Error::InvalidParameterName(format!("table {table:?} does not exist"))
    })?;
    let cols: Vec<String> = info.columns.iter().map(|c| quote_ident(c)).collect();
    let key_idx: Vec<usize> = if info.pk.is_empty() {
        Vec::new()
    } else {
        info.pk
            .iter()
            .filter_map(|k| info.columns.iter().position(|c| c == k))
            .collect()
    };
    // A table without a declared key (made outside Tributary) is keyed by rowid.
    let rowid = key_idx.is_empty();
    let sql = format!(
        "SELECT {}{} FROM {}",
        cols.join(", "),
        if rowid { ", rowid" } else { "" },
        quote_ident(table)
    );
    let mut stmt = conn.prepare(&sql)?;
    let n = info.columns.len();
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let mut row_h = SipHasher13::new_with_keys(KEY0, KEY1);
        for i in 0..n {
            write_value(&mut row_h, r.get_ref(i)?);
        }
        let mut key_h = SipHasher13::new_with_keys(KEY1, KEY0);
        if rowid {
            write_value(&mut key_h, r.get_ref(n)?);
        } else {
            for &i in &key_idx {
                write_value(&mut key_h, r.get_ref(i)?);
            }
        }
        let bucket = (key_h.finish128().as_u128() % u128::from(BUCKETS)) as u32;
        let render = || {
            let key = if rowid {
                json_object(&["rowid".to_owned()], |_| r.get_ref(n))
            } else {
                let names: Vec<String> = key_idx.iter().map(|&i| info.columns[i].clone()).collect();
                json_object(&names, |j| r.get_ref(key_idx[j]))
            };
            (key, json_object(&info.columns, |i| r.get_ref(i)))
        };
        each(bucket, row_h.finish128().as_u128(), &render)?;
    }
    Ok(info.columns)
}

fn write_bytes(h: &mut SipHasher13, b: &[u8]) {
    h.write_u64(b.len() as u64);
    h.write(b);
}

fn write_value(h: &mut SipHasher13, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => h.write_u8(0),
        ValueRef::Integer(i) => {
            h.write_u8(1);
            h.write_i64(i);
        }
        ValueRef::Real(f) => {
            h.write_u8(2);
            h.write_u64(f.to_bits());
        }
        ValueRef::Text(t) => {
            h.write_u8(3);
            write_bytes(h, t);
        }
        ValueRef::Blob(b) => {
            h.write_u8(4);
            write_bytes(h, b);
        }
    }
}

/// `{"col": value, …}` for display; a value that cannot be read shows as null.
fn json_object<'a>(
    names: &[String],
    get: impl Fn(usize) -> rusqlite::Result<ValueRef<'a>>,
) -> String {
    let mut m = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        let v = match get(i) {
            Ok(ValueRef::Integer(i)) => serde_json::Value::from(i),
            Ok(ValueRef::Real(f)) => serde_json::Number::from_f64(f)
                .map_or_else(|| serde_json::Value::from(f.to_string()), Into::into),
            Ok(ValueRef::Text(t)) => serde_json::Value::from(String::from_utf8_lossy(t)),
            Ok(ValueRef::Blob(b)) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                serde_json::Value::from(format!("\\x{hex}"))
            }
            Ok(ValueRef::Null) | Err(_) => serde_json::Value::Null,
        };
        m.insert(name.clone(), v);
    }
    serde_json::Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(rows: &str) -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch(&format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n REAL);
             CREATE TABLE tributary_conflicts (x);
             CREATE TABLE _tributary_rows (x);
             {rows}"
        ))
        .expect("schema");
        c
    }

    #[test]
    fn equal_rows_give_equal_digests_in_any_insert_order() {
        let a = db("INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL);");
        let b = db("INSERT INTO t VALUES (2, 'b', NULL), (1, 'a', 1.5);");
        assert_eq!(user_tables(&a).expect("tables"), vec!["t".to_owned()]);
        assert_eq!(
            table_digest(&a, "t").expect("a"),
            table_digest(&b, "t").expect("b")
        );
    }

    #[test]
    fn a_changed_value_changes_one_bucket_and_is_found_by_key() {
        let mut inserts = String::new();
        for i in 0..2000 {
            inserts.push_str(&format!("INSERT INTO t VALUES ({i}, 'v{i}', {i}.5);"));
        }
        let a = db(&inserts);
        let b = db(&inserts);
        // Same bytes, different type: must differ.
        b.execute("UPDATE t SET v = CAST(v AS BLOB) WHERE id = 777", [])
            .expect("corrupt");
        let (da, db_) = (
            table_digest(&a, "t").expect("a"),
            table_digest(&b, "t").expect("b"),
        );
        assert_eq!(da.rows, db_.rows);
        assert_ne!(da.digest, db_.digest);
        let differing: BTreeSet<u32> = da
            .buckets
            .iter()
            .filter(|(k, v)| db_.buckets.get(k) != Some(v))
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(differing.len(), 1);
        let ra = bucket_rows(&a, "t", &differing).expect("rows a");
        let rb = bucket_rows(&b, "t", &differing).expect("rows b");
        let diff: Vec<_> = ra
            .iter()
            .filter(|x| !rb.iter().any(|y| y.key == x.key && y.hash == x.hash))
            .collect();
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].key, r#"{"id":777}"#);
        assert_eq!(diff[0].row, r#"{"id":777,"n":777.5,"v":"v777"}"#);
        assert!(
            rb.iter()
                .any(|y| y.key == diff[0].key && y.row.contains(r#""v":"\\x76373737""#))
        );
    }

    #[test]
    fn composite_text_keys_and_tables_without_a_key_are_compared_by_key() {
        let make = |v: &str| {
            let c = Connection::open_in_memory().expect("open");
            c.execute_batch(&format!(
                "CREATE TABLE pairs (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
                 INSERT INTO pairs VALUES ('x', 1, 'p'), ('x', 2, '{v}'), ('y', 1, 'r');
                 CREATE TABLE loose (v TEXT);
                 INSERT INTO loose VALUES ('a'), ('b');"
            ))
            .expect("schema");
            c
        };
        let (a, b) = (make("q"), make("Q"));
        assert_eq!(
            table_digest(&a, "loose").expect("a"),
            table_digest(&b, "loose").expect("b")
        );
        let (da, db_) = (
            table_digest(&a, "pairs").expect("a"),
            table_digest(&b, "pairs").expect("b"),
        );
        let differing: BTreeSet<u32> = da
            .buckets
            .iter()
            .filter(|(k, v)| db_.buckets.get(k) != Some(v))
            .map(|(k, _)| *k)
            .collect();
        let rows = bucket_rows(&b, "pairs", &differing).expect("rows");
        let hit: Vec<_> = rows.iter().filter(|r| r.row.contains("\"Q\"")).collect();
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].key, r#"{"a":"x","b":2}"#);
        let loose = bucket_rows(&a, "loose", &(0..BUCKETS).collect()).expect("rows");
        assert!(
            loose.iter().all(|r| r.key.starts_with(r#"{"rowid":"#)),
            "{loose:?}"
        );
    }

    #[test]
    fn a_missing_row_changes_the_count() {
        let a = db("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2);");
        let b = db("INSERT INTO t VALUES (1, 'a', 1);");
        let (da, db_) = (
            table_digest(&a, "t").expect("a"),
            table_digest(&b, "t").expect("b"),
        );
        assert_eq!((da.rows, db_.rows), (2, 1));
        assert_ne!(da.digest, db_.digest);
    }
}
