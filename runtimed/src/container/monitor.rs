//! Watching shims: a pidfd per shim tells the daemon when a container is
//! gone; the shim's exit file says how. At daemon start, `reconcile` matches
//! the store with what is really running and removes what nobody owns.

use std::collections::HashSet;
use tokio::io::unix::AsyncFd;

use super::logs::read_exit_file;
use super::manager::{teardown, Manager};
use super::{cgroup, rootfs, ContainerPaths, ContainerRecord, State};
use crate::error::{Error, Result};
use crate::util::{now_nanos, pidfd_open};

/// Exit code recorded when a shim vanished without writing its exit file.
pub(super) const LOST_EXIT_CODE: i32 = 255;

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
        if !rec.is_running() || rec.shim_pid != shim_pid {
            return Ok(());
        }
        let paths = self.paths(id);
        let status = read_exit_file(&paths.exit_file()).or_else(|| read_exit_file(&paths.old_exit_file()));
        if status.is_none() {
            // The shim died before its container (killed, or out of disk):
            // nothing supervises the container any more, so it must not
            // run on.
            let (parent, cid) = (self.inner.cfg.cgroup_parent.clone(), id.to_string());
            let killed = tokio::task::spawn_blocking(move || cgroup::kill_all(&parent, &cid)).await.unwrap_or(0);
            tracing::warn!(id, killed, "shim {shim_pid} ended without an exit status; its container was killed");
        }
        let exit_code = status.map(|s| s.exit_code).unwrap_or(LOST_EXIT_CODE);
        rec.mark_exited(exit_code, status.map(|s| s.finished_at).unwrap_or_else(now_nanos));
        if let Err(e) = rootfs::unmount(&paths) {
            tracing::warn!(id, "{e}");
        }
        if let Err(e) = self.inner.networks.unpublish(&rec.ports).await {
            tracing::warn!(id, "unpublish ports: {e}");
        }
        if let Err(e) = self.inner.store.containers.put(id, &rec).await {
            // Waiters (stop, rm -f) must still learn of the exit; the record
            // is written as soon as the store takes writes again.
            tracing::error!(id, "record exit: {e}; retrying until the store takes it");
            self.persist_later(rec.clone());
        }
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

    /// Retries writing a record that the store refused (a full disk), as
    /// long as no newer change of the container replaced it.
    fn persist_later(&self, rec: ContainerRecord) {
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match manager.inner.store.containers.get(&rec.id) {
                    Ok(Some(stored)) if stored.is_running() && stored.started_at == rec.started_at => {}
                    _ => return,
                }
                if manager.inner.store.containers.put(&rec.id, &rec).await.is_ok() {
                    tracing::info!(id = rec.short_id(), "exit recorded after the store recovered");
                    return;
                }
            }
        });
    }

    /// Loads every container's names into the DNS records, before the DNS
    /// servers start: a server taking back its socket from the keeper
    /// answers queued queries at once, and must know the names by then.
    pub fn load_dns_names(&self) -> Result<()> {
        for rec in self.inner.store.containers.list()? {
            for ep in &rec.endpoints {
                self.dns_register(&rec, ep);
            }
        }
        Ok(())
    }

    /// Brings the store in line with reality after a daemon (re)start.
    pub async fn reconcile(&self) -> Result<()> {
        let records = self.inner.store.containers.list()?;
        let known: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        for rec in records {
            match rec.state {
                State::Running if shim_alive(rec.shim_pid, &rec.id) => {
                    tracing::info!(id = rec.short_id(), pid = rec.pid, "container still running");
                    // A crash between its start and the unmount that follows
                    // left the rootfs in the host's table; the container
                    // holds its own.
                    let _ = rootfs::unmount(&self.paths(&rec.id));
                    self.slot(&rec);
                    self.watch_exit(&rec);
                }
                State::Running => {
                    self.slot(&rec);
                    self.record_exit(&rec.id, rec.shim_pid).await?;
                }
                State::Created | State::Exited => {
                    // A start cut off by a crash may have left it running.
                    self.clear_runtime(&rec.id).await;
                    let _ = rootfs::unmount(&self.paths(&rec.id));
                    self.slot(&rec);
                }
            }
        }
        self.remove_orphans(&known).await;
        let records = self.inner.store.containers.list()?;
        let live: Vec<_> = records.iter().filter(|c| c.is_running()).flat_map(|c| c.ports.clone()).collect();
        let endpoints = records.into_iter().map(|c| (c.id, c.endpoints)).collect();
        self.inner.networks.release_orphans(&live, &endpoints).await
    }

    /// Kills and deletes processes, layers, namespaces, cgroups and
    /// libcontainer state of containers the store does not know (a create
    /// cut off by a crash, or a removal cut off after the record went).
    async fn remove_orphans(&self, known: &HashSet<String>) {
        let cfg = &self.inner.cfg;
        let mut found = cgroup::ids(&cfg.cgroup_parent);
        for dir in [cfg.containers_dir(), cfg.bundles_dir(), cfg.netns_dir(), cfg.libcontainer_root()] {
            let entries = std::fs::read_dir(&dir).into_iter().flatten().flatten();
            found.extend(entries.map(|e| e.file_name().to_string_lossy().into_owned()));
        }
        for id in found.difference(known) {
            tracing::warn!(id, "removing the leftovers of a container the store does not know");
            self.clear_runtime(id).await;
            teardown(&ContainerPaths::new(cfg, id));
        }
    }

    /// Ends whatever runs for a container that must not be running: its
    /// processes (by cgroup), its shim, libcontainer's state and its cgroup.
    /// Safe to repeat; a no-op when nothing is there.
    pub(super) async fn clear_runtime(&self, id: &str) {
        let (parent, lc_state) = (self.inner.cfg.cgroup_parent.clone(), self.inner.cfg.libcontainer_root().join(id));
        let id = id.to_string();
        let cleared = tokio::task::spawn_blocking(move || clear_runtime_blocking(&parent, &lc_state, &id)).await;
        if let Err(e) = cleared {
            tracing::error!("clear container runtime: {e}");
        }
    }
}

fn clear_runtime_blocking(parent: &str, lc_state: &std::path::Path, id: &str) {
    // The common case, a container whose shim saw it exit and cleaned up:
    // nothing to scan /proc for.
    if !lc_state.exists() && cgroup::dirs(parent, id).is_empty() {
        return;
    }
    let shim = find_shim(id);
    let killed = cgroup::kill_all(parent, id);
    if let Some(pid) = shim {
        // The shim leaves once its container is gone; make sure it does.
        if !wait_gone(pid, std::time::Duration::from_secs(3)) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            wait_gone(pid, std::time::Duration::from_secs(1));
        }
    }
    if killed > 0 || shim.is_some() {
        tracing::warn!(id, killed, shim = ?shim, "stopped processes of a container that is not running");
    }
    if lc_state.exists() {
        let _ = std::fs::remove_dir_all(lc_state);
    }
    cgroup::remove(parent, id);
}

/// Waits until `pid` has exited (it is not our child: polls /proc).
fn wait_gone(pid: i32, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// The shim of container `id`, found by its command line: after a crash
/// the store may not know its pid.
fn find_shim(id: &str) -> Option<i32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| shim_alive(pid, id))
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
