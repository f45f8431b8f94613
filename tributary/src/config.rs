//! The node configuration file: one TOML file (`[log]`, `[replication]`,
//! `[router]`, `[[replica]]`, `[conflicts]`, `[metrics]`, `[snapshots]`),
//! then `TRIBUTARY__SECTION__KEY=value` environment overrides, then
//! command-line flags; validated before anything starts, naming the file,
//! key and reason of the first problem. Each section's struct belongs to the
//! crate that uses it; this file assembles them.

use std::path::{Path, PathBuf};

use replica::ReplicaConfig;
use router::config::{ReplicationConfig, RouterConfig};
use serde::{Deserialize, Serialize};
use wal_bus::LogConfig;

/// `[metrics]`: the status page, `/status.json` and the Prometheus endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` serving the status page at `/`, `/status.json` and
    /// Prometheus text at `/metrics`; off when unset.
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
    /// `[placement]`: shard groups and distributed tables, appended to the
    /// log at start-up when they differ from the placement in force (README
    /// "Sharding"); the same checks as `tributary.distribute` apply.
    pub placement: Option<wal_bus::Placement>,
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
            placement: None,
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

/// A value that parses but makes no sense, found by [`NodeConfig::validate`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct Invalid {
    pub key: String,
    pub reason: String,
}

impl Invalid {
    fn new(key: &str, reason: impl Into<String>) -> Invalid {
        Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

impl From<router::config::ConfigError> for Invalid {
    fn from(e: router::config::ConfigError) -> Invalid {
        Invalid::new(e.key, e.reason)
    }
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
        config
            .validate()
            .map_err(|Invalid { key, reason }| ConfigError {
                source_name,
                key,
                reason,
            })?;
        Ok(config)
    }

    /// Checks values that parse but make no sense together.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.log.validate().map_err(|e| match e {
            wal_bus::Error::Config { key, reason } => Invalid::new(key, reason),
            other => Invalid::new("log", other.to_string()),
        })?;
        let replicas = self.replica_names().len();
        if replicas == 0 {
            return Err(Invalid::new("replicas", "at least one replica is needed"));
        }
        let mut names = self.replica_names();
        names.sort();
        names.dedup();
        if names.len() != replicas {
            return Err(Invalid::new("replica.name", "replica names must be unique"));
        }
        self.router.validate()?;
        self.replication.validate(replicas)?;
        if self.snapshots.keep == 0 {
            return Err(Invalid::new(
                "snapshots.keep",
                "must be at least 1 (a rebuilt replica needs one)",
            ));
        }
        if let Some(m) = &self.metrics.listen
            && m.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(Invalid::new(
                "metrics.listen",
                format!("{m:?} is not HOST:PORT with a numeric IP"),
            ));
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

    /// The SQLite file of `tributary node`'s own replica (named after the node).
    pub fn node_replica_path(&self) -> PathBuf {
        self.data_dir.join(format!("{}.db", self.node_id))
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
