//! Operations on running containers: signals, stop, wait, exec, log follow.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::logs::{LogLine, LogReader, FOLLOW_POLL};
use super::manager::Manager;
use super::{cgroup, shim_client, user, validate, ContainerRecord};
use crate::error::{Error, Result};

/// What a log follower receives.
pub enum Follow {
    Line(LogLine),
    /// The container stopped; no more lines will come.
    Exited(i32),
}

impl Manager {
    pub(super) fn signal(&self, rec: &ContainerRecord, sig: Signal) -> Result<()> {
        if !rec.is_running() || rec.pid <= 0 {
            return Err(not_running(rec));
        }
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(rec.pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::internal(format!("signal {sig} to {}: {e}", rec.name))),
        }
    }

    /// SIGKILLs every process in the container's cgroup, not only its
    /// recorded init: children that left the init's tree go too.
    pub(super) async fn kill_all(&self, rec: &ContainerRecord) -> Result<()> {
        let (parent, id) = (self.inner.cfg.cgroup_parent.clone(), rec.id.clone());
        let killed =
            tokio::task::spawn_blocking(move || cgroup::kill_all(&parent, &id)).await.map_err(Error::internal)?;
        if killed == 0 {
            return self.signal(rec, Signal::SIGKILL);
        }
        Ok(())
    }

    pub async fn kill(&self, reference: &str, signal: &str) -> Result<()> {
        let sig = parse_signal(signal)?;
        let rec = self.resolve(reference)?;
        self.signal(&rec, sig)?;
        self.inner.events.emit("kill", &rec.id, &rec.name, &[("signal", sig.to_string())]);
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `timeout`; a stopped container is fine.
    pub async fn stop(&self, reference: &str, timeout: Duration) -> Result<()> {
        let rec = self.resolve(reference)?;
        let slot = self.slot(&rec);
        let mut rx = slot.state.subscribe();
        if rec.is_running() {
            self.signal(&rec, Signal::SIGTERM)?;
            crate::failpoint::hit("stop:signalled");
            let exited = tokio::time::timeout(timeout, rx.wait_for(|s| !s.running)).await.is_ok();
            if !exited {
                // Everything in the cgroup: children that ignore SIGTERM and
                // outlived the init would otherwise keep the shim waiting.
                self.kill_all(&rec).await?;
                let _ = rx.wait_for(|s| !s.running).await;
            }
        }
        self.inner.events.emit("stop", &rec.id, &rec.name, &[]);
        Ok(())
    }

    /// Waits until the container is not running and returns its exit code.
    pub async fn wait(&self, reference: &str) -> Result<i32> {
        let rec = self.resolve(reference)?;
        let mut rx = self.slot(&rec).state.subscribe();
        let state = *rx.wait_for(|s| s.done()).await.map_err(|_| Error::internal("container state channel closed"))?;
        Ok(state.exit_code)
    }

    pub async fn exec(
        &self,
        reference: &str,
        cmd: &[String],
        env: &[String],
        working_dir: &str,
        user_spec: &str,
    ) -> Result<shim_client::ExecOutput> {
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command".into()));
        }
        validate::process(cmd, env)?;
        let rec = self.resolve(reference)?;
        if !rec.is_running() {
            return Err(not_running(&rec));
        }
        let user = user::resolve(&self.paths(&rec.id).rootfs(), user_spec).await?;
        let req = shim_client::ExecRequest {
            id: &rec.id,
            cmd,
            env,
            cwd: (!working_dir.is_empty()).then_some(working_dir),
            uid: user.uid,
            gid: user.gid,
        };
        self.inner.events.emit("exec", &rec.id, &rec.name, &[("command", cmd.join(" "))]);
        shim_client::exec(&self.inner.exe, &self.inner.cfg.libcontainer_root(), &req).await
    }

    /// Streams the log: the last `tail` lines (all if `None`), then, when
    /// `follow`, new lines until the container stops.
    pub fn logs(&self, reference: &str, follow: bool, tail: Option<usize>) -> Result<mpsc::Receiver<Follow>> {
        let rec = self.resolve(reference)?;
        self.follow(&rec, follow, tail, false)
    }

    /// Like `logs`; with `next_run`, following lasts until the container has
    /// been started (again) and stopped, for `run` which follows before start.
    pub fn follow(
        &self,
        rec: &ContainerRecord,
        follow: bool,
        tail: Option<usize>,
        next_run: bool,
    ) -> Result<mpsc::Receiver<Follow>> {
        let mut reader = LogReader::open(&self.paths(&rec.id).log())
            .map_err(|e| Error::io(format!("open log of {}", rec.name), e))?;
        let mut state = self.slot(rec).state.subscribe();
        let first_run = state.borrow().starts + u64::from(next_run);
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut lines = reader.read_tail(tail);
            loop {
                for line in lines.unwrap_or_default() {
                    if tx.send(Follow::Line(line)).await.is_err() {
                        return;
                    }
                }
                let now = *state.borrow_and_update();
                if !follow || (now.done() && now.starts >= first_run) {
                    // One last read: the shim writes everything before exiting.
                    if follow {
                        for line in reader.read_new().unwrap_or_default() {
                            let _ = tx.send(Follow::Line(line)).await;
                        }
                        let _ = tx.send(Follow::Exited(now.exit_code)).await;
                    }
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = state.changed() => {}
                    _ = tx.closed() => return,
                }
                lines = reader.read_new();
            }
        });
        Ok(rx)
    }
}

fn not_running(rec: &ContainerRecord) -> Error {
    Error::FailedPrecondition(format!("container {} is not running", rec.name))
}

/// Accepts `KILL`, `SIGKILL`, `kill` or `9`; empty means SIGKILL.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if s.is_empty() {
        return Ok(Signal::SIGKILL);
    }
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::InvalidArgument(format!("invalid signal: {s}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<Signal>().map_err(|_| Error::InvalidArgument(format!("invalid signal: {s}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signal_names_and_numbers() {
        assert_eq!(parse_signal("").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGHUP").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
