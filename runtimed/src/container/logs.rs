//! The per-container log: JSON lines like docker's json-file driver
//! (`{"log":"hi\n","stream":"stdout","time":"2026-...Z"}`). The shim writes
//! it; the daemon reads, tails and follows it.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::shim::protocol::ExitStatus;

pub use crate::shim::Stream;

/// Longest line kept whole; longer output is split like docker does.
const MAX_LINE: usize = 16 * 1024;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

impl LogLine {
    pub fn stream(&self) -> Stream {
        if self.stream == "stderr" { Stream::Stderr } else { Stream::Stdout }
    }

    pub fn time_nanos(&self) -> i64 {
        humantime::parse_rfc3339(&self.time)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    }
}

/// Turns raw pipe chunks into whole log lines per stream.
pub struct LogWriter {
    file: File,
    pending: [Vec<u8>; 2],
    /// Lines lost to write errors (a full disk) since the last one written.
    dropped: u64,
}

impl LogWriter {
    pub fn new(file: File) -> Self {
        LogWriter { file, pending: [Vec::new(), Vec::new()], dropped: 0 }
    }

    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let idx = stream as usize;
        self.pending[idx].extend_from_slice(data);
        while let Some(pos) = self.pending[idx].iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending[idx].drain(..=pos).collect();
            self.emit(stream, &line);
        }
        if self.pending[idx].len() >= MAX_LINE {
            let line = std::mem::take(&mut self.pending[idx]);
            self.emit(stream, &line);
        }
    }

    /// Writes out partial lines left at the end of the output.
    pub fn finish(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                self.emit(stream, &rest);
            }
        }
    }

    fn emit(&mut self, stream: Stream, data: &[u8]) {
        let line = LogLine {
            log: String::from_utf8_lossy(data).into_owned(),
            stream: if stream == Stream::Stderr { "stderr" } else { "stdout" }.to_string(),
            time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        // One write per line, so a reader never sees half a line. A failed
        // write drops the line and the container runs on; the loss is
        // reported once when it starts and once when writing works again.
        match self.file.write_all(&bytes) {
            Err(e) => {
                if self.dropped == 0 {
                    tracing::error!("log write failed, dropping output until it works again: {e}");
                }
                self.dropped += 1;
            }
            Ok(()) if self.dropped > 0 => {
                tracing::warn!("log writes work again; {} lines were lost", self.dropped);
                self.dropped = 0;
            }
            Ok(()) => {}
        }
    }
}

/// Reads a log incrementally. It keeps the file open, so lines can still be
/// read after an auto-removed container's directory is gone.
pub struct LogReader {
    reader: Option<BufReader<File>>,
}

impl LogReader {
    /// Opens the log; a missing log reads as empty.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        match File::open(path) {
            Ok(f) => Ok(LogReader { reader: Some(BufReader::new(f)) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LogReader { reader: None }),
            Err(e) => Err(e),
        }
    }

    /// Whole lines written since the last call.
    pub fn read_new(&mut self) -> std::io::Result<Vec<LogLine>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(Vec::new()) };
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                // A line still being written: read it again next time.
                reader.seek(SeekFrom::Current(-(n as i64)))?;
                break;
            }
            if let Ok(line) = serde_json::from_slice::<LogLine>(&buf) {
                lines.push(line);
            }
        }
        Ok(lines)
    }

    /// Everything so far, or only the last `n` lines of it.
    pub fn read_tail(&mut self, n: Option<usize>) -> std::io::Result<Vec<LogLine>> {
        let mut lines = self.read_new()?;
        if let Some(n) = n {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        Ok(lines)
    }
}

/// How often a follower looks for new lines while the container runs.
pub const FOLLOW_POLL: Duration = Duration::from_millis(25);

/// Reads the exit file the shim leaves behind.
pub fn read_exit_file(path: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("log-{tag}-{}", std::process::id()))
    }

    #[test]
    fn splits_chunks_into_lines_per_stream() {
        let path = temp("split");
        let mut w = LogWriter::new(File::create(&path).unwrap());
        w.write(Stream::Stdout, b"hel");
        w.write(Stream::Stderr, b"oops\n");
        w.write(Stream::Stdout, b"lo\nwor");
        w.finish();
        let lines = LogReader::open(&path).unwrap().read_new().unwrap();
        let got: Vec<(String, Stream)> = lines.iter().map(|l| (l.log.clone(), l.stream())).collect();
        assert_eq!(
            got,
            vec![
                ("oops\n".into(), Stream::Stderr),
                ("hello\n".into(), Stream::Stdout),
                ("wor".into(), Stream::Stdout)
            ]
        );
        assert!(lines[0].time_nanos() > 0);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn tail_keeps_last_lines() {
        let path = temp("tail");
        let mut w = LogWriter::new(File::create(&path).unwrap());
        for i in 0..5 {
            w.write(Stream::Stdout, format!("{i}\n").as_bytes());
        }
        let mut reader = LogReader::open(&path).unwrap();
        let lines = reader.read_tail(Some(2)).unwrap();
        assert_eq!(lines.iter().map(|l| l.log.as_str()).collect::<Vec<_>>(), ["3\n", "4\n"]);
        w.write(Stream::Stdout, b"5");
        assert!(reader.read_new().unwrap().is_empty(), "partial line is not returned");
        w.finish();
        assert_eq!(reader.read_new().unwrap()[0].log, "5");
        std::fs::remove_file(path).unwrap();
    }
}
