//! `resolver`: turns a detected conflict into a deterministic decision.
//!
//! Every replica applies the same records in the same log order and asks the
//! resolver the same question with the same inputs, so every replica makes
//! the same decision and all converge. Where a rule is order-independent
//! (last-writer-wins, max, min, counter, set) replicas converge even when
//! they see records in different orders. This crate is pure: no I/O, no
//! clock, no database — only the rules and the policy files that pick them.
//! It depends on `wal-bus` for records and values only (default features
//! off): never on tokio, rusqlite or rdkafka.

mod cell;
mod column_type;
mod config;
mod error;
mod policy;
mod resolve;
mod stamp;

pub use cell::{Cell, CellState, cmp_values, merge_max, merge_min, set_members};
pub use column_type::ColumnType;
pub use config::ConflictsConfig;
pub use error::{Error, Result};
pub use policy::{ColumnInfo, ColumnRule, DeletePolicy, Policy, Strategy, TablePolicy};
pub use resolve::{Action, COUNTER_OVERFLOW, Incoming, LocalRow, Resolution, resolve};
pub use stamp::{ConflictKind, Stamp};
