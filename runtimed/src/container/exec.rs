//! `exec`: one more process in a running container, with its own shim
//! serving its stdio on a socketpair.

use super::control::not_running;
use super::manager::Manager;
use super::shim_client::{self, IoOptions, ShimConn};
use super::{spec, user, validate};
use crate::error::{Error, Result};
use crate::ids::random_id;
use crate::shim::frame::Attach;

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
}

pub struct ExecSession {
    pub exec_id: String,
    /// The process's stdio; none when detached.
    pub conn: Option<ShimConn>,
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
        let user = user::resolve(&paths.rootfs(), &o.user).await?;
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
        let file = paths.dir.join(format!("exec-{exec_id}.json"));
        let data = serde_json::to_vec(&process).map_err(Error::internal)?;
        crate::util::write_atomic(&file, &data).map_err(|e| Error::io("write exec process", e))?;
        let req = shim_client::ExecRequest {
            id: &rec.id,
            process: &file,
            io: IoOptions { stdin: o.stdin && !o.detach, tty: o.tty, hold: !o.detach },
            detach: o.detach,
        };
        let lc_root = self.inner.cfg.libcontainer_root();
        let started = shim_client::exec(&self.inner.exe, &lc_root, &paths, &req).await;
        let _ = std::fs::remove_file(&file);
        let (_, mut conn) = started?;
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
        Ok(ExecSession { exec_id, conn })
    }
}
