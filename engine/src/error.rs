//! The engine's one error enum. The server maps each variant to a gRPC status in one place.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// The request is malformed (empty id, zero quantity, a SKU twice, a shape limit exceeded).
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown SKU, reservation, ...
    #[error("{0}")]
    NotFound(String),
    /// Insufficient stock, wrong state, expired hold, adjustment below reserved.
    #[error("{0}")]
    FailedPrecondition(String),
    /// An id reused with a different payload.
    #[error("{0}")]
    AlreadyExists(String),
    /// A capacity limit (live holds, queue).
    #[error("{0}")]
    ResourceExhausted(String),
    /// Storage failed: the engine stopped accepting writes (fail-stop).
    #[error("{0}")]
    Unavailable(String),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

pub(crate) fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}
pub(crate) fn not_found(msg: impl Into<String>) -> EngineError {
    EngineError::NotFound(msg.into())
}
pub(crate) fn precondition(msg: impl Into<String>) -> EngineError {
    EngineError::FailedPrecondition(msg.into())
}
pub(crate) fn exists(msg: impl Into<String>) -> EngineError {
    EngineError::AlreadyExists(msg.into())
}
