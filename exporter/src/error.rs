//! The exporter crate's one error type; the server maps it to a gRPC status in one place
//! (`server::convert`).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No report of that name.
    #[error("no report named {0:?}")]
    UnknownReport(String),
    /// A malformed request: a bad report param, SQL that would write, ... (names the culprit).
    #[error("{0}")]
    InvalidArgument(String),
    /// The query ran past its time limit or returned too many rows.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The analytical store failed (I/O, a broken connection, a bug in our SQL).
    #[error("analytical store: {0}")]
    Store(String),
    /// The change feed could not be read.
    #[error("change feed: {0}")]
    Feed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<duckdb::Error> for Error {
    fn from(e: duckdb::Error) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        Error::Store(e.to_string())
    }
}
