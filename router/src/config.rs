//! The router's sections of the node configuration: `[replication]` (when a
//! write is acknowledged) and `[router]` (the PostgreSQL endpoints). The
//! whole file is assembled and loaded by the `tributary` crate.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// When a write is acknowledged to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// Once the record is durable in the log.
    Async,
    /// And at least `semi_sync_k` replicas applied it.
    SemiSync,
    /// And every replica applied it.
    Sync,
}

impl AckMode {
    pub const ALLOWED: &'static str = "'async', 'semi-sync', 'sync'";

    pub fn as_str(&self) -> &'static str {
        match self {
            AckMode::Async => "async",
            AckMode::SemiSync => "semi-sync",
            AckMode::Sync => "sync",
        }
    }
}

impl FromStr for AckMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "async" => Ok(AckMode::Async),
            "semi-sync" | "semi_sync" | "semisync" => Ok(AckMode::SemiSync),
            "sync" => Ok(AckMode::Sync),
            _ => Err(()),
        }
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// The router's replica as it is now.
    Eventual,
    /// Sees every write this session made.
    Session,
    /// At most `max_staleness_ms` behind the log.
    Bounded,
    /// Sees everything in the log when the query arrived.
    Strong,
}

impl ReadConsistency {
    pub const ALLOWED: &'static str = "'eventual', 'session', 'bounded', 'strong'";

    pub fn as_str(&self) -> &'static str {
        match self {
            ReadConsistency::Eventual => "eventual",
            ReadConsistency::Session => "session",
            ReadConsistency::Bounded => "bounded",
            ReadConsistency::Strong => "strong",
        }
    }
}

impl FromStr for ReadConsistency {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "eventual" => Ok(ReadConsistency::Eventual),
            "session" => Ok(ReadConsistency::Session),
            "bounded" => Ok(ReadConsistency::Bounded),
            "strong" => Ok(ReadConsistency::Strong),
            _ => Err(()),
        }
    }
}

/// What to do when the ack condition is not met in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAckTimeout {
    /// Fail the statement (the write stays in the log and will apply).
    Error,
    /// Reply as async with a NOTICE.
    Degrade,
}

/// `[replication]`: acknowledgement of writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Default ack mode: `async`, `semi-sync` or `sync`.
    pub ack: AckMode,
    /// Replicas that must apply a write in semi-sync mode.
    pub semi_sync_k: usize,
    /// How long semi-sync and sync wait for replicas.
    pub ack_timeout_ms: u64,
    /// `error` or `degrade` (reply as async with a NOTICE) on timeout.
    pub on_ack_timeout: OnAckTimeout,
    /// A replica behind a write that has acked nothing for this long leaves
    /// the sync wait set (and semi-sync's count) until it catches up.
    pub replica_silent_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            ack: AckMode::Async,
            semi_sync_k: 1,
            ack_timeout_ms: 5_000,
            on_ack_timeout: OnAckTimeout::Error,
            replica_silent_ms: 2_000,
        }
    }
}

/// `[router]`: the PostgreSQL endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Address of the first router; router i listens on port + i.
    pub listen: String,
    /// Number of routers (write endpoints), each bound to a replica.
    pub routers: usize,
    /// Default read consistency.
    pub read_consistency: ReadConsistency,
    /// Default staleness bound for `bounded` reads.
    pub max_staleness_ms: u64,
    /// How long a read waits for its consistency level before failing.
    pub read_timeout_ms: u64,
    /// How long a write waits for a row held by another session's open
    /// transaction before failing with 55P03; 0 waits until that
    /// transaction ends (PostgreSQL's `lock_timeout` default).
    pub lock_timeout_ms: u64,
    /// Statements longer than this are refused.
    pub max_statement_bytes: usize,
    /// Threads serving reads per router.
    pub read_threads: usize,
    /// Whether `tributary node` runs a router (a replica-only node if false).
    pub enabled: bool,
    /// Connections one router accepts at once; more are refused (53300).
    pub max_connections: usize,
    /// Rows one statement may return; a larger result is an error (54000).
    pub max_result_rows: usize,
    /// Statements taking at least this long are logged and kept in the
    /// `tributary_slow_queries` view; 0 turns the slow-query log off.
    pub slow_query_ms: u64,
    /// Whether the slow-query log shows a statement's parameters.
    pub slow_query_params: bool,
    /// How many slow queries the view keeps per router (the newest).
    pub slow_query_keep: usize,
    /// How long a transaction's idempotency key is remembered (seconds
    /// after its commit); a retry within it gets the original outcome.
    pub idempotency_window_s: u64,
    /// Whether reads go to the least lagged, least busy of the node's
    /// replicas (never one behind the router's own), or only to its own.
    pub read_balance: bool,
    /// `[router.auth]`: who may connect.
    pub auth: AuthConfig,
    /// `[router.peers]`: replica name → the `host:port` of a router on the
    /// node that runs it. A router forwards the part of a statement that
    /// needs a shard group with no replica in its own process there.
    pub peers: std::collections::BTreeMap<String, String>,
    /// User (and password, for `scram-sha-256`) this router connects to
    /// its peers as.
    pub peer_user: String,
    pub peer_password: Option<String>,
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AuthMethod {
    /// Anyone who can reach the port (the default; routers listen on loopback).
    #[default]
    #[serde(rename = "trust")]
    Trust,
    /// SCRAM-SHA-256 against `[[router.auth.users]]`.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

/// `[router.auth]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// `[[router.auth.users]]`: `name` and `password`, a SCRAM-SHA-256
    /// verifier as printed by `tributary passwd NAME`.
    pub users: Vec<UserConfig>,
}

/// One user allowed to connect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            listen: "127.0.0.1:5433".into(),
            routers: 1,
            read_consistency: ReadConsistency::Session,
            max_staleness_ms: 1_000,
            read_timeout_ms: 5_000,
            lock_timeout_ms: 0,
            max_statement_bytes: 1 << 20,
            read_threads: 2,
            enabled: true,
            max_connections: 500,
            max_result_rows: 1_000_000,
            slow_query_ms: 0,
            slow_query_params: false,
            slow_query_keep: 100,
            idempotency_window_s: 86_400,
            read_balance: true,
            auth: AuthConfig::default(),
            peers: Default::default(),
            peer_user: "tributary".into(),
            peer_password: None,
        }
    }
}

/// A configuration value that parses but makes no sense: the key and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn bad(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

impl ReplicationConfig {
    /// Checks the section against the number of replicas acking writes.
    pub fn validate(&self, replicas: usize) -> Result<(), ConfigError> {
        if self.semi_sync_k == 0 || self.semi_sync_k > replicas {
            return Err(bad(
                "replication.semi_sync_k",
                format!(
                    "{} must be between 1 and the number of replicas ({replicas})",
                    self.semi_sync_k
                ),
            ));
        }
        if self.ack_timeout_ms == 0 {
            return Err(bad("replication.ack_timeout_ms", "must be > 0"));
        }
        Ok(())
    }
}

impl RouterConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(bad("router.max_connections", "must be at least 1"));
        }
        if self.max_result_rows == 0 {
            return Err(bad("router.max_result_rows", "must be at least 1"));
        }
        if self.slow_query_keep == 0 {
            return Err(bad("router.slow_query_keep", "must be at least 1"));
        }
        if self.idempotency_window_s == 0 {
            return Err(bad("router.idempotency_window_s", "must be at least 1"));
        }
        if self.auth.method == AuthMethod::ScramSha256 {
            if self.auth.users.is_empty() {
                return Err(bad(
                    "router.auth.users",
                    "scram-sha-256 needs at least one [[router.auth.users]] (name, password from `tributary passwd NAME`)",
                ));
            }
            for u in &self.auth.users {
                if let Err(e) = u.password.parse::<crate::auth::Verifier>() {
                    return Err(bad(
                        "router.auth.users.password",
                        format!("user {:?}: {e}", u.name),
                    ));
                }
            }
        }
        if self.routers == 0 {
            return Err(bad("router.routers", "at least one router is needed"));
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "router.listen",
                format!(
                    "{:?} is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:5433)",
                    self.listen
                ),
            ));
        }
        if self.max_statement_bytes == 0 {
            return Err(bad("router.max_statement_bytes", "must be > 0"));
        }
        if self.read_threads == 0 {
            return Err(bad("router.read_threads", "must be > 0"));
        }
        Ok(())
    }
}
