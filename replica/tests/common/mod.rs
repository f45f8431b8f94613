//! Helpers the replica integration tests share: building records and rows,
//! starting and stopping an applier, waiting for it, reading `t` back.

#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use replica::ApplierOptions;
use rusqlite::Connection;
use tokio_util::sync::CancellationToken;
use wal_bus::{AckBoard, Change, Hlc, Log, Op, Record, RecordBody, Row, Value};

pub fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// An encoded record stamped `(wall_ns, 0)` by `origin`.
pub fn rec(id: impl Into<String>, origin: &str, wall_ns: u64, body: RecordBody) -> Vec<u8> {
    Record::new(id.into(), origin, Hlc::new(wall_ns, 0), body).encode()
}

/// An insert into `t (id, v)`.
pub fn ins(id: i64, v: i64) -> Change {
    Change {
        table: "t".into(),
        op: Op::Insert,
        key: row(&[("id", Value::Integer(id))]),
        before: None,
        after: Some(row(&[("id", Value::Integer(id)), ("v", Value::Integer(v))])),
    }
}

/// An update of `t (id, v)` from `before` to `after`.
pub fn upd(id: i64, before: i64, after: i64) -> Change {
    Change {
        table: "t".into(),
        op: Op::Update,
        key: row(&[("id", Value::Integer(id))]),
        before: Some(row(&[
            ("id", Value::Integer(id)),
            ("v", Value::Integer(before)),
        ])),
        after: Some(row(&[
            ("id", Value::Integer(id)),
            ("v", Value::Integer(after)),
        ])),
    }
}

/// A running applier and what stops it.
pub struct Running {
    pub handle: replica::ReplicaHandle,
    cancel: CancellationToken,
}

impl Running {
    pub fn state(&self) -> &Arc<replica::ReplicaState> {
        &self.handle.state
    }

    /// Cancels the apply loop and waits for its thread.
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::task::spawn_blocking(move || self.handle.join())
            .await
            .expect("join");
    }
}

/// Starts replica `name` on file `db`.
pub fn start(
    name: &str,
    db: &Path,
    log: &Arc<dyn Log>,
    acks: &Arc<AckBoard>,
    snapshots: Option<&Path>,
) -> replica::Result<Running> {
    let cancel = CancellationToken::new();
    let handle = replica::spawn_applier(ApplierOptions {
        name: name.to_owned(),
        path: db.to_path_buf(),
        log: log.clone(),
        acks: acks.clone(),
        clock: None,
        cancel: cancel.clone(),
        runtime: tokio::runtime::Handle::current(),
        snapshots: snapshots.map(Path::to_path_buf),
    })?;
    Ok(Running { handle, cancel })
}

/// A file log in `dir` whose first record creates `t (id, v)`, and acks.
pub async fn log_with_t(dir: &Path) -> (Arc<dyn Log>, Arc<AckBoard>) {
    let log: Arc<dyn Log> = Arc::new(
        wal_bus::FileLog::open(&dir.join("log"), &wal_bus::LogConfig::default()).expect("log"),
    );
    let ddl = RecordBody::Ddl {
        sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)".into(),
    };
    log.append(rec("d", "a", 1, ddl)).await.expect("append");
    (log, Arc::new(AckBoard::default()))
}

/// Waits until `name` has published an applied offset of at least `target`.
pub async fn wait_applied(acks: &AckBoard, name: &str, target: u64) {
    tokio::time::timeout(
        Duration::from_secs(30),
        acks.wait_until(|s| s.replicas.get(name).is_some_and(|a| a.applied >= target)),
    )
    .await
    .expect("replica caught up in time");
}

/// `(id, v)` of every row of `t`, by id.
pub fn id_v_rows(path: &Path) -> Vec<(i64, i64)> {
    let c = Connection::open(path).expect("open");
    let mut s = c
        .prepare("SELECT id, v FROM t ORDER BY id")
        .expect("prepare");
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}
