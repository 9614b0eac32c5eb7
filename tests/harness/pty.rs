//! A real pseudo-terminal for tests that type into `runtimectl -it` the
//! way a user does: the client's stdin, stdout and stderr are the pty's
//! terminal side, and the test reads and writes the other side.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pty {
    master: File,
    child: Child,
    /// Everything read so far that `expect` has not consumed.
    seen: Vec<u8>,
}

impl Pty {
    /// Runs `cmd` on a new terminal of `rows` x `cols`, as its session's
    /// controlling terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two descriptors; the other arguments may be null.
        let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty returned these descriptors, now owned here.
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup pty"));
        cmd.stdin(stdio(&slave)).stdout(stdio(&slave)).stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on the pty");
        drop(slave);
        let flags = unsafe { libc::fcntl(master.as_raw_fd(), libc::F_GETFL) };
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
        Pty { master, child, seen: Vec::new() }
    }

    /// Types `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to the pty");
    }

    /// Reads until `needle` appears; returns what was read up to and
    /// including it. Panics with what was seen after `timeout`.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        let needle = needle.as_bytes();
        loop {
            if let Some(pos) = self.seen.windows(needle.len()).position(|w| w == needle) {
                let taken: Vec<u8> = self.seen.drain(..pos + needle.len()).collect();
                return String::from_utf8_lossy(&taken).into_owned();
            }
            let text = String::from_utf8_lossy(&self.seen);
            assert!(Instant::now() < deadline, "did not see the text on the terminal; it showed:\n{text:?}");
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Changes the terminal's size, as a terminal emulator does when its
    /// window is resized (the kernel then sends SIGWINCH to the client).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "resize the pty");
    }

    /// Waits for the client to exit; its exit code.
    pub fn wait(mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            // Keep draining, so the client never blocks writing.
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                self.seen.extend_from_slice(&buf[..n]);
            }
            if let Some(status) = self.child.try_wait().expect("wait for the client") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the client did not exit; the terminal showed:\n{:?}", String::from_utf8_lossy(&self.seen));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
