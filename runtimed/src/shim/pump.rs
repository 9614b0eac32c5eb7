//! The shim's event loop: copy two pipes while waiting for one process.
//!
//! Plain `poll(2)` over the two pipes and a pidfd keeps the shim a single
//! thread with no runtime.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::protocol::Stream;
use crate::util::pidfd_open;

/// After the process exits, how long to keep draining pipes that other
/// processes (its orphans) may still hold open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How often stray children (inherited as subreaper) are reaped.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Forwards both pipes to `sink` until `pid` has exited and the pipes are
/// closed (or the grace period ends). Returns the docker-style exit code.
pub fn pump(pid: i32, out: OwnedFd, err: OwnedFd, mut sink: impl FnMut(Stream, &[u8])) -> i32 {
    let pidfd = pidfd_open(pid);
    let mut pipes = [Some(out), Some(err)];
    let mut exit: Option<i32> = None;
    let mut deadline: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    if pidfd.is_none() {
        exit = Some(wait_exit(pid));
        deadline = Some(Instant::now() + DRAIN_GRACE);
    }
    loop {
        let open = pipes.iter().filter(|p| p.is_some()).count();
        if exit.is_some() && (open == 0 || deadline.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        let mut fds: Vec<PollFd> = Vec::with_capacity(3);
        let mut order: Vec<usize> = Vec::with_capacity(3);
        for (i, p) in pipes.iter().enumerate() {
            if let Some(fd) = p {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                order.push(i);
            }
        }
        if exit.is_none() {
            if let Some(pfd) = &pidfd {
                fds.push(PollFd::new(pfd.as_fd(), PollFlags::POLLIN));
                order.push(2);
            }
        }
        let wait = deadline.map_or(REAP_EVERY, |d| d.saturating_duration_since(Instant::now()).min(REAP_EVERY));
        let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&order)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, &i)| i)
            .collect();
        drop(fds);
        if exit.is_none() {
            if let Some(code) = reap(pid) {
                exit = Some(code);
                deadline = Some(Instant::now() + DRAIN_GRACE);
            }
        }
        for i in ready {
            if i == 2 {
                continue;
            }
            let stream = if i == 0 { Stream::Stdout } else { Stream::Stderr };
            let fd = pipes[i].as_ref().expect("polled pipe is open").as_raw_fd();
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(_) => pipes[i] = None,
                Ok(n) => sink(stream, &buf[..n]),
            }
        }
    }
    exit.unwrap_or_else(|| wait_exit(pid))
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
