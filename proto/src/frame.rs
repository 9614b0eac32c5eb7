//! The framed protocol on a shim's control socket (and on an exec shim's
//! socketpair): a tag byte, a big-endian u32 length, the payload. Bytes stay
//! bytes end to end, so output is exact whatever it contains.

use bytes::Bytes;

/// Largest payload accepted; output is sent in chunks well below it.
pub const MAX_PAYLOAD: usize = 1 << 20;

const HEADER: usize = 5;
const STDIN: u8 = 2;

/// What an attach asks for, sent first on a connection that wants output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attach {
    /// This client may write to the container's stdin.
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Attach {
    fn bits(self) -> u8 {
        u8::from(self.stdin) | u8::from(self.stdout) << 1 | u8::from(self.stderr) << 2
    }

    fn from_bits(b: u8) -> Attach {
        Attach { stdin: b & 1 != 0, stdout: b & 2 != 0, stderr: b & 4 != 0 }
    }

    /// How many descriptors an `AttachFds` with these streams carries.
    pub fn fd_count(self) -> usize {
        [self.stdin, self.stdout, self.stderr].into_iter().filter(|&on| on).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    // Client to shim.
    Attach(Attach),
    /// Like `Attach`, for a client on the same host that hands the shim its
    /// own stdio: the descriptors of the streams it asks for (stdin,
    /// stdout, stderr, in that order) travel with this frame as
    /// `SCM_RIGHTS`. The shim then reads and writes them directly, and this
    /// connection only carries the exit code, sent once all output is
    /// written.
    AttachFds(Attach),
    Stdin(Bytes),
    /// The client's input ended: the container's stdin gets EOF.
    CloseStdin,
    Resize {
        rows: u16,
        cols: u16,
    },
    /// Deliver a signal to the process through the shim's pidfd.
    Signal(i32),
    // Shim to client.
    Stdout(Bytes),
    Stderr(Bytes),
    /// The process exited with this docker-style code; output is complete.
    Exit(i32),
    /// Answer to a Signal: empty when delivered, else why not.
    Done(String),
    /// An output descriptor handed over with `AttachFds` lost its reader
    /// while output was due: the client ends as that write would have
    /// ended it, by SIGPIPE.
    OutputGone,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    #[error("malformed frame with tag {0}")]
    Malformed(u8),
}

impl Frame {
    fn tag(&self) -> u8 {
        match self {
            Frame::Attach(_) => 1,
            Frame::Stdin(_) => STDIN,
            Frame::CloseStdin => 3,
            Frame::Resize { .. } => 4,
            Frame::Signal(_) => 5,
            Frame::AttachFds(_) => 6,
            Frame::Stdout(_) => 10,
            Frame::Stderr(_) => 11,
            Frame::Exit(_) => 12,
            Frame::Done(_) => 13,
            Frame::OutputGone => 14,
        }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(self.tag());
        out.extend_from_slice(&[0; 4]);
        match self {
            Frame::Attach(a) | Frame::AttachFds(a) => out.push(a.bits()),
            Frame::Stdin(d) | Frame::Stdout(d) | Frame::Stderr(d) => out.extend_from_slice(d),
            Frame::CloseStdin | Frame::OutputGone => {}
            Frame::Resize { rows, cols } => {
                out.extend_from_slice(&rows.to_be_bytes());
                out.extend_from_slice(&cols.to_be_bytes());
            }
            Frame::Signal(n) | Frame::Exit(n) => out.extend_from_slice(&n.to_be_bytes()),
            Frame::Done(s) => out.extend_from_slice(s.as_bytes()),
        }
        let len = (out.len() - start - HEADER) as u32;
        out[start + 1..start + HEADER].copy_from_slice(&len.to_be_bytes());
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// The whole frame at the front of `buf`, if there is one, and how many
    /// bytes it took.
    pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(len) = payload_len(buf)? else { return Ok(None) };
        if buf.len() < HEADER + len {
            return Ok(None);
        }
        Ok(Some((Frame::decode(buf[0], &buf[HEADER..HEADER + len])?, HEADER + len)))
    }

    /// The header of an output frame carrying `len` bytes of `stream`, so
    /// the bytes can be written after it without copying them into a frame.
    pub fn output_header(stderr: bool, len: usize) -> [u8; HEADER] {
        let tag = if stderr { Frame::Stderr(Bytes::new()) } else { Frame::Stdout(Bytes::new()) }.tag();
        header(tag, len)
    }

    /// The header of a stdin frame carrying `len` bytes.
    pub fn stdin_header(len: usize) -> [u8; HEADER] {
        header(STDIN, len)
    }

    /// The payload of a whole stdin frame at the front of `buf`, and how
    /// many bytes the frame took: stdin is written from the receive buffer
    /// without building a frame.
    pub fn peek_stdin(buf: &[u8]) -> Option<(&[u8], usize)> {
        let len = payload_len(buf).ok()??;
        (buf[0] == STDIN && buf.len() >= HEADER + len).then(|| (&buf[HEADER..HEADER + len], HEADER + len))
    }

    /// Like `decode`, but byte payloads are moved into the frame, not copied.
    pub fn decode_owned(tag: u8, p: Bytes) -> Result<Frame, FrameError> {
        Ok(match tag {
            STDIN => Frame::Stdin(p),
            10 => Frame::Stdout(p),
            11 => Frame::Stderr(p),
            _ => return Frame::decode(tag, &p),
        })
    }

    /// Builds a frame from its tag and payload.
    pub fn decode(tag: u8, p: &[u8]) -> Result<Frame, FrameError> {
        let int = || p.try_into().map(i32::from_be_bytes).map_err(|_| FrameError::Malformed(tag));
        Ok(match tag {
            1 if p.len() == 1 => Frame::Attach(Attach::from_bits(p[0])),
            6 if p.len() == 1 => Frame::AttachFds(Attach::from_bits(p[0])),
            STDIN => Frame::Stdin(Bytes::copy_from_slice(p)),
            3 => Frame::CloseStdin,
            4 if p.len() == 4 => {
                Frame::Resize { rows: u16::from_be_bytes([p[0], p[1]]), cols: u16::from_be_bytes([p[2], p[3]]) }
            }
            5 => Frame::Signal(int()?),
            10 => Frame::Stdout(Bytes::copy_from_slice(p)),
            11 => Frame::Stderr(Bytes::copy_from_slice(p)),
            12 => Frame::Exit(int()?),
            13 => Frame::Done(String::from_utf8_lossy(p).into_owned()),
            14 => Frame::OutputGone,
            1 | 4 | 6 => return Err(FrameError::Malformed(tag)),
            _ => return Err(FrameError::UnknownTag(tag)),
        })
    }
}

fn header(tag: u8, len: usize) -> [u8; HEADER] {
    let mut h = [tag, 0, 0, 0, 0];
    h[1..].copy_from_slice(&(len as u32).to_be_bytes());
    h
}

/// The payload length announced by the header at the front of `buf`.
pub fn payload_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    Ok(Some(len))
}

/// Length of a frame header, for readers that read it on its own.
pub const HEADER_LEN: usize = HEADER;

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes one whole frame off the front of `buf`, if there is one.
    fn take(buf: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
        let Some((frame, used)) = Frame::parse(buf)? else { return Ok(None) };
        buf.drain(..used);
        Ok(Some(frame))
    }

    #[test]
    fn frames_round_trip_one_by_one() {
        let frames = vec![
            Frame::Attach(Attach { stdin: true, stdout: true, stderr: false }),
            Frame::AttachFds(Attach { stdin: false, stdout: true, stderr: true }),
            Frame::Stdin(Bytes::from_static(&[0, 255, 10])),
            Frame::CloseStdin,
            Frame::Resize { rows: 40, cols: 132 },
            Frame::Signal(2),
            Frame::Stdout(Bytes::from_static(b"hi\n")),
            Frame::Stderr(Bytes::new()),
            Frame::Exit(-1),
            Frame::Done("no such process".into()),
            Frame::OutputGone,
        ];
        let mut buf = Vec::new();
        for f in &frames {
            f.encode_into(&mut buf);
        }
        // A partial frame stays in the buffer until the rest arrives.
        let mut partial = buf[..3].to_vec();
        assert_eq!(take(&mut partial), Ok(None));
        let mut got = Vec::new();
        while let Some(f) = take(&mut buf).unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
        assert!(buf.is_empty());
        let mut head = Frame::output_header(true, 3).to_vec();
        head.extend_from_slice(b"abc");
        assert_eq!(take(&mut head).unwrap(), Some(Frame::Stderr(Bytes::from_static(b"abc"))));
        let mut head = Frame::stdin_header(1).to_vec();
        head.push(7);
        assert_eq!(take(&mut head).unwrap(), Some(Frame::Stdin(Bytes::from_static(&[7]))));
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut huge = vec![2, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(take(&mut huge), Err(FrameError::TooLarge(u32::MAX as usize)));
        let mut unknown = vec![99, 0, 0, 0, 0];
        assert_eq!(take(&mut unknown), Err(FrameError::UnknownTag(99)));
        let mut short_resize = vec![4, 0, 0, 0, 1, 7];
        assert_eq!(take(&mut short_resize), Err(FrameError::Malformed(4)));
    }
}
