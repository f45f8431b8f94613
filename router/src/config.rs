//! Node configuration: one TOML file (`[log]`, `[replication]`, `[router]`,
//! `[[replica]]`), then `TRIBUTARY__SECTION__KEY=value` environment
//! overrides, then command-line flags; validated before anything starts,
//! naming the file, key and reason of the first problem.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use replica::ReplicaConfig;
use serde::{Deserialize, Serialize};
use wal_bus::LogConfig;

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
    /// `[router.auth]`: who may connect.
    pub auth: AuthConfig,
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
            auth: AuthConfig::default(),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` serving Prometheus text at `/metrics`; off when unset.
    pub listen: Option<String>,
}

/// The whole node configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id for `tributary node`: its router's origin name and
    /// its replica's default name. Unique in the cluster.
    pub node_id: String,
    /// Where logs and replica files live.
    pub data_dir: PathBuf,
    /// Number of replicas when no `[[replica]]` is listed.
    pub replicas: usize,
    pub log: LogConfig,
    pub replication: ReplicationConfig,
    pub router: RouterConfig,
    pub conflicts: resolver::ConflictsConfig,
    pub metrics: MetricsConfig,
    pub snapshots: SnapshotsConfig,
    #[serde(rename = "replica")]
    pub replica_list: Vec<ReplicaConfig>,
}

/// `[snapshots]`: consistent copies of a replica that new or rebuilt
/// replicas start from, and that let log retention remove old segments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsConfig {
    /// Where snapshots are written; defaults to `<data-dir>/snapshots`.
    pub dir: Option<PathBuf>,
    /// Take a snapshot every this many seconds (0: only `tributary snapshot`).
    pub interval_s: u64,
    /// How many snapshots to keep (at least 1).
    pub keep: usize,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        SnapshotsConfig {
            dir: None,
            interval_s: 0,
            keep: 2,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: "n1".into(),
            data_dir: PathBuf::from("./tributary-data"),
            replicas: 3,
            log: LogConfig::default(),
            replication: ReplicationConfig::default(),
            router: RouterConfig::default(),
            conflicts: resolver::ConflictsConfig::default(),
            metrics: MetricsConfig::default(),
            snapshots: SnapshotsConfig::default(),
            replica_list: Vec::new(),
        }
    }
}

/// A configuration problem, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}: {reason}")]
pub struct ConfigError {
    pub source_name: String,
    pub key: String,
    pub reason: String,
}

const ENV_PREFIX: &str = "TRIBUTARY__";

impl NodeConfig {
    /// Reads `path` (if given), applies environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<NodeConfig, ConfigError> {
        let source_name = path.map_or_else(|| "defaults".to_owned(), |p| p.display().to_string());
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    source_name: source_name.clone(),
                    key: "-".into(),
                    reason: format!("cannot read: {e}"),
                })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError {
                    source_name: source_name.clone(),
                    key: "-".into(),
                    reason: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, std::env::vars())?;
        let config: NodeConfig =
            NodeConfig::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError {
                source_name: source_name.clone(),
                key: "-".into(),
                reason: e.to_string().trim().to_owned(),
            })?;
        config.validate().map_err(|(key, reason)| ConfigError {
            source_name,
            key,
            reason,
        })?;
        Ok(config)
    }

    /// Checks values that parse but make no sense together.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.log.validate().map_err(|e| match e {
            wal_bus::Error::Config { key, reason } => (key.to_owned(), reason),
            other => ("log".to_owned(), other.to_string()),
        })?;
        let replicas = self.replica_names().len();
        if replicas == 0 {
            return Err(("replicas".into(), "at least one replica is needed".into()));
        }
        let mut names = self.replica_names();
        names.sort();
        names.dedup();
        if names.len() != replicas {
            return Err(("replica.name".into(), "replica names must be unique".into()));
        }
        if self.router.max_connections == 0 {
            return Err(("router.max_connections".into(), "must be at least 1".into()));
        }
        if self.router.max_result_rows == 0 {
            return Err(("router.max_result_rows".into(), "must be at least 1".into()));
        }
        if self.router.auth.method == AuthMethod::ScramSha256 {
            if self.router.auth.users.is_empty() {
                return Err((
                    "router.auth.users".into(),
                    "scram-sha-256 needs at least one [[router.auth.users]] (name, password from `tributary passwd NAME`)".into(),
                ));
            }
            for u in &self.router.auth.users {
                if let Err(e) = u.password.parse::<crate::auth::Verifier>() {
                    return Err((
                        "router.auth.users.password".into(),
                        format!("user {:?}: {e}", u.name),
                    ));
                }
            }
        }
        if self.snapshots.keep == 0 {
            return Err((
                "snapshots.keep".into(),
                "must be at least 1 (a rebuilt replica needs one)".into(),
            ));
        }
        if self.replication.semi_sync_k == 0 || self.replication.semi_sync_k > replicas {
            return Err((
                "replication.semi_sync_k".into(),
                format!(
                    "{} must be between 1 and the number of replicas ({replicas})",
                    self.replication.semi_sync_k
                ),
            ));
        }
        if self.replication.ack_timeout_ms == 0 {
            return Err(("replication.ack_timeout_ms".into(), "must be > 0".into()));
        }
        if self.router.routers == 0 {
            return Err((
                "router.routers".into(),
                "at least one router is needed".into(),
            ));
        }
        if self.router.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err((
                "router.listen".into(),
                format!(
                    "{:?} is not HOST:PORT with a numeric IP (e.g. 127.0.0.1:5433)",
                    self.router.listen
                ),
            ));
        }
        if self.router.max_statement_bytes == 0 {
            return Err(("router.max_statement_bytes".into(), "must be > 0".into()));
        }
        if let Some(m) = &self.metrics.listen
            && m.parse::<std::net::SocketAddr>().is_err()
        {
            return Err((
                "metrics.listen".into(),
                format!("{m:?} is not HOST:PORT with a numeric IP"),
            ));
        }
        if self.router.read_threads == 0 {
            return Err(("router.read_threads".into(), "must be > 0".into()));
        }
        Ok(())
    }

    /// Replica names: the `[[replica]]` list, or `replica1..replicaN`.
    pub fn replica_names(&self) -> Vec<String> {
        if self.replica_list.is_empty() {
            (1..=self.replicas).map(|i| format!("replica{i}")).collect()
        } else {
            self.replica_list.iter().map(|r| r.name.clone()).collect()
        }
    }

    /// `(name, SQLite path)` of each replica.
    pub fn replica_paths(&self) -> Vec<(String, PathBuf)> {
        if self.replica_list.is_empty() {
            self.replica_names()
                .into_iter()
                .map(|n| {
                    let p = self.data_dir.join(format!("{n}.db"));
                    (n, p)
                })
                .collect()
        } else {
            self.replica_list
                .iter()
                .map(|r| {
                    let p = r
                        .path
                        .clone()
                        .unwrap_or_else(|| self.data_dir.join(format!("{}.db", r.name)));
                    (r.name.clone(), p)
                })
                .collect()
        }
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.snapshots
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("snapshots"))
    }

    pub fn log_dir(&self) -> PathBuf {
        self.log
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("log"))
    }
}

/// `TRIBUTARY__ROUTER__LISTEN=127.0.0.1:6000` sets `[router] listen`;
/// `TRIBUTARY__REPLICAS=5` sets a top-level key. Values are parsed as TOML
/// (numbers, booleans) and fall back to plain strings.
fn apply_env(
    table: &mut toml::Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError {
                source_name: format!("environment variable {name}"),
                key: rest.to_owned(),
                reason: "empty path segment".into(),
            });
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(raw.clone()));
        let mut cur = &mut *table;
        for seg in &path[..path.len() - 1] {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            cur = entry.as_table_mut().ok_or_else(|| ConfigError {
                source_name: format!("environment variable {name}"),
                key: path.join("."),
                reason: format!("{seg} is not a section"),
            })?;
        }
        if let Some(last) = path.last() {
            cur.insert(last.clone(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().map_err(|e| ConfigError {
            source_name: "t".into(),
            key: "-".into(),
            reason: e.to_string(),
        })?;
        let p = dir.path().join("t.toml");
        std::fs::write(&p, text).map_err(|e| ConfigError {
            source_name: "t".into(),
            key: "-".into(),
            reason: e.to_string(),
        })?;
        NodeConfig::load(Some(&p))
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../../tributary.example.toml");
        let cfg = load_str(text).expect("example config loads");
        assert_eq!(cfg.router.listen, "127.0.0.1:5433");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str("[router]\nlisten_addr = \"x\"\n").expect_err("must fail");
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = load_str("[replication]\nack = \"fast\"\n").expect_err("must fail");
        assert!(err.to_string().contains("fast"), "{err}");
        let err =
            load_str("replicas = 2\n[replication]\nsemi_sync_k = 3\n").expect_err("must fail");
        assert!(err.to_string().contains("replication.semi_sync_k"), "{err}");
        let err = load_str("[router]\nlisten = \"nowhere\"\n").expect_err("must fail");
        assert!(err.to_string().contains("router.listen"), "{err}");
    }

    #[test]
    fn env_overrides() {
        let mut t = toml::Table::new();
        apply_env(
            &mut t,
            vec![
                (
                    "TRIBUTARY__ROUTER__LISTEN".to_owned(),
                    "127.0.0.1:7000".to_owned(),
                ),
                ("TRIBUTARY__REPLICAS".to_owned(), "5".to_owned()),
                ("OTHER".to_owned(), "x".to_owned()),
            ]
            .into_iter(),
        )
        .expect("env applies");
        let cfg = NodeConfig::deserialize(toml::Value::Table(t)).expect("parses");
        assert_eq!(cfg.router.listen, "127.0.0.1:7000");
        assert_eq!(cfg.replicas, 5);
    }
}
