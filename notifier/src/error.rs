//! The notifier's one error type at its boundary.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox {path} is damaged at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("unknown notification {0}")]
    NotFound(String),
    #[error("notification {0} was already sent")]
    AlreadySent(String),
}

impl NotifyError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NotifyError::Io {
            path: path.into(),
            source,
        }
    }
}
