//! The direct stdio path of a foreground `run` or `exec` without a
//! terminal: this client hands the process's shim its own stdin, stdout
//! and stderr (`Frame::AttachFds`), so piped bytes go between them and the
//! shim without passing through this process or the daemon. The daemon
//! still starts the process and reports its exit code (after `--rm`).
//!
//! Used when the descriptors are pipes, files or /dev/null (a terminal
//! goes through the daemon, for detach keys and resizes), unless
//! `RUNTIMECTL_DIRECT_STDIO=0`. A `run` client that cannot reach the shim
//! (not root, another mount namespace) attaches through the daemon
//! instead; `exec`, which cannot attach later, asks for the direct path
//! only as root.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

use runtime_proto::frame::{Attach, Frame};
use tokio::io::AsyncReadExt;

/// Whether this client's descriptors can be handed to the shim: pipes,
/// regular files and /dev/null, never a terminal or a socket.
pub fn eligible(stdin: bool) -> bool {
    if std::env::var("RUNTIMECTL_DIRECT_STDIO").is_ok_and(|v| v == "0") {
        return false;
    }
    our_fds(stdin).iter().all(|&fd| handable(fd))
}

/// The descriptors handed over, in `Attach` order.
fn our_fds(stdin: bool) -> &'static [RawFd] {
    if stdin {
        &[0, 1, 2]
    } else {
        &[1, 2]
    }
}

/// The shims' sockets are root's: another user's client is relayed.
pub fn may_reach_shims() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn handable(fd: RawFd) -> bool {
    // SAFETY: an all-zero stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat into `st`.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return false;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFREG => true,
        libc::S_IFCHR => libc::major(st.st_rdev) == 1 && libc::minor(st.st_rdev) == 3,
        _ => false,
    }
}

/// A connection to the shim that holds this client's stdio.
pub struct ShimLink {
    sock: tokio::net::UnixStream,
    buf: Vec<u8>,
}

impl ShimLink {
    /// Connects to the shim's control socket and hands it our descriptors.
    pub fn connect(path: &str, stdin: bool) -> std::io::Result<ShimLink> {
        let sock = connect_long(std::path::Path::new(path))?;
        let attach = Attach { stdin, stdout: true, stderr: true };
        send_with_fds(sock.as_fd(), &Frame::AttachFds(attach).encode(), our_fds(stdin))?;
        sock.set_nonblocking(true)?;
        Ok(ShimLink { sock: tokio::net::UnixStream::from_std(sock)?, buf: Vec::new() })
    }

    /// The exit code the shim sends once all output is written; `None` if
    /// the shim closed the connection without one (it refused our stdio,
    /// or it was killed). A reader of our output that left while output
    /// was due ends this client by SIGPIPE, as the write would have if the
    /// bytes came through us (and as docker's client ends).
    pub async fn exit_code(&mut self) -> Option<i32> {
        loop {
            match Frame::parse(&self.buf) {
                Ok(Some((Frame::Exit(code), _))) => return Some(code),
                Ok(Some((Frame::OutputGone, _))) => {
                    // SAFETY: raise is async-signal-safe; SIGPIPE's default
                    // action (set in main) ends the process.
                    unsafe { libc::raise(libc::SIGPIPE) };
                    return None;
                }
                Ok(Some((_, used))) => {
                    self.buf.drain(..used);
                    continue;
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            match self.sock.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// Connects to a unix socket whatever the length of its path (`sun_path`
/// holds 108 bytes): through an `O_PATH` handle on its directory.
fn connect_long(path: &std::path::Path) -> std::io::Result<UnixStream> {
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::ErrorKind::InvalidInput.into());
    };
    let dir = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_DIRECTORY).open(dir)?;
    let short = std::path::Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    UnixStream::connect(short)
}

/// Sends `data` with `fds` attached (`SCM_RIGHTS`) in one message.
fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is valid; the fields set point at live
    // buffers of the lengths given, and the CMSG macros stay inside
    // `control`, which CMSG_SPACE sized for one header and `fds`.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)
    };
    match sent {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        n if n as usize != data.len() => Err(std::io::ErrorKind::WriteZero.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Reads the pipe without blocking: `Some(0)` at its end, `None` while
    /// a writer is open.
    fn probe(r: RawFd) -> Option<isize> {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(r, (&mut byte as *mut u8).cast(), 1) };
        (n >= 0).then_some(n)
    }

    #[test]
    fn descriptors_travel_with_the_attach_frame() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut p = [0; 2];
        // SAFETY: pipe2 fills the two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) }, 0);
        let attach = Attach { stdin: false, stdout: true, stderr: false };
        send_with_fds(a.as_fd(), &Frame::AttachFds(attach).encode(), &[p[1]]).unwrap();
        // SAFETY: our own write end, closed once.
        unsafe { libc::close(p[1]) };
        // The copy in flight keeps the pipe's write end open...
        assert_eq!(probe(p[0]), None);
        let mut got = [0u8; 6];
        b.read_exact(&mut got).unwrap();
        assert_eq!(Frame::parse(&got).unwrap().unwrap().0, Frame::AttachFds(attach));
        // ...until a reader that does not take it drops it.
        assert_eq!(probe(p[0]), Some(0));
        // SAFETY: our own read end, closed once.
        unsafe { libc::close(p[0]) };
    }

    #[test]
    fn only_pipes_files_and_dev_null_are_handed_over() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(handable(null.as_raw_fd()));
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(handable(file.as_raw_fd()));
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(!handable(a.as_raw_fd()));
        let zero = std::fs::File::open("/dev/zero").unwrap();
        assert!(!handable(zero.as_raw_fd()));
    }
}
