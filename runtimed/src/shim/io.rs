//! The shim's event loop: it owns the process's stdio (pipes, or a pty
//! master), copies output to the log and to every attached client, feeds
//! their input to stdin, and waits for the process.
//!
//! Plain `poll(2)` keeps the shim a single thread with no runtime. Slow
//! clients push back: while one has more than `OUT_CAP` bytes queued the
//! output is not read, so the process blocks as it would on a slow pipe
//! instead of the shim buffering without bound.

use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::frame::{Attach, Frame};
use super::protocol::Stream;
use super::queue::Queue;
use super::raw::RawIo;
use crate::util::pidfd_open;

/// After the process exits, how long to keep draining output that other
/// processes (its orphans) may still hold open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often stray children (inherited as subreaper) are reaped.
const REAP_EVERY: Duration = Duration::from_secs(1);
/// Output queued for one client before the shim stops reading output.
const OUT_CAP: usize = 1 << 20;
/// Input queued for stdin before the shim stops reading clients.
const IN_CAP: usize = 1 << 20;
/// How long the final output and exit code may take to reach clients.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);
/// Largest read from the process (its pipes hold 1 MiB).
const CHUNK: usize = 256 * 1024;

/// The process's side of the shim.
pub struct Stdio {
    /// The stdout pipe, or the pty master.
    pub out: OwnedFd,
    /// The stderr pipe (none with a pty: both streams are the terminal).
    pub err: Option<OwnedFd>,
    /// The stdin pipe's write end or a copy of the pty master; none when
    /// stdin is not kept open.
    pub input: Option<OwnedFd>,
    pub tty: bool,
}

pub struct Serve<'a> {
    pub pid: i32,
    pub stdio: Stdio,
    /// Control socket on which attach and signal clients connect.
    pub listener: Option<UnixListener>,
    /// A client connected from the start (an exec's socketpair).
    pub client: Option<UnixStream>,
    /// Hold the output until a client attaches (at most this long), so a
    /// foreground run misses nothing the process prints first.
    pub hold: Option<Duration>,
    pub log: &'a mut dyn FnMut(Stream, &[u8]),
}

struct Client {
    sock: UnixStream,
    inbuf: Queue,
    outbuf: Queue,
    attach: Option<Attach>,
    gone: bool,
    /// Descriptors handed over before an `AttachFds`.
    fds: Vec<OwnedFd>,
    /// The client's own stdio, after an `AttachFds`.
    raw: Option<RawIo>,
}

impl Client {
    fn new(sock: UnixStream) -> Option<Client> {
        sock.set_nonblocking(true).ok()?;
        Some(Client {
            sock,
            inbuf: Queue::default(),
            outbuf: Queue::default(),
            attach: None,
            gone: false,
            fds: Vec::new(),
            raw: None,
        })
    }

    fn wants(&self, stream: Stream) -> bool {
        self.attach.is_some_and(|a| if stream == Stream::Stderr { a.stderr } else { a.stdout })
    }

    /// Output queued for this client, not yet taken.
    fn queued(&self) -> usize {
        self.outbuf.len() + self.raw.as_ref().map_or(0, RawIo::pending)
    }

    /// Sends output: into the client's own descriptor, or framed.
    fn output(&mut self, stderr: bool, header: &[u8], data: &[u8]) {
        match self.raw.as_mut() {
            Some(raw) => {
                raw.sink(stderr).into_iter().for_each(|s| s.send(data));
                self.tell_broken();
            }
            None => self.send_output(header, data),
        }
    }

    /// Tells the client that one of its handed-over outputs lost its reader.
    fn tell_broken(&mut self) {
        if self.raw.as_mut().is_some_and(RawIo::newly_broken) {
            self.send(&Frame::OutputGone);
        }
    }

    /// Queues a frame.
    fn send(&mut self, frame: &Frame) {
        frame.encode_into(self.outbuf.buf_mut());
        self.flush();
    }

    /// Sends a frame of output: straight from `data` when nothing is
    /// queued (no copy), queueing only what the socket did not take.
    fn send_output(&mut self, header: &[u8], data: &[u8]) {
        if !self.outbuf.is_empty() {
            self.outbuf.push(header);
            self.outbuf.push(data);
            self.flush();
            return;
        }
        let sent = match self.sock.write_vectored(&[std::io::IoSlice::new(header), std::io::IoSlice::new(data)]) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
            Err(_) => {
                self.gone = true;
                return;
            }
        };
        if sent < header.len() {
            self.outbuf.push(&header[sent..]);
            self.outbuf.push(data);
        } else {
            self.outbuf.push(&data[sent - header.len()..]);
        }
    }

    fn flush(&mut self) {
        while !self.outbuf.is_empty() {
            match self.sock.write(self.outbuf.as_slice()) {
                Ok(0) => break,
                Ok(n) => self.outbuf.consume(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.gone = true;
                    break;
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Source {
    Listener,
    Client(usize),
    /// A client's own stdin.
    RawIn(usize),
    /// A client's own stdout (false) or stderr (true), writable.
    RawOut(usize, bool),
    Out,
    Err,
    Input,
    Pid,
}

struct Loop<'a> {
    pid: i32,
    tty: bool,
    listener: Option<UnixListener>,
    log: &'a mut dyn FnMut(Stream, &[u8]),
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    input: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    clients: Vec<Client>,
    stdin_buf: Queue,
    /// A client ended its input: close stdin once the queue is written.
    close_stdin: bool,
    exit: Option<i32>,
    hold_until: Option<Instant>,
    drain_until: Option<Instant>,
}

/// Serves until the process has exited and its output is drained; tells
/// attached clients the exit code and returns it (docker-style).
pub fn serve(s: Serve<'_>) -> i32 {
    let Serve { pid, stdio, listener, client, hold, log } = s;
    let Stdio { out, err, input, tty } = stdio;
    for fd in [Some(&out), err.as_ref(), input.as_ref()].into_iter().flatten() {
        set_nonblocking(fd.as_fd());
    }
    let mut l = Loop {
        pid,
        tty,
        listener,
        log,
        out: Some(out),
        err,
        input,
        pidfd: pidfd_open(pid),
        clients: Vec::new(),
        stdin_buf: Queue::default(),
        close_stdin: false,
        exit: None,
        hold_until: hold.map(|d| Instant::now() + d),
        drain_until: None,
    };
    if let Some(c) = client.and_then(Client::new) {
        l.clients.push(c);
    }
    if l.pidfd.is_none() {
        let code = wait_exit(l.pid);
        l.exited(code);
    }
    let mut buf = vec![0u8; CHUNK];
    while !l.finished() {
        l.round(&mut buf);
    }
    let code = l.exit.unwrap_or_else(|| wait_exit(l.pid));
    l.say_goodbye(code);
    code
}

impl Loop<'_> {
    fn exited(&mut self, code: i32) {
        self.exit = Some(code);
        self.drain_until = Some(Instant::now() + DRAIN_GRACE);
        self.input = None;
        self.stdin_buf.clear();
    }

    fn finished(&self) -> bool {
        if self.hold_until.is_some() {
            // Nothing is lost while output is held for the first client.
            return false;
        }
        let open = self.out.is_some() || self.err.is_some();
        self.exit.is_some() && (!open || self.drain_until.is_some_and(|d| Instant::now() >= d))
    }

    /// A client reads the output (a waiter that only wants the exit code
    /// does not end the hold).
    fn attached(&self) -> bool {
        self.clients.iter().any(|c| c.attach.is_some_and(|a| a.stdout || a.stderr))
    }

    /// Output is held before the first attach, and while a client is full.
    fn read_output(&mut self) -> bool {
        if self.hold_until.is_some_and(|d| Instant::now() < d) && !self.attached() {
            return false;
        }
        if self.hold_until.take().is_some() && self.exit.is_some() {
            self.drain_until = Some(Instant::now() + DRAIN_GRACE);
        }
        !self.clients.iter().any(|c| c.attach.is_some() && c.queued() > OUT_CAP)
    }

    fn timeout(&self) -> Duration {
        let now = Instant::now();
        [self.drain_until, self.hold_until]
            .into_iter()
            .flatten()
            .map(|d| d.saturating_duration_since(now))
            .fold(REAP_EVERY, Duration::min)
    }

    /// One poll and the work it found.
    fn round(&mut self, buf: &mut [u8]) {
        let read_output = self.read_output();
        let read_clients = self.stdin_buf.len() < IN_CAP;
        let mut want: Vec<(BorrowedFd<'_>, PollFlags, Source)> = Vec::new();
        if read_output {
            want.extend(self.out.as_ref().map(|f| (f.as_fd(), PollFlags::POLLIN, Source::Out)));
            want.extend(self.err.as_ref().map(|f| (f.as_fd(), PollFlags::POLLIN, Source::Err)));
        }
        if !self.stdin_buf.is_empty() {
            want.extend(self.input.as_ref().map(|f| (f.as_fd(), PollFlags::POLLOUT, Source::Input)));
        }
        if self.exit.is_none() {
            want.extend(self.pidfd.as_ref().map(|f| (f.as_fd(), PollFlags::POLLIN, Source::Pid)));
        }
        want.extend(self.listener.as_ref().map(|l| (l.as_fd(), PollFlags::POLLIN, Source::Listener)));
        for (i, c) in self.clients.iter().enumerate() {
            let mut flags = PollFlags::empty();
            if read_clients {
                flags |= PollFlags::POLLIN;
            }
            if !c.outbuf.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            want.push((c.sock.as_fd(), flags, Source::Client(i)));
            let Some(raw) = c.raw.as_ref() else { continue };
            if read_clients && self.input.is_some() {
                want.extend(raw.input.as_ref().map(|f| (f.as_fd(), PollFlags::POLLIN, Source::RawIn(i))));
            }
            for (stderr, sink) in [(false, raw.out.as_ref()), (true, raw.err.as_ref())] {
                if let Some(sink) = sink.filter(|s| s.pending() > 0) {
                    want.push((sink.fd(), PollFlags::POLLOUT, Source::RawOut(i, stderr)));
                }
            }
        }
        let mut fds: Vec<PollFd> = want.iter().map(|(fd, flags, _)| PollFd::new(*fd, *flags)).collect();
        let what: Vec<Source> = want.iter().map(|w| w.2).collect();
        let timeout = PollTimeout::try_from(self.timeout()).unwrap_or(PollTimeout::ZERO);
        let ready: Vec<Source> = match poll(&mut fds, timeout) {
            Ok(_) => fds
                .iter()
                .zip(&what)
                .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, s)| *s)
                .collect(),
            Err(_) => Vec::new(),
        };
        drop(fds);
        drop(want);
        if self.exit.is_none() {
            if let Some(code) = reap(self.pid) {
                self.exited(code);
            }
        }
        for src in ready {
            match src {
                Source::Out => self.on_output(Stream::Stdout, buf),
                Source::Err => self.on_output(Stream::Stderr, buf),
                Source::Input => self.write_stdin(),
                Source::Pid => {}
                Source::Listener => self.accept(),
                Source::Client(i) => self.on_client(i),
                Source::RawIn(i) => self.on_raw_input(i, buf),
                Source::RawOut(i, stderr) => {
                    let c = &mut self.clients[i];
                    if let Some(s) = c.raw.as_mut().and_then(|r| r.sink(stderr)) {
                        s.flush();
                    }
                    c.tell_broken();
                }
            }
        }
        self.clients.retain(|c| !c.gone);
    }

    fn on_output(&mut self, stream: Stream, buf: &mut [u8]) {
        let slot = if stream == Stream::Stderr { &mut self.err } else { &mut self.out };
        let Some(fd) = slot.as_ref() else { return };
        // A pty master reads EIO once the terminal's last user is gone.
        let n = match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            Err(_) => None,
        };
        let Some(n) = n else {
            *slot = None;
            return;
        };
        let data = &buf[..n];
        (self.log)(stream, data);
        let header = Frame::output_header(stream == Stream::Stderr, n);
        for c in self.clients.iter_mut().filter(|c| c.wants(stream)) {
            c.output(stream == Stream::Stderr, &header, data);
        }
    }

    fn write_stdin(&mut self) {
        let Some(fd) = self.input.as_ref() else { return };
        match nix::unistd::write(fd, self.stdin_buf.as_slice()) {
            Ok(n) => self.stdin_buf.consume(n),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            // The process closed its stdin: what is queued cannot go anywhere.
            Err(_) => {
                self.input = None;
                self.stdin_buf.clear();
            }
        }
        self.maybe_close_stdin();
    }

    fn maybe_close_stdin(&mut self) {
        if self.close_stdin && self.stdin_buf.is_empty() && !self.tty {
            self.input = None;
        }
    }

    fn accept(&mut self) {
        let Some(listener) = self.listener.as_ref() else { return };
        match listener.accept() {
            Ok((sock, _)) => self.clients.extend(Client::new(sock)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!("accept on the control socket: {e}"),
        }
    }

    fn on_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.flush();
        let read = c.inbuf.recv_from(c.sock.as_fd(), CHUNK, &mut c.fds);
        // Descriptors count only with an attach: later ones are closed.
        if c.attach.is_some() {
            c.fds.clear();
        }
        match read {
            Ok(0) => c.gone = true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => c.gone = true,
        }
        // Taken out while its frames are handled, which need `self`.
        let mut inbuf = std::mem::take(&mut self.clients[i].inbuf);
        loop {
            if let Some((data, used)) = Frame::peek_stdin(inbuf.as_slice()) {
                self.on_stdin(i, data);
                inbuf.consume(used);
                continue;
            }
            match Frame::parse(inbuf.as_slice()) {
                Ok(Some((frame, used))) => {
                    inbuf.consume(used);
                    self.on_frame(i, frame);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("dropping a control client: {e}");
                    self.clients[i].gone = true;
                    break;
                }
            }
        }
        self.clients[i].inbuf = inbuf;
    }

    /// Input from client `i`: written straight to stdin when nothing is
    /// queued before it, queueing only what the pipe did not take.
    fn on_stdin(&mut self, i: usize, mut data: &[u8]) {
        let Some(fd) = self.input.as_ref().filter(|_| self.clients[i].attach.is_some_and(|a| a.stdin)) else {
            return;
        };
        if self.stdin_buf.is_empty() {
            match nix::unistd::write(fd, data) {
                Ok(n) => data = &data[n..],
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    self.input = None;
                    return;
                }
            }
        }
        self.stdin_buf.push(data);
    }

    fn on_frame(&mut self, i: usize, frame: Frame) {
        let writes_stdin = self.clients[i].attach.is_some_and(|a| a.stdin) && self.input.is_some();
        match frame {
            Frame::Attach(a) => self.clients[i].attach = Some(a),
            Frame::AttachFds(a) => self.adopt(i, a),
            Frame::Stdin(data) => self.on_stdin(i, &data),
            Frame::CloseStdin if writes_stdin => {
                self.close_stdin = true;
                self.maybe_close_stdin();
            }
            Frame::Resize { rows, cols } => self.resize(rows, cols),
            Frame::Signal(sig) => {
                let answer = self.signal(sig);
                self.clients[i].send(&Frame::Done(answer));
            }
            _ => {}
        }
    }

    /// Takes over client `i`'s own stdio; a client whose descriptors do
    /// not fit is dropped, and sees its connection end without an exit code.
    fn adopt(&mut self, i: usize, attach: Attach) {
        let c = &mut self.clients[i];
        match RawIo::adopt(attach, std::mem::take(&mut c.fds)) {
            Ok(raw) => {
                c.raw = Some(raw);
                c.attach = Some(attach);
            }
            Err(e) => {
                tracing::warn!("refusing a client's stdio: {e}");
                c.gone = true;
            }
        }
    }

    /// Client `i`'s stdin is readable: its bytes go to the process's stdin,
    /// and its end closes the process's stdin as a `CloseStdin` would.
    fn on_raw_input(&mut self, i: usize, buf: &mut [u8]) {
        let Some(fd) = self.clients[i].raw.as_ref().and_then(|r| r.input.as_ref()) else { return };
        // Pipe to pipe, the pages move without a copy; what is queued
        // before goes first, and a full stdin falls back to the queue.
        let to = self.input.as_ref().filter(|_| self.stdin_buf.is_empty() && !self.tty);
        let spliced = to.map(|to| splice(fd.as_fd(), to.as_fd()));
        let got = match spliced {
            Some(Ok(n)) => Ok(n),
            Some(Err(nix::errno::Errno::EAGAIN)) | Some(Err(nix::errno::Errno::EINVAL)) | None => {
                nix::unistd::read(fd.as_raw_fd(), buf).inspect(|&n| self.on_stdin(i, &buf[..n]))
            }
            Some(Err(e)) => Err(e),
        };
        match got {
            Ok(0) | Err(nix::errno::Errno::EIO | nix::errno::Errno::EBADF) => {
                self.clients[i].raw.as_mut().map(|r| r.input.take());
                self.close_stdin = true;
                self.maybe_close_stdin();
            }
            // The process closed its stdin.
            Err(nix::errno::Errno::EPIPE) => {
                self.input = None;
                self.stdin_buf.clear();
            }
            Ok(_) | Err(_) => {}
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        if !self.tty {
            return;
        }
        let Some(fd) = self.input.as_ref().or(self.out.as_ref()) else { return };
        let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }

    /// Signals through the pidfd: a pid reused after the exit is never hit.
    fn signal(&self, sig: i32) -> String {
        let Some(pidfd) = self.pidfd.as_ref().filter(|_| self.exit.is_none()) else {
            return "the process is not running".into();
        };
        // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
        let rc =
            unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<u8>(), 0u32) };
        if rc == 0 {
            String::new()
        } else {
            std::io::Error::last_os_error().to_string()
        }
    }

    /// Sends the exit code to attached clients and lets them read it.
    fn say_goodbye(&mut self, code: i32) {
        self.drain_raw();
        for c in self.clients.iter_mut().filter(|c| c.attach.is_some()) {
            Frame::Exit(code).encode_into(c.outbuf.buf_mut());
        }
        let deadline = Instant::now() + FLUSH_LIMIT;
        loop {
            self.clients.retain(|c| !c.gone && !c.outbuf.is_empty());
            let now = Instant::now();
            if self.clients.is_empty() || now >= deadline {
                return;
            }
            let mut fds: Vec<PollFd> =
                self.clients.iter().map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLOUT)).collect();
            let timeout = PollTimeout::try_from(deadline - now).unwrap_or(PollTimeout::ZERO);
            let _ = poll(&mut fds, timeout);
            drop(fds);
            for c in &mut self.clients {
                c.flush();
            }
        }
    }
}

impl Loop<'_> {
    /// Writes what clients' own descriptors still wait for, before their
    /// exit code tells them the output is complete. A reader that takes
    /// nothing for `FLUSH_LIMIT` is given up on; a slow one is waited for.
    fn drain_raw(&mut self) {
        let mut deadline = Instant::now() + FLUSH_LIMIT;
        loop {
            let raws = self.clients.iter().filter_map(|c| c.raw.as_ref());
            let mut fds: Vec<PollFd> = raws
                .flat_map(RawIo::sinks)
                .filter(|s| s.pending() > 0)
                .map(|s| PollFd::new(s.fd(), PollFlags::POLLOUT))
                .collect();
            let now = Instant::now();
            if fds.is_empty() || now >= deadline {
                return;
            }
            let _ = poll(&mut fds, PollTimeout::try_from(deadline - now).unwrap_or(PollTimeout::ZERO));
            drop(fds);
            let raws = self.clients.iter_mut().filter_map(|c| c.raw.as_mut());
            if raws.flat_map(RawIo::sinks_mut).fold(false, |moved, s| s.flush() | moved) {
                deadline = Instant::now() + FLUSH_LIMIT;
            }
            self.clients.iter_mut().for_each(Client::tell_broken);
        }
    }
}

/// Moves up to 1 MiB (a full pipe) from one pipe to another without
/// blocking.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> nix::Result<usize> {
    use nix::fcntl::SpliceFFlags;
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    nix::fcntl::splice(from, None, to, None, CHUNK * 4, flags)
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK));
    }
}

/// Reaps every child that has ended; returns `pid`'s exit code if it is
/// among them.
fn reap(pid: i32) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => return Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Waits for `pid` and converts its status like docker: the exit code, or
/// 128 + the signal that killed it.
fn wait_exit(pid: i32) -> i32 {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
