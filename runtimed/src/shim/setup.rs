//! The process's stdio as the shim sets it up: pipes, or a pty whose
//! master libcontainer hands over on a console socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use super::io;
use super::signals::with_default_signals;
use super::IoArgs;
use crate::util::SocketPath;

/// How long libcontainer may take to hand over the pty master.
const CONSOLE_WAIT: Duration = Duration::from_secs(10);

/// A listening socket in `dir`, replacing one a previous shim left.
pub fn listen(dir: &Path, name: &str) -> Result<(UnixListener, SocketPath), String> {
    let path = SocketPath::new(dir, name).map_err(|e| format!("open {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&path.path);
    let listener = UnixListener::bind(&path.path).map_err(|e| format!("bind {name}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok((listener, path))
}

/// The process's ends of its stdio, handed to libcontainer.
pub struct ProcessStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Starts the process with `spawn` (given its stdio and, with a tty, the
/// console socket), then collects the shim's ends: pipes, or the pty
/// master libcontainer sends over the console socket.
pub fn start_io(
    a: &IoArgs,
    spawn: impl FnOnce(ProcessStdio, Option<PathBuf>) -> Result<i32, String>,
) -> Result<(i32, io::Stdio), String> {
    let e = |e: nix::Error| e.to_string();
    if a.tty {
        let name = format!("console-{}.sock", std::process::id());
        let (listener, path) = listen(&a.sock_dir, &name)?;
        let stdio = ProcessStdio { stdin: devnull()?, stdout: devnull()?, stderr: devnull()? };
        let pid = with_default_signals(|| spawn(stdio, Some(path.path.clone())));
        let master = pid.as_ref().ok().map(|_| receive_master(&listener));
        let _ = std::fs::remove_file(&path.path);
        let (pid, master) = (pid?, master.expect("set when spawned")?);
        let input = a.stdin.then(|| master.try_clone()).transpose().map_err(|e| e.to_string())?;
        return Ok((pid, io::Stdio { out: master, err: None, input, tty: true }));
    }
    let (out_r, out_w) = big_pipe().map_err(e)?;
    let (err_r, err_w) = big_pipe().map_err(e)?;
    let (stdin, input) = if a.stdin {
        let (r, w) = big_pipe().map_err(e)?;
        (r, Some(w))
    } else {
        (devnull()?, None)
    };
    let stdio = ProcessStdio { stdin, stdout: out_w, stderr: err_w };
    let pid = with_default_signals(|| spawn(stdio, None))?;
    Ok((pid, io::Stdio { out: out_r, err: Some(err_r), input, tty: false }))
}

/// A pipe of 1 MiB rather than 64 KiB: when the writer runs ahead, the
/// shim reads big chunks, and the per-chunk costs (frames, log records,
/// messages) stay small beside the bytes.
fn big_pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC)?;
    // Best effort: an unprivileged limit below 1 MiB keeps the default.
    let _ = nix::fcntl::fcntl(w.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((r, w))
}

const PIPE_SIZE: i32 = 1 << 20;

/// Accepts libcontainer's connection on the console socket and takes the
/// pty master from it (SCM_RIGHTS).
fn receive_master(listener: &UnixListener) -> Result<OwnedFd, String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::{AsFd, FromRawFd};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(CONSOLE_WAIT).unwrap_or(PollTimeout::MAX);
    if poll(&mut fds, timeout).map_err(|e| e.to_string())? == 0 {
        return Err("the container did not send its terminal".into());
    }
    let (sock, _) = listener.accept().map_err(|e| format!("accept console: {e}"))?;
    sock.set_nonblocking(false).map_err(|e| e.to_string())?;
    let mut name = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive console: {e}"))?;
    for cmsg in msg.cmsgs().map_err(|e| e.to_string())? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err("the console socket carried no terminal".into())
}

fn devnull() -> Result<OwnedFd, String> {
    std::fs::File::open("/dev/null").map(OwnedFd::from).map_err(|e| format!("open /dev/null: {e}"))
}
