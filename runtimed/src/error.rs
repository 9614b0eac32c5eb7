//! Typed daemon errors, mapped to gRPC status codes at the API edge.

use tonic::{Code, Status};

/// Metadata key carrying the exit code docker would use for a failed start
/// (126 cannot execute, 127 not found), so clients can exit the same way.
pub const EXIT_CODE_METADATA: &str = "runtime-exit-code";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The container's command does not exist (exit code 127).
    #[error("{0}")]
    CommandNotFound(String),
    /// The container's command exists but cannot be executed (exit code 126).
    #[error("{0}")]
    CannotExecute(String),
    /// A registry refused the credentials (or wants some).
    #[error("{0}")]
    Unauthenticated(String),
    /// The cluster store cannot be reached (overlay networks).
    #[error("{0}")]
    Unavailable(String),
    /// A kernel or configured limit was reached (a full bridge).
    #[error("{0}")]
    Exhausted(String),
    /// A result beyond a documented limit (exec output over the cap).
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("store: {0}")]
    Store(#[from] sled::Error),
    /// The disk holding the store (this directory) is full: the write
    /// was refused and rolled back, so the user must free space.
    #[error("no space left on the device holding {}: free some space; the change was not saved", .0.display())]
    StoreFull(std::path::PathBuf),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }
}

/// Adds a context string to io errors, like anyhow's `context` but typed.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let (code, exit) = match &err {
            Error::NotFound(_) => (Code::NotFound, None),
            Error::AlreadyExists(_) => (Code::AlreadyExists, None),
            Error::InvalidArgument(_) => (Code::InvalidArgument, None),
            Error::FailedPrecondition(_) => (Code::FailedPrecondition, None),
            Error::Unavailable(_) => (Code::Unavailable, None),
            Error::Unauthenticated(_) => (Code::Unauthenticated, None),
            Error::OutOfRange(_) => (Code::OutOfRange, None),
            Error::Exhausted(_) => (Code::ResourceExhausted, None),
            Error::DeadlineExceeded(_) => (Code::DeadlineExceeded, None),
            Error::StoreFull(_) => (Code::ResourceExhausted, None),
            Error::CommandNotFound(_) => (Code::InvalidArgument, Some(127)),
            Error::CannotExecute(_) => (Code::PermissionDenied, Some(126)),
            Error::Store(_) | Error::Io { .. } | Error::Internal(_) => (Code::Internal, None),
        };
        let mut status = Status::new(code, err.to_string());
        if let Some(exit) = exit {
            if let Ok(value) = exit.to_string().parse() {
                status.metadata_mut().insert(EXIT_CODE_METADATA, value);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_not_found_carries_exit_code_127() {
        let status = Status::from(Error::CommandNotFound("nope".into()));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.metadata().get(EXIT_CODE_METADATA).unwrap(), "127");
    }

    #[test]
    fn a_full_store_says_what_to_do() {
        let status = Status::from(Error::StoreFull("/r/store".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().starts_with("no space left on the device holding /r/store: free some space"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn not_found_maps_to_not_found() {
        assert_eq!(Status::from(Error::NotFound("x".into())).code(), Code::NotFound);
    }
}
