//! The per-container supervisor (`runtimed shim run|exec`).
//!
//! It runs single-threaded, because libcontainer clones the calling process
//! and runs Rust code in the child. `run` forks away from the daemon (so the
//! container survives a daemon crash), starts the container, reports the pid
//! on its stdout, copies the container's output into the JSON log, waits for
//! the exit and records it in an exit file. `exec` joins a running container,
//! collects the output and prints the outcome as JSON.

pub mod log;
pub mod protocol;
mod pump;

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, setsid, ForkResult};

use crate::util::{append_private, now_nanos, write_atomic, LossyStderr};
use log::LogWriter;
use protocol::{classify, ExecOutcome, ExitStatus, FailKind, Ready};

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
}

#[derive(clap::Args)]
struct ExecArgs {
    #[arg(long)]
    id: String,
    #[arg(long)]
    lc_root: PathBuf,
    #[arg(long = "env")]
    env: Vec<String>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    #[arg(long)]
    uid: Option<u32>,
    #[arg(long)]
    gid: Option<u32>,
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

pub fn main(args: ShimArgs) -> ExitCode {
    match args.command {
        ShimCommand::Run(a) => run(a),
        ShimCommand::Exec(a) => exec(a),
    }
}

fn run(a: RunArgs) -> ExitCode {
    // The daemon reaps this process at once and reads the ready line from
    // the inherited stdout pipe, which the grandchild keeps.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(ForkResult::Child) => {}
        Err(e) => return report(&Ready::Failed { kind: FailKind::Other, message: e.to_string() }),
    }
    let _ = setsid();
    // libcontainer's helper processes are cloned as our siblings; as a
    // subreaper we inherit them when they end and reap them in `pump`.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let ready = match take_stdout_and_log_to(&a.shim_log) {
        Ok(fd) => fd,
        Err(e) => return report(&Ready::Failed { kind: FailKind::Other, message: e.to_string() }),
    };
    init_tracing();
    let mut ready = std::fs::File::from(ready);
    let (out_r, out_w, err_r, err_w) = match pipes() {
        Ok(p) => p,
        Err(e) => return send(&mut ready, &Ready::Failed { kind: FailKind::Other, message: e }),
    };
    let pid = match start_container(&a, out_w, err_w) {
        Ok(pid) => pid,
        Err(message) => {
            delete_container(&a.lc_root, &a.id);
            return send(&mut ready, &Ready::Failed { kind: classify(&message), message });
        }
    };
    send(&mut ready, &Ready::Started { pid, shim_pid: std::process::id() as i32 });
    drop(ready);
    let exit_code = supervise(&a, pid, out_r, err_r);
    delete_container(&a.lc_root, &a.id);
    let status = ExitStatus { exit_code, finished_at: now_nanos() };
    let data = serde_json::to_vec(&status).unwrap_or_default();
    if let Err(e) = write_atomic(&a.exit_file, &data) {
        tracing::error!("cannot write exit file {}: {e}", a.exit_file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn start_container(a: &RunArgs, out: OwnedFd, err: OwnedFd) -> Result<i32, String> {
    with_default_signals(|| start_container_inner(a, out, err))
}

fn start_container_inner(a: &RunArgs, out: OwnedFd, err: OwnedFd) -> Result<i32, String> {
    let mut container = ContainerBuilder::new(a.id.clone(), SyscallType::default())
        .with_root_path(&a.lc_root)
        .map_err(|e| e.to_string())?
        .with_stdin(devnull().map_err(|e| e.to_string())?)
        .with_stdout(out)
        .with_stderr(err)
        .as_init(&a.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| error_chain(&e))?;
    container.start().map_err(|e| error_chain(&e))?;
    container.pid().map(|p| p.as_raw()).ok_or_else(|| "container has no pid".to_string())
}

/// Copies output into the log until the container exits; returns its code.
fn supervise(a: &RunArgs, pid: i32, out_r: OwnedFd, err_r: OwnedFd) -> i32 {
    let log = append_private(&a.log);
    let mut writer = match log {
        Ok(f) => LogWriter::new(f),
        Err(e) => {
            tracing::error!("cannot open log {}: {e}", a.log.display());
            LogWriter::new(std::fs::File::create("/dev/null").expect("/dev/null"))
        }
    };
    let code = pump::pump(pid, out_r, err_r, |stream, data| writer.write(stream, data));
    writer.finish();
    code
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

fn exec(a: ExecArgs) -> ExitCode {
    init_tracing();
    let outcome = match exec_inner(&a) {
        Ok(o) => o,
        Err(message) => ExecOutcome::Failed { kind: classify(&message), message },
    };
    let mut line = serde_json::to_vec(&outcome).unwrap_or_default();
    line.push(b'\n');
    let _ = std::io::stdout().write_all(&line);
    ExitCode::SUCCESS
}

fn exec_inner(a: &ExecArgs) -> Result<ExecOutcome, String> {
    let (out_r, out_w, err_r, err_w) = pipes()?;
    let pid = with_default_signals(|| spawn_exec(a, out_w, err_w))?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let exit_code = pump::pump(pid, out_r, err_r, |stream, data| match stream {
        protocol::Stream::Stdout => stdout.extend_from_slice(data),
        protocol::Stream::Stderr => stderr.extend_from_slice(data),
    });
    Ok(ExecOutcome::Exited { exit_code, stdout, stderr })
}

fn spawn_exec(a: &ExecArgs, out_w: OwnedFd, err_w: OwnedFd) -> Result<i32, String> {
    let env: HashMap<String, String> =
        a.env.iter().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let pid = ContainerBuilder::new(a.id.clone(), SyscallType::default())
        .with_root_path(&a.lc_root)
        .map_err(|e| e.to_string())?
        .with_stdin(devnull().map_err(|e| e.to_string())?)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .as_tenant()
        .with_container_args(a.cmd.clone())
        .with_env(env)
        .with_cwd(a.cwd.clone())
        .with_user(a.uid)
        .with_group(a.gid)
        .with_detach(false)
        .build()
        .map_err(|e| error_chain(&e))?;
    Ok(pid.as_raw())
}

/// Runs `f` (which forks the container's processes) with every signal at
/// its default disposition and none blocked, so the container starts as
/// from a fresh shell: Rust ignores SIGPIPE at start, `nohup` ignores
/// SIGHUP, and an ignored signal stays ignored across exec. The shim's own
/// dispositions are restored afterwards (it must survive a closed pipe).
fn with_default_signals<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let saved: Vec<(i32, KernelSigaction)> = (1..=64)
        .filter(|&sig| sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter_map(|sig| rt_sigaction(sig, &KernelSigaction::default()).map(|old| (sig, old)))
        .collect();
    let mut mask = SigSet::empty();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), Some(&mut mask));
    let out = f();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
    for (sig, old) in saved {
        rt_sigaction(sig, &old);
    }
    out
}

/// The kernel's `struct sigaction` (not libc's): glibc refuses to touch
/// the real-time signals it reserves, which may still be inherited ignored.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets `sig`'s disposition to `act`; returns the previous one.
fn rt_sigaction(sig: i32, act: &KernelSigaction) -> Option<KernelSigaction> {
    let mut old = KernelSigaction::default();
    // SAFETY: both structs match the kernel's layout and outlive the call;
    // the shim is single-threaded and runs no handler meanwhile.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act as *const KernelSigaction,
            &mut old as *mut KernelSigaction,
            8usize,
        )
    };
    (rc == 0).then_some(old)
}

type Pipes = (OwnedFd, OwnedFd, OwnedFd, OwnedFd);

fn pipes() -> Result<Pipes, String> {
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    Ok((out_r, out_w, err_r, err_w))
}

fn devnull() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
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
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LossyStderr).try_init();
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
