//! The one error type of the `replica` crate.

use std::path::PathBuf;

use wal_bus::Offset;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sqlite error on {path} while {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("record at log offset {offset} cannot be applied: {source}")]
    BadRecord {
        offset: Offset,
        #[source]
        source: wal_bus::Error,
    },
    #[error("record at log offset {offset} cannot be resolved: {source}")]
    Resolve {
        offset: Offset,
        #[source]
        source: resolver::Error,
    },
    #[error("replica {replica} stopped: {reason}")]
    Stopped { replica: String, reason: String },
    #[error(
        "replica {replica} did not apply up to log offset {target} within {waited_ms} ms (applied: {applied})"
    )]
    WaitTimeout {
        replica: String,
        target: Offset,
        applied: Offset,
        waited_ms: u64,
    },
    #[error("log error: {0}")]
    Log(#[from] wal_bus::Error),
    #[error("table {table:?} has no PRIMARY KEY; replicated tables need one")]
    NoPrimaryKey { table: String },
    #[error("table {table:?} does not exist")]
    NoSuchTable { table: String },
    #[error("change to {table:?} lacks primary-key column {column:?}")]
    MissingKey { table: String, column: String },
    #[error("{doing} {path}: {source}")]
    Storage {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error(
        "{path} belongs to another cluster ({found}), not this one ({expected}); refusing to use it"
    )]
    ForeignCluster {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(
        "replica {replica} cannot be rebuilt: the log starts at offset {log_start} and {}",
        match newest { Some(o) => format!("the newest snapshot covers only up to {o}"), None => "there is no snapshot".to_owned() }
    )]
    NoSnapshot {
        replica: String,
        log_start: Offset,
        newest: Option<Offset>,
    },
    #[error("invalid replica configuration: {key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// A placement record put this replica in a shard group whose rows it
    /// never held: it must be rebuilt from a snapshot of the group.
    #[error(
        "replica {replica} joined shard group {group} at log offset {offset} but holds none of its rows: stop the node, take a snapshot (`tributary snapshot`), move {path} aside and start the node again; the replica is rebuilt from the group's snapshot"
    )]
    JoinedGroup {
        replica: String,
        group: usize,
        offset: Offset,
        path: PathBuf,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the file and the action to a rusqlite error.
pub(crate) trait SqliteContext<T> {
    fn ctx(self, path: &std::path::Path, doing: &'static str) -> Result<T>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn ctx(self, path: &std::path::Path, doing: &'static str) -> Result<T> {
        self.map_err(|source| Error::Sqlite {
            path: path.to_path_buf(),
            doing,
            source,
        })
    }
}
