//! The router's half of `tributary verify`: per session, apply holds on
//! this node's replicas and, once every replica stands at the same log
//! offset, one read transaction per replica opened there. Digests and rows
//! are read inside those transactions, so what verify compares is each
//! replica exactly as of the offset however long it takes and however
//! much the cluster writes meanwhile; the holds are released as soon as
//! the transactions are open (apply stops only for that moment).
//!
//! The steps are SQL functions (see `parse.rs`) so a remote node is
//! verified through its router like any client, with its authentication.

mod parse;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use replica::ApplyHold;
use replica::digest::{self, TableDigest};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::exec::ResultSet;
use crate::shared::Shared;
pub use parse::{VerifyOp, parse};

/// One session's verify run: its holds, then its snapshot.
#[derive(Default)]
pub struct VerifyState {
    holds: Vec<ApplyHold>,
    snapshot: Option<Arc<Snapshot>>,
}

/// Read transactions open at one offset, one per local replica.
struct Snapshot {
    at: u64,
    replicas: Vec<Local>,
}

struct Local {
    name: String,
    conn: Mutex<Connection>,
    /// Digests computed so far in this snapshot, by table.
    digests: Mutex<HashMap<String, TableDigest>>,
}

impl VerifyState {
    /// Runs one step; the result is a small table for `tributary verify`.
    pub async fn run(&mut self, shared: &Shared, op: VerifyOp) -> Result<ResultSet> {
        match op {
            VerifyOp::Hold { at } => Ok(self.hold(shared, at)),
            VerifyOp::Snapshot { at, timeout_ms } => {
                self.open_snapshot(shared, at, timeout_ms).await
            }
            VerifyOp::Tables => {
                let snap = self.snapshot()?;
                blocking(move || tables(&snap)).await
            }
            VerifyOp::Buckets { table } => {
                let snap = self.snapshot()?;
                blocking(move || buckets(&snap, &table)).await
            }
            VerifyOp::Rows { table, buckets } => {
                let snap = self.snapshot()?;
                blocking(move || rows(&snap, &table, &buckets.into_iter().collect())).await
            }
            VerifyOp::End => {
                *self = VerifyState::default();
                Ok(result(&[("released", "TEXT")], Vec::new()))
            }
        }
    }

    fn snapshot(&self) -> Result<Arc<Snapshot>> {
        self.snapshot.clone().ok_or_else(|| {
            Error::Verify("no snapshot is open in this session: call verify_snapshot first".into())
        })
    }

    /// Holds (or moves the holds of) every local replica at `at`.
    fn hold(&mut self, shared: &Shared, at: Option<u64>) -> ResultSet {
        let at = at.unwrap_or_else(|| shared.log.end());
        self.snapshot = None;
        if self.holds.len() != shared.all_replicas.len() {
            self.holds = shared.all_replicas.iter().map(|r| r.hold(at)).collect();
        } else {
            for h in &mut self.holds {
                h.move_to(at);
            }
        }
        let rows = shared
            .all_replicas
            .iter()
            .zip(&self.holds)
            .map(|(r, h)| {
                vec![
                    SqlValue::Text(r.name.clone()),
                    SqlValue::Integer(h.at() as i64),
                    SqlValue::Integer(r.applied() as i64),
                ]
            })
            .collect();
        result(
            &[
                ("replica", "TEXT"),
                ("held_at", "INTEGER"),
                ("applied", "INTEGER"),
            ],
            rows,
        )
    }

    /// Waits for every replica to stand at `at`, opens a read transaction
    /// on each, then releases the holds.
    async fn open_snapshot(
        &mut self,
        shared: &Shared,
        at: u64,
        timeout_ms: u64,
    ) -> Result<ResultSet> {
        if self.holds.is_empty() {
            return Err(Error::Verify(
                "no replica is held in this session: call verify_hold first".into(),
            ));
        }
        if let Some(h) = self.holds.iter().find(|h| h.at() != at) {
            return Err(Error::Verify(format!(
                "a replica is held at offset {}, not {at}: hold every replica at {at} first",
                h.at()
            )));
        }
        let timeout = Duration::from_millis(timeout_ms);
        let mut replicas = Vec::new();
        let mut rows = Vec::new();
        for (r, h) in shared.all_replicas.iter().zip(&self.holds) {
            let reached = h.reached(timeout).await?;
            let path = r.path.clone();
            let name = r.name.clone();
            let conn = blocking(move || open_at(&path, &name, reached)).await?;
            rows.push(vec![
                SqlValue::Text(r.name.clone()),
                SqlValue::Integer(at as i64),
            ]);
            replicas.push(Local {
                name: r.name.clone(),
                conn: Mutex::new(conn),
                digests: Mutex::default(),
            });
        }
        self.holds.clear();
        self.snapshot = Some(Arc::new(Snapshot { at, replicas }));
        tracing::info!(offset = at, "verify snapshot open; apply holds released");
        Ok(result(&[("replica", "TEXT"), ("offset", "INTEGER")], rows))
    }
}

/// A read-only connection in a read transaction that sees `path` as of
/// applied offset `expected` (checked: the transaction reads the offset).
fn open_at(path: &std::path::Path, name: &str, expected: u64) -> Result<Connection> {
    let sq = |doing| move |e| Error::sqlite(doing, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sq("opening a replica for verify"))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(sq("setting busy_timeout"))?;
    conn.execute_batch("BEGIN")
        .map_err(sq("beginning the verify read transaction"))?;
    // The first read fixes the transaction's snapshot.
    let applied =
        replica::applied_offset(&conn).map_err(sq("reading the applied offset for verify"))?;
    if applied != expected {
        return Err(Error::Verify(format!(
            "replica {name} reads applied offset {applied} where it was held at {expected}"
        )));
    }
    Ok(conn)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("verify task failed: {e}")))?
}

/// Digests every user table of every replica, the replicas in parallel.
fn tables(snap: &Snapshot) -> Result<ResultSet> {
    let per_replica: Vec<Result<Vec<TableDigest>>> = std::thread::scope(|s| {
        let handles: Vec<_> = snap
            .replicas
            .iter()
            .map(|l| {
                s.spawn(move || {
                    let conn = l.conn.lock().unwrap_or_else(|p| p.into_inner());
                    let names = digest::user_tables(&conn)
                        .map_err(|e| Error::sqlite("listing tables for verify", e))?;
                    let mut out = Vec::new();
                    for t in names {
                        let d = digest::table_digest(&conn, &t)
                            .map_err(|e| Error::sqlite("digesting a table", e))?;
                        l.digests
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(t, d.clone());
                        out.push(d);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("verify thread panicked".into())))
            })
            .collect()
    });
    let mut rows = Vec::new();
    for (l, digests) in snap.replicas.iter().zip(per_replica) {
        for d in digests? {
            rows.push(vec![
                SqlValue::Text(l.name.clone()),
                SqlValue::Text(d.table.clone()),
                SqlValue::Text(serde_json::to_string(&d.columns).unwrap_or_default()),
                SqlValue::Integer(d.rows as i64),
                SqlValue::Text(format!("{:032x}", d.digest)),
                SqlValue::Integer(snap.at as i64),
            ]);
        }
    }
    Ok(result(
        &[
            ("replica", "TEXT"),
            ("table_name", "TEXT"),
            ("columns", "TEXT"),
            ("row_count", "INTEGER"),
            ("digest", "TEXT"),
            ("offset", "INTEGER"),
        ],
        rows,
    ))
}

/// The bucket digests of `table` on every replica (a replica without the
/// table has none).
fn buckets(snap: &Snapshot, table: &str) -> Result<ResultSet> {
    let mut rows = Vec::new();
    for l in &snap.replicas {
        // Connection first, then cache: the order `tables` takes them in.
        let conn = l.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut cache = l.digests.lock().unwrap_or_else(|p| p.into_inner());
        if !cache.contains_key(table) {
            if !digest::user_tables(&conn)
                .map_err(|e| Error::sqlite("listing tables for verify", e))?
                .iter()
                .any(|t| t == table)
            {
                continue;
            }
            let d = digest::table_digest(&conn, table)
                .map_err(|e| Error::sqlite("digesting a table", e))?;
            cache.insert(table.to_owned(), d);
        }
        if let Some(d) = cache.get(table) {
            for (b, v) in &d.buckets {
                rows.push(vec![
                    SqlValue::Text(l.name.clone()),
                    SqlValue::Integer(i64::from(*b)),
                    SqlValue::Text(format!("{v:032x}")),
                ]);
            }
        }
    }
    Ok(result(
        &[
            ("replica", "TEXT"),
            ("bucket", "INTEGER"),
            ("digest", "TEXT"),
        ],
        rows,
    ))
}

/// Every row of `table` in `wanted` buckets, on every replica.
fn rows(snap: &Snapshot, table: &str, wanted: &BTreeSet<u32>) -> Result<ResultSet> {
    let mut rows = Vec::new();
    for l in &snap.replicas {
        let conn = l.conn.lock().unwrap_or_else(|p| p.into_inner());
        if !digest::user_tables(&conn)
            .map_err(|e| Error::sqlite("listing tables for verify", e))?
            .iter()
            .any(|t| t == table)
        {
            continue;
        }
        for r in digest::bucket_rows(&conn, table, wanted)
            .map_err(|e| Error::sqlite("reading rows for verify", e))?
        {
            rows.push(vec![
                SqlValue::Text(l.name.clone()),
                SqlValue::Integer(i64::from(r.bucket)),
                SqlValue::Text(r.key),
                SqlValue::Text(format!("{:032x}", r.hash)),
                SqlValue::Text(r.row),
            ]);
        }
    }
    Ok(result(
        &[
            ("replica", "TEXT"),
            ("bucket", "INTEGER"),
            ("key", "TEXT"),
            ("hash", "TEXT"),
            ("row_values", "TEXT"),
        ],
        rows,
    ))
}

fn result(columns: &[(&str, &str)], rows: Vec<Vec<SqlValue>>) -> ResultSet {
    ResultSet {
        columns: columns.iter().map(|(c, _)| (*c).to_owned()).collect(),
        decl_types: columns.iter().map(|(_, t)| Some((*t).to_owned())).collect(),
        rows,
    }
}
