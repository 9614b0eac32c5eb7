//! What the shim tells the daemon: a ready line on its stdout after start, an
//! exit file when the container is gone, and the lines of the container's
//! log; the live stdio goes in frames (`frame`). A leaf: the shim writes
//! these, the daemon reads them.

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// Which of the container's outputs a chunk or log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the JSON-lines log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

impl LogLine {
    pub fn stream(&self) -> Stream {
        if self.stream == "stderr" {
            Stream::Stderr
        } else {
            Stream::Stdout
        }
    }

    pub fn time_nanos(&self) -> i64 {
        humantime::parse_rfc3339(&self.time)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }
}

/// Why a container or exec process could not be started.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The command is not in the container (exit code 127).
    NotFound,
    /// The command exists but cannot be executed (exit code 126).
    CannotExecute,
    Other,
}

/// First and only line the shim writes to the daemon.
#[derive(Serialize, Deserialize, Debug)]
pub enum Ready {
    Started { pid: i32, shim_pid: i32 },
    Failed { kind: FailKind, message: String },
}

/// Written atomically by the shim once the container has exited, so the exit
/// code survives a daemon that was down at the time.
#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub finished_at: i64,
}

/// Classifies libcontainer's start errors the way docker classifies runc's.
pub fn classify(message: &str) -> FailKind {
    if message.contains("not found in $PATH") || message.contains("No such file or directory") {
        FailKind::NotFound
    } else if message.contains("does not have correct permissions")
        || message.contains("Permission denied")
        || message.contains("EACCES")
    {
        FailKind::CannotExecute
    } else {
        FailKind::Other
    }
}

/// libcontainer's start error in docker's words: `exec: "nosuch":
/// executable file not found in $PATH`, `exec: "/etc/passwd": permission
/// denied`; anything else keeps its text, without libcontainer's layers.
pub fn docker_words(kind: FailKind, message: &str) -> String {
    let executable = message.split_once("executable '").and_then(|(_, rest)| rest.split_once('\'')).map(|(n, _)| n);
    match (kind, executable) {
        (FailKind::NotFound, Some(name)) if !name.starts_with('/') => {
            format!("exec: \"{name}\": executable file not found in $PATH")
        }
        (FailKind::NotFound, Some(name)) => format!("exec: \"{name}\": stat {name}: no such file or directory"),
        (FailKind::CannotExecute, Some(name)) => format!("exec: \"{name}\": permission denied"),
        _ => message.rsplit(" : ").next().unwrap_or(message).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_read_like_dockers() {
        let wrapped = "failed to create container: exec process failed with error error in executing process : ";
        let not_found = format!("{wrapped}executable 'nosuch' not found in $PATH");
        assert_eq!(
            docker_words(classify(&not_found), &not_found),
            "exec: \"nosuch\": executable file not found in $PATH"
        );
        let denied =
            format!("{wrapped}executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions");
        assert_eq!(docker_words(classify(&denied), &denied), "exec: \"/etc/passwd\": permission denied");
        assert_eq!(docker_words(FailKind::Other, &format!("{wrapped}cgroup failure")), "cgroup failure");
    }

    #[test]
    fn classifies_libcontainer_messages() {
        assert_eq!(classify("executable 'nope' not found in $PATH"), FailKind::NotFound);
        assert_eq!(
            classify("executable 'x' at path '\"/x\"' does not have correct permissions"),
            FailKind::CannotExecute
        );
        assert_eq!(classify("cgroup failure"), FailKind::Other);
    }
}
