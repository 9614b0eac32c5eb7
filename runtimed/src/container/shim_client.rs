//! The daemon's side of the shim: launch `runtimed shim run|exec` and read
//! its ready line, then talk to it in frames over its control socket (or an
//! exec's socketpair).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::process::Command;

use super::ContainerPaths;
use crate::error::{Error, Result};
use crate::shim::frame::{payload_len, Attach, Frame, HEADER_LEN};
use crate::shim::protocol::{docker_words, FailKind, Ready};
use crate::shim::CONTROL_SOCKET;
use crate::util::SocketPath;

/// How long a container may take to be created by the shim.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Least room a frame reader asks the socket to fill per read.
const READ_BUFFER: usize = 256 * 1024;
/// How long a shim may take to answer a signal request.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Started {
    pub pid: i32,
    pub shim_pid: i32,
}

/// How the process's stdio is set up.
#[derive(Clone, Copy, Default)]
pub struct IoOptions {
    pub stdin: bool,
    pub tty: bool,
    /// Hold the output until a client attaches.
    pub hold: bool,
}

fn io_args(cmd: &mut Command, io: IoOptions, sock_dir: &Path) {
    cmd.arg("--sock-dir").arg(sock_dir);
    for (on, flag) in [(io.stdin, "--stdin"), (io.tty, "--tty"), (io.hold, "--hold")] {
        if on {
            cmd.arg(flag);
        }
    }
}

/// Which mounts a run shim's own mount namespace leaves out: those below
/// `drop_under` (other containers'), except those below `keep`.
pub struct MountScope {
    pub drop_under: Vec<std::path::PathBuf>,
    pub keep: Vec<std::path::PathBuf>,
    /// The daemon's mount template (`shim::template`), if it made one.
    pub template: Option<std::path::PathBuf>,
}

pub async fn start(
    exe: &Path,
    lc_root: &Path,
    id: &str,
    paths: &ContainerPaths,
    io: IoOptions,
    mounts: &MountScope,
) -> Result<Started> {
    let mut cmd = Command::new(exe);
    cmd.args(["shim", "run", "--id", id])
        .arg("--bundle")
        .arg(paths.bundle())
        .arg("--lc-root")
        .arg(lc_root)
        .arg("--log")
        .arg(paths.log())
        .arg("--exit-file")
        .arg(paths.exit_file())
        .arg("--shim-log")
        .arg(paths.shim_log());
    for dir in &mounts.drop_under {
        cmd.arg("--drop-mounts-under").arg(dir);
    }
    for keep in &mounts.keep {
        cmd.arg("--keep-mount").arg(keep);
    }
    if let Some(file) = &mounts.template {
        cmd.arg("--mount-template").arg(file);
    }
    io_args(&mut cmd, io, paths.bundle());
    launch(cmd, Stdio::null(), paths).await
}

/// Spawns a shim command and reads its ready line.
async fn launch(mut cmd: Command, stdin: Stdio, paths: &ContainerPaths) -> Result<Started> {
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("spawn shim", e))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::internal("shim has no stdout"))?;
    // The first shim process forks the real shim and exits at once.
    child.wait().await.map_err(|e| Error::io("wait for shim", e))?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(START_TIMEOUT, read)
        .await
        .map_err(|_| Error::internal("the shim did not report within 60s"))?
        .map_err(|e| Error::io("read shim ready line", e))?;
    let ready: Ready = serde_json::from_str(line.trim()).map_err(|_| {
        Error::internal(format!("shim failed before starting the process (see {})", paths.shim_log().display()))
    })?;
    match ready {
        Ready::Started { pid, shim_pid } => Ok(Started { pid, shim_pid }),
        Ready::Failed { kind, message } => Err(start_error(kind, message)),
    }
}

pub struct ExecRequest<'a> {
    pub id: &'a str,
    /// Its control socket's name in the container's directory.
    pub control: &'a str,
    /// Where its exit status is written.
    pub exit_file: &'a Path,
    /// The written process.json; the shim removes it.
    pub process: &'a Path,
    pub io: IoOptions,
    pub detach: bool,
}

/// Starts an exec shim; unless detached, returns the connection on which
/// it serves the process's stdio.
pub async fn exec(
    exe: &Path,
    lc_root: &Path,
    paths: &ContainerPaths,
    req: &ExecRequest<'_>,
) -> Result<(Started, Option<ShimConn>)> {
    let mut cmd = Command::new(exe);
    cmd.args(["shim", "exec", "--id", req.id])
        .arg("--lc-root")
        .arg(lc_root)
        .arg("--process")
        .arg(req.process)
        .arg("--shim-log")
        .arg(paths.shim_log())
        .args(["--control", req.control])
        .arg("--exit-file")
        .arg(req.exit_file);
    io_args(&mut cmd, req.io, paths.bundle());
    if req.detach {
        cmd.arg("--detach");
        return Ok((launch(cmd, Stdio::null(), paths).await?, None));
    }
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
    let started = launch(cmd, Stdio::from(OwnedFd::from(theirs)), paths).await?;
    ours.set_nonblocking(true).map_err(|e| Error::io("socketpair", e))?;
    let stream = UnixStream::from_std(ours).map_err(|e| Error::io("socketpair", e))?;
    Ok((started, Some(ShimConn::new(stream))))
}

fn start_error(kind: FailKind, message: String) -> Error {
    let message = docker_words(kind, &message);
    match kind {
        FailKind::NotFound => Error::CommandNotFound(message),
        FailKind::CannotExecute => Error::CannotExecute(message),
        FailKind::Other => Error::Internal(format!("start failed: {message}")),
    }
}

/// A framed connection to a shim.
pub struct ShimConn {
    pub reader: FrameReader,
    pub writer: FrameWriter,
}

/// Reads frames from a buffer the socket fills directly; a frame's payload
/// is split off that buffer, not copied out of it.
pub struct FrameReader {
    sock: OwnedReadHalf,
    buf: BytesMut,
}
pub struct FrameWriter(OwnedWriteHalf);

impl ShimConn {
    fn new(stream: UnixStream) -> ShimConn {
        let (r, w) = stream.into_split();
        ShimConn { reader: FrameReader { sock: r, buf: BytesMut::new() }, writer: FrameWriter(w) }
    }

    /// Connects to a run shim's control socket.
    pub async fn connect(paths: &ContainerPaths) -> std::io::Result<ShimConn> {
        ShimConn::connect_to(paths, CONTROL_SOCKET).await
    }

    /// Connects to the control socket `name` in the container's bundle.
    pub async fn connect_to(paths: &ContainerPaths, name: &str) -> std::io::Result<ShimConn> {
        let path = SocketPath::new(paths.bundle(), name)?;
        Ok(ShimConn::new(UnixStream::connect(&path.path).await?))
    }

    /// Attaches to the process's stdio; a terminal size first, if any.
    pub async fn attach(&mut self, attach: Attach, size: Option<(u16, u16)>) -> std::io::Result<()> {
        if let Some((rows, cols)) = size {
            self.writer.send(&Frame::Resize { rows, cols }).await?;
        }
        self.writer.send(&Frame::Attach(attach)).await
    }
}

impl FrameWriter {
    pub async fn send(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.0.write_all(&frame.encode()).await
    }

    /// Sends stdin bytes as one frame without copying them into it.
    pub async fn send_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.0.write_all(&Frame::stdin_header(data.len())).await?;
        self.0.write_all(data).await
    }
}

impl FrameReader {
    /// The next frame; `None` when the shim closed the connection.
    pub async fn recv(&mut self) -> std::io::Result<Option<Frame>> {
        let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        loop {
            let want = match payload_len(&self.buf).map_err(invalid)? {
                Some(len) if self.buf.len() >= HEADER_LEN + len => {
                    let mut frame = self.buf.split_to(HEADER_LEN + len);
                    let payload = frame.split_off(HEADER_LEN).freeze();
                    return Frame::decode_owned(frame[0], payload).map(Some).map_err(invalid);
                }
                Some(len) => HEADER_LEN + len,
                None => HEADER_LEN,
            };
            self.buf.reserve(want.max(READ_BUFFER) - self.buf.len());
            if self.sock.read_buf(&mut self.buf).await? == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(std::io::ErrorKind::UnexpectedEof.into()),
                };
            }
        }
    }
}

/// Delivers a signal through the container's shim (its pidfd), so a pid
/// reused after the container exited is never hit. `Ok(false)`: the shim
/// is gone or the process has exited.
pub async fn signal(paths: &ContainerPaths, sig: i32) -> Result<bool> {
    let ask = async {
        let mut conn = ShimConn::connect(paths).await?;
        conn.writer.send(&Frame::Signal(sig)).await?;
        conn.reader.recv().await
    };
    match tokio::time::timeout(SIGNAL_TIMEOUT, ask).await {
        Err(_) => Err(Error::internal("the container's shim did not answer a signal request")),
        Ok(Ok(Some(Frame::Done(answer)))) if answer.is_empty() => Ok(true),
        Ok(Ok(Some(Frame::Done(answer)))) => {
            tracing::debug!("signal {sig}: {answer}");
            Ok(false)
        }
        Ok(_) => Ok(false),
    }
}
