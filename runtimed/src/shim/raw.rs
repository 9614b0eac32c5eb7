//! A client's own stdio, handed over with `Frame::AttachFds`: the shim
//! reads the client's stdin and writes its stdout and stderr itself, so
//! the bytes of a local `run -i` skip the client and the daemon.
//!
//! The descriptors share their open file description with the client's
//! shell, so the shim never sets `O_NONBLOCK` on them: a pipe is reopened
//! through `/proc/self/fd` (a description of its own), and only kinds that
//! never block (a regular file, `/dev/null`) are used as they are.

use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::stat::{fstat, major, minor, SFlag};

use super::queue::Queue;

/// The size asked for the client's pipes: as large as the process's own.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// One output stream of the client.
pub struct Sink {
    fd: OwnedFd,
    queue: Queue,
    /// Its reader is gone (EPIPE): later output is dropped.
    broken: bool,
    /// The client was told (`Frame::OutputGone`).
    told: bool,
}

impl Sink {
    pub fn new(fd: OwnedFd) -> Sink {
        Sink { fd, queue: Queue::default(), broken: false, told: false }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True once, when output was lost to a reader that left.
    pub fn newly_broken(&mut self) -> bool {
        let news = self.broken && !self.told;
        self.told |= news;
        news
    }

    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Writes `data` now as far as the descriptor takes it; queues the rest.
    pub fn send(&mut self, data: &[u8]) {
        if self.broken {
            return;
        }
        if !self.queue.is_empty() {
            self.queue.push(data);
            self.flush();
            return;
        }
        let n = self.write(data);
        self.queue.push(&data[n..]);
    }

    /// Writes what is queued; true if anything went out.
    pub fn flush(&mut self) -> bool {
        let mut wrote = false;
        while !self.queue.is_empty() && !self.broken {
            let Some(n) = write_some(self.fd.as_fd(), self.queue.as_slice()) else {
                self.break_off();
                break;
            };
            if n == 0 {
                break;
            }
            self.queue.consume(n);
            wrote = true;
        }
        wrote
    }

    /// Writes what the descriptor takes now; a broken one drops the rest.
    fn write(&mut self, data: &[u8]) -> usize {
        write_some(self.fd.as_fd(), data).unwrap_or_else(|| {
            self.break_off();
            0
        })
    }

    /// The reader is gone: what is queued and all later output is dropped.
    fn break_off(&mut self) {
        self.broken = true;
        self.queue.clear();
    }
}

/// One write: how much went out (0 when the descriptor is full), or `None`
/// when it cannot take any more, ever.
fn write_some(fd: BorrowedFd<'_>, data: &[u8]) -> Option<usize> {
    loop {
        match nix::unistd::write(fd, data) {
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Some(0),
            Err(_) => return None,
        }
    }
}

/// The client's streams, as the shim uses them.
pub struct RawIo {
    pub input: Option<OwnedFd>,
    pub out: Option<Sink>,
    pub err: Option<Sink>,
}

impl RawIo {
    /// Takes the handed-over descriptors in `Attach` order (stdin, stdout,
    /// stderr, each only if asked for); `None` if they do not match or one
    /// is of a kind the shim cannot use without blocking.
    pub fn adopt(attach: runtime_proto::frame::Attach, fds: Vec<OwnedFd>) -> std::io::Result<RawIo> {
        if fds.len() != attach.fd_count() {
            return Err(std::io::Error::new(ErrorKind::InvalidInput, "wrong number of descriptors"));
        }
        let mut fds = fds.into_iter();
        let mut next = |on: bool, write: bool| on.then(|| own_description(fds.next()?, write)).flatten().transpose();
        let input = next(attach.stdin, false)?;
        let out = next(attach.stdout, true)?.map(Sink::new);
        let err = next(attach.stderr, true)?.map(Sink::new);
        Ok(RawIo { input, out, err })
    }

    pub fn pending(&self) -> usize {
        self.sinks().map(Sink::pending).sum()
    }

    pub fn sinks(&self) -> impl Iterator<Item = &Sink> {
        self.out.iter().chain(self.err.iter())
    }

    /// True once per stream whose reader left while output was due.
    pub fn newly_broken(&mut self) -> bool {
        self.sinks_mut().fold(false, |any, s| s.newly_broken() | any)
    }

    pub fn sinks_mut(&mut self) -> impl Iterator<Item = &mut Sink> {
        self.out.iter_mut().chain(self.err.iter_mut())
    }

    pub fn sink(&mut self, stderr: bool) -> Option<&mut Sink> {
        if stderr {
            self.err.as_mut()
        } else {
            self.out.as_mut()
        }
    }
}

/// A descriptor for the same file that the shim may make non-blocking.
fn own_description(fd: OwnedFd, write: bool) -> Option<std::io::Result<OwnedFd>> {
    let st = match fstat(fd.as_raw_fd()) {
        Ok(st) => st,
        Err(e) => return Some(Err(e.into())),
    };
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let dev_null = kind == SFlag::S_IFCHR && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3;
    if kind == SFlag::S_IFREG || dev_null {
        return Some(Ok(fd));
    }
    if kind != SFlag::S_IFIFO {
        return Some(Err(std::io::Error::new(
            ErrorKind::Unsupported,
            "only pipes, files and /dev/null are handed over",
        )));
    }
    // A larger pipe means fewer wake-ups on both sides (best effort: the
    // limit is fs.pipe-max-size).
    let _ = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    let mode = if write { libc::O_WRONLY } else { libc::O_RDONLY };
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Some(
        nix::fcntl::open(
            path.as_str(),
            nix::fcntl::OFlag::from_bits_retain(mode | libc::O_NONBLOCK | libc::O_CLOEXEC),
            nix::sys::stat::Mode::empty(),
        )
        .map(|raw| {
            // SAFETY: open just returned this descriptor; nothing else owns it.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
        })
        .map_err(Into::into),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime_proto::frame::Attach;
    use std::io::Read;

    #[test]
    fn a_pipe_gets_a_description_of_its_own() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let attach = Attach { stdin: true, stdout: true, stderr: false };
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let mut raw = RawIo::adopt(attach, vec![r, w2]).unwrap();
        // The client's own ends stay blocking.
        for fd in [&w, &r2] {
            let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
            assert_eq!(flags & libc::O_NONBLOCK, 0);
        }
        raw.out.as_mut().unwrap().send(b"hi");
        let mut got = [0u8; 2];
        std::fs::File::from(r2).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        drop(w);
        assert!(raw.input.is_some());
    }

    #[test]
    fn a_full_pipe_queues_and_a_closed_one_drops() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let attach = Attach { stdin: false, stdout: true, stderr: false };
        let mut raw = RawIo::adopt(attach, vec![w]).unwrap();
        let sink = raw.sink(false).unwrap();
        let big = vec![7u8; 4 << 20];
        sink.send(&big);
        assert!(sink.pending() > 0, "a pipe holds at most 1 MiB (fs.pipe-max-size)");
        drop(r);
        sink.flush();
        assert_eq!(sink.pending(), 0);
        sink.send(b"more");
        assert_eq!(sink.pending(), 0);
        assert!(raw.newly_broken(), "the client is told once");
        assert!(!raw.newly_broken());
    }

    #[test]
    fn wrong_counts_and_unusable_kinds_are_refused() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let attach = Attach { stdin: true, stdout: true, stderr: true };
        assert!(RawIo::adopt(attach, vec![w]).is_err());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let attach = Attach { stdin: false, stdout: true, stderr: false };
        let err = RawIo::adopt(attach, vec![a.into()]).err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }
}
