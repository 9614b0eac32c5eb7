//! The client's terminal: raw mode while attached to a container's pty,
//! its size, and docker's detach key sequence.

use std::os::fd::RawFd;

use crate::error::{CliError, Result};

const STDIN: RawFd = 0;

pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(STDIN) == 1 }
}

/// The terminal's size (rows, columns), from stdout or stdin.
pub fn size() -> Option<(u32, u32)> {
    [1, STDIN].into_iter().find_map(|fd| {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into valid memory.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        (rc == 0 && ws.ws_row > 0).then_some((ws.ws_row.into(), ws.ws_col.into()))
    })
}

/// Puts stdin's terminal in raw mode (keys go to the container as typed,
/// Ctrl-C included) and restores it when dropped, on every exit path.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    pub fn enter() -> Result<RawMode> {
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr/tcsetattr read and write a termios we own.
        if unsafe { libc::tcgetattr(STDIN, &mut saved) } != 0 {
            return Err(CliError::new(format!("read terminal mode: {}", std::io::Error::last_os_error())));
        }
        let mut raw = saved;
        unsafe { libc::cfmakeraw(&mut raw) };
        if unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &raw) } != 0 {
            return Err(CliError::new(format!("set raw terminal mode: {}", std::io::Error::last_os_error())));
        }
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the mode saved by `enter`.
        unsafe { libc::tcsetattr(STDIN, libc::TCSANOW, &self.saved) };
    }
}

/// Parses docker's `--detach-keys`: comma-separated `ctrl-X` or single
/// characters, e.g. `ctrl-p,ctrl-q`; empty means no sequence.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let invalid = || CliError::new(format!("invalid detach keys: {spec}"));
    spec.split(',')
        .filter(|k| !k.is_empty())
        .map(|key| match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                b @ b'a'..=b'z' => Ok(b - b'a' + 1),
                b'@' => Ok(0),
                b'[' => Ok(27),
                b'\\' => Ok(28),
                b']' => Ok(29),
                b'^' => Ok(30),
                b'_' => Ok(31),
                _ => Err(invalid()),
            },
            Some(_) => Err(invalid()),
            None if key.len() == 1 => Ok(key.as_bytes()[0]),
            None => Err(invalid()),
        })
        .collect()
}

/// Finds the detach sequence in typed input, across reads. Bytes that
/// start the sequence are held back until it completes or breaks.
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachKeys { keys, matched: 0 }
    }

    /// The bytes to pass on, and whether the sequence was typed.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        if self.keys.is_empty() {
            return (input.to_vec(), false);
        }
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = usize::from(b == self.keys[0]);
            if self.matched == 0 {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), [1, b'x']);
        assert!(parse_detach_keys("ctrl-pp").is_err());
        assert!(parse_detach_keys("").unwrap().is_empty());
    }

    #[test]
    fn detach_sequence_is_found_across_reads() {
        let mut keys = DetachKeys::new(vec![16, 17]);
        assert_eq!(keys.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(keys.feed(b"\x11rest"), (Vec::new(), true));
        let mut keys = DetachKeys::new(vec![16, 17]);
        // A broken sequence passes its bytes on.
        assert_eq!(keys.feed(b"\x10x\x10\x10\x11"), (b"\x10x\x10".to_vec(), true));
    }
}
