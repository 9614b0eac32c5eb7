//! What the shim tells the daemon: a ready line on its stdout after start, an
//! exit file when the container is gone, and the records of the
//! container's log; the live stdio goes in frames (`frame`). A leaf: the shim writes
//! these, the daemon reads them.

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// Which of the container's outputs a chunk or log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the container's log, in the CRI format podman's k8s-file
/// and Kubernetes use: `<RFC 3339 time> <stdout|stderr> <F|P> <bytes>\n`.
/// The bytes are kept as they are (no escaping, any encoding); `F` ends a
/// line (its newline is the record's), `P` is part of a longer one.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The output, with its newline when the line is whole.
    pub log: Vec<u8>,
    pub stream: Stream,
    /// Unix nanoseconds.
    pub time: i64,
}

impl LogLine {
    /// Appends the record of `content` (without its newline) to `out`.
    pub fn encode_into(out: &mut Vec<u8>, time: &str, stream: Stream, whole: bool, content: &[u8]) {
        out.extend_from_slice(time.as_bytes());
        out.extend_from_slice(if stream == Stream::Stderr { b" stderr " } else { b" stdout " });
        out.extend_from_slice(if whole { b"F " } else { b"P " });
        out.extend_from_slice(content);
        out.push(b'\n');
    }

    /// Parses one record (with its newline). Lines of the JSON-lines format
    /// of earlier versions are read too.
    pub fn parse(record: &[u8]) -> Option<LogLine> {
        let record = record.strip_suffix(b"\n")?;
        if record.first() == Some(&b'{') {
            return Self::parse_json(record);
        }
        let mut fields = record.splitn(4, |&b| b == b' ');
        let time = nanos(std::str::from_utf8(fields.next()?).ok()?);
        let stream = match fields.next()? {
            b"stderr" => Stream::Stderr,
            _ => Stream::Stdout,
        };
        let whole = fields.next()? == b"F";
        let mut log = fields.next().unwrap_or_default().to_vec();
        if whole {
            log.push(b'\n');
        }
        Some(LogLine { log, stream, time })
    }

    fn parse_json(record: &[u8]) -> Option<LogLine> {
        #[derive(Deserialize)]
        struct Json {
            log: String,
            stream: String,
            time: String,
        }
        let j: Json = serde_json::from_slice(record).ok()?;
        let stream = if j.stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
        Some(LogLine { log: j.log.into_bytes(), stream, time: nanos(&j.time) })
    }
}

fn nanos(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
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
    fn log_records_keep_bytes_and_read_old_json_lines() {
        let mut out = Vec::new();
        LogLine::encode_into(&mut out, "2026-12-03T10:00:00.5Z", Stream::Stderr, true, b"a b\x00\xff");
        LogLine::encode_into(&mut out, "2026-12-03T10:00:00.5Z", Stream::Stdout, false, b"");
        let mut records = out.split_inclusive(|&b| b == b'\n');
        let line = LogLine::parse(records.next().unwrap()).unwrap();
        assert_eq!(
            line,
            LogLine { log: b"a b\x00\xff\n".to_vec(), stream: Stream::Stderr, time: 1_796_292_000_500_000_000 }
        );
        assert_eq!(LogLine::parse(records.next().unwrap()).unwrap().log, b"");
        let old = br#"{"log":"hi\n","stream":"stdout","time":"2026-12-03T10:00:00Z"}"#.to_vec();
        let line = LogLine::parse(&[old, b"\n".to_vec()].concat()).unwrap();
        assert_eq!((line.log, line.stream), (b"hi\n".to_vec(), Stream::Stdout));
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
