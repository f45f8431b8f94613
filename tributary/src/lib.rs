//! `tributary`: the binary's library half. [`Node::start`] runs a node
//! in-process (the lock, metrics, the log via `wal_bus::open`, replicas,
//! routers, snapshots and retention); `cli/` holds one file per command;
//! `config.rs` assembles the node configuration from each crate's section.
//!
//! This is the only crate that picks a log backend's feature (`kafka`) and
//! installs process-wide things (the metrics exporter, signal handlers).
//! Nothing depends on it but the tests.

pub mod cli;
pub mod config;
pub mod debezium;
pub mod dry_run;
pub mod dry_run_diff;
mod metrics;
pub mod node;
mod placement_startup;
mod policy_startup;
pub mod snapshots;
pub mod status_page;

pub use config::NodeConfig;
pub use node::{Layout, Node, NodeHandle, RouterInfo, RouterSpec};
