//! The per-container log, in the CRI format (`shim::protocol::LogLine`):
//! the shim writes it (`shim::log`); the daemon reads, tails and follows it
//! here.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use crate::shim::protocol::ExitStatus;
pub use crate::shim::protocol::{LogLine, Stream};

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
            lines.extend(LogLine::parse(&buf));
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
    use crate::shim::log::LogWriter;

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
        let got: Vec<(&[u8], Stream)> = lines.iter().map(|l| (l.log.as_slice(), l.stream)).collect();
        assert_eq!(got, [(&b"oops\n"[..], Stream::Stderr), (b"hello\n", Stream::Stdout), (b"wor", Stream::Stdout)]);
        assert!(lines[0].time > 0);
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
        assert_eq!(lines.iter().map(|l| l.log.as_slice()).collect::<Vec<_>>(), [b"3\n", b"4\n"]);
        w.write(Stream::Stdout, b"5");
        assert!(reader.read_new().unwrap().is_empty(), "partial line is not returned");
        w.finish();
        assert_eq!(reader.read_new().unwrap()[0].log, b"5");
        std::fs::remove_file(path).unwrap();
    }
}
