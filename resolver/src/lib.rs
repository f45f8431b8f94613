//! `resolver`: turns a detected conflict into a deterministic decision.
//!
//! Every replica applies the same records in the same log order and asks the
//! resolver the same question with the same inputs, so every replica makes
//! the same decision and all converge. This crate is pure: no I/O, no clock,
//! no database — only the rules.

mod lww;

pub use lww::{ConflictKind, Decision, Stamp, last_writer_wins};
