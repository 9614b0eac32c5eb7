//! `exec`: one more process in a running container, with its own shim
//! serving its stdio on a socketpair and a control socket on which the
//! daemon resizes it and learns its exit code (kept by exec id until the
//! container is removed, as docker keeps its execs).

use std::path::PathBuf;

use tokio::sync::watch;

use super::control::not_running;
use super::logs::read_exit_file;
use super::manager::Manager;
use super::monitor::LOST_EXIT_CODE;
use super::shim_client::{self, IoOptions, ShimConn};
use super::{spec, user, validate, ContainerPaths};
use crate::error::{Error, Result};
use crate::ids::random_id;
use crate::shim::frame::{Attach, Frame};

/// An exec the daemon knows: its container and, once known, its exit code.
pub(super) struct ExecEntry {
    container: String,
    exit: watch::Sender<Option<i32>>,
}

/// The exec's control socket in its container's bundle.
fn control_name(exec_id: &str) -> String {
    format!("exec-{}.sock", crate::ids::short_id(exec_id))
}

fn exit_file(paths: &ContainerPaths, exec_id: &str) -> std::path::PathBuf {
    paths.bundle().join(format!("exec-{}.exit", crate::ids::short_id(exec_id)))
}

#[derive(Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stdin: bool,
    pub tty: bool,
    pub detach: bool,
    pub privileged: bool,
    pub size: Option<(u16, u16)>,
    /// The client hands the shim its own stdio (`Frame::AttachFds`) on
    /// the exec's control socket; the output is held until it does.
    pub direct: bool,
}

pub struct ExecSession {
    pub exec_id: String,
    /// The process's stdio; none when detached or direct.
    pub conn: Option<ShimConn>,
    /// The exec's control socket, for a direct client.
    pub socket: PathBuf,
}

impl Manager {
    pub async fn exec(&self, reference: &str, o: &ExecOptions) -> Result<ExecSession> {
        if o.cmd.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        validate::process(&o.cmd, &o.env)?;
        let rec = self.resolve(reference)?;
        if !rec.is_running() {
            return Err(not_running(&rec));
        }
        let paths = self.paths(&rec.id);
        // The rootfs is mounted only in the container's own mount namespace.
        let root = PathBuf::from(format!("/proc/{}/root", rec.pid));
        let user = user::resolve(&root, &o.user).await?;
        let process = spec::exec_process(
            paths.bundle(),
            &spec::ExecProcess {
                cmd: &o.cmd,
                env: &o.env,
                cwd: (!o.working_dir.is_empty()).then_some(o.working_dir.as_str()),
                user,
                tty: o.tty,
                privileged: o.privileged,
            },
        )?;
        let exec_id = random_id();
        let file = paths.bundle().join(format!("exec-{}.json", crate::ids::short_id(&exec_id)));
        let data = serde_json::to_vec(&process).map_err(Error::internal)?;
        crate::util::write_atomic(&file, &data).map_err(|e| Error::io("write exec process", e))?;
        let (control, exit) = (control_name(&exec_id), exit_file(&paths, &exec_id));
        let req = shim_client::ExecRequest {
            id: &rec.id,
            control: &control,
            exit_file: &exit,
            process: &file,
            io: IoOptions { stdin: o.stdin && !o.detach, tty: o.tty, hold: !o.detach },
            detach: o.detach,
        };
        let lc_root = self.inner.cfg.libcontainer_root();
        let started = shim_client::exec(&self.inner.exe, &lc_root, &paths, &req).await;
        let _ = std::fs::remove_file(&file);
        let (_, mut conn) = started?;
        // A direct client attaches on the control socket instead; the shim
        // holds the output for it.
        if o.direct {
            conn = None;
        }
        if let Some(conn) = conn.as_mut() {
            let attach = Attach { stdin: o.stdin, stdout: true, stderr: true };
            conn.attach(attach, o.size).await.map_err(|e| Error::io("attach to the exec shim", e))?;
        }
        self.inner.events.emit(
            "exec",
            &rec.id,
            &rec.name,
            &[("command", o.cmd.join(" ")), ("execID", exec_id.clone())],
        );
        let (tx, _) = watch::channel(None);
        let entry = ExecEntry { container: rec.id.clone(), exit: tx.clone() };
        self.inner.execs.lock().expect("execs lock").insert(exec_id.clone(), entry);
        tokio::spawn(watch_exec(paths.clone(), exec_id.clone(), tx));
        Ok(ExecSession { socket: paths.bundle().join(&control), exec_id, conn })
    }

    fn exec_entry(&self, exec_id: &str) -> Result<(String, watch::Receiver<Option<i32>>)> {
        let execs = self.inner.execs.lock().expect("execs lock");
        let e = execs.get(exec_id).ok_or_else(|| Error::NotFound(format!("no such exec: {exec_id}")))?;
        Ok((e.container.clone(), e.exit.subscribe()))
    }

    /// Changes the terminal size of a running exec.
    pub async fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        let (container, exit) = self.exec_entry(exec_id)?;
        let gone = || Error::FailedPrecondition(format!("exec {exec_id} is not running"));
        if exit.borrow().is_some() {
            return Err(gone());
        }
        let paths = self.paths(&container);
        let mut conn = ShimConn::connect_to(&paths, &control_name(exec_id)).await.map_err(|_| gone())?;
        conn.writer.send(&Frame::Resize { rows, cols }).await.map_err(|e| Error::io("resize exec", e))
    }

    /// Waits for an exec to end; its exit code.
    pub async fn wait_exec(&self, exec_id: &str) -> Result<i32> {
        let (_, mut exit) = self.exec_entry(exec_id)?;
        let code = exit.wait_for(Option::is_some).await.map_err(|_| Error::internal("exec state channel closed"))?;
        Ok(code.unwrap_or(LOST_EXIT_CODE))
    }

    /// Forgets the execs of a removed container.
    pub(super) fn forget_execs(&self, container: &str) {
        self.inner.execs.lock().expect("execs lock").retain(|_, e| e.container != container);
    }
}

/// Learns an exec's exit code: from its shim, which tells every attached
/// client, or from the file it writes before it removes its socket.
async fn watch_exec(paths: ContainerPaths, exec_id: String, exit: watch::Sender<Option<i32>>) {
    let mut code = None;
    if let Ok(mut conn) = ShimConn::connect_to(&paths, &control_name(&exec_id)).await {
        if conn.attach(Attach::default(), None).await.is_ok() {
            while let Ok(Some(frame)) = conn.reader.recv().await {
                if let Frame::Exit(c) = frame {
                    code = Some(c);
                    break;
                }
            }
        }
    }
    let file = exit_file(&paths, &exec_id);
    for _ in 0..20 {
        if code.is_some() {
            break;
        }
        code = read_exit_file(&file).map(|s| s.exit_code);
        if code.is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let _ = std::fs::remove_file(&file);
    exit.send_replace(Some(code.unwrap_or(LOST_EXIT_CODE)));
}
