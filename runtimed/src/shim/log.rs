//! The writing side of the container's log (format: `protocol::LogLine`;
//! read back by `container::logs`).

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
    /// Chunks lost to write errors (a full disk) since the last one written.
    dropped: u64,
}

impl LogWriter {
    pub fn new(file: File) -> Self {
        LogWriter { file, pending: [Vec::new(), Vec::new()], dropped: 0 }
    }

    /// Logs a chunk of output: its whole lines, and any part of a line
    /// longer than `MAX_LINE`, in one write. A reader seeing a record cut
    /// short by a write in progress reads it again later.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let time = now();
        let mut out = Vec::with_capacity(data.len() + 64);
        let pending = &mut self.pending[stream as usize];
        let mut rest = data;
        while !rest.is_empty() {
            let (piece, whole, next) = match memchr::memchr(b'\n', rest) {
                Some(end) => (&rest[..end], true, &rest[end + 1..]),
                None => (rest, false, &[][..]),
            };
            if whole && pending.is_empty() {
                LogLine::encode_into(&mut out, &time, stream, true, piece);
            } else {
                pending.extend_from_slice(piece);
                if whole {
                    LogLine::encode_into(&mut out, &time, stream, true, pending);
                    pending.clear();
                }
            }
            rest = next;
            while pending.len() >= MAX_LINE {
                LogLine::encode_into(&mut out, &time, stream, false, &pending[..MAX_LINE]);
                pending.drain(..MAX_LINE);
            }
        }
        self.emit(&out);
    }

    /// Writes out partial lines left at the end of the output.
    pub fn finish(&mut self) {
        let time = now();
        let mut out = Vec::new();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.pending[stream as usize]);
            if !rest.is_empty() {
                LogLine::encode_into(&mut out, &time, stream, false, &rest);
            }
        }
        self.emit(&out);
    }

    fn emit(&mut self, records: &[u8]) {
        if records.is_empty() {
            return;
        }
        // A failed write drops the output and the container runs on; the
        // loss is reported once when it starts and once when writing works
        // again.
        match self.file.write_all(records) {
            Err(e) => {
                if self.dropped == 0 {
                    tracing::error!("log write failed, dropping output until it works again: {e}");
                }
                self.dropped += 1;
            }
            Ok(()) if self.dropped > 0 => {
                tracing::warn!("log writes work again; {} chunks of output were lost", self.dropped);
                self.dropped = 0;
            }
            Ok(()) => {}
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}
