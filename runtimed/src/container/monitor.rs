//! Watching shims: a pidfd per shim tells the daemon when a container is
//! gone; the shim's exit file says how. At daemon start, `reconcile` matches
//! the store with what is really running and removes what nobody owns.

use std::collections::HashSet;
use tokio::io::unix::AsyncFd;

use super::logs::read_exit_file;
use super::manager::{teardown, Manager};
use super::{rootfs, ContainerPaths, ContainerRecord, State};
use crate::error::{Error, Result};
use crate::util::{now_nanos, pidfd_open};

/// Exit code recorded when a shim vanished without writing its exit file.
const LOST_EXIT_CODE: i32 = 255;

impl Manager {
    /// Spawns a task that records the container's exit when its shim ends.
    pub(super) fn watch_exit(&self, rec: &ContainerRecord) {
        let manager = self.clone();
        let (id, shim_pid) = (rec.id.clone(), rec.shim_pid);
        tokio::spawn(async move {
            if let Some(fd) = pidfd_open(shim_pid) {
                // SAFETY: the OwnedFd stays open for the AsyncFd's lifetime.
                match unsafe { AsyncFd::register(fd) } {
                    Ok(afd) => {
                        let _ = afd.readable().await;
                    }
                    Err(e) => tracing::error!("watch shim {shim_pid}: {e}"),
                }
            }
            if let Err(e) = manager.record_exit(&id, shim_pid).await {
                tracing::error!(id, "record exit: {e}");
            }
        });
    }

    /// Stores the exit of the container supervised by `shim_pid`, then
    /// removes it if it was started with `--rm`.
    async fn record_exit(&self, id: &str, shim_pid: i32) -> Result<()> {
        let Some(mut rec) = self.inner.store.containers.get(id)? else { return Ok(()) };
        if rec.state != State::Running || rec.shim_pid != shim_pid {
            return Ok(());
        }
        let paths = self.paths(id);
        let status = read_exit_file(&paths.exit_file());
        if status.is_none() {
            tracing::warn!(id, "shim {shim_pid} ended without an exit status");
        }
        rec.state = State::Exited;
        rec.exit_code = status.map(|s| s.exit_code).unwrap_or(LOST_EXIT_CODE);
        rec.finished_at = status.map(|s| s.finished_at).unwrap_or_else(now_nanos);
        rec.pid = 0;
        rec.shim_pid = 0;
        if let Err(e) = rootfs::unmount(&paths) {
            tracing::warn!(id, "{e}");
        }
        if let Err(e) = self.inner.networks.unpublish(&rec.ports).await {
            tracing::warn!(id, "unpublish ports: {e}");
        }
        self.inner.store.containers.put(id, &rec).await?;
        let slot = self.slot(&rec);
        slot.state.send_modify(|s| {
            s.running = false;
            s.exit_code = rec.exit_code;
        });
        let code = rec.exit_code.to_string();
        self.inner.events.emit("die", id, &rec.name, &[("exitCode", code)]);
        if rec.spec.auto_remove {
            match self.remove(id, true).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => tracing::error!(id, "auto-remove: {e}"),
            }
        }
        // Waiters wake only now, so `run --rm` returns after the removal.
        slot.state.send_modify(|s| s.settled = true);
        Ok(())
    }

    /// Brings the store in line with reality after a daemon (re)start.
    pub async fn reconcile(&self) -> Result<()> {
        let records = self.inner.store.containers.list()?;
        let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        for rec in records {
            for ep in &rec.endpoints {
                self.dns_register(&rec, ep);
            }
            match rec.state {
                State::Running if shim_alive(rec.shim_pid, &rec.id) => {
                    tracing::info!(id = rec.short_id(), pid = rec.pid, "container still running");
                    self.slot(&rec);
                    self.watch_exit(&rec);
                }
                State::Running => {
                    self.slot(&rec);
                    self.record_exit(&rec.id, rec.shim_pid).await?;
                }
                State::Created | State::Exited => {
                    let _ = rootfs::unmount(&self.paths(&rec.id));
                    self.slot(&rec);
                }
            }
        }
        self.remove_orphans(&known);
        let live: Vec<_> = self
            .inner
            .store
            .containers
            .list()?
            .into_iter()
            .filter(|c| c.state == State::Running)
            .flat_map(|c| c.ports)
            .collect();
        self.inner.networks.release_orphans(&live, &known).await
    }

    /// Deletes layers, namespaces and libcontainer state of containers the
    /// store does not know (left by a crash between steps).
    fn remove_orphans(&self, known: &HashSet<String>) {
        let cfg = &self.inner.cfg;
        for dir in [cfg.containers_dir(), cfg.netns_dir(), cfg.libcontainer_root()] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if known.contains(&id) {
                    continue;
                }
                tracing::warn!(id, "removing leftovers of unknown container in {}", dir.display());
                if dir == cfg.libcontainer_root() {
                    let _ = std::fs::remove_dir_all(entry.path());
                } else {
                    teardown(&ContainerPaths::new(&cfg.containers_dir(), &cfg.netns_dir(), &id));
                }
            }
        }
    }
}

/// A pid is our shim only if its command line names the container.
fn shim_alive(pid: i32, id: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    args.iter().any(|a| *a == b"shim") && args.contains(&id.as_bytes())
}
