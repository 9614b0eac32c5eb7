//! The daemon's side of the shim: launch `runtimed shim run` and read its
//! ready line; run `runtimed shim exec` and read its outcome.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use super::ContainerPaths;
use crate::error::{Error, Result};
use crate::shim::protocol::{docker_words, ExecOutcome, FailKind, Ready};

/// How long a container may take to be created by the shim.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Started {
    pub pid: i32,
    pub shim_pid: i32,
}

pub async fn start(exe: &Path, lc_root: &Path, id: &str, paths: &ContainerPaths) -> Result<Started> {
    let mut child = Command::new(exe)
        .arg("shim")
        .arg("run")
        .args(["--id", id])
        .arg("--bundle")
        .arg(paths.bundle())
        .arg("--lc-root")
        .arg(lc_root)
        .arg("--log")
        .arg(paths.log())
        .arg("--exit-file")
        .arg(paths.exit_file())
        .arg("--shim-log")
        .arg(paths.shim_log())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(format!("spawn shim {}", exe.display()), e))?;
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
        Error::internal(format!("shim failed before starting the container (see {})", paths.shim_log().display()))
    })?;
    match ready {
        Ready::Started { pid, shim_pid } => Ok(Started { pid, shim_pid }),
        Ready::Failed { kind, message } => Err(start_error(kind, message)),
    }
}

pub struct ExecRequest<'a> {
    pub id: &'a str,
    pub cmd: &'a [String],
    pub env: &'a [String],
    pub cwd: Option<&'a str>,
    pub uid: u32,
    pub gid: u32,
}

pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub async fn exec(exe: &Path, lc_root: &Path, req: &ExecRequest<'_>) -> Result<ExecOutput> {
    let mut cmd = Command::new(exe);
    cmd.arg("shim").arg("exec").args(["--id", req.id]).arg("--lc-root").arg(lc_root);
    for kv in req.env {
        cmd.arg(format!("--env={kv}"));
    }
    if let Some(cwd) = req.cwd {
        cmd.arg(format!("--cwd={cwd}"));
    }
    cmd.arg(format!("--uid={}", req.uid)).arg(format!("--gid={}", req.gid)).arg("--");
    cmd.args(req.cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io("spawn exec shim", e))?;
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut out).await.map_err(|e| Error::io("read exec result", e))?;
    }
    child.wait().await.map_err(|e| Error::io("wait for exec shim", e))?;
    let outcome: ExecOutcome =
        serde_json::from_slice(&out).map_err(|_| Error::internal("exec shim failed without a result"))?;
    match outcome {
        ExecOutcome::Exited { exit_code, stdout, stderr } => Ok(ExecOutput { exit_code, stdout, stderr }),
        ExecOutcome::Failed { kind, message } => Err(start_error(kind, message)),
    }
}

fn start_error(kind: FailKind, message: String) -> Error {
    let message = docker_words(kind, &message);
    match kind {
        FailKind::NotFound => Error::CommandNotFound(message),
        FailKind::CannotExecute => Error::CannotExecute(message),
        FailKind::Other => Error::Internal(format!("start failed: {message}")),
    }
}
