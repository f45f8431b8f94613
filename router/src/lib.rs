//! `router`: Tributary's PostgreSQL front end, as a library. [`serve`]
//! accepts clients on a listener until a cancellation token fires; each
//! connection gets a [`session::Session`] over the router's [`Shared`] state.
//!
//! It owns the PostgreSQL wire protocol (pgwire), statement classification
//! (sqlparser), speculative execution and change capture (SQLite session),
//! ack waiting and read consistency. It uses the replica crate's row API and
//! wal-bus's `Log` trait, and must not depend on rdkafka or name a log
//! backend: the binary opens the log (`wal_bus::open`) and hands it over.
//!
//! Follow a statement: `conn.rs` (the message loop) → `handler.rs` (pgwire
//! handlers) → `classify.rs` → `session/` → `speculate/` (writes) or
//! `exec.rs` (reads) → `shared.rs` (queueing on the log) → `ack_wait.rs`.

mod ack_wait;
mod alter_column;
pub mod auth;
pub mod balance;
pub mod casts;
mod catalog;
pub mod classify;
pub mod config;
pub mod conn;
pub mod copy_format;
mod date_functions;
pub mod db;
mod describe;
mod drop_constraint;
mod drop_table;
pub mod error;
pub mod exec;
mod extremes;
mod foreign_key;
mod functions;
pub mod handler;
mod insert_columns;
pub mod interval;
mod json_functions;
pub mod keys;
pub mod params;
pub mod placement;
pub mod policy;
mod rebuild;
mod serve;
pub mod session;
pub mod shared;
mod sleep;
pub mod slow_query;
pub mod speculate;
mod star;
pub mod status;
mod text_functions;
pub mod typing;
pub mod verify;
pub mod write_order;

pub use serve::{SHUTDOWN_GRACE, serve};

/// The PostgreSQL version Tributary speaks, as `server_version` (startup
/// and `SHOW`) and in `version()`.
pub const SERVER_VERSION: &str = "15.0 (Tributary)";
/// `server_version_num` for [`SERVER_VERSION`].
pub const SERVER_VERSION_NUM: &str = "150000";
pub use shared::{Shared, SharedOptions};
