//! The router's error type, and how each error maps to a PostgreSQL SQLSTATE.

use pgwire::error::{ErrorInfo, PgWireError};

/// Errors a client can get back; each carries the SQLSTATE that fits it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("{what} is not supported: {why}")]
    Unsupported { what: String, why: String },
    #[error("statement is {size} bytes, over the router's max_statement_bytes of {limit}")]
    StatementTooLarge { size: usize, limit: usize },
    #[error(
        "result has more than the router's max_result_rows of {limit} rows; add a LIMIT or raise [router] max_result_rows"
    )]
    ResultTooLarge { limit: usize },
    #[error("unrecognized setting {name:?}; allowed: {allowed}")]
    UnknownSetting { name: String, allowed: String },
    #[error("invalid value {value:?} for {name}; allowed: {allowed}")]
    InvalidSetting {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    TxnAborted,
    #[error("{0} cannot run inside a transaction block")]
    NotInTransactionBlock(String),
    #[error("{0} can only be used in transaction blocks")]
    NoActiveTransaction(&'static str),
    #[error("savepoint \"{0}\" does not exist")]
    NoSuchSavepoint(String),
    #[error("cursor \"{0}\" does not exist")]
    NoSuchCursor(String),
    #[error("prepared statement \"{0}\" already exists")]
    DuplicatePrepared(String),
    #[error("prepared statement \"{0}\" does not exist")]
    NoSuchPrepared(String),
    #[error(
        "wrong number of parameters for prepared statement \"{name}\": expected {expected}, got {got}"
    )]
    WrongParameterCount {
        name: String,
        expected: usize,
        got: usize,
    },
    #[error("COPY data: {0}")]
    BadCopyData(String),
    #[error("COPY data is over {limit} bytes; split it into several COPY statements")]
    CopyTooLarge { limit: usize },
    #[error("COPY from stdin failed: {0}")]
    CopyFailed(String),
    #[error(
        "the statement's row changes reach {bytes} bytes after {rows} rows, over the log's max_record_bytes of {limit}: one transaction is one log record; split it into smaller transactions (or raise log.max_record_bytes)"
    )]
    TransactionTooLarge {
        rows: usize,
        bytes: usize,
        limit: usize,
    },
    /// A foreign key broken by a write, in PostgreSQL's words.
    #[error("{message}")]
    ForeignKeyViolation { message: String, detail: String },
    #[error("{context}: {source}")]
    Sqlite {
        context: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "write is durable in the log at offset {offset} and will be applied, but ack mode {mode} needs {needed} replica(s) to apply it and within {waited_ms} ms {} did (applied: {}; not yet: {})",
        applied.len(),
        if applied.is_empty() { "none".to_owned() } else { applied.join(", ") },
        if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }
    )]
    AckTimeout {
        offset: u64,
        mode: &'static str,
        needed: usize,
        /// Replicas counted for the mode that applied it.
        applied: Vec<String>,
        /// Replicas counted for the mode that had not.
        missing: Vec<String>,
        waited_ms: u64,
    },
    #[error(
        "null value in column \"{column}\" of relation \"{table}\" violates not-null constraint: a replicated row needs its whole primary key"
    )]
    NullKey { table: String, column: String },
    #[error(
        "generated keys of table {table} are exhausted (the largest 64-bit integer key is in use)"
    )]
    KeysExhausted { table: String },
    #[error(
        "deadlock detected: session {session} waits for the transaction of session {holder}, which waits (directly or not) for session {session}"
    )]
    Deadlock { session: u64, holder: u64 },
    #[error(
        "could not obtain a row lock within {waited_ms} ms: the rows are held by the open transaction of session {holder} (lock_timeout, or router.lock_timeout_ms by default)"
    )]
    LockTimeout { holder: u64, waited_ms: u64 },
    #[error("log append failed: {0}")]
    Log(#[from] wal_bus::Error),
    #[error(transparent)]
    Replica(#[from] replica::Error),
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("parameter ${index} ({type_name}): {reason}")]
    BadParameter {
        index: usize,
        type_name: String,
        sqlstate: &'static str,
        reason: String,
    },
    #[error("column {column} of {table} ({type_name}): {reason}")]
    InvalidValue {
        table: String,
        column: String,
        type_name: String,
        sqlstate: &'static str,
        reason: String,
    },
    #[error("could not serialize access: {0}")]
    SerializationFailure(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{table} is maintained by Tributary and is read-only")]
    ReadOnlyTable { table: String },
    #[error("invalid value for set column {table}.{column}: {reason}")]
    InvalidSetValue {
        table: String,
        column: String,
        reason: String,
    },
    #[error("invalid conflict policy: {0}")]
    Policy(#[from] resolver::Error),
    #[error("{function}: {reason}")]
    VerifyArgument { function: String, reason: String },
    /// A verify step out of order, or a replica that cannot be held.
    #[error("verify: {0}")]
    Verify(String),
    /// An idempotency key used in a way that cannot keep its promise.
    #[error("idempotency key: {0}")]
    IdempotencyKey(String),
    /// A peer router refused or failed a forwarded part of a statement.
    #[error("peer {peer}: {message}")]
    Peer {
        peer: String,
        sqlstate: &'static str,
        message: String,
    },
    /// A peer's write gate stayed taken: the statement runs again.
    #[error("a peer router was busy; run the statement again")]
    PeerBusy,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn sqlite(context: &'static str, source: rusqlite::Error) -> Self {
        Error::Sqlite { context, source }
    }

    /// The SQLSTATE a PostgreSQL client sees for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax(_) => "42601",
            Error::Unsupported { .. } => "0A000",
            Error::StatementTooLarge { .. } | Error::ResultTooLarge { .. } => "54000",
            Error::UnknownSetting { .. } => "42704",
            Error::InvalidSetting { .. } => "22023",
            Error::TxnAborted => "25P02",
            Error::NotInTransactionBlock(_) => "25001",
            Error::NoActiveTransaction(_) => "25P01",
            Error::NoSuchSavepoint(_) => "3B001",
            Error::NoSuchCursor(_) => "34000",
            Error::BadCopyData(_) => "22P04",
            Error::DuplicatePrepared(_) => "42P05",
            Error::NoSuchPrepared(_) => "26000",
            Error::WrongParameterCount { .. } => "42601",
            Error::CopyTooLarge { .. } => "54000",
            Error::CopyFailed(_) => "57014",
            Error::Sqlite { source, .. } => sqlite_state(source),
            Error::ForeignKeyViolation { .. } => "23503",
            Error::AckTimeout { .. } => "57014",
            Error::Replica(e) => replica_state(e),
            Error::Config(_) => "F0000",
            Error::TransactionTooLarge { .. } => "54000",
            // Program limit exceeded, as PostgreSQL says of oversized values.
            Error::Log(wal_bus::Error::RecordTooLarge { .. }) => "54000",
            Error::Log(_) => "58030",
            Error::BadParameter { sqlstate, .. } | Error::InvalidValue { sqlstate, .. } => sqlstate,
            Error::SerializationFailure(_) => "40001",
            Error::OutOfRange(_) => "22003",
            Error::Deadlock { .. } => "40P01",
            Error::NullKey { .. } => "23502",
            Error::KeysExhausted { .. } => "2200H",
            Error::LockTimeout { .. } => "55P03",
            Error::ReadOnlyTable { .. } => "42501",
            Error::InvalidSetValue { .. } => "22P02",
            Error::Policy(_) => "22023",
            Error::VerifyArgument { .. } => "22023",
            Error::Verify(_) => "55000",
            Error::IdempotencyKey(_) => "55000",
            Error::Peer { sqlstate, .. } => sqlstate,
            Error::PeerBusy => "40001",
            Error::Internal(_) => "XX000",
        }
    }

    pub fn to_pgwire(&self) -> PgWireError {
        PgWireError::UserError(Box::new(self.to_error_info()))
    }

    pub fn to_error_info(&self) -> ErrorInfo {
        let mut info = ErrorInfo::new(
            "ERROR".to_owned(),
            self.sqlstate().to_owned(),
            self.to_string(),
        );
        if let Error::ForeignKeyViolation { detail, .. } = self {
            info.detail = Some(detail.clone());
        }
        info
    }
}

/// A replica error reaching a client: a wait that timed out is a
/// cancelled statement (57014) as in PostgreSQL; a stopped replica is an
/// I/O-class failure (58000); SQLite errors keep their own codes.
fn replica_state(e: &replica::Error) -> &'static str {
    match e {
        replica::Error::WaitTimeout { .. } => "57014",
        replica::Error::Stopped { .. } => "58000",
        replica::Error::Sqlite { source, .. } => sqlite_state(source),
        _ => "XX000",
    }
}

fn sqlite_state(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let msg = msg.as_deref().unwrap_or("");
            match f.code {
                ErrorCode::ConstraintViolation => {
                    if msg.contains("UNIQUE") || msg.contains("PRIMARY KEY") {
                        "23505"
                    } else if msg.contains("NOT NULL") {
                        "23502"
                    } else if msg.contains("FOREIGN KEY") {
                        "23503"
                    } else if msg.contains("CHECK") {
                        "23514"
                    } else {
                        "23000"
                    }
                }
                ErrorCode::TypeMismatch => "42804",
                ErrorCode::TooBig => "54000",
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "55P03",
                ErrorCode::Unknown => generic_state(msg),
                _ => "XX000",
            }
        }
        rusqlite::Error::SqlInputError { msg, .. } => generic_state(msg),
        rusqlite::Error::InvalidParameterCount(..) | rusqlite::Error::InvalidParameterName(_) => {
            "08P01"
        }
        _ => "XX000",
    }
}

/// Codes Tributary's own SQLite functions raise, as `SQLSTATE xxxxx: …`.
const FUNCTION_STATES: &[&str] = &[
    "42P16", "42P01", "42703", "23502", "23505", "42704", "2201B", "22P02", "22003", "22007",
    "22008", "22021", "42846", "0A000", "23503", "42830", "2BP01", "22023", "54000",
];

fn generic_state(msg: &str) -> &'static str {
    if let Some(code) = msg
        .split("SQLSTATE ")
        .nth(1)
        .and_then(|rest| rest.get(..5))
        .and_then(|c| FUNCTION_STATES.iter().find(|s| **s == c))
    {
        code
    } else if msg.contains("no such table") {
        "42P01"
    } else if msg.contains("no such column") {
        "42703"
    } else if msg.contains("no such function") {
        "42883"
    } else if msg.contains("already exists") {
        "42P07"
    } else if msg.contains("syntax error")
        || msg.contains("unrecognized token")
        || msg.contains("incomplete input")
    {
        "42601"
    } else {
        "42000"
    }
}
