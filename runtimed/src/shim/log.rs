//! The writing side of the container's JSON-lines log (read back by
//! `container::logs`).

use std::fs::File;
use std::io::Write;
use std::time::SystemTime;

use super::protocol::{LogLine, Stream};

/// Longest line kept whole; longer output is split like docker does.
const MAX_LINE: usize = 16 * 1024;

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
