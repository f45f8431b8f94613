//! `replica`: applies the shared log to one SQLite file.
//!
//! Records are applied in log order, many per SQLite transaction when the
//! replica is behind; the applied offset is stored in the same transaction as
//! the data, so a crash never applies a record twice or loses one. After each
//! commit the replica publishes its applied offset on the [`wal_bus::AckBoard`].
//! Conflicting changes are decided by the `resolver` crate and remembered in
//! per-row metadata so every replica reaches the same state.
//!
//! It also gives routers what they share with the applier, so there is one
//! copy of each: the row API (`read_row`, `key_where`, `is_internal_table`),
//! the replica's live state and the one wait for "applied up to offset X"
//! (`ReplicaState::wait_applied`), the write gate, and key-range blocks. It
//! must not depend on sqlparser, pgwire or rdkafka: it knows records and
//! SQLite, never SQL text from clients.

mod applier;
mod apply;
mod config;
mod conflicts;
mod ddl;
pub mod digest;
mod error;
mod gate;
mod hold;
pub mod idempotency;
mod ids;
mod meta;
pub mod placement;
mod progress;
mod rows;
mod schema;
pub mod snapshot;
mod stamps;
mod state;
mod values;

pub use applier::{ApplierOptions, ReplicaHandle, ReplicaState, spawn_applier};
pub use config::ReplicaConfig;
pub use ddl::{HIDDEN_KEY, is_hidden_column, run_ddl};
pub use error::{Error, Result};
/// Marks a rejection reason that the router answers with 22003, not 40001.
pub const OUT_OF_RANGE: &str = "SQLSTATE 22003";

pub use gate::{GateGuard, WriteGate};
pub use hold::ApplyHold;
pub use ids::{IdBlock, block_at as id_block_at};
pub use meta::{
    INTERNAL_PREFIX, applied_offset, cluster_id, force_policy, open_connection, set_mmap,
    stored_policy,
};
pub use rows::{is_internal_table, key_where, read_row};
pub use schema::{TableInfo, quote_ident, table_info};
pub use values::{from_value_ref, owned_value, to_sql_value};
