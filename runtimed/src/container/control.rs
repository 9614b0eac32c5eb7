//! Operations on running containers: signals, stop, wait, log follow.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::logs::{LogLine, LogReader, FOLLOW_POLL};
use super::manager::Manager;
use super::{cgroup, shim_client, ContainerRecord};
use crate::error::{Error, Result};

impl Manager {
    /// Signals the container's init through its shim; a container whose
    /// shim is gone has exited (the shim takes it along).
    pub(super) async fn signal(&self, rec: &ContainerRecord, sig: Signal) -> Result<()> {
        if !rec.is_running() {
            return Err(not_running(rec));
        }
        shim_client::signal(&self.paths(&rec.id), sig as i32).await?;
        Ok(())
    }

    /// SIGKILLs every process in the container's cgroup, not only its
    /// recorded init: children that left the init's tree go too.
    pub(super) async fn kill_all(&self, rec: &ContainerRecord) -> Result<()> {
        let (parent, id) = (self.inner.cfg.cgroup_parent.clone(), rec.id.clone());
        let killed =
            tokio::task::spawn_blocking(move || cgroup::kill_all(&parent, &id)).await.map_err(Error::internal)?;
        if killed == 0 {
            return self.signal(rec, Signal::SIGKILL).await;
        }
        Ok(())
    }

    pub async fn kill(&self, reference: &str, signal: &str) -> Result<()> {
        let sig = parse_signal(signal)?;
        let rec = self.resolve(reference)?;
        self.signal(&rec, sig).await?;
        self.inner.events.emit("kill", &rec.id, &rec.name, &[("signal", sig.to_string())]);
        Ok(())
    }

    /// The stop signal (SIGTERM unless the image says otherwise), then
    /// SIGKILL after `timeout`; a stopped container is fine.
    pub async fn stop(&self, reference: &str, timeout: Duration) -> Result<()> {
        let rec = self.resolve(reference)?;
        let slot = self.slot(&rec);
        let mut rx = slot.state.subscribe();
        if rec.is_running() {
            let sig = match rec.spec.stop_signal.as_str() {
                "" => Signal::SIGTERM,
                s => parse_signal(s).unwrap_or(Signal::SIGTERM),
            };
            self.signal(&rec, sig).await?;
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

    /// Streams the log: the last `tail` lines (all if `None`), then, when
    /// `follow`, new lines until the container stops.
    pub fn logs(&self, reference: &str, follow: bool, tail: Option<usize>) -> Result<mpsc::Receiver<LogLine>> {
        let rec = self.resolve(reference)?;
        let mut reader = LogReader::open(&self.paths(&rec.id).log())
            .map_err(|e| Error::io(format!("open log of {}", rec.name), e))?;
        let mut state = self.slot(&rec).state.subscribe();
        let first_run = state.borrow().starts;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let mut lines = reader.read_tail(tail);
            loop {
                for line in lines.unwrap_or_default() {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                let now = *state.borrow_and_update();
                if !follow || (now.done() && now.starts >= first_run) {
                    // One last read: the shim writes everything before exiting.
                    if follow {
                        for line in reader.read_new().unwrap_or_default() {
                            let _ = tx.send(line).await;
                        }
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

pub(super) fn not_running(rec: &ContainerRecord) -> Error {
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
