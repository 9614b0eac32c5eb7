//! One error line and a docker-like exit code: 125 for daemon or runtime
//! errors, 126 when the command cannot be executed, 127 when it is missing.

use tonic::Status;

pub const DAEMON_ERROR: i32 = 125;
/// Set by the daemon on start failures (see runtimed's error module).
const EXIT_CODE_METADATA: &str = "runtime-exit-code";

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
}

pub type Result<T> = std::result::Result<T, CliError>;

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError { message: message.into(), exit_code: DAEMON_ERROR }
    }
}

impl From<Status> for CliError {
    fn from(status: Status) -> Self {
        let exit_code = status
            .metadata()
            .get(EXIT_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(DAEMON_ERROR);
        let message = match status.code() {
            // Only a transport failure has a source; a daemon's own
            // Unavailable (a registry that is down) speaks for itself.
            tonic::Code::Unavailable if std::error::Error::source(&status).is_some() => {
                format!("cannot reach the daemon: {}", status.message())
            }
            _ => status.message().to_string(),
        };
        CliError { message, exit_code }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}
