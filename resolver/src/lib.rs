//! `resolver`: turns a detected conflict into a deterministic decision.
//!
//! Every replica applies the same records in the same log order and asks the
//! resolver the same question with the same inputs, so every replica makes
//! the same decision and all converge. Where a rule is order-independent
//! (last-writer-wins, max, min, counter, set) replicas converge even when
//! they see records in different orders. This crate is pure: no I/O, no
//! clock, no database — only the rules and the policy files that pick them.

mod cell;
mod config;
mod error;
mod lww;
mod policy;
mod resolve;

pub use cell::{Cell, CellState, cmp_values, merge_lww, merge_max, merge_min, set_members};
pub use config::ConflictsConfig;
pub use error::{Error, Result};
pub use lww::{ConflictKind, Decision, Stamp, last_writer_wins};
pub use policy::{ColumnInfo, ColumnRule, DeletePolicy, Policy, Strategy, TablePolicy};
pub use resolve::{Action, COUNTER_OVERFLOW, Incoming, LocalRow, Resolution, resolve};
