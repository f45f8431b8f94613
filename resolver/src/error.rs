//! The one error type of the `resolver` crate: problems with policy files.

/// A policy file problem, with where it is and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: {key}: {reason}")]
    Invalid {
        source_name: String,
        key: String,
        reason: String,
    },
    #[error("cell state is corrupt: {0}")]
    State(String),
    /// A counter would leave the 64-bit range (SQLSTATE 22003).
    #[error("{0}")]
    Overflow(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
