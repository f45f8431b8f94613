//! Generated keys: ranges of a table's integer key that `ids` records
//! reserve for one router each, so keys generated anywhere in the cluster
//! never collide.
//!
//! Every replica computes the same range for the same record, because it
//! depends only on the state at that log offset: the range starts after
//! the highest key reserved for the table before and after the highest key
//! the table holds (so keys a client gave explicitly are skipped), and at 1
//! for a new table.

use rusqlite::{Connection, OptionalExtension, params};
use wal_bus::Offset;

use crate::schema::{quote_ident, table_info};

/// A reserved range: keys `first .. first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBlock {
    pub first: i64,
    pub count: i64,
}

/// Records the range an `ids` record at `offset` reserves.
pub fn reserve(
    conn: &Connection,
    offset: Offset,
    table: &str,
    origin: &str,
    count: u64,
) -> rusqlite::Result<IdBlock> {
    let reserved: Option<i64> = conn
        .prepare_cached("SELECT max(first + count) FROM _tributary_ids WHERE tbl = ?1")?
        .query_row([table], |r| r.get(0))?;
    let mut held: i64 = 0;
    if let Some(info) = table_info(conn, table)?
        && let [key] = info.pk.as_slice()
    {
        // Text or real keys count as 0: only integer keys are generated.
        held = conn.query_row(
            &format!(
                "SELECT coalesce(max(CASE WHEN typeof({k}) = 'integer' THEN {k} END), 0) FROM {t}",
                k = quote_ident(key),
                t = quote_ident(table)
            ),
            [],
            |r| r.get(0),
        )?;
    }
    let first = reserved.unwrap_or(1).max(held.saturating_add(1)).max(1);
    // Near the top of the key space the range shrinks (to nothing at the
    // very top: the router then reports that the keys are exhausted).
    let count = i64::try_from(count)
        .unwrap_or(i64::MAX)
        .min(i64::MAX - first);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO _tributary_ids (log_offset, tbl, origin, first, count) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![offset as i64, table, origin, first, count])?;
    Ok(IdBlock { first, count })
}

/// The range the `ids` record at `offset` reserved, once applied here.
pub fn block_at(conn: &Connection, offset: Offset) -> rusqlite::Result<Option<IdBlock>> {
    conn.prepare_cached("SELECT first, count FROM _tributary_ids WHERE log_offset = ?1")?
        .query_row([offset as i64], |r| {
            Ok(IdBlock {
                first: r.get(0)?,
                count: r.get(1)?,
            })
        })
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_each_other_and_skip_explicit_keys() -> rusqlite::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let conn = crate::open_connection(&dir.path().join("r.db"))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")?;
        assert_eq!(
            reserve(&conn, 5, "t", "r1", 100)?,
            IdBlock {
                first: 1,
                count: 100
            }
        );
        assert_eq!(
            reserve(&conn, 6, "t", "r2", 100)?,
            IdBlock {
                first: 101,
                count: 100
            }
        );
        conn.execute_batch("INSERT INTO t VALUES (5000, 'explicit')")?;
        assert_eq!(
            reserve(&conn, 7, "t", "r1", 10)?,
            IdBlock {
                first: 5001,
                count: 10
            }
        );
        assert_eq!(
            block_at(&conn, 6)?,
            Some(IdBlock {
                first: 101,
                count: 100
            })
        );
        assert_eq!(block_at(&conn, 8)?, None);
        // Another table starts at 1; the top of the key space is refused.
        assert_eq!(reserve(&conn, 9, "u", "r1", 10)?.first, 1);
        conn.execute_batch(&format!("INSERT INTO t VALUES ({}, 'top')", i64::MAX))?;
        assert_eq!(reserve(&conn, 10, "t", "r1", 10)?.count, 0);
        Ok(())
    }
}
