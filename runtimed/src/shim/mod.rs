//! The per-container supervisor (`runtimed shim run|exec`), the owner of
//! the process's IO the way containerd's shim is.
//!
//! It runs single-threaded, because libcontainer clones the calling process
//! and runs Rust code in the child. Both commands fork away from the daemon
//! (so the process survives a daemon crash), start the process, report its
//! pid on stdout, and then serve its stdio (`io`): `run` copies the output
//! into the container's log and to clients attached on its control socket, and
//! records the exit in an exit file; `exec` serves the one client on the
//! socket it was given as stdin.

pub use runtime_proto::frame;
mod io;
pub mod log;
mod mounts;
pub use mounts::prepare_drop_dir;
pub mod protocol;
mod queue;
mod raw;
mod setup;
mod signals;
pub mod template;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::{fork, setsid, ForkResult};

use crate::util::{append_private, now_nanos, write_atomic, LossyStderr};
use log::LogWriter;
use protocol::{classify, ExitStatus, FailKind, Ready};
use setup::{listen, start_io, ProcessStdio};

/// How long a foreground run's output waits for its client to attach.
const HOLD: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct ShimArgs {
    #[command(subcommand)]
    command: ShimCommand,
}

#[derive(clap::Subcommand)]
enum ShimCommand {
    /// Start a container from a bundle and supervise it until it exits.
    Run(RunArgs),
    /// Run one more process in a running container.
    Exec(ExecArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long)]
    id: String,
    #[arg(long)]
    bundle: PathBuf,
    /// libcontainer's state root.
    #[arg(long)]
    lc_root: PathBuf,
    /// The container's JSON-lines log.
    #[arg(long)]
    log: PathBuf,
    /// Where the exit status is written.
    #[arg(long)]
    exit_file: PathBuf,
    /// The shim's own diagnostics (and libcontainer's).
    #[arg(long)]
    shim_log: PathBuf,
    /// Directories whose mounts (other containers') the shim's own mount
    /// namespace leaves out...
    #[arg(long = "drop-mounts-under")]
    drop_mounts_under: Vec<PathBuf>,
    /// ...except these mounts (this container's rootfs and network
    /// namespace).
    #[arg(long = "keep-mount")]
    keep_mounts: Vec<PathBuf>,
    /// A mount namespace without those mounts, to copy instead of the
    /// host's (`template`).
    #[arg(long)]
    mount_template: Option<PathBuf>,
    #[command(flatten)]
    io: IoArgs,
}

#[derive(clap::Args)]
pub struct IoArgs {
    /// Keep stdin open for attached clients (`-i`).
    #[arg(long)]
    stdin: bool,
    /// Give the process a pty (`-t`; the spec says `terminal: true`).
    #[arg(long)]
    tty: bool,
    /// Hold the output until the first client attaches.
    #[arg(long)]
    hold: bool,
    /// Directory for the control and console sockets (private to root).
    #[arg(long)]
    sock_dir: PathBuf,
}

#[derive(clap::Args)]
struct ExecArgs {
    #[arg(long)]
    id: String,
    #[arg(long)]
    lc_root: PathBuf,
    /// The OCI process (args, env, cwd, user, capabilities, terminal).
    #[arg(long)]
    process: PathBuf,
    #[arg(long)]
    shim_log: PathBuf,
    /// No client: the output is discarded (`exec -d`).
    #[arg(long)]
    detach: bool,
    /// Name of the control socket in `--sock-dir` (resize, wait, signal).
    #[arg(long)]
    control: String,
    /// Where the exit status is written, for a waiter that comes late.
    #[arg(long)]
    exit_file: PathBuf,
    #[command(flatten)]
    io: IoArgs,
}

pub fn main(args: ShimArgs) -> ExitCode {
    match args.command {
        ShimCommand::Run(a) => run(a),
        ShimCommand::Exec(a) => exec(a),
    }
}

fn run(a: RunArgs) -> ExitCode {
    let mut ready = match detach(&a.shim_log) {
        Ok(Some(ready)) => ready,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return report(&Ready::Failed { kind: FailKind::Other, message: e.to_string() }),
    };
    match mounts::slim(&a.drop_mounts_under, &a.keep_mounts, a.mount_template.as_deref()) {
        Ok(n) => tracing::debug!("left {n} other mounts out of the shim's mount namespace"),
        Err(e) => return send(&mut ready, &Ready::Failed { kind: FailKind::Other, message: e }),
    }
    mounts::read_cgroup_mounts_once();
    let control = match listen(&a.io.sock_dir, CONTROL_SOCKET) {
        Ok(l) => l,
        Err(e) => return send(&mut ready, &Ready::Failed { kind: FailKind::Other, message: e }),
    };
    let started = start_io(&a.io, |stdio, console| {
        let mut container = builder(&a.id, &a.lc_root, stdio, console)?
            .as_init(&a.bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| error_chain(&e))?;
        container.start().map_err(|e| error_chain(&e))?;
        container.pid().map(|p| p.as_raw()).ok_or_else(|| "container has no pid".to_string())
    });
    let (pid, stdio) = match started {
        Ok(s) => s,
        Err(message) => {
            delete_container(&a.lc_root, &a.id);
            return send(&mut ready, &Ready::Failed { kind: classify(&message), message });
        }
    };
    send(&mut ready, &Ready::Started { pid, shim_pid: std::process::id() as i32 });
    drop(ready);
    let mut writer = match append_private(&a.log) {
        Ok(f) => LogWriter::new(f),
        Err(e) => {
            tracing::error!("cannot open log {}: {e}", a.log.display());
            LogWriter::new(std::fs::File::create("/dev/null").expect("/dev/null"))
        }
    };
    let exit_code = {
        let mut log = |stream, data: &[u8]| writer.write(stream, data);
        let hold = a.io.hold.then_some(HOLD);
        let (listener, path) = control;
        let code = io::serve(io::Serve { pid, stdio, listener: Some(listener), client: None, hold, log: &mut log });
        // Nothing answers there any more.
        let _ = std::fs::remove_file(&path.path);
        code
    };
    writer.finish();
    delete_container(&a.lc_root, &a.id);
    let status = ExitStatus { exit_code, finished_at: now_nanos() };
    let data = serde_json::to_vec(&status).unwrap_or_default();
    if let Err(e) = write_atomic(&a.exit_file, &data) {
        tracing::error!("cannot write exit file {}: {e}", a.exit_file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Name of a run shim's control socket in its `--sock-dir`.
pub const CONTROL_SOCKET: &str = "ctl.sock";

/// Forks away from the daemon (which reaps the first process at once and
/// reads the ready line from the inherited stdout, which the second keeps)
/// and points fds 1 and 2 at the shim log. `None` in the first process.
fn detach(shim_log: &Path) -> std::io::Result<Option<std::fs::File>> {
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => return Ok(None),
        ForkResult::Child => {}
    }
    let _ = setsid();
    // libcontainer's helper processes are cloned as our siblings; as a
    // subreaper we inherit them when they end and reap them in `io`.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let ready = take_stdout_and_log_to(shim_log)?;
    init_tracing();
    Ok(Some(std::fs::File::from(ready)))
}

/// libcontainer's builder for the container `id`, with the process's stdio
/// (and the console socket for a pty).
fn builder(
    id: &str,
    lc_root: &Path,
    stdio: ProcessStdio,
    console: Option<PathBuf>,
) -> Result<ContainerBuilder, String> {
    Ok(ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(lc_root)
        .map_err(|e| e.to_string())?
        .with_console_socket(console)
        .with_stdin(stdio.stdin)
        .with_stdout(stdio.stdout)
        .with_stderr(stdio.stderr))
}

/// Removes libcontainer's state and the container's cgroup; errors are only
/// logged because there is nothing left to undo.
fn delete_container(lc_root: &Path, id: &str) {
    let dir = lc_root.join(id);
    if !dir.exists() {
        return;
    }
    match Container::load(dir) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                tracing::error!("libcontainer delete {id}: {e}");
            }
        }
        Err(e) => tracing::error!("libcontainer load {id}: {e}"),
    }
}

/// `exec`: like `run`, but the one client is the socket on stdin (none
/// when detached) and there is no log.
fn exec(a: ExecArgs) -> ExitCode {
    use std::os::fd::FromRawFd;
    // The daemon's socket is fd 0; keep it away from libcontainer's stdio.
    let copy = nix::fcntl::fcntl(0, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3));
    let client = match copy {
        Ok(fd) if !a.detach => Some(UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })),
        _ => None,
    };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    }
    let mut ready = match detach(&a.shim_log) {
        Ok(Some(ready)) => ready,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return report(&Ready::Failed { kind: FailKind::Other, message: e.to_string() }),
    };
    let control = match listen(&a.io.sock_dir, &a.control) {
        Ok(l) => l,
        Err(e) => return send(&mut ready, &Ready::Failed { kind: FailKind::Other, message: e }),
    };
    mounts::read_cgroup_mounts_once();
    let started = start_io(&a.io, |stdio, console| {
        let tty = console.is_some();
        let pid = builder(&a.id, &a.lc_root, stdio, console)?
            .as_tenant()
            .with_process(Some(&a.process))
            .with_detach(tty)
            .build()
            .map_err(|e| error_chain(&e))?;
        Ok(pid.as_raw())
    });
    let _ = std::fs::remove_file(&a.process);
    let (pid, stdio) = match started {
        Ok(s) => s,
        Err(message) => {
            let _ = std::fs::remove_file(&control.1.path);
            return send(&mut ready, &Ready::Failed { kind: classify(&message), message });
        }
    };
    send(&mut ready, &Ready::Started { pid, shim_pid: std::process::id() as i32 });
    drop(ready);
    let mut discard = |_: protocol::Stream, _: &[u8]| {};
    let hold = client.is_some().then_some(HOLD);
    let (listener, path) = control;
    let exit_code = io::serve(io::Serve { pid, stdio, listener: Some(listener), client, hold, log: &mut discard });
    // The status is on disk before the socket goes: a waiter that finds no
    // socket finds the file.
    let status = ExitStatus { exit_code, finished_at: now_nanos() };
    if let Err(e) = write_atomic(&a.exit_file, &serde_json::to_vec(&status).unwrap_or_default()) {
        tracing::error!("cannot write exit file {}: {e}", a.exit_file.display());
    }
    let _ = std::fs::remove_file(&path.path);
    ExitCode::SUCCESS
}

/// Keeps a copy of stdout (the daemon's pipe) and points fds 1 and 2 at the
/// shim log, so stray output of libcontainer lands somewhere readable.
fn take_stdout_and_log_to(shim_log: &Path) -> std::io::Result<OwnedFd> {
    let ready = std::io::stdout().as_raw_fd();
    let copy = nix::fcntl::fcntl(ready, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    let copy = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) };
    let log = append_private(shim_log)?;
    nix::unistd::dup2(log.as_raw_fd(), 1)?;
    nix::unistd::dup2(log.as_raw_fd(), 2)?;
    Ok(copy)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNTIMED_SHIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The shim log may sit on a full disk: writing it must never fail.
    // Its stderr is the shim log, a file: no colours.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| LossyStderr).try_init();
}

/// libcontainer nests the useful message (e.g. "executable not found") in
/// its error sources; join them into one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn send(out: &mut std::fs::File, ready: &Ready) -> ExitCode {
    let mut line = serde_json::to_vec(ready).unwrap_or_default();
    line.push(b'\n');
    let _ = out.write_all(&line);
    match ready {
        Ready::Started { .. } => ExitCode::SUCCESS,
        Ready::Failed { .. } => ExitCode::FAILURE,
    }
}

fn report(ready: &Ready) -> ExitCode {
    let mut out = std::io::stdout();
    let _ = serde_json::to_writer(&mut out, ready);
    let _ = out.write_all(b"\n");
    ExitCode::FAILURE
}
